"""The control socket under bad clients: slow, silent, too many, too big, too fast; who may see
health figures; the folders it lives in; the CLI on the other end."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from calmtunes import cli, control
from calmtunes.commands import TokenBucket
from calmtunes.config import Config, DeviceConfig
from calmtunes.control import (
    BUSY,
    MAX_CLIENTS,
    MAX_REQUEST,
    MAX_WAITING,
    ControlServer,
    Peer,
    SocketTaken,
    request,
    socket_path,
)
from calmtunes.daemon import (
    HEALTH_HIDDEN,
    LOOP_BUSY,
    SLOW_DOWN,
    Daemon,
    prepare_runtime_dir,
    with_systemd_dirs,
)
from calmtunes.errors import ConfigError
from calmtunes.pulse.reading import PulseReading
from clocked import wait_until

READING = PulseReading(t=time.monotonic(), finger=True, quality=0.9, hr_bpm=71.0, rmssd_ms=42.0,
                       sdnn_ms=50.0, breathing_rate=13.0, spo2=97.0, stress=0.4, stress_sd=0.1)
HEALTH_KEYS = ("hr_bpm", "rmssd_ms", "sdnn_ms", "breathing_rate", "spo2", "stress", "stress_sd")


def figures_in(obj: object) -> set[float]:
    """Every number a reply shows: its numeric values, and the numbers written in its strings
    (whole numbers only: a clock's 1796582897.056 does not show 97.0)."""
    if isinstance(obj, dict):
        return set().union(*(figures_in(k) | figures_in(v) for k, v in obj.items()))
    if isinstance(obj, (list, tuple)):
        return set().union(*(figures_in(v) for v in obj))
    if isinstance(obj, bool) or obj is None:
        return set()
    if isinstance(obj, (int, float)):
        return {float(obj)}
    return {float(n) for n in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", str(obj))}


@contextlib.contextmanager
def running(daemon: Daemon):
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    path = socket_path(daemon.config.device.runtime_dir)
    try:
        wait_until(path.exists, timeout=8.0, what=f"the control socket {path}")
        yield path
    finally:
        daemon.request_stop()
        thread.join(10)
        assert not thread.is_alive()


def raw(path: Path, data: bytes, timeout: float = 5.0) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


def connected(s: socket.socket, path: Path) -> bool:
    """Whether ``s`` got through to ``path``; False while the queue of connections is full (a
    Unix socket answers that at once)."""
    try:
        s.connect(str(path))
    except BlockingIOError:
        return False
    return True


def test_silent_and_trickling_clients_do_not_keep_status_from_another(tmp_config):
    with running(Daemon(tmp_config)) as path:
        silent = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(5)]
        for s in silent:
            s.connect(str(path))
        done = threading.Event()

        def trickle():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                for byte in b'{"cmd": "status"':
                    if done.wait(0.2):
                        return
                    with contextlib.suppress(OSError):
                        s.send(bytes([byte]))

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            # Under a one-at-a-time server, each silent client holds the socket for its whole
            # timeout (2 s): this request would wait 10 s and time out.
            reply = request(path, "status", timeout=5.0)
        finally:
            done.set()
            for s in silent:
                s.close()
            t.join(5)
    assert reply["ok"] is True and reply["preset"] == "calm"


def test_a_silent_client_is_answered_and_let_go(tmp_config):
    with running(Daemon(tmp_config)) as path, \
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(path))
        reply = json.loads(s.makefile("rb").readline())
    assert reply["ok"] is False and reply["error"].startswith("no complete request within 2 s")


@pytest.mark.parametrize("silent", [MAX_CLIENTS, 64])
def test_silent_connections_do_not_keep_status_busy(tmp_config, monkeypatch, silent):
    monkeypatch.setattr(control, "REQUEST_TIMEOUT_S", 30.0)  # the silent ones stay, however slow
    with running(Daemon(tmp_config)) as path:
        held = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(silent)]
        try:
            for s in held:
                s.connect(str(path))
            time.sleep(0.2)  # all of them accepted and waiting
            asked = time.monotonic()
            reply = raw(path, b'{"cmd": "status"}\n', timeout=1.0)
            took = time.monotonic() - asked
        finally:
            for s in held:
                s.close()
    # Each silent connection once took one of the MAX_CLIENTS slots until it timed out: eight
    # of them kept every status "busy" for their whole REQUEST_TIMEOUT_S.
    assert reply["ok"] is True and reply["preset"] == "calm"
    assert took < 1.0


def test_one_request_too_many_is_told_busy_at_once(tmp_config):
    daemon = Daemon(tmp_config)
    answer, release = daemon.control.handler, threading.Event()

    def slow(request, peer):  # a loop slow to answer: the requests hold their slots
        release.wait(10)
        return answer(request, peer)

    daemon.control.handler = slow
    with running(daemon) as path:
        replies = []
        held = [threading.Thread(target=lambda: replies.append(request(path, "status", 10.0)))
                for _ in range(MAX_CLIENTS)]
        try:
            for t in held:
                t.start()
            wait_until(lambda: daemon.control.clients == MAX_CLIENTS, timeout=5.0,
                       what="every slot taken")
            reply = raw(path, b'{"cmd": "status"}\n', timeout=1.0)
        finally:
            release.set()
            for t in held:
                t.join(10)
        assert reply == {"ok": False, "error": BUSY}
        assert len(replies) == MAX_CLIENTS and all(r["ok"] for r in replies)
        assert request(path, "status")["ok"]  # the slots are free again


def test_a_flood_of_silent_connections_stays_bounded_and_the_music_plays_on(tmp_config,
                                                                              monkeypatch):
    monkeypatch.setattr(control, "REQUEST_TIMEOUT_S", 30.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1000 + MAX_WAITING + 256  # the flood's ends, the daemon's, and the test's own files
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"needs {want} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    daemon = Daemon(tmp_config)
    flood = []
    try:
        with running(daemon) as path:
            for _ in range(1000):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                flood.append(s)
                s.settimeout(5.0)
                wait_until(lambda s=s: connected(s, path), timeout=5.0,
                           what="room in the socket's queue")
            wait_until(lambda: daemon.control.refused_busy >= 1000 - MAX_WAITING, timeout=10.0,
                       what="the oldest silent connections let go")
            assert daemon.control.waiting <= MAX_WAITING
            assert not [t for t in threading.enumerate() if t.name == "control-client"], \
                "not a thread for any of them"
            reply = raw(path, b'{"cmd": "status"}\n', timeout=1.0)
            assert reply["ok"] is True
            assert reply["components"]["audio"]["state"] == "ok"
            assert reply["components"]["audio"]["underruns"] == 0
    finally:
        for s in flood:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_socket_appears_only_once_it_listens(tmp_path, monkeypatch):
    """``calmtunes status`` right after a start connects as soon as the path exists: a path
    naming a socket bound but not yet listening refused it ("not running"). The server is
    bound, made 0660 and listening under another name before the path appears."""
    path = socket_path(tmp_path / "run")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.parent.mkdir()
    stale.bind(str(path))  # what a daemon that was killed leaves behind
    stale.close()
    at_chmod = []
    chmod = os.chmod

    def watched(target, mode, *args, **kwargs):
        at_chmod.append(Path(target) == path)  # made 0660 between bind() and listen()
        return chmod(target, mode, *args, **kwargs)

    monkeypatch.setattr(control.os, "chmod", watched)
    server = ControlServer(path, lambda req, peer: {"ok": True, "cmd": req["cmd"]})
    server.start()
    try:
        monkeypatch.undo()
        assert at_chmod == [False], "the socket was made 0660 at its public path, before listening"
        assert raw(path, b'{"cmd": "status"}\n') == {"ok": True, "cmd": "status"}
        assert oct(path.stat().st_mode & 0o777) == "0o660"
        assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temporary left"
    finally:
        server.stop()
    assert not path.exists()


def test_a_request_over_the_size_limit_is_refused(tmp_config):
    daemon = Daemon(tmp_config)
    with running(daemon) as path:
        big = json.dumps({"cmd": "preset", "arg": "s" * MAX_REQUEST}).encode() + b"\n"
        reply = raw(path, big)
        huge = raw(path, b"[" * 1_000_000)
        after = request(path, "preset", arg="sleep")
    assert reply == {"ok": False, "error": f"request longer than {MAX_REQUEST} bytes; refused"}
    assert huge["ok"] is False
    assert after == {"ok": True} and daemon.conductor.preset == "sleep"


def test_200_play_pause_requests_do_not_make_100_sessions(tmp_config):
    daemon = Daemon(tmp_config)
    daemon.socket_rate = TokenBucket(5.0, 10, clock=lambda: 0.0)  # time stands still
    with running(daemon) as path:
        replies = [request(path, "play_pause") for _ in range(200)]
    accepted = sum(r["ok"] for r in replies)
    assert accepted == 10
    assert all(r == {"ok": False, "error": SLOW_DOWN} for r in replies if not r["ok"])
    db = Path(tmp_config.device.state_dir) / "sessions.db"
    rows = sqlite3.connect(str(db)).execute("SELECT count(*) FROM sessions").fetchone()[0]
    assert rows <= 6  # the one playing at start, and one per play of the 10 toggles


def test_a_request_the_busy_loop_never_took_is_never_done(tmp_config, monkeypatch):
    # The loop stalls (a session write waiting on a lock another program holds): a request
    # that waits longer than REQUEST_WAIT_S is told nothing was done, and then nothing is done
    # when the loop comes free, so the "try again" the client is given steps the volume once.
    daemon = Daemon(tmp_config)
    stalled, free = threading.Event(), threading.Event()
    conduct = daemon.conduct

    def slow_conduct(now):
        if stalled.is_set() and not free.is_set():
            free.wait(10)
        return conduct(now)

    monkeypatch.setattr(daemon, "conduct", slow_conduct)
    with running(daemon) as path:
        assert request(path, "volume", arg=-12) == {"ok": True}
        stalled.set()
        time.sleep(0.6)  # the loop is in its stall now
        up = request(path, "volume_up")
        pause = request(path, "play_pause")
        playing = daemon.conductor.playing
        free.set()
        wait_until(lambda: request(path, "status")["ok"], timeout=5.0, what="the loop back")
        again = request(path, "volume_up")  # as the client was told
    assert daemon.conductor.volume_db == -12.0 + tmp_config.music.volume_step_db
    assert daemon.conductor.playing == playing
    assert again == {"ok": True}
    assert up == {"ok": False, "error": LOOP_BUSY} and pause == up
    assert "nothing was done" in LOOP_BUSY


def test_refused_commands_say_why_and_change_nothing(tmp_config):
    daemon = Daemon(tmp_config)
    with running(daemon) as path:
        slep = request(path, "preset", arg="slep")
        nan = raw(path, b'{"cmd": "volume", "arg": NaN}\n')
        true = request(path, "volume", arg=True)
        loud = request(path, "volume", arg=20)
        good = request(path, "volume", arg=-12)
    assert slep["ok"] is False and "did you mean 'sleep'?" in slep["error"]
    for r in (nan, true, loud):
        assert r["ok"] is False and r["error"].startswith("volume ")
    assert good == {"ok": True}
    assert daemon.conductor.preset == "calm" and daemon.conductor.volume_db == -12.0


def test_a_request_naming_a_key_twice_is_refused_and_changes_nothing(tmp_config):
    daemon = Daemon(tmp_config)
    with running(daemon) as path:
        before = daemon.conductor.volume_db
        twice = raw(path, b'{"cmd": "status", "cmd": "volume", "arg": -20}\n')
        nested = raw(path, b'{"cmd": "volume", "arg": {"a": 1, "a": 2}}\n')
        alive = request(path, "status")
    assert twice == {"ok": False, "error": "request names 'cmd' more than once; "
                                           "send each key once"}
    assert nested["ok"] is False and "'a' more than once" in nested["error"]
    assert daemon.conductor.volume_db == before
    assert alive["ok"] is True


def test_two_requests_on_one_connection_are_refused_and_neither_is_done(tmp_config):
    """The second was dropped unseen while the first was done; now neither is, and the client
    is told to send one per connection (whitespace after the newline is still fine)."""
    daemon = Daemon(tmp_config)
    with running(daemon) as path:
        before = daemon.conductor.volume_db
        two = raw(path, b'{"cmd": "volume", "arg": -20}\n{"cmd": "preset", "arg": "sleep"}\n')
        spaced = raw(path, b'{"cmd": "volume", "arg": -21}\n  \n')
    assert two["ok"] is False and "more than one request" in two["error"]
    assert "nothing was done" in two["error"]
    assert spaced == {"ok": True}
    assert daemon.conductor.preset == "calm" and daemon.conductor.volume_db == -21.0
    assert before != -21.0


def test_reload_refuses_an_argument_as_the_other_commands_do(tmp_config, tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(dataclasses.asdict(tmp_config)))
    daemon = Daemon(tmp_config, str(path))
    with running(daemon) as sock:
        foo = request(sock, "reload", arg="foo")
        now = raw(sock, b'{"cmd": "reload", "arg": "now"}\n')
        other = request(sock, "play_pause", arg="foo")
        generation = request(sock, "status")["config"]["generation"]
        plain = request(sock, "reload")
    assert foo == {"ok": False, "error": "reload takes no argument, got 'foo'"}
    assert now == {"ok": False, "error": "reload takes no argument, got 'now'"}
    assert other == {"ok": False, "error": "play_pause takes no argument, got 'foo'"}
    assert generation == 1, "a refused reload must not reload"
    assert plain["ok"] is True and plain["config"]["generation"] == 2


def test_status_refuses_an_argument_too(tmp_config):
    with running(Daemon(tmp_config)) as path:
        odd = request(path, "status", arg="verbose")
        plain = request(path, "status")
    assert odd == {"ok": False, "error": "status takes no argument, got 'verbose'"}
    assert plain["ok"] is True


def test_cli_preset_prints_the_reason_and_exits_1(tmp_config, capsys):
    with running(Daemon(tmp_config)):
        code = cli.main(["preset", "slep", "--runtime-dir", tmp_config.device.runtime_dir])
        ok = cli.main(["preset", "sleep", "--runtime-dir", tmp_config.device.runtime_dir])
    err = capsys.readouterr().err
    assert code == 1 and ok == 0
    assert "calmtunes: no preset 'slep' (did you mean 'sleep'?)" in err


# -- health figures --------------------------------------------------------------------------
def test_health_figures_only_for_the_daemon_user_and_root(tmp_config):
    daemon = Daemon(tmp_config)
    daemon.hub.publish("pulse", READING)
    me = daemon.handle_request({"cmd": "status"}, Peer(1, os.geteuid(), os.getegid()))
    root = daemon.handle_request({"cmd": "status"}, Peer(1, 0, 0))
    other = daemon.handle_request({"cmd": "status"}, Peer(1, 54321, 54321))
    unknown = daemon.handle_request({"cmd": "status"}, None)
    for r in (me, root):
        assert r["pulse"]["hr_bpm"] == 71.0 and r["pulse"]["spo2"] == 97.0
        assert "health_hidden" not in r
    for r in (other, unknown):
        assert r["health_hidden"] == HEALTH_HIDDEN
        assert not set(HEALTH_KEYS) & set(r["pulse"]), r["pulse"]
        assert r["pulse"]["finger"] is True
        assert not {"hr_bpm", "stress_rise", "tempo_bpm", "breath_rate", "mode"} & set(
            r["conductor"])
        assert not {"tempo_bpm", "breath_rate"} & set(r["controls"])
        assert r["controls"]["preset"] == "calm" and "scene" in r["conductor"]
        assert not {71.0, 97.0} & figures_in(r), "the heart rate or SpO2 shown in some form"
    group = Daemon(tmp_config.replace(device={"status_health": "group"}))
    group.hub.publish("pulse", READING)
    assert group.handle_request({"cmd": "status"}, Peer(1, 54321, 54321))["pulse"]["spo2"] == 97.0


def test_the_socket_knows_who_asks(tmp_config):
    daemon = Daemon(tmp_config)
    daemon.hub.publish("pulse", READING)
    with running(daemon) as path:
        mine = request(path, "status")
    assert mine["pulse"]["hr_bpm"] == 71.0, "SO_PEERCRED should have found the daemon's own uid"


def ask_as(uid: int, path: Path) -> dict:
    """``status`` from a forked child that has become ``uid`` (SO_PEERCRED then says so)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no exec, no imports, only the socket
        code = 1
        try:
            os.close(read_end)
            os.chdir(path.parent)  # so the folders above (root's 0700 tmp) need not be crossed
            os.setgid(uid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(5)
                s.connect(path.name)
                s.sendall(b'{"cmd": "status"}\n')
                reply = s.makefile("rb").readline()
            os.write(write_end, reply)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        reply = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(reply)



def test_hidden_status_carries_no_figure_in_its_texts(tmp_config):
    """The analyser's reasons and the personaliser's "why" hold figures ("99 bpm measured, 49
    reported", "breath count (13 /min) ..."): those who may not see health figures get the
    words without the numbers, and no reward or belief."""
    import dataclasses

    daemon = Daemon(tmp_config)
    said = dataclasses.replace(READING, reason="99 bpm measured, 49 reported: half the measured "
                               "rate; breath count (13 /min) and spectrum (6 /min) disagree")
    daemon.hub.publish("pulse", said)
    daemon._care_status = lambda: {"enabled": True, "listener": "L20261207-abc123",
                                   "arm": "calm/slower", "last_reward": 0.42,
                                   "best": [{"arm": "calm", "mean": 0.3, "sd": 1.2}],
                                   "why": "Thompson sample +3.69 (belief +0.37 ± 3.30)",
                                   "last_reward_reason": "heart rate fell 4.5 bpm"}
    other = daemon.handle_request({"cmd": "status"}, Peer(1, 54321, 54321))
    me = daemon.handle_request({"cmd": "status"}, Peer(1, os.geteuid(), os.getegid()))
    assert "half the measured rate" in other["pulse"]["reason"]
    assert not any(ch.isdigit() for ch in other["pulse"]["reason"])
    assert other["care"]["arm"] == "calm/slower" and "Thompson sample" in other["care"]["why"]
    assert not any(ch.isdigit() for ch in other["care"]["why"] + other["care"][
        "last_reward_reason"])
    assert "last_reward" not in other["care"] and "best" not in other["care"]
    assert me["pulse"]["reason"] == said.reason and me["care"]["last_reward"] == 0.42

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to ask as another user")
def test_another_user_gets_no_health_figures_over_the_socket(tmp_config, tmp_path):
    daemon = Daemon(tmp_config)
    daemon.hub.publish("pulse", READING)
    with running(daemon) as path:
        os.chmod(path.parent, 0o755)  # for this test only: let uid 65534 reach the socket
        os.chmod(path, 0o666)
        other = ask_as(65534, path)
        mine = request(path, "status")
    assert other["health_hidden"] == HEALTH_HIDDEN and "hr_bpm" not in other["pulse"]
    assert mine["pulse"]["hr_bpm"] == 71.0


def test_cli_says_when_health_figures_are_hidden():
    text = cli.format_status({"ok": True, "version": "x", "preset": "calm", "playing": True,
                              "volume_db": -6.0, "pulse": {"finger": True},
                              "health_hidden": HEALTH_HIDDEN})
    assert "pulse      finger on; health figures hidden (ask as the calmtunes user or root)" in text
    assert "HR" not in text


def test_cli_says_when_the_music_plays_unheard():
    """No output open (a card missing or gone): the music keeps its time, but nobody hears it,
    and the first line a nurse or technician reads must not say only "playing"."""
    base = {"ok": True, "version": "x", "preset": "calm", "playing": True, "volume_db": -6.0}
    missing = {"output": "sounddevice", "heard": False, "underruns": 0}
    text = cli.format_status({**base, "components": {"audio": {
        **missing, "state": "degraded", "detail": "no audio output: no such card"}}})
    assert "(playing, not heard: no audio output)" in text
    assert "audio      sounddevice not open (the music keeps its time unheard" in text
    heard = cli.format_status({**base, "components": {"audio": {**missing, "heard": True}}})
    assert "(playing)" in heard and "not open" not in heard
    paused = cli.format_status({**base, "playing": False,
                                "components": {"audio": missing}})
    assert "(paused)" in paused


# -- folders -------------------------------------------------------------------------------
def test_a_missing_runtime_dir_is_made_0750(tmp_path):
    path = prepare_runtime_dir(tmp_path / "a" / "run")
    assert oct(path.stat().st_mode & 0o777) == "0o750"


@pytest.mark.parametrize("mode", [0o770, 0o777, 0o1777])
def test_a_runtime_dir_others_may_write_is_refused_with_the_fix(tmp_path, mode):
    run = tmp_path / "run"
    run.mkdir()
    os.chmod(run, mode)
    with pytest.raises(ConfigError) as err:
        prepare_runtime_dir(run)
    assert "is writable by group" in str(err.value) and f"chmod 0750 {run}" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a folder another user owns")
def test_a_runtime_dir_another_user_owns_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir(mode=0o750)
    os.chown(run, 65534, 65534)
    with pytest.raises(ConfigError) as err:
        prepare_runtime_dir(run)
    assert "belongs to" in str(err.value) and "uid 65534" in str(err.value)
    assert "sudo chown" in str(err.value)


def test_the_daemon_exits_78_on_a_runtime_dir_others_may_write(tmp_config, tmp_path, capsys):
    run = Path(tmp_config.device.runtime_dir)
    run.mkdir(mode=0o777)
    os.chmod(run, 0o777)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"device": {"state_dir": tmp_config.device.state_dir,
                                               "runtime_dir": str(run)},
                                    "audio": {"backend": "null"},
                                    "pulse": {"backend": "none"}, "scene": {"backend": "none"},
                                    "panel": {"backend": "none"}}))
    assert cli.main(["run", "--config", str(path)]) == 78
    assert f"device.runtime_dir {run}" in capsys.readouterr().err


def _full_queue(path: Path) -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket at ``path`` that accepts nothing, its queue filled: as a daemon
    swamped by a storm of connections."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(0)
    waiting = []
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.setblocking(False)
        try:
            client.connect(str(path))
        except BlockingIOError:
            client.close()
            return server, waiting
        waiting.append(client)


def test_a_client_waits_for_room_in_a_full_queue(tmp_path):
    path = tmp_path / "control.sock"
    server, waiting = _full_queue(path)

    def serve():
        time.sleep(0.3)  # the queue drains a little later
        for _ in waiting:
            server.accept()[0].close()
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            conn.sendall(b'{"ok": true}\n')

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert request(path, "status", timeout=3.0) == {"ok": True}
    finally:
        thread.join(5)
        server.close()
        for client in waiting:
            client.close()


def test_status_against_a_swamped_daemon_says_busy_not_down(tmp_path, capsys):
    server, waiting = _full_queue(socket_path(tmp_path))
    try:
        assert cli.main(["status", "--runtime-dir", str(tmp_path)]) == 1
    finally:
        server.close()
        for client in waiting:
            client.close()
    err = capsys.readouterr().err
    assert BUSY in err and "not running" not in err


def test_two_servers_started_at_once_the_second_never_takes_the_firsts_socket(tmp_path):
    """Two daemons started at the same moment both found the folder free: the second to bind
    renamed its socket over the first's, and the first, stopping, unlinked the second's. Now
    the second refuses, and a server only ever removes its own socket."""
    path = socket_path(tmp_path)
    first = ControlServer(path, lambda request, peer: {"ok": True, "who": "first"})
    first.start()
    second = ControlServer(path, lambda request, peer: {"ok": True, "who": "second"})
    try:
        with pytest.raises(SocketTaken, match="another calmtunes daemon answers"):
            second.start()
        assert request(path, "status")["who"] == "first"
        assert not list(tmp_path.glob(".control.sock.*"))  # its temporary name is gone
        second.stop()  # never started: leaves the first's socket alone
        assert request(path, "status")["who"] == "first"
    finally:
        first.stop()
    assert not path.exists()
    # a socket someone else put at the path after ours is not ours to remove
    third = ControlServer(path, lambda request, peer: {"ok": True})
    third.start()
    path.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    try:
        third.stop()
        assert path.exists()
    finally:
        other.close()


def test_a_folder_at_the_socket_path_leaves_the_daemon_playing_and_stopping_cleanly(tmp_config):
    """A folder where control.sock belongs: the daemon plays on without its socket (logged),
    and its stop no longer fails with IsADirectoryError, skipping the rest of the shutdown."""
    path = socket_path(tmp_config.device.runtime_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir()
    daemon = Daemon(tmp_config)
    ended: list = []
    thread = threading.Thread(target=lambda: ended.append(daemon.run(duration=2.0)))
    thread.start()
    thread.join(30)
    assert not thread.is_alive()
    assert ended == [0]  # a clean stop, not an exception out of the shutdown
    assert path.is_dir()  # left for a technician to see


def test_a_second_daemon_is_refused_and_leaves_the_running_one_reachable(tmp_config):
    first = Daemon(tmp_config)
    with running(first) as path:
        with pytest.raises(ConfigError) as err:
            Daemon(tmp_config)
        assert "another calmtunes daemon is running" in str(err.value)
        assert "systemctl stop calmtunes" in str(err.value)
        assert request(path, "status")["ok"]  # its socket is still there and answers
        assert first.sessions.restarts_unclean(time.time())["total"] == 0


def test_a_socket_file_a_stopped_daemon_left_does_not_stop_the_next(tmp_config):
    path = socket_path(prepare_runtime_dir(tmp_config.device.runtime_dir))
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(path))  # bound, never listening, closed without removing the file: a kill -9
    left.close()
    with running(Daemon(tmp_config)) as again:
        wait_until(lambda: control.in_use(again), timeout=8.0, what="the new daemon's socket")
        assert request(again, "status")["ok"]


def test_systemd_dirs_override_the_config():
    cfg = Config()
    got = with_systemd_dirs(cfg, {"STATE_DIRECTORY": "/var/lib/x:/var/lib/y",
                                  "RUNTIME_DIRECTORY": "/run/x"})
    assert (got.device.state_dir, got.device.runtime_dir) == ("/var/lib/x", "/run/x")
    assert with_systemd_dirs(cfg, {}) is cfg


def test_sim_dirs_never_fall_back_to_tmp(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    _, runtime = cli.sim_dirs()
    assert Path(runtime) == tmp_path / "st" / "calmtunes-sim" / "run"
    assert not runtime.startswith("/tmp/calmtunes")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg"))
    assert Path(cli.sim_dirs()[1]) == tmp_path / "xdg" / "calmtunes-sim"


def test_relative_xdg_folders_are_ignored_as_the_specification_says(monkeypatch, tmp_path):
    """A relative XDG_STATE_HOME named a folder under wherever the command ran."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", "state")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "run")
    state, runtime = cli.sim_dirs()
    assert Path(state) == tmp_path / ".local/state/calmtunes-sim"
    assert Path(runtime) == Path(state) / "run"


def test_simulate_takes_the_folders_the_config_names(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "st"))
    args = cli.build_parser().parse_args(["simulate"])
    named = Config().replace(device={"state_dir": str(tmp_path / "mine")})
    sim = cli.simulation_config(named, args)
    assert sim.device.state_dir == str(tmp_path / "mine")
    assert sim.device.runtime_dir == cli.sim_dirs()[1]  # left at its default: the sim folder
    assert cli.simulation_config(Config(), args).device.state_dir == cli.sim_dirs()[0]
    assert Config().device.runtime_dir == DeviceConfig().runtime_dir


# -- the CLI on a closed pipe ----------------------------------------------------------------
def test_status_into_a_closed_pipe_ends_quietly(tmp_config):
    with running(Daemon(tmp_config)):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader (`head -1`) is already gone
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "calmtunes", "status", "--runtime-dir",
                 tmp_config.device.runtime_dir],
                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        finally:
            os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("reply", [
    b'{"ok": true, "components": {"audio": null}}\n',
    b'{"ok": true, "pulse": 5, "uptime_s": NaN}\n',
    b'{"ok": true, "scene": [1], "config": "x", "restarts_unclean": 3}\n',
    b'[' * 100_000 + b']' * 100_000 + b'\n',
    b'{"ok": true, "pad": "' + b'x' * (2 << 20) + b'"}\n',
])
def test_status_reads_a_reply_of_another_shape_without_a_traceback(tmp_path, capsys, reply):
    """Something else answering on the socket (another version, a stray server): a reply of
    another shape, too deep or too long ended in a traceback or was read without limit."""
    path = socket_path(tmp_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def answer():
        conn, _ = server.accept()
        with conn:
            conn.recv(4096)
            with contextlib.suppress(OSError):
                conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        code = cli.main(["status", "--runtime-dir", str(tmp_path)])
    finally:
        server.close()
        thread.join(5)
    assert code in (1, 69)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "not in the form" in err or "not JSON" in err


def _wakes(tid: int) -> int:
    """Voluntary context switches of one thread of this process: each a sleep that ended."""
    status = Path(f"/proc/self/task/{tid}/status").read_text()
    return int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))


def test_an_idle_server_sleeps_until_a_client_or_stop(tmp_path):
    """With no client the serving thread sleeps in select() with no timeout (it looked at a stop
    flag twice a second before: two wakes a second of a device that should rest); a client is
    served at once, and stop() wakes it at once."""
    path = socket_path(tmp_path / "run")
    server = ControlServer(path, lambda req, peer: {"ok": True, "cmd": req["cmd"]})
    server.start()
    try:
        assert raw(path, b'{"cmd": "status"}\n') == {"ok": True, "cmd": "status"}
        tid = server._thread.native_id
        time.sleep(0.2)
        before = _wakes(tid)
        time.sleep(1.6)
        assert _wakes(tid) - before == 0, "the idle control thread woke on a timer"
        assert raw(path, b'{"cmd": "status"}\n') == {"ok": True, "cmd": "status"}
    finally:
        t0 = time.monotonic()
        server.stop()
        stopped_in = time.monotonic() - t0
    assert stopped_in < 0.3
    assert server._thread is None and not path.exists()


def test_a_start_that_fails_for_want_of_a_file_leaves_no_socket_at_the_path(tmp_path,
                                                                          monkeypatch):
    """The daemon logs an OSError from start() and plays on without the socket: none may be left
    listening at the path with nobody to answer (``status`` would wait and time out, a second
    daemon would be refused as if this one answered). stop()'s pipe is made before the socket
    is put in place."""
    import errno

    def no_pipe(flags):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(control.os, "pipe2", no_pipe)
    path = socket_path(tmp_path / "run")
    server = ControlServer(path, lambda req, peer: {"ok": True})
    with pytest.raises(OSError):
        server.start()
    assert not path.exists(), "a socket left listening at the path that nobody serves"
    assert not list(path.parent.iterdir()), "a temporary left"
    assert server._sock is None
    server.stop()


def test_start_and_stop_leave_no_file_descriptor_open(tmp_path):
    """stop()'s pipe is closed exactly once: stop() before start(), stop() twice, a start after
    a stop, and a start refused because another server answers."""
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    path = socket_path(tmp_path / "run")
    path.parent.mkdir()
    before = open_fds()
    server = ControlServer(path, lambda req, peer: {"ok": True, "cmd": req["cmd"]})
    server.stop()  # never started
    for _ in range(2):
        server.start()
        assert raw(path, b'{"cmd": "status"}\n') == {"ok": True, "cmd": "status"}
        server.stop()
        server.stop()
        assert server._wake is None and server._thread is None
    # a request's own thread closes its connection just after the reply
    wait_until(lambda: open_fds() == before, timeout=2.0, what="every descriptor closed")
    first = ControlServer(path, lambda req, peer: {"ok": True})
    first.start()
    try:
        with_first = open_fds()
        with pytest.raises(SocketTaken):
            server.start()
        # the refused start's probe is accepted by the first server, which closes it once the
        # probe hangs up: a descriptor of the first's for a moment, not one the refused start left
        wait_until(lambda: open_fds() == with_first, timeout=2.0, what="the probe let go")
    finally:
        first.stop()
    wait_until(lambda: open_fds() == before, timeout=2.0, what="every descriptor closed")


def test_a_start_with_no_thread_to_be_had_leaves_no_socket_and_says_so(tmp_path, monkeypatch):
    """Where the process can start no more threads, start() raises an OSError (the daemon logs
    it and plays on) and leaves no socket that listens with nobody to answer, no descriptor;
    stop() then is harmless (it joined a thread never started, and raised)."""
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    path = socket_path(tmp_path / "run")
    path.parent.mkdir()
    before = open_fds()
    start = threading.Thread.start

    def no_thread(self):
        if self.name == "control":
            raise RuntimeError("can't start new thread")
        start(self)

    monkeypatch.setattr(threading.Thread, "start", no_thread)
    server = ControlServer(path, lambda req, peer: {"ok": True})
    with pytest.raises(OSError, match="no thread to serve"):
        server.start()
    assert not path.exists(), "a socket left at the path with no thread to answer it"
    assert open_fds() == before
    server.stop()
    monkeypatch.undo()
    server.start()  # threads to be had again: it serves
    try:
        assert raw(path, b'{"cmd": "status"}\n') == {"ok": True}
    finally:
        server.stop()


def test_a_request_that_fails_in_the_loop_says_so_not_that_it_was_slow(tmp_config, monkeypatch):
    daemon = Daemon(tmp_config)

    def broken(request, peer):
        raise RuntimeError("a bug")

    with running(daemon) as path:
        monkeypatch.setattr(daemon, "_answer", broken)
        reply = request(path, "status")
        monkeypatch.undo()
        assert request(path, "status")["ok"]  # the loop lives on
    assert reply == {"ok": False, "error": "the daemon failed to carry out the request "
                                           "(RuntimeError); see its journal"}


def test_forget_is_refused_while_the_daemon_keeps_those_records(tmp_config, tmp_path, capsys):
    # the playing session's end, and its listener's night, would be written back at once
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump({"device": {
        "state_dir": tmp_config.device.state_dir, "runtime_dir": tmp_config.device.runtime_dir}}))
    daemon = Daemon(tmp_config)
    with running(daemon):
        code = cli.main(["sessions", "--config", str(config_file), "--forget", "--yes"])
    assert code == 1 and "stop it first" in capsys.readouterr().err
    assert cli.main(["sessions", "--config", str(config_file), "--forget", "--yes"]) == 0
