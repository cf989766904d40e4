"""sd_notify over a real AF_UNIX datagram socket, with the daemon running in-process."""

from __future__ import annotations

import itertools
import socket
import threading
import time

import pytest

from calmtunes.daemon import Daemon
from calmtunes.notify import Notifier


class FakeSystemd:
    """Plays systemd's side: a datagram socket that records every notification."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def times(self, field: str) -> list[float]:
        return [t for t, m in self.messages if m == field]

    def close(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def systemd(tmp_path):
    fake = FakeSystemd(tmp_path / "notify.sock")
    yield fake
    fake.close()


def start(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    return thread


def test_ready_status_and_pings_at_the_interval(tmp_config, tmp_path, systemd):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    daemon = Daemon(tmp_config, notifier=Notifier(env))
    thread = start(daemon)
    try:
        time.sleep(3.2)
    finally:
        daemon.request_stop()
        thread.join(5)
    assert not thread.is_alive()
    ready = systemd.times("READY=1")
    assert len(ready) == 1
    assert any(m.startswith("STATUS=playing calm") for _, m in systemd.messages)
    pings = systemd.times("WATCHDOG=1")
    # WATCHDOG_USEC=1 s: a ping every 0.5 s (half the timeout), checked every 0.25 s.
    assert 4 <= len(pings) <= 8, pings
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < 1.0
    assert systemd.times("STOPPING=1")


def test_pings_stop_when_a_component_hangs(tmp_config, tmp_path, systemd):
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"}
    daemon = Daemon(tmp_config, notifier=Notifier(env))
    daemon.composer.heartbeat_timeout_s = 1.0  # so the test need not wait 10 s
    thread = start(daemon)
    try:
        time.sleep(1.5)
        assert daemon.handle_request({"cmd": "hang", "arg": "composer"}) == {"ok": True}
        hung_at = time.monotonic()
        time.sleep(3.0)
        status = daemon.status()
    finally:
        daemon.request_stop()
        thread.join(5)
    late = [t for t in systemd.times("WATCHDOG=1") if t > hung_at + 1.6]
    assert late == [], "pings continued after the composer hung"
    assert systemd.times("WATCHDOG=1"), "no pings before the hang"
    assert any("NOT RESPONDING: composer" in m for _, m in systemd.messages)
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


def test_ready_comes_without_a_sound_card_saying_why(tmp_config, tmp_path, systemd, monkeypatch):
    import calmtunes.daemon as daemon_mod

    monkeypatch.setattr(daemon_mod, "READY_WITHOUT_SOUND_S", 1.0)
    cfg = tmp_config.replace(audio={"backend": "sounddevice", "device": "no-such-dac-xyz"})
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock")}
    daemon = Daemon(cfg, notifier=Notifier(env))
    thread = start(daemon)
    try:
        time.sleep(2.5)
    finally:
        daemon.request_stop()
        thread.join(5)
    assert len(systemd.times("READY=1")) == 1
    assert any(m.startswith("STATUS=NO SOUND:") and "no-such-dac-xyz" in m
               for _, m in systemd.messages)
