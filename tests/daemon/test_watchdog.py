"""sd_notify over a real AF_UNIX datagram socket, with the daemon running in-process on a
virtual clock: seconds of pings in milliseconds, each stamped with the daemon's own time."""

from __future__ import annotations

import itertools
import socket

import pytest

from calmtunes.daemon import READY_WITHOUT_SOUND_S, Daemon
from calmtunes.notify import Notifier
from clocked import run, virtual_daemon


class FakeSystemd:
    """Plays systemd's side: a datagram socket that records every notification.

    The daemon runs in the test's thread, so there is no receiving thread: a scheduler task
    reads what has arrived every :attr:`EVERY_S` of the daemon's clock (``listen``) and stamps
    it with that clock's time."""

    EVERY_S = 0.01  # also keeps the socket's queue (10 datagrams) from filling

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []

    def read(self, now: float) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            for line in data.decode().splitlines():
                self.messages.append((now, line))

    def listen(self, daemon: Daemon) -> None:
        daemon.scheduler.add("systemd", lambda now: self.read(now) or self.EVERY_S)

    def times(self, field: str) -> list[float]:
        return [t for t, m in self.messages if m == field]

    def close(self):
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def run_watched(daemon: Daemon, systemd: FakeSystemd, seconds: float, at=()) -> list:
    systemd.listen(daemon)
    results = run(daemon, seconds, at)
    systemd.read(daemon.clock.monotonic())  # what the shutdown said last
    return results


def test_ready_status_and_pings_at_the_interval(tmp_config, tmp_path, systemd):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    daemon = virtual_daemon(tmp_config, notifier=Notifier(env))
    run_watched(daemon, systemd, 3.2)
    ready = systemd.times("READY=1")
    assert len(ready) == 1
    assert any(m.startswith("STATUS=playing calm") for _, m in systemd.messages)
    pings = systemd.times("WATCHDOG=1")
    # WATCHDOG_USEC=1 s: a ping every 0.5 s (half the timeout), checked every 0.25 s.
    assert 5 <= len(pings) <= 8, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.45 < gap < 0.8 for gap in gaps), gaps
    assert systemd.times("STOPPING=1")


def test_pings_stop_when_a_component_hangs(tmp_config, tmp_path, systemd):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    daemon = virtual_daemon(tmp_config, notifier=Notifier(env))
    daemon.composer.heartbeat_timeout_s = 1.0  # so the test need not wait 10 s
    hung_at = 1.5
    hang, status = run_watched(daemon, systemd, 4.6, at=[
        (hung_at, lambda: daemon.handle_request({"cmd": "hang", "arg": "composer"})),
        (4.5, daemon.status)])
    assert hang == {"ok": True}
    pings = systemd.times("WATCHDOG=1")
    assert [t for t in pings if t > hung_at + 1.6] == [], "pings continued after the hang"
    assert [t for t in pings if t < hung_at], "no pings before the hang"
    assert any("NOT RESPONDING: composer" in m for t, m in systemd.messages if t > hung_at)
    # The music went on: the audio component still renders from the procedural composer.
    assert status["components"]["audio"]["state"] == "ok"


def test_hang_injection_is_refused_outside_simulation(tmp_config):
    cfg = tmp_config.replace(device={"simulate": False})
    daemon = Daemon(cfg)
    reply = daemon.handle_request({"cmd": "hang", "arg": "pulse"})
    assert reply["ok"] is False and "simulation" in reply["error"]


def test_silent_without_notify_socket():
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False
    assert n.watchdog_interval_s is None


def test_watchdog_pid_for_another_process_is_ignored():
    n = Notifier({"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval_s is None
    assert Notifier({"WATCHDOG_USEC": "2000000"}).watchdog_interval_s == 1.0


def test_ready_comes_without_sound_output_saying_why(tmp_config, tmp_path, systemd):
    (tmp_path / "not-a-folder").write_text("")
    wav = tmp_path / "not-a-folder" / "out.wav"  # cannot be made, even by root
    cfg = tmp_config.replace(audio={"backend": "wav", "wav_path": str(wav)})
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    daemon = virtual_daemon(cfg, notifier=Notifier(env))
    run_watched(daemon, systemd, READY_WITHOUT_SOUND_S + 1.0)
    ready = systemd.times("READY=1")
    assert len(ready) == 1 and ready[0] > READY_WITHOUT_SOUND_S  # it waited for sound first
    assert any(m.startswith("STATUS=NO SOUND:") and str(wav) in m for _, m in systemd.messages)


def test_a_service_manager_that_does_not_read_never_stalls_the_loop(tmp_path, caplog):
    """A notification socket nobody reads fills up (net.unix.max_dgram_qlen); sending must then
    drop the message at once and say so once, not block the control loop (it did: the loop hung
    in sendto after a dozen preset changes' STATUS= lines)."""
    import logging
    import threading

    caplog.set_level(logging.INFO, logger="calmtunes.notify")
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        sent: list[bool] = []
        sender = threading.Thread(target=lambda: sent.extend(
            notifier.status(f"playing preset {i}") for i in range(2000)), daemon=True)
        sender.start()
        sender.join(10.0)
        assert not sender.is_alive(), "sd_notify blocked on a full queue"
        assert sent[0] and not all(sent) and notifier.dropped == sent.count(False)
        assert caplog.text.count("not reading its notification socket") == 1
        while True:  # the manager reads again: so do we
            try:
                sock.recv(4096, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
        assert notifier.watchdog()
        assert "takes notifications again" in caplog.text
        notifier.close()
    finally:
        sock.close()


def test_a_notify_socket_that_does_not_take_messages_is_said_once(tmp_path, caplog):
    """A NOTIFY_SOCKET naming nothing was logged at debug level only: a watchdog kill then
    left no clue why. It is a warning, once per kind of failure, and its recovery is said."""
    n = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    with caplog.at_level("INFO", logger="calmtunes.notify"):
        assert n.ready() is False and n.watchdog() is False and n.watchdog() is False
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and str(tmp_path / "nobody") in warnings[0].getMessage()
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(str(tmp_path / "nobody"))
        try:
            assert n.watchdog() is True
        finally:
            receiver.close()
    assert "takes notifications again" in caplog.text
