"""SIGHUP with a hostile config file: logged once, briefly; the old config kept; the music on."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from calmtunes import config as config_mod
from calmtunes.daemon import Daemon
from calmtunes.notify import Notifier


def bomb() -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    return "\n".join(lines) + "\naudio:\n  device: *a8\n"


def clear(path: Path) -> None:
    """Remove whatever is at ``path``: a file, a link, a FIFO or a directory."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def writer(data: bytes):
    return lambda path: (clear(path), path.write_bytes(data))


HOSTILE = {
    "latin1_byte": writer(b"# caf\xe9\naudio:\n  backend: null\n"),
    "deep_nesting": writer(b"audio: " + b"[" * 10_000 + b"]" * 10_000 + b"\n"),
    "alias_bomb": writer(bomb().encode()),
    "duplicate_key": writer(b"audio:\n  backend: null\n  backend: wav\n"),
    "long_string": writer(b"audio:\n  device: " + b"x" * 500_000 + b"\n"),
    "two_megabytes": writer(b"#" * 2_000_000 + b"\n"),
    "unknown_option": writer(b"music:\n  volume_step_db: 100\n  colour: red\n"),
    "fifo": lambda path: (clear(path), os.mkfifo(path)),
    "dev_zero": lambda path: (clear(path), path.symlink_to("/dev/zero")),
    "directory": lambda path: (clear(path), path.mkdir()),
    "missing": clear,
}


def wait_for(condition, timeout: float = 15.0) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` s pass (a bound on waiting, not a
    measurement)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def reload_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "calmtunes.daemon" and r.levelno >= logging.ERROR]


@pytest.fixture
def running(tmp_config, tmp_path):
    """A daemon running in-process on a config file it can reload; stopped afterwards."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(tmp_config)))
    daemon = Daemon(tmp_config, config_path=str(path))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    assert wait_for(lambda: daemon.audio.first_frame_at is not None)
    yield daemon, thread, path
    daemon.request_stop()
    thread.join(5)
    assert not thread.is_alive()


def test_each_hostile_file_is_refused_once_and_the_music_plays_on(running, tmp_config, caplog):
    daemon, thread, path = running
    original = daemon.config
    for name, make in HOSTILE.items():
        make(path)
        before = len(reload_errors(caplog))
        daemon.request_reload()
        assert wait_for(lambda n=before: len(reload_errors(caplog)) > n), name
        time.sleep(0.3)  # a loop turn or more: a second message would show by now
        new = reload_errors(caplog)[before:]
        assert len(new) == 1, (name, [r.getMessage()[:200] for r in new])
        message = new[0].getMessage()
        assert message.startswith("config reload refused, keeping the running config"), message
        assert str(path) in message and len(message.encode()) < 2100, (name, message[:300])
        assert new[0].exc_info is None, "a refused file is a message, not a traceback"
        assert thread.is_alive(), name
        assert daemon.config is original, name
    assert daemon.status()["components"]["audio"]["state"] == "ok"

    clear(path)  # and a good file is still taken afterwards
    data = dataclasses.asdict(tmp_config)
    data["music"]["volume_step_db"] = 6.0
    path.write_text(yaml.safe_dump(data))
    daemon.request_reload()
    assert wait_for(lambda: daemon.config.music.volume_step_db == 6.0)


def test_a_fault_while_loading_is_logged_and_the_daemon_plays_on(running, caplog, monkeypatch):
    daemon, thread, _ = running
    original = daemon.config

    def broken(path):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(config_mod, "load", broken)
    daemon.request_reload()
    assert wait_for(lambda: "config reload failed" in caplog.text)
    assert "MemoryError: cannot allocate" in caplog.text
    time.sleep(0.5)
    assert thread.is_alive() and daemon.config is original


def test_a_part_that_cannot_take_the_new_config_puts_every_part_back(running, tmp_config,
                                                                      caplog):
    daemon, thread, path = running
    original = daemon.config
    mixer = daemon.audio.mixer
    take = mixer.reconfigure

    def refuse_new(config):
        if config is not original:
            raise ValueError("cannot crossfade to that bed")
        take(config)

    mixer.reconfigure = refuse_new
    data = dataclasses.asdict(tmp_config)
    data["music"]["volume_step_db"] = 6.0
    path.write_text(yaml.safe_dump(data))
    daemon.request_reload()
    assert wait_for(lambda: "config reload undone" in caplog.text)
    assert "mixer could not take the new one" in caplog.text
    assert daemon.config is original and daemon.conductor.config is original
    assert all(getattr(c, "config", original) is original for c in daemon.components)
    assert thread.is_alive()


def test_systemd_hears_ready_again_after_each_reload(tmp_config, tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    path = tmp_path / "config.yaml"
    path.write_bytes(b"# caf\xe9\n")
    daemon = Daemon(tmp_config, config_path=str(path),
                    notifier=Notifier({"NOTIFY_SOCKET": str(sock_path)}))
    try:
        daemon.reload()  # refused
        path.write_text(yaml.safe_dump(dataclasses.asdict(tmp_config)))
        daemon.reload()  # taken
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        daemon.notifier.close()
        sock.close()
    assert messages == ["RELOADING=1", "READY=1\nSTATUS=config reload refused: see the journal",
                        "RELOADING=1", "READY=1\nSTATUS=config reloaded"]


@pytest.mark.slow
def test_sighup_to_the_running_command_with_bad_files(tmp_path):
    """The measured failure: SIGHUP with a bad file killed `calmtunes simulate`/`run`."""
    path = tmp_path / "config.yaml"
    path.write_text("music:\n  generator: procedural\naudio:\n  backend: 'null'\n")
    log = tmp_path / "stderr.txt"
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"),
               XDG_RUNTIME_DIR=str(tmp_path / "run"), HOME=str(tmp_path))
    env.pop("NOTIFY_SOCKET", None)
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "calmtunes", "simulate", "--config",
                                 str(path)], stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        assert wait_for(lambda: b"audio flowing" in log.read_bytes() or proc.poll() is not None,
                        60)
        assert proc.poll() is None, log.read_text()
        for count, name in enumerate(["latin1_byte", "deep_nesting", "alias_bomb", "fifo",
                                      "dev_zero"], start=1):
            HOSTILE[name](path)
            proc.send_signal(signal.SIGHUP)
            assert wait_for(lambda c=count: log.read_bytes().count(b"reload refused") >= c), name
            assert proc.poll() is None, name
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()
    text = log.read_text()
    assert "Traceback" not in text
    assert text.count("config reload refused") == 5
