"""`calmtunes-release confirm` (what calmtunes-release-check.service runs after a switch) on a
fake clock: the deadline and the settle time in seconds as the unit gives them, the daemon's
state as `systemctl is-active` would report it at each moment, and the systemctl calls a
rollback makes, all without waiting."""

from __future__ import annotations

import json
import subprocess
import time
import types
from pathlib import Path

import pytest

from script_module import load_script


def load_release():
    return load_script('release')


class Device:
    """A fake clock (seconds), the daemon's READY state over it, and what systemctl was asked."""

    def __init__(self, ready_at: list[tuple[float, float]]) -> None:
        self.now = 0.0
        self.ready_at = ready_at  # (from, until) spans in which the daemon is active
        self.systemctl: list[list[str]] = []

    def ready(self) -> bool:
        return any(a <= self.now < b for a, b in self.ready_at)

    def run(self, cmd, **kw):
        if cmd[0] == "systemctl":
            self.systemctl.append(cmd)
            return subprocess.CompletedProcess(cmd, 0, "", "")
        assert cmd[:2] == ["sh", "-c"], cmd
        return subprocess.CompletedProcess(cmd, 0 if self.ready() else 3, "", "")

    def sleep(self, s: float) -> None:
        self.now += s


@pytest.fixture
def tree(tmp_path):
    base = tmp_path / "opt/calmtunes"
    for v in ("1.0", "2.0"):
        (base / "releases" / v).mkdir(parents=True)
        (base / "releases" / v / ".complete").write_text("done\n")
    (base / "current").symlink_to("releases/2.0")
    (base / "previous").symlink_to("releases/1.0")
    (base / "pending.json").write_text(json.dumps({"version": "2.0", "previous": "1.0"}))
    return tmp_path


def confirm(monkeypatch, root: Path, device: Device, *extra: str) -> tuple[int, float]:
    rel = load_release()
    monkeypatch.setattr(rel, "run", device.run)
    # the module's own clock only: the real one keeps running for everything else
    clock = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time)
                                     if not n.startswith("_")})
    clock.monotonic, clock.sleep = (lambda: device.now), device.sleep
    monkeypatch.setattr(rel, "time", clock)
    monkeypatch.setattr(rel, "systemd_running", lambda layout: True)
    code = rel.main(["confirm", "--root", str(root), *extra])
    return code, device.now


def current(root: Path) -> str:
    return (root / "opt/calmtunes/current").readlink().name


def test_ready_just_before_the_deadline_is_confirmed(monkeypatch, tree, capsys):
    # polled every 2 s: READY from 147.5 s is seen at 148 s, the last poll before 150 s
    device = Device([(147.5, 1e9)])
    code, at = confirm(monkeypatch, tree, device, "--deadline", "150", "--settle", "10")
    assert code == 0 and current(tree) == "2.0"
    assert not (tree / "opt/calmtunes/pending.json").exists()
    assert at == 158  # seen at 148 s, then 10 s of settling
    assert "release 2.0 reached READY" in capsys.readouterr().out
    assert device.systemctl == []  # nothing restarted


def test_never_ready_rolls_back_at_the_deadline_and_restarts_the_old_release(monkeypatch, tree,
                                                                            capsys):
    device = Device([])
    code, at = confirm(monkeypatch, tree, device, "--deadline", "150", "--settle", "10")
    assert code == 1
    assert 150 <= at < 152  # at the deadline, within one 2 s poll; not a moment later
    assert current(tree) == "1.0"
    assert (tree / "opt/calmtunes/previous").readlink().name == "2.0"
    said = capsys.readouterr().out
    assert "release 2.0 did not reach READY within 150 s" in said
    assert "rolled back from release 2.0 to 1.0" in said
    # the failed state is cleared so the old release may start at once, then it is started;
    # the check itself is not started again (a rollback confirms nothing)
    assert device.systemctl[0] == ["systemctl", "reset-failed", "calmtunes.service"]
    assert device.systemctl[1] == ["systemctl", "restart", "--no-block", "calmtunes.service"]
    assert not any("calmtunes-release-check.service" in c for c in device.systemctl)
    record = json.loads((tree / "opt/calmtunes/last-rollback.json").read_text())
    assert record["from"] == "2.0" and record["to"] == "1.0"


def test_ready_after_the_deadline_is_too_late(monkeypatch, tree):
    device = Device([(151.0, 1e9)])
    code, _ = confirm(monkeypatch, tree, device, "--deadline", "150")
    assert code == 1 and current(tree) == "1.0"


def test_ready_that_does_not_last_the_settle_time_is_not_confirmed(monkeypatch, tree, capsys):
    # READY for 5 s after each start, then a crash and a restart: it never holds for 10 s.
    spans = [(t, t + 5.0) for t in range(20, 400, 30)]
    device = Device(spans)
    code, _ = confirm(monkeypatch, tree, device, "--deadline", "150", "--settle", "10")
    assert code == 1 and current(tree) == "1.0"
    assert "did not reach READY within 150 s" in capsys.readouterr().out


def test_a_flap_then_steady_ready_is_confirmed(monkeypatch, tree):
    device = Device([(20.0, 25.0), (60.0, 1e9)])
    code, at = confirm(monkeypatch, tree, device, "--deadline", "150", "--settle", "10")
    assert code == 0 and current(tree) == "2.0"
    assert 70 <= at < 74


def test_a_stale_pending_mark_is_dropped_without_a_rollback(monkeypatch, tree, capsys):
    (tree / "opt/calmtunes/pending.json").write_text(json.dumps({"version": "3.0"}))
    device = Device([])
    code, at = confirm(monkeypatch, tree, device, "--deadline", "150")
    assert code == 0 and at == 0 and current(tree) == "2.0"
    assert "stale" in capsys.readouterr().out
    assert not (tree / "opt/calmtunes/pending.json").exists()


def test_a_manual_rollback_never_brings_back_a_failed_release_unasked(monkeypatch, tree, capsys):
    """After the check rolled 2.0 back to 1.0, `rollback` switched straight back to 2.0 with no
    pending mark: nothing checked it again, and the record of why it failed was overwritten."""
    device = Device([])
    assert confirm(monkeypatch, tree, device, "--deadline", "150")[0] == 1
    rel = load_release()
    monkeypatch.setattr(rel, "run", device.run)
    monkeypatch.setattr(rel, "systemd_running", lambda layout: True)
    monkeypatch.setattr(rel, "hold_lock", lambda layout, wait=False: -1)  # confirm's is held
    assert rel.main(["rollback", "--root", str(tree)]) != 0
    assert current(tree) == "1.0" and "failed its check" in capsys.readouterr().err
    device.systemctl.clear()
    assert rel.main(["rollback", "--root", str(tree), "--force"]) == 0
    assert current(tree) == "2.0"
    pending = json.loads((tree / "opt/calmtunes/pending.json").read_text())
    assert pending["version"] == "2.0"  # checked again, rolled back again if it fails
    assert ["systemctl", "restart", "--no-block", "calmtunes-release-check.service"] in \
        device.systemctl
    record = json.loads((tree / "opt/calmtunes/last-rollback.json").read_text())
    assert record["earlier"]["failed"] and "did not reach READY" in record["earlier"]["reason"]
