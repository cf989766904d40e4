"""SIGHUP with a hostile config file: logged once, briefly; the old config kept; the music on."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from calmtunes import config as config_mod
from calmtunes.daemon import Daemon
from calmtunes.notify import Notifier
from clocked import run, virtual_daemon, wait_until


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
    # a file emptied or cut to nothing by an edit is not "all defaults" (louder, maybe)
    "empty": writer(b""),
    "only_comments": writer(b"# music:\n#   target_lufs: -42\n\n"),
    "null_document": writer(b"---\n...\n"),
}


def wait_for(condition, timeout: float = 15.0) -> bool:
    """For the real process below: poll ``condition`` until it holds or ``timeout`` s pass."""
    try:
        wait_until(condition, timeout)
    except AssertionError:
        return False
    return True


def reload_errors(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "calmtunes.daemon" and r.levelno >= logging.ERROR]


@pytest.fixture
def daemon_on_file(tmp_config, tmp_path):
    """A daemon on a virtual clock with a config file it can reload."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(tmp_config)))
    return virtual_daemon(tmp_config, config_path=str(path)), path


def test_each_hostile_file_is_refused_once_and_the_music_plays_on(daemon_on_file, tmp_config,
                                                                  caplog):
    daemon, path = daemon_on_file
    original = daemon.config
    seen: dict[str, list] = {}

    def hostile(name, make):
        def now():
            make(path)
            seen[name] = [len(reload_errors(caplog))]
            daemon.request_reload()
        return now

    def check(name):
        def later():  # two loop turns later: a second message would show by now
            seen[name].append(reload_errors(caplog)[seen[name][0]:])
            seen[name].append(daemon.config is original)
        return later

    good = dataclasses.asdict(tmp_config)
    good["music"]["volume_step_db"] = 6.0
    steps = []
    for i, (name, make) in enumerate(HOSTILE.items()):
        steps += [(1.5 + i, hostile(name, make)), (2.0 + i, check(name))]
    end = 1.5 + len(HOSTILE)
    steps += [(end, lambda: (clear(path), path.write_text(yaml.safe_dump(good)),
                             daemon.request_reload())),
              (end + 0.5, lambda: daemon.status())]
    status = run(daemon, end + 1.0, at=steps)[-1]
    for name, (_, new, kept) in seen.items():
        assert len(new) == 1, (name, [r.getMessage()[:200] for r in new])
        message = new[0].getMessage()
        assert message.startswith("config reload refused, keeping the running config"), message
        assert str(path) in message and len(message.encode()) < 2100, (name, message[:300])
        assert new[0].exc_info is None, "a refused file is a message, not a traceback"
        assert kept, name
    assert status["components"]["audio"]["state"] == "ok"
    assert daemon.config.music.volume_step_db == 6.0  # and a good file is still taken afterwards
    assert status["config"]["generation"] == 2


def test_a_fault_while_loading_is_logged_and_the_daemon_plays_on(daemon_on_file, caplog,
                                                                  monkeypatch):
    daemon, _ = daemon_on_file
    original = daemon.config

    def broken(path, **kwargs):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(config_mod, "load", broken)
    status = run(daemon, 3.0, at=[(1.5, daemon.request_reload), (2.5, daemon.status)])[-1]
    assert "config reload failed" in caplog.text
    assert "MemoryError: cannot allocate" in caplog.text
    assert daemon.config is original
    assert status["components"]["audio"]["state"] == "ok"
    assert status["config"]["generation"] == 1 and not status["config"]["last_reload"]["ok"]


def test_a_part_that_cannot_take_the_new_config_puts_every_part_back(daemon_on_file, tmp_config,
                                                                      caplog):
    daemon, path = daemon_on_file
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
    data["music"]["target_lufs"] = tmp_config.music.target_lufs + 3.0
    path.write_text(yaml.safe_dump(data))
    run(daemon, 2.5, at=[(1.5, daemon.request_reload)])
    assert "config reload undone" in caplog.text
    assert "louder" not in caplog.text  # the louder file never ran: nothing to warn of
    assert "audio could not take the new one (cannot crossfade to that bed)" in caplog.text
    assert daemon.config is original and daemon.conductor.config is original
    assert all(getattr(c, "config", original) is original for c in daemon.components)
    assert daemon.last_reload["ok"] is False and daemon.generation == 1


def test_systemd_hears_ready_again_after_each_reload(tmp_config, tmp_path):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.1)
    path = tmp_path / "config.yaml"
    path.write_bytes(b"# caf\xe9\n")
    daemon = Daemon(tmp_config, config_path=str(path), control=False,
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


def test_a_fault_in_care_after_the_new_config_runs_is_logged_and_the_reload_is_done(
        tmp_config, tmp_path, caplog, monkeypatch):
    """Once the parts run the new config, the personaliser's share of a reload (its own config,
    the session's arm) may fail: that was reported as "reload refused, nothing changed" while the
    new config ran. The fault is now logged, the session plays on without its arm, and the
    reload counts — and is reported — as done."""
    import calmtunes.care.arms as arms

    cfg = tmp_config.replace(care={"enabled": True, "seed": 3, "pinned_arm": "sleep/slower"})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(cfg)))
    daemon = virtual_daemon(cfg, config_path=str(path))
    data = dataclasses.asdict(cfg)
    data["music"]["volume_step_db"] = 6.0
    path.write_text(yaml.safe_dump(data))

    def broken(config, arm):
        raise TypeError("sequence item 0: expected str instance, int found")

    monkeypatch.setattr(arms, "apply_arm", broken)
    status = run(daemon, 3.0, at=[(1.5, daemon.request_reload), (2.5, daemon.status)])[-1]
    assert "the session plays on without it" in caplog.text
    assert daemon.config.music.volume_step_db == 6.0
    assert status["config"]["generation"] == 2 and status["config"]["last_reload"]["ok"]
    assert status["components"]["audio"]["state"] == "ok"


def test_a_reload_never_makes_the_music_louder(daemon_on_file, tmp_config):
    """A reload that raised music.min_volume_db above the volume played jumped the music up to
    the new floor (−25 → −6 dB) with nobody asking. The volume now stays where it is; a press
    moves it up one step from there; a lower ceiling still brings it down at once."""
    daemon, path = daemon_on_file
    floor = dataclasses.asdict(tmp_config)
    floor["music"].update(min_volume_db=-6.0, volume_db=-6.0)
    ceiling = dataclasses.asdict(tmp_config)
    ceiling["music"].update(max_volume_db=-15.0, volume_db=-20.0)
    step = tmp_config.music.volume_step_db

    def reload(data):
        return lambda: (path.write_text(yaml.safe_dump(data)), daemon.request_reload())

    seen = run(daemon, 6.0, at=[
        (0.5, lambda: daemon.conductor.set_volume_db(-25.0)),
        (1.0, reload(floor)),
        (2.0, lambda: (daemon.config.music.min_volume_db, daemon.conductor.volume_db,
                       daemon.conductor.controls().volume_db)),
        (2.5, lambda: daemon.handle_request({"cmd": "volume_up"})),
        (3.0, lambda: daemon.conductor.volume_db),
        (3.5, lambda: daemon.conductor.set_volume_db(-10.0)),
        (4.0, reload(ceiling)),
        (5.0, lambda: daemon.conductor.volume_db),
    ])
    assert seen[2] == (-6.0, -25.0, -25.0)
    assert seen[4] == -25.0 + step
    assert seen[7] == -15.0


def test_a_reload_that_raises_the_loudness_is_taken_and_said(daemon_on_file, tmp_config, caplog):
    daemon, path = daemon_on_file
    louder = dataclasses.asdict(tmp_config)
    louder["music"]["target_lufs"] = tmp_config.music.target_lufs + 6.0
    run(daemon, 2.0, at=[(1.0, lambda: (path.write_text(yaml.safe_dump(louder)),
                                        daemon.request_reload()))])
    assert daemon.config.music.target_lufs == tmp_config.music.target_lufs + 6.0
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
            and "music.target_lufs" in r.getMessage()]
    assert said and "up to 6.0 dB louder" in said[0], said


def test_an_empty_file_at_start_gives_the_defaults_with_a_warning(tmp_path, caplog):
    path = tmp_path / "config.yaml"
    path.write_text("# all commented out\n")
    assert config_mod.load(path) == config_mod.Config()
    assert "has no settings" in caplog.text
    with pytest.raises(config_mod.ConfigError, match=re.escape("write `{}`")):
        config_mod.load(path, empty_ok=False)
    path.write_text("{}\n")
    assert config_mod.load(path, empty_ok=False) == config_mod.Config()
