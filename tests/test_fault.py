"""When systemd gives up on the daemon: the fault note, `calmtunes status` reading it, the LED
pattern, and the daemon clearing the note once it is up again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from calmtunes.config import Config
from calmtunes.daemon import READY_WITHOUT_SOUND_S
from calmtunes.fault import (
    PATTERN,
    FaultLights,
    fault_path,
    format_fault,
    read_fault,
    reason_for,
    record_fault,
)
from clocked import run, virtual_daemon, wait_until

REPO = Path(__file__).resolve().parents[1]
CALMTUNES = [sys.executable, "-m", "calmtunes"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "device"), env.get("PYTHONPATH", "")])
    env.pop("NOTIFY_SOCKET", None)
    return {**env, **extra}


def _config_file(tmp_path: Path, panel: str = "mock") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"device": {"state_dir": str(tmp_path / "state")},
                                    "panel": {"backend": panel}}))
    return path


def test_reasons_in_words():
    assert reason_for("start-limit-hit", "killed", "ABRT") == "restarted too often"
    assert reason_for("watchdog", "killed", "ABRT") == "stopped responding (watchdog)"
    assert reason_for("exit-code", "exited", "78").startswith("configuration error")
    assert reason_for("exit-code", "exited", "1") == "exited with an error (status 1)"
    assert reason_for(None, None, None) == "failed (no reason given)"


def test_the_note_is_group_readable_and_says_what_to_do(tmp_path):
    t = time.mktime((2026, 3, 1, 23, 7, 0, 0, 0, -1))
    record_fault(tmp_path, "restarted too often", "start-limit-hit", now=t)
    assert fault_path(tmp_path).stat().st_mode & 0o777 == 0o640
    note = read_fault(tmp_path)
    assert note["result"] == "start-limit-hit"
    assert format_fault(note, now=t + 60) == (
        "calmtunes failed at 23:07: restarted too often; see `journalctl -u calmtunes`; "
        "`systemctl reset-failed calmtunes && systemctl start calmtunes` to try again")
    assert "2026-03-01 23:07" in format_fault(note, now=t + 86400)


def test_a_damaged_note_is_ignored(tmp_path):
    fault_path(tmp_path).write_text("{not json")
    assert read_fault(tmp_path) is None
    assert read_fault(tmp_path / "nothing") is None


def test_preset_leds_blink_the_fault_pattern_and_the_others_stay_dark():
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    factory = MockFactory(pin_class=MockPWMPin)
    config = Config().replace(panel={"backend": "mock"})
    lights = FaultLights(config, pin_factory=factory)
    leds = config.panel.leds
    assert set(lights.blinking) == {"calm", "sleep", "uplift"}
    seen: list[dict[str, bool]] = []
    stop = threading.Event()

    def wait(seconds: float) -> bool:  # instead of the clock: note the LEDs at each step
        seen.append({role: factory.pin(pin).state for role, pin in leds.items()})
        return False

    lights.run(stop, cycles=2, wait=wait)
    assert [s["calm"] for s in seen] == [lit for lit, _ in PATTERN] * 2
    assert all(s["calm"] == s["sleep"] == s["uplift"] for s in seen)  # together: not music
    assert not any(s["pulse"] or s["camera"] for s in seen)
    assert not any(factory.pin(pin).state for pin in leds.values())  # all off at the end
    lights.close()


@pytest.mark.parametrize("note", [
    b'{"time": 1e400, "reason": "x"}', b'{"time": 1e20, "reason": "x"}',
    b'{"time": NaN, "reason": "x"}', b'{"time": -1e18, "reason": "x"}',
    b'{"time": 1, "reason": {"why": "x"}}', b'[1]', b'\xff\xfe'])
def test_a_note_of_the_wrong_shape_is_ignored(tmp_path, note):
    fault_path(tmp_path).write_bytes(note)
    assert read_fault(tmp_path) is None


def test_status_with_a_fifo_for_a_note_says_the_daemon_is_down(tmp_path):
    config = _config_file(tmp_path)
    (tmp_path / "state").mkdir()
    os.mkfifo(fault_path(tmp_path / "state"))
    status = subprocess.run([*CALMTUNES, "status", "--config", str(config), "--runtime-dir",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                            env=_env())
    assert status.returncode == 69
    assert "not running" in status.stderr and "Traceback" not in status.stderr


def test_fault_command_writes_the_note_that_status_shows(tmp_path):
    config = _config_file(tmp_path)
    env = _env(MONITOR_SERVICE_RESULT="start-limit-hit", MONITOR_EXIT_CODE="killed",
               MONITOR_EXIT_STATUS="ABRT")
    out = subprocess.run([*CALMTUNES, "fault", "--config", str(config), "--duration", "0.5"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert read_fault(tmp_path / "state")["reason"] == "restarted too often"
    status = subprocess.run([*CALMTUNES, "status", "--config", str(config), "--runtime-dir",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                            env=_env())
    assert status.returncode == 69
    assert "calmtunes failed at " in status.stderr and "restarted too often" in status.stderr
    assert "systemctl reset-failed calmtunes && systemctl start calmtunes" in status.stderr


def test_status_without_a_note_says_only_that_the_daemon_is_down(tmp_path):
    config = _config_file(tmp_path)
    status = subprocess.run([*CALMTUNES, "status", "--config", str(config), "--runtime-dir",
                             str(tmp_path / "run")], capture_output=True, text=True, timeout=60,
                            env=_env())
    assert status.returncode == 69
    assert "not running" in status.stderr and "failed at" not in status.stderr


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def test_fault_command_blinks_until_sigterm(tmp_path):
    config = _config_file(tmp_path)
    proc = subprocess.Popen([*CALMTUNES, "fault", "--config", str(config)],
                            stderr=subprocess.PIPE, text=True, env=_env())
    try:  # a real process: poll for its note and its SIGTERM handler (set after the note)
        wait_until(lambda: proc.poll() is not None or (
            fault_path(tmp_path / "state").exists() and _catches(proc.pid, signal.SIGTERM)),
            timeout=30.0, what="the fault note written and SIGTERM handled")
        assert proc.poll() is None  # still showing the fault
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert read_fault(tmp_path / "state")["reason"] == "failed (no reason given)"


def test_fault_without_a_panel_only_writes_the_note(tmp_path):
    config = _config_file(tmp_path, "none")
    out = subprocess.run([*CALMTUNES, "fault", "--config", str(config), "--reason", "test"],
                         capture_output=True, text=True, timeout=60, env=_env())
    assert out.returncode == 0
    assert read_fault(tmp_path / "state")["reason"] == "test"


def test_the_daemon_clears_the_note_once_it_is_up(tmp_config):
    state = tmp_config.device.state_dir
    record_fault(state, "restarted too often", "start-limit-hit")
    daemon = virtual_daemon(tmp_config)
    assert read_fault(state) is not None  # not before it is up
    [(ready_at, note)] = run(daemon, 1.0, at=[(0.5, lambda: (daemon.ready_at, read_fault(state)))])
    assert ready_at is not None and note is None



def test_a_render_leaves_the_device_note_alone(tmp_config, tmp_path):
    """`calmtunes render` (and the release's health check, which renders as root with the
    device's config) keeps no device state: the note of why the service failed must stay."""
    from calmtunes.render import render_offline

    state = tmp_config.device.state_dir
    record_fault(state, "restarted too often", "start-limit-hit")
    render_offline(tmp_config, 0.05, tmp_path / "r.wav")
    assert (tmp_path / "r.wav").stat().st_size > 44
    assert read_fault(state) is not None

def test_a_daemon_without_sound_clears_the_note_only_once_it_gives_up_waiting(tmp_config,
                                                                               tmp_path):
    state = tmp_config.device.state_dir
    record_fault(state, "restarted too often", "start-limit-hit")
    (tmp_path / "not-a-folder").write_text("")
    cfg = tmp_config.replace(audio={"backend": "wav",
                                    "wav_path": str(tmp_path / "not-a-folder" / "out.wav")})
    daemon = virtual_daemon(cfg)
    waiting, up = run(daemon, READY_WITHOUT_SOUND_S + 1.0, at=[
        (READY_WITHOUT_SOUND_S - 1.0, lambda: read_fault(state)),
        (READY_WITHOUT_SOUND_S + 0.5, lambda: read_fault(state))])
    assert waiting is not None  # not up yet: the note still says why it failed before
    assert up is None


def test_a_long_or_escaped_reason_is_kept_short_and_printable(tmp_path):
    """A 100 KB reason was written but the reader (64 KiB at most) then showed no fault at all;
    escape sequences in $MONITOR_SERVICE_RESULT reached the technician's terminal raw."""
    record_fault(tmp_path, "x" * 100_000, "\x1b[2J\x1b[31mboom")
    note = read_fault(tmp_path)
    assert note is not None and len(note["reason"]) == 1000 and note["reason"].endswith("…")
    assert "\x1b" not in note["result"]
    record_fault(tmp_path, "killed\x1b]0;owned\x07 by\nwatchdog", None)
    text = format_fault(read_fault(tmp_path))
    assert "\x1b" not in text and "\n" not in text and "killed?]0;owned? by?watchdog" in text


def test_fault_with_a_broken_config_logs_the_problem_itself(tmp_path):
    """A config error (the reason systemd gave up, often) was logged as its first line only,
    '(…: 1 problem:)', the problem itself dropped. The note goes to the unit's StateDirectory=
    even so."""
    config = tmp_path / "config.yaml"
    config.write_text("music:\n  volume_db: loud\n")
    state = tmp_path / "state"
    out = subprocess.run([*CALMTUNES, "fault", "--config", str(config), "--reason", "test",
                          "--duration", "0.2"], capture_output=True, text=True, timeout=60,
                         env=_env(STATE_DIRECTORY=str(state)))
    assert "music.volume_db: expected a number" in out.stderr, out.stderr[-800:]
    assert read_fault(state)["reason"] == "test"


def test_no_note_on_a_read_only_state_folder_is_nothing_to_warn_about(tmp_path, monkeypatch,
                                                                        caplog):
    # unlink() on a read-only file system says EROFS even where there is no file
    import errno
    from pathlib import Path

    from calmtunes import fault

    def rofs(self, missing_ok=False):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", rofs)
    with caplog.at_level("WARNING"):
        fault.clear_fault(tmp_path)
        assert "cannot remove the fault note" not in caplog.text
        fault.fault_path(tmp_path).write_text("{}")  # a note there, that cannot go: said
        fault.clear_fault(tmp_path)
    assert "cannot remove the fault note" in caplog.text
