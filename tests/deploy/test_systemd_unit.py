"""The systemd unit: systemd's own verifier and security analyser, and what the issue asks of it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "calmtunes.service"
FAILED_UNIT = UNIT.with_name("calmtunes-failed.service")
EXEC = "/opt/calmtunes/current/venv/bin/calmtunes"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def directives(text: str) -> dict[str, list[str]]:
    """Every Key=value of a unit file, keys may repeat (DeviceAllow=, SystemCallFilter=)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def exposure(unit: Path) -> float:
    out = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, check=False)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out.stdout)
    assert match, f"no overall exposure in systemd-analyze's output:\n{out.stdout}{out.stderr}"
    return float(match.group(1))


@needs_analyze
@pytest.mark.parametrize("unit", [UNIT, FAILED_UNIT], ids=lambda u: u.name)
def test_systemd_analyze_verify_finds_nothing(tmp_path, unit):
    # The units as shipped, side by side (OnFailure= names the other), with only
    # ExecStart's program standing at a path that exists here (verify checks it is executable;
    # the venv exists only on the device).
    program = tmp_path / "calmtunes"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    for u in (UNIT, FAILED_UNIT):
        text = u.read_text()
        assert EXEC in text
        (tmp_path / u.name).write_text(text.replace(EXEC, str(program)))
    out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit.name)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stderr.strip() == "", out.stderr


@needs_analyze
@pytest.mark.parametrize("unit", [UNIT, FAILED_UNIT], ids=lambda u: u.name)
def test_security_exposure_is_at_most_2(unit):
    assert exposure(unit) <= 2.0


@needs_analyze
def test_security_parser_sees_an_unhardened_unit(tmp_path):
    bare = tmp_path / "bare.service"
    bare.write_text(f"[Service]\nType=notify\nExecStart={EXEC} run\n")
    assert exposure(bare) > 2.0


def test_unit_has_what_the_device_needs():
    d = directives(UNIT.read_text())
    one = {k: v[-1] for k, v in d.items()}
    assert one["Type"] == "notify"
    assert one["NotifyAccess"] == "main"
    assert one["WatchdogSec"]
    assert one["Restart"] == "on-failure"
    assert one["RestartPreventExitStatus"].split() == ["78", "10"]  # config error; power-off
    assert one["SuccessExitStatus"] == "10"
    assert "poweroff" in one["ExecStopPost"]
    assert one["StartLimitBurst"] and one["StartLimitIntervalSec"]
    assert one["ExecStart"] == f"{EXEC} run --config /etc/calmtunes/config.yaml"
    assert "$MAINPID" in one["ExecReload"] and "-HUP" in one["ExecReload"]
    # SIGTERM fades out within 2 s; systemd must wait at least that, and not much longer.
    assert 2 < int(one["TimeoutStopSec"].rstrip("s")) <= 10
    assert set(one["SupplementaryGroups"].split()) == {"i2c", "gpio", "audio", "video"}
    for key, value in {"PrivateNetwork": "yes", "IPAddressDeny": "any",
                       "RestrictAddressFamilies": "AF_UNIX", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "NoNewPrivileges": "yes",
                       "CapabilityBoundingSet": "", "DevicePolicy": "closed",
                       "StateDirectory": "calmtunes", "RuntimeDirectory": "calmtunes",
                       # libjack's metadata folder and server lookup stay inside the unit
                       # (1777 as /dev/shm is: the daemon's user makes its folder there)
                       "TemporaryFileSystem": "/dev/shm:mode=1777,nosuid,nodev,noexec"}.items():
        assert one[key] == value, key
    assert "PYTHONDONTWRITEBYTECODE=1" in d["Environment"]
    assert d["SystemCallFilter"][0] == "@system-service"


def test_devices_are_exactly_sensor_gpio_sound_and_camera():
    allowed = {v.split()[0] for v in directives(UNIT.read_text())["DeviceAllow"]}
    assert allowed == {"char-i2c", "char-gpiochip", "char-gpiomem", "char-alsa",
                       "char-video4linux", "char-media", "char-dma_heap"}


def test_control_socket_is_reachable_by_group_calmtunes():
    one = {k: v[-1] for k, v in directives(UNIT.read_text()).items()}
    assert one["Group"] == "calmtunes"
    mode = int(one["RuntimeDirectoryMode"], 8)
    assert mode & 0o050 == 0o050  # the group may enter the folder (the socket itself is 0660)
    assert mode & 0o007 == 0  # nobody else


def _bytes(value: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(value[:-1]) * units[value[-1]] if value[-1] in units else int(value)


def test_resources_are_capped_with_headroom_over_what_was_measured():
    one = {k: v[-1] for k, v in directives(UNIT.read_text()).items()}
    measured_rss = 204 << 20  # peak RSS in simulation (see the unit's comment)
    high, hard = _bytes(one["MemoryHigh"]), _bytes(one["MemoryMax"])
    assert measured_rss * 1.3 <= high < hard <= 1 << 30  # throttled before killed; < 1 GB Pi
    assert 32 <= int(one["TasksMax"]) <= 256  # 16 threads measured
    assert one["LogRateLimitIntervalSec"] and 500 <= int(one["LogRateLimitBurst"]) < 10000


def test_the_music_comes_before_ordinary_work_but_never_in_a_real_time_class():
    d = directives(UNIT.read_text())
    assert int(d["Nice"][-1]) <= -5  # ahead of an update or a technician's command
    assert int(d["CPUWeight"][-1]) > 100  # and between cgroups (100 is every unit's default)
    for key in ("CPUSchedulingPolicy", "CPUSchedulingPriority", "LimitRTPRIO"):
        assert key not in d, f"{key}= would let a runaway thread lock up the Pi"


def test_giving_up_starts_the_fault_signal():
    main = {k: v[-1] for k, v in directives(UNIT.read_text()).items()}
    assert main["OnFailure"] == FAILED_UNIT.name
    text = FAILED_UNIT.read_text()
    failed = {k: v[-1] for k, v in directives(text).items()}
    assert failed["ExecStart"] == f"{EXEC} fault --config /etc/calmtunes/config.yaml"
    # every start of the daemon stops the signal first (it holds the LED pins) ...
    assert f"systemctl stop {FAILED_UNIT.name}" in main["ExecStartPre"]
    assert main["ExecStartPre"].startswith(("-+", "+-"))  # as root, a failure ignored
    # ... and nothing in the signal stops the daemon: systemd ≥ 255 starts OnFailure= units
    # between automatic restarts too, and a Conflicts= would cancel the restart.
    assert "Conflicts" not in failed and "calmtunes.service" not in failed.get("Before", "")
    assert failed["User"] == "calmtunes" and failed["StateDirectory"] == "calmtunes"
    assert failed["SupplementaryGroups"] == "gpio" and failed["DevicePolicy"] == "closed"
    assert {v.split()[0] for v in directives(text)["DeviceAllow"]} == \
        {"char-gpiochip", "char-gpiomem"}
    assert failed["PrivateNetwork"] == "yes" and failed["CapabilityBoundingSet"] == ""
    assert "[Install]" not in text  # never enabled: only OnFailure= starts it


@pytest.mark.parametrize("unit", [UNIT, FAILED_UNIT], ids=lambda u: u.name)
def test_working_folder_is_writable_for_lgpio(unit):
    # lgpio makes its notification pipes in the working folder; ProtectSystem=strict leaves
    # only the unit's own state and runtime folders writable.
    one = {k: v[-1] for k, v in directives(unit.read_text()).items()}
    writable = {f"/run/{one['RuntimeDirectory']}", f"/var/lib/{one['StateDirectory']}"}
    assert one["ProtectSystem"] == "strict" and one["WorkingDirectory"] in writable
CHECK_UNIT = UNIT.with_name("calmtunes-release-check.service")


@needs_analyze
def test_release_check_unit_verifies(tmp_path):
    text = CHECK_UNIT.read_text()
    one = {k: v[-1] for k, v in directives(text).items()}
    assert one["Type"] == "oneshot"
    assert one["ExecStart"].startswith("/usr/bin/python3 /opt/calmtunes/bin/calmtunes-release "
                                       "confirm ")
    assert one["ConditionPathExists"] == "/opt/calmtunes/pending.json"
    # The deadline outlasts the daemon's own start timeout, and the unit outlasts the deadline.
    deadline = float(one["ExecStart"].split("--deadline ")[1].split()[0])
    start = float(one_of_unit()["TimeoutStartSec"].rstrip("s"))
    assert start < deadline < float(one["TimeoutStartSec"])
    copy = tmp_path / CHECK_UNIT.name
    copy.write_text(text.replace("/usr/bin/python3", shutil.which("python3") or "/bin/true"))
    out = subprocess.run(["systemd-analyze", "verify", str(copy)],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def one_of_unit() -> dict[str, str]:
    return {k: v[-1] for k, v in directives(UNIT.read_text()).items()}
