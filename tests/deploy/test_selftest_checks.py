"""calmtunes selftest: every check on missing, broken and working (test-double) hardware.

The I2C bus here is a small test double answering like a MAX30102 board; the GPIO pins are
gpiozero's own MockFactory. Nothing in these tests needs real hardware.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from calmtunes import selftest as st
from calmtunes.config import Config


class RegisterBus:
    """An SMBus-shaped test double: devices by address, each a register map."""

    def __init__(self, devices: dict[int, dict[int, int]]) -> None:
        self.devices = devices
        self.closed = False

    def read_byte(self, addr: int) -> int:
        if addr not in self.devices:
            raise OSError(121, "Remote I/O error")  # what the kernel says for a NAK
        return 0

    def read_byte_data(self, addr: int, reg: int) -> int:
        if addr not in self.devices:
            raise OSError(121, "Remote I/O error")
        return self.devices[addr].get(reg, 0)

    def close(self) -> None:
        self.closed = True


def no_systemctl(cmd: list[str]) -> None:
    return None


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    d = tmp_path / "dev"
    d.mkdir()
    return d


def probe_for(dev: Path, **kw) -> st.Probe:
    kw.setdefault("run", no_systemctl)
    kw.setdefault("chime", False)
    kw.setdefault("led_on_s", 0.0)
    kw.setdefault("environ", {})
    return st.Probe(dev=dev, **kw)


def rows(results: list[st.Check], name: str) -> list[st.Check]:
    return [r for r in results if r.name == name]


def only(results: list[st.Check], name: str) -> st.Check:
    found = rows(results, name)
    assert len(found) == 1, f"expected one {name!r} row in {[r.name for r in results]}"
    return found[0]


# -- the whole table without hardware --------------------------------------------------------------
def test_missing_hardware_gives_fails_with_fixes_and_never_crashes(dev, tmp_path):
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    try:
        cfg = Config().replace(device={"state_dir": str(tmp_path / "state"),
                                       "runtime_dir": str(tmp_path / "run")})
        results = st.run_checks(cfg, probe=probe_for(dev, pin_factory=factory,
                                                     model_path=tmp_path / "none.onnx"))
    finally:
        factory.close()
    assert all(r.ok in (True, False, None) for r in results)
    assert not any("crashed" in r.detail for r in results)
    i2c = only(results, "I2C bus")
    assert i2c.ok is False and "i2c_arm=on" in i2c.fix
    assert only(results, "pulse signal (5 s)").ok is None
    assert only(results, "camera").ok is False and "video0" in only(results, "camera").detail
    assert only(results, "generator model").ok is False
    assert only(results, "hardware watchdog").ok is False
    assert only(results, "state directory").ok is False
    assert only(results, "daemon").ok is None
    for r in results:
        if r.ok is False:
            assert r.fix, f"{r.name} fails without a fix"
    table = st.format_table(results)
    assert table.count("fix:") == sum(1 for r in results if r.ok is False)
    assert table.splitlines()[-1].startswith(f"{sum(1 for r in results if r.ok is False)} failed")


def test_a_check_that_raises_becomes_a_fail_row(dev, monkeypatch):
    def broken(config, probe):
        raise RuntimeError("driver exploded")

    monkeypatch.setattr(st, "check_camera", broken)
    results = st.run_checks(Config(), probe=probe_for(dev))
    camera = only(results, "camera")
    assert camera.ok is False and "driver exploded" in camera.detail
    assert camera.fix and "daemon stopped" in camera.fix  # every FAIL row says what to do


def test_a_csi_camera_that_gives_no_frame_is_a_fail_with_a_fix(dev, monkeypatch):
    """picamera2 raising at configure/start/capture (busy, a size it cannot give) crashed the
    check into a FAIL row with no fix."""
    import sys
    import types

    class Busy:
        def create_still_configuration(self, main):
            return main

        def configure(self, cfg):
            raise RuntimeError("Failed to acquire camera: Device or resource busy")

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Busy))
    cfg = Config().replace(scene={"backend": "picamera2", "enabled": True})
    row = st.check_camera(cfg, probe_for(dev))
    assert row.ok is False and "resource busy" in row.detail
    assert "systemctl stop calmtunes" in row.fix


def test_bad_config_is_a_row_and_the_rest_still_runs(dev, tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("audio:\n  volum: 3\npulse:\n  i2c_bus: 99\n")
    results = st.selftest(str(bad), probe_for(dev))
    config = only(results, "config")
    assert config.ok is False
    assert "audio.volum" in config.detail and "pulse.i2c_bus" in config.detail
    assert len(results) > 5


def test_cli_selftest_reports_a_bad_config_in_the_table(tmp_path, capsys):
    from calmtunes.cli import main

    bad = tmp_path / "config.yaml"
    bad.write_text("audio: {fade_out_s: 5}\n")
    assert main(["selftest", "--config", str(bad)]) == 1  # not 78: the table is the answer
    out = capsys.readouterr().out
    assert "FAIL  config" in out and "audio.fade_out_s" in out
    assert "I2C bus" in out and "state directory" in out


# -- I2C and the MAX30102 --------------------------------------------------------------------------
def test_max30102_found_by_part_id(dev):
    (dev / "i2c-1").touch()
    bus = RegisterBus({0x57: {0xFF: 0x15, 0xFE: 3}, 0x3C: {}})
    results = st.check_i2c(Config(), probe_for(dev, smbus=lambda n: bus))
    assert results[0].ok and "0x3c, 0x57" in results[0].detail
    assert results[1].name == "MAX30102" and results[1].ok
    assert "PART_ID 0x15" in results[1].detail
    assert bus.closed


def test_wrong_part_id_is_named(dev):
    (dev / "i2c-1").touch()
    bus = RegisterBus({0x57: {0xFF: 0x11}})  # a MAX30100 answers at the same address
    sensor = st.check_i2c(Config(), probe_for(dev, smbus=lambda n: bus))[1]
    assert sensor.ok is False and "PART_ID 0x11" in sensor.detail and "MAX30100" in sensor.fix


def test_no_sensor_on_the_bus_points_at_the_wiring(dev):
    (dev / "i2c-1").touch()
    bus = RegisterBus({})
    bus_row, sensor = st.check_i2c(Config(), probe_for(dev, smbus=lambda n: bus))
    assert bus_row.ok and "nothing answers" in bus_row.detail
    assert sensor.ok is False and "no device at 0x57" in sensor.detail and "GPIO2" in sensor.fix


def test_no_permission_on_the_bus_says_which_group(dev):
    (dev / "i2c-1").touch()

    def denied(n):
        raise PermissionError(13, "Permission denied")

    row = st.check_i2c(Config(), probe_for(dev, smbus=denied))[0]
    assert row.ok is False and "group i2c" in row.fix


def test_other_pulse_backends_skip_the_bus(dev):
    results = st.check_i2c(Config().replace(pulse={"backend": "sim"}), probe_for(dev))
    assert [r.ok for r in results] == [None]


# -- buttons and LEDs (gpiozero's MockFactory) -----------------------------------------------------
def test_panel_released_buttons_and_lit_leds():
    from gpiozero.pins.mock import MockFactory

    factory = MockFactory()
    try:
        results = st.check_panel(Config(), probe_for(Path("/nonexistent"), pin_factory=factory))
        assert [r.ok for r in results] == [True, True]
        assert "7 read released" in only(results, "buttons").detail
        for pin in Config().panel.leds.values():
            states = [s.state for s in factory.pin(pin).states]
            assert True in states, f"LED on GPIO{pin} was never lit"
            assert states[-1] is False, f"LED on GPIO{pin} was left on"
    finally:
        factory.close()


def test_panel_button_shorted_to_ground_fails():
    from gpiozero.pins.mock import MockFactory, MockPin

    class ShortedToGround(MockPin):
        """GPIO5 wired straight to GND: the pull-up cannot lift it."""

        def _set_pull(self, value):
            super()._set_pull(value)
            if self.info.name == "GPIO5":
                self.drive_low()

    factory = MockFactory(pin_class=ShortedToGround)
    try:
        results = st.check_panel(Config(), probe_for(Path("/nonexistent"), pin_factory=factory))
    finally:
        factory.close()
    buttons = only(results, "buttons")
    assert buttons.ok is False and "calm (GPIO5)" in buttons.detail and "GND" in buttons.fix


def test_panel_without_gpio_hardware_says_how_to_fix(monkeypatch):
    from gpiozero import Device

    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "no-such-factory")
    monkeypatch.setattr(Device, "pin_factory", None)
    results = st.check_panel(Config(), probe_for(Path("/nonexistent")))
    assert len(results) == 1 and results[0].ok is False
    assert "python3-lgpio" in results[0].fix


# -- the generator model ---------------------------------------------------------------------------
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "calmtunes-generator.onnx"


def shipped_copy(tmp_path: Path) -> Path:
    if not SHIPPED.exists():
        pytest.skip("no generator model in this checkout")
    model = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, model)
    shutil.copy(SHIPPED.with_suffix(".json"), model.with_suffix(".json"))
    return model


def test_model_matching_its_manifest_passes(dev, tmp_path):
    pytest.importorskip("onnxruntime")
    model = shipped_copy(tmp_path)
    row = st.check_model(Config(), probe_for(dev, model_path=model))
    assert row.ok, row.detail
    assert "SHA-256 matches its manifest" in row.detail
    assert "composed a 16-beat phrase" in row.detail


def test_damaged_model_fails_with_reinstall(dev, tmp_path):
    model = shipped_copy(tmp_path)
    data = model.read_bytes()
    model.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # one flipped byte
    row = st.check_model(Config(), probe_for(dev, model_path=model))
    assert row.ok is False and "corrupt" in row.detail and "install-pi" in row.fix


def test_model_without_manifest_fails(dev, tmp_path):
    model = shipped_copy(tmp_path)
    model.with_suffix(".json").unlink()
    row = st.check_model(Config(), probe_for(dev, model_path=model))
    assert row.ok is False and "manifest" in row.detail


def test_missing_model_and_procedural_composer(dev, tmp_path):
    row = st.check_model(Config(), probe_for(dev, model_path=tmp_path / "absent.onnx"))
    assert row.ok is False and "procedural composer plays instead" in row.detail
    row = st.check_model(Config().replace(music={"generator": "procedural"}), probe_for(dev))
    assert row.ok is None


# -- the watchdog ----------------------------------------------------------------------------------
def fake_systemctl(service: str, manager: str):
    def run(cmd: list[str]) -> str:
        return (service if "calmtunes.service" in cmd else manager) + "\n"

    return run


def test_watchdog_armed(dev):
    (dev / "watchdog").touch()
    results = st.check_watchdog(Config(), probe_for(dev, run=fake_systemctl("20s", "15s")))
    assert [r.ok for r in results] == [True, True]
    assert "WatchdogSec=20s" in results[0].detail and "RuntimeWatchdogSec=15s" in results[1].detail


def test_watchdog_from_systemd_environment(dev):
    results = st.check_watchdog(Config(), probe_for(dev, environ={"WATCHDOG_USEC": "20000000"}))
    assert results[0].ok and "20 s" in results[0].detail


def test_watchdog_not_used_by_systemd(dev):
    (dev / "watchdog").touch()
    results = st.check_watchdog(Config(), probe_for(dev, run=fake_systemctl("0", "0")))
    assert [r.ok for r in results] == [False, False]
    assert "daemon-reexec" in results[1].fix


def test_watchdog_device_missing(dev):
    results = st.check_watchdog(Config(), probe_for(dev, run=fake_systemctl("20s", "15s")))
    assert results[1].ok is False and "bcm2835_wdt" in results[1].fix


def test_memory_limit_needs_the_memory_controller(tmp_path):
    cg = tmp_path / "cgroup"
    cg.mkdir()
    probe = st.Probe(cgroup=cg)
    assert st.check_memory_limit(Config(), probe).ok is None  # no cgroup v2: cannot tell
    (cg / "cgroup.controllers").write_text("cpuset cpu io pids\n")  # a Pi's default kernel
    row = st.check_memory_limit(Config(), probe)
    assert row.ok is False and "cgroup_enable=memory" in row.fix
    (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    assert st.check_memory_limit(Config(), probe).ok is True


def test_daemon_given_up_by_systemd_is_a_fail_with_the_way_back(tmp_path):
    from calmtunes.fault import record_fault

    cfg = Config().replace(device={"state_dir": str(tmp_path / "state"),
                                   "runtime_dir": str(tmp_path / "run")})
    assert st.check_daemon(cfg, st.Probe()).ok is None  # just not running
    record_fault(cfg.device.state_dir, "restarted too often", "start-limit-hit")
    row = st.check_daemon(cfg, st.Probe())
    assert row.ok is False and "failed at" in row.detail and "restarted too often" in row.detail
    assert "reset-failed" in row.fix


# -- sound and camera ------------------------------------------------------------------------------
def test_chime_is_quiet_stereo_and_short():
    import numpy as np

    pcm = st.chime(48000)
    assert pcm.dtype == np.float32 and pcm.shape[1] == 2
    assert 0.5 <= len(pcm) / 48000 <= 1.0
    peak_dbfs = 20 * np.log10(np.abs(pcm).max())
    assert -31 <= peak_dbfs <= -29


def test_camera_skipped_when_not_used(dev):
    row = st.check_camera(Config().replace(scene={"backend": "none"}), probe_for(dev))
    assert row.ok is None
    row = st.check_camera(Config().replace(scene={"enabled": False}), probe_for(dev))
    assert row.ok is None and "enabled is false" in row.detail


def test_audio_skipped_for_file_output(dev):
    assert st.check_audio(Config().replace(audio={"backend": "wav"}), probe_for(dev)).ok is None


# -- pulse signal through the real driver and analysis, on the emulated sensor --------------------
def test_pulse_signal_from_the_emulated_sensor(dev):
    """Runs once the MAX30102 driver, the pulse analysis and the sensor emulator are in the tree;
    5 s of real time, as on the device."""
    pytest.importorskip("calmtunes.pulse.max30102")
    pytest.importorskip("calmtunes.pulse.analysis")
    sim = pytest.importorskip("calmtunes.sim.max30102")
    (dev / "i2c-1").touch()
    probe = probe_for(dev, smbus=lambda n: sim.emulated_bus("rest"))
    results = st.run_checks(Config().replace(scene={"backend": "none"},
                                             audio={"backend": "null"},
                                             panel={"backend": "none"}), probe=probe)
    assert only(results, "MAX30102").ok
    pulse = only(results, "pulse signal (5 s)")
    assert pulse.ok, pulse.detail
    assert "heart rate" in pulse.detail
