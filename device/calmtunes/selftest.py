"""``calmtunes selftest``: one PASS/FAIL table for the technician, each FAIL with its fix.

Checks, in the order a technician would fix things: the config, the I2C bus and the MAX30102's
PART_ID, 5 s of pulse signal, a camera frame (grabbed, never saved), the sound card and a quiet
chime, the buttons and LEDs, the generator model's hash, the watchdog, the state directory and
whether the daemon runs. Each check is a function of the config and a :class:`Probe` (what it
touches of the machine, replaceable in tests); none ever raises: missing hardware is a FAIL row
with the fix, an unconfigured part a SKIP row with the reason.

Run it as the daemon's user so it sees what the daemon sees: ``sudo -u calmtunes
/opt/calmtunes/current/venv/bin/calmtunes selftest --config /etc/calmtunes/config.yaml``.
While the daemon runs it holds the sound card and the GPIO pins; those rows then say so (stop
it with ``sudo systemctl stop calmtunes`` for the full test).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from calmtunes.config import Config

#: MAX30102 (and MAX30105) PART_ID register and value (datasheet, register map: 0xFF reads 0x15)
PART_ID_REG = 0xFF
PART_ID_VALUE = 0x15
REV_ID_REG = 0xFE
PULSE_SECONDS = 5.0
WIRING = "see hw/README.md (/usr/share/doc/calmtunes/hw-README.md on the device)"


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped (not configured, or cannot be checked now)
    detail: str
    fix: str = ""


def _smbus(bus: int) -> Any:
    from smbus2 import SMBus  # imported late: the package imports on any machine

    return SMBus(bus)


def _run(cmd: list[str]) -> str | None:
    """A command's stdout, or None when it is missing or fails."""
    if shutil.which(cmd[0]) is None:
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


@dataclass
class Probe:
    """What the checks touch of the machine; tests replace the parts they need."""

    dev: Path = Path("/dev")
    cgroup: Path = Path("/sys/fs/cgroup")  # the cgroup v2 root
    smbus: Callable[[int], Any] = _smbus
    pin_factory: Any = None  # gpiozero's default factory when None
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    run: Callable[[list[str]], str | None] = _run
    model_path: Path | None = None  # None: music.model_path, else where the daemon looks
    pulse_seconds: float = PULSE_SECONDS
    led_on_s: float = 0.3  # each LED is lit this long for the technician to see
    chime: bool = True
    sleep: Callable[[float], None] = time.sleep


# -- config ---------------------------------------------------------------------------------------
def check_config(path: str | None) -> tuple[Check, Config]:
    from calmtunes import config as config_mod
    from calmtunes.errors import ConfigError

    if path is None:
        return Check("config", True, "no file; using the defaults"), Config()
    try:
        return Check("config", True, f"{path} is valid"), config_mod.load(path)
    except ConfigError as exc:
        problems = "; ".join(exc.problems)
        return (Check("config", False, f"{path}: {problems}",
                      f"edit {path} (config.example.yaml beside it lists every option); the "
                      "checks below use the defaults"), Config())


# -- pulse sensor ----------------------------------------------------------------------------------
def check_i2c(config: Config, probe: Probe) -> list[Check]:
    p = config.pulse
    if p.backend != "max30102":
        return [Check("I2C bus", None, f"pulse.backend is {p.backend!r}")]
    node = probe.dev / f"i2c-{p.i2c_bus}"
    if not node.exists():
        return [Check("I2C bus", False, f"{node} does not exist: I2C is off",
                      "dtparam=i2c_arm=on in /boot/firmware/config.txt (sudo ./scripts/install-pi "
                      "does it), then reboot")]
    try:
        bus = probe.smbus(p.i2c_bus)
    except PermissionError:
        return [Check("I2C bus", False, f"no permission to open {node}",
                      "run as the daemon's user (sudo -u calmtunes calmtunes selftest) or add "
                      "yourself to group i2c")]
    except (OSError, ImportError) as exc:
        return [Check("I2C bus", False, f"cannot open {node}: {exc}",
                      "check the I2C overlay and that smbus2 is installed")]
    try:
        found = []
        # A one-byte read answers on every address with a device (as `i2cdetect -r` does);
        # 0x03–0x77 are the ordinary 7-bit addresses. A bus without plain reads (an emulator)
        # is asked at the sensor's address only.
        scan = getattr(bus, "read_byte", None)
        for addr in range(0x03, 0x78) if scan else [p.address]:
            try:
                scan(addr) if scan else bus.read_byte_data(addr, PART_ID_REG)
                found.append(addr)
            except OSError:
                pass
        listed = ", ".join(f"0x{a:02x}" for a in found) or "nothing"
        rows = [Check("I2C bus", True, f"/dev/i2c-{p.i2c_bus}: {listed} answers")]
        if p.address not in found:
            rows.append(Check("MAX30102", False, f"no device at 0x{p.address:02x}",
                              "check the sensor's wiring: VIN to 3.3 V (pin 1), GND (pin 6), "
                              "SDA to GPIO2 (pin 3), SCL to GPIO3 (pin 5); " + WIRING))
            return rows
        from calmtunes.pulse.max30102 import MAX30102, SensorError

        try:  # the driver's own check, as the daemon makes it at start
            rev = MAX30102(bus, address=p.address).probe()
        except SensorError as exc:
            rows.append(Check("MAX30102", False, str(exc),
                              "this is not a MAX30102 (a MAX30100 board looks the same) or it "
                              "answers badly; replace the board; "
                              + WIRING))
        else:
            rows.append(Check("MAX30102", True, f"PART_ID 0x{PART_ID_VALUE:02x}, revision {rev}"))
        return rows
    except OSError as exc:
        return [Check("MAX30102", False, f"I2C error talking to 0x{p.address:02x}: {exc}",
                      "loose wire or missing pull-ups; " + WIRING)]
    finally:
        close = getattr(bus, "close", None)
        if close is not None:
            close()


def _analyze_fn() -> Callable[..., Any] | None:
    import importlib

    for module in ("calmtunes.pulse.analysis", "calmtunes.pulse.analyze"):
        try:
            fn = getattr(importlib.import_module(module), "analyze", None)
        except ImportError:
            continue
        if callable(fn):
            return fn
    return None


def check_pulse_signal(config: Config, probe: Probe, sensor_ok: bool) -> Check:
    name = f"pulse signal ({probe.pulse_seconds:.0f} s)"
    if config.pulse.backend != "max30102":
        return Check(name, None, f"pulse.backend is {config.pulse.backend!r}")
    if not sensor_ok:
        return Check(name, None, "no MAX30102 (see above)")
    analyze = _analyze_fn()
    try:
        from calmtunes.pulse.max30102 import MAX30102
    except ImportError:
        MAX30102 = None
    if MAX30102 is None or analyze is None:
        return Check(name, None, "the pulse driver or analysis is not in this build")
    import numpy as np

    bus = probe.smbus(config.pulse.i2c_bus)
    try:
        sensor = MAX30102(bus, address=config.pulse.address)
        sensor.start()
        try:
            ir: list[Any] = []
            end = time.monotonic() + probe.pulse_seconds
            while time.monotonic() < end:
                probe.sleep(0.1)
                ir.append(sensor.read().ir)
            fs = sensor.fs() if callable(sensor.fs) else sensor.fs
        finally:
            sensor.close()
    except OSError as exc:  # the driver's SensorError says what to check
        return Check(name, False, f"reading the sensor failed: {exc}",
                     "a loose wire or weak pull-ups; " + WIRING)
    finally:
        bus.close()
    signal = np.concatenate(ir) if ir else np.zeros(0)
    result = analyze(signal, fs)
    if result.hr_bpm is None or result.quality < config.conductor.min_quality:
        why = getattr(result, "reason", "") or "no clear pulse"
        return Check(name, False, f"quality {result.quality:.2f}: {why}",
                     "rest a fingertip lightly on the sensor, out of bright light, and rerun; "
                     "a board with swapped red/IR LEDs or weak pull-ups: " + WIRING)
    return Check(name, True, f"heart rate {result.hr_bpm:.0f} bpm, quality {result.quality:.2f}")


# -- camera ---------------------------------------------------------------------------------------
def check_camera(config: Config, probe: Probe) -> Check:
    s = config.scene
    if not s.enabled or s.backend in ("none", "sim"):
        return Check("camera", None, f"scene.backend is {s.backend!r}"
                     + ("" if s.enabled else ", scene.enabled is false"))
    if s.backend == "picamera2":
        try:
            from picamera2 import Picamera2
        except ImportError:
            return Check("camera", False, "picamera2 is not installed",
                         "sudo ./scripts/install-pi --camera csi (apt install python3-picamera2)")
        try:
            cam = Picamera2()
        except Exception as exc:  # libcamera raises many kinds when no camera is attached
            return Check("camera", False, f"no CSI camera: {exc}",
                         "check the ribbon cable (contacts toward the board) and `rpicam-hello`")
        try:
            cam.configure(cam.create_still_configuration(main={"size": (s.width, s.height)}))
            cam.start()
            frame = cam.capture_array()
        except Exception as exc:  # libcamera: busy, a size it cannot give, a capture timeout
            return Check("camera", False, f"CSI camera found but gives no frame: {exc}",
                         "stop what else uses it (the daemon: sudo systemctl stop calmtunes; "
                         "rpicam apps), check scene.width/height, then `rpicam-hello`")
        finally:
            cam.close()
        return Check("camera", True, f"CSI frame {frame.shape[1]}x{frame.shape[0]} (not saved)")
    node = probe.dev / f"video{s.device}"
    if not node.exists():
        return Check("camera", False, f"no {node}",
                     "plug in the USB camera, or set scene.device, or scene.backend: none")
    from calmtunes.errors import CameraError
    from calmtunes.scene.backends import make_camera

    camera = make_camera(config)  # the daemon's own backend: what works here works there
    try:
        camera.open()
        frame = camera.read()
    except CameraError as exc:
        return Check("camera", False, str(exc),
                     "another program may hold it; run as a user in group video; try "
                     "another USB port")
    finally:
        camera.close()
    return Check("camera", True, f"{node}: frame {frame.shape[1]}x{frame.shape[0]}, mean "
                 f"brightness {float(frame.mean()) / 255:.2f} (not saved)")


# -- sound ----------------------------------------------------------------------------------------
def check_audio(config: Config, probe: Probe | None = None) -> Check:
    probe = probe or Probe(chime=False)
    if config.audio.backend != "sounddevice":
        return Check("audio device", None, f"backend is {config.audio.backend!r}")
    try:
        import sounddevice as sd
    except OSError as exc:
        return Check("audio device", False, f"PortAudio missing ({exc})",
                     "sudo apt install libportaudio2")
    try:
        devices = [d for d in sd.query_devices() if d["max_output_channels"] >= 2]
    except Exception as exc:
        return Check("audio device", False, str(exc), "check `aplay -l`")
    wanted = config.audio.device.lower()
    match = [d for d in devices if wanted in d["name"].lower()] if wanted else list(devices)
    if not devices:
        return Check("audio device", False, "no sound card with a stereo output",
                     "check the DAC overlay in /boot/firmware/config.txt (dtoverlay=hifiberry-dac) "
                     "and its wiring, then `aplay -l`; " + WIRING)
    if not match:
        return Check("audio device", False,
                     f"no output matching {config.audio.device!r} among {len(devices)} device(s)",
                     "check the DAC overlay in /boot/firmware/config.txt, `aplay -l`, audio.device")
    name = match[0]["name"]
    if not probe.chime:
        return Check("audio device", True, name)
    try:
        play_chime(sd, match[0]["index"], config.audio.sample_rate)
    except Exception as exc:
        if "busy" in str(exc).lower() or "unanticipated host error" in str(exc).lower():
            return Check("audio device", None, f"{name}: busy (the daemon is playing through it)")
        return Check("audio device", False, f"{name}: cannot play: {exc}",
                     "check `aplay -l` and /etc/asound.conf (install-pi writes it)")
    return Check("audio device", True, f"{name}: played a quiet chime (did you hear it?)")


def chime(rate: int) -> Any:
    """Two soft bell tones (A5 then E6), 0.8 s, peak −30 dBFS: audible at a bedside, never loud."""
    import numpy as np

    t = np.arange(int(0.4 * rate)) / rate
    env = np.exp(-t * 6.0) * np.minimum(1.0, t / 0.01)  # 10 ms attack, soft decay
    notes = [np.sin(2 * np.pi * f * t) * env for f in (880.0, 1318.5)]
    mono = np.concatenate(notes) * 10 ** (-30 / 20)
    return np.repeat(mono[:, None], 2, axis=1).astype(np.float32)


def play_chime(sd: Any, device: int, rate: int) -> None:
    sd.play(chime(rate), samplerate=rate, device=device, blocking=True)


# -- panel ----------------------------------------------------------------------------------------
def check_panel(config: Config, probe: Probe) -> list[Check]:
    p = config.panel
    if p.backend != "gpio":
        return [Check("buttons and LEDs", None, f"panel.backend is {p.backend!r}")]
    try:
        from gpiozero import LED, Button
        from gpiozero.exc import BadPinFactory, GPIOZeroError
    except ImportError as exc:
        return [Check("buttons and LEDs", False, f"gpiozero missing: {exc}",
                      "reinstall: sudo ./scripts/install-pi")]
    rows: list[Check] = []
    opened: list[Any] = []
    try:
        if probe.pin_factory is None:
            from calmtunes.hardware import use_local_pins

            use_local_pins()
        stuck, lit, problems = [], [], []
        for role, pin in p.buttons.items():
            try:
                with warnings.catch_warnings():  # gpiozero warns for each factory it skips
                    warnings.simplefilter("ignore")
                    button = Button(pin, pull_up=True, pin_factory=probe.pin_factory)
            except BadPinFactory:
                raise
            except (GPIOZeroError, OSError, RuntimeError) as exc:
                problems.append(f"button {role} (GPIO{pin}): {exc}")
                continue
            opened.append(button)
            if button.is_pressed:  # wired to ground through the switch: pressed reads low
                stuck.append(f"{role} (GPIO{pin})")
        for role, pin in p.leds.items():
            try:
                led = LED(pin, pin_factory=probe.pin_factory)
            except BadPinFactory:
                raise
            except (GPIOZeroError, OSError, RuntimeError) as exc:
                problems.append(f"LED {role} (GPIO{pin}): {exc}")
                continue
            opened.append(led)
            led.on()
            probe.sleep(probe.led_on_s)
            led.off()
            lit.append(role)
        if problems:
            busy = any("busy" in s.lower() or "in use" in s.lower() for s in problems)
            rows.append(Check("GPIO pins", False, "; ".join(problems),
                              "stop the daemon first (sudo systemctl stop calmtunes)" if busy else
                              "apt install python3-lgpio; run as a user in group gpio; check "
                              "panel.buttons/panel.leds"))
        if stuck:
            rows.append(Check("buttons", False, "pressed at rest: " + ", ".join(stuck),
                              "a switch shorted to ground or a wrong pin; buttons go between "
                              "the GPIO and GND (internal pull-ups); " + WIRING))
        elif len(opened) > len(lit):
            rows.append(Check("buttons", True, f"{len(opened) - len(lit)} read released "
                              "(press each while the daemon runs to hear it answer)"))
        if lit:
            rows.append(Check("LEDs", True, "lit in turn: " + ", ".join(lit)
                              + " (did each light? if not: LED polarity, resistor, pin)"))
        return rows
    except BadPinFactory as exc:  # no GPIO hardware or no GPIO library
        return [Check("buttons and LEDs", False, f"no GPIO: {exc}",
                      "on a Raspberry Pi: apt install python3-lgpio and run as a user in group "
                      "gpio; elsewhere set panel.backend: mock")]
    finally:
        for device in opened:
            device.close()


# -- model, watchdog, state, daemon ---------------------------------------------------------------
def check_model(config: Config, probe: Probe) -> Check:
    """Load the model exactly as the daemon does (hash against its manifest, onnxruntime) and
    compose one phrase with it."""
    if config.music.generator != "onnx":
        return Check("generator model", None, f"music.generator is {config.music.generator!r}")
    fallback = "the procedural composer plays instead"
    fix = "reinstall: sudo ./scripts/install-pi (a damaged model may mean a failing SD card)"
    try:
        from calmtunes.music.controls import Controls
        from calmtunes.music.generator import NeuralComposer, default_model_path
    except ImportError as exc:
        return Check("generator model", False, f"cannot import the generator ({exc}); {fallback}",
                     fix)
    path = probe.model_path or (Path(config.music.model_path) if config.music.model_path
                                else default_model_path())
    try:
        composer = NeuralComposer.from_config(config.replace(music={"model_path": str(path)}))
        phrase = composer.next_phrase(Controls())
    except Exception as exc:  # ModelError, or anything onnxruntime raises
        return Check("generator model", False, f"{exc}; {fallback}", fix)
    return Check("generator model", True, f"{path}: manifest pinned, SHA-256 matches its "
                 f"manifest, probe passed; composed a {phrase.beats:g}-beat phrase of "
                 f"{len(phrase.notes)} notes")


def _usec_text(usec: int) -> str:
    return f"{usec / 1e6:g} s"


def check_watchdog(config: Config, probe: Probe) -> list[Check]:
    rows = []
    env_usec = probe.environ.get("WATCHDOG_USEC")
    unit = probe.run(["systemctl", "show", "calmtunes.service", "-p", "WatchdogUSec", "--value"])
    if env_usec:
        rows.append(Check("service watchdog", True,
                          f"WatchdogSec={_usec_text(int(env_usec))} (from systemd)"))
    elif unit is None:
        rows.append(Check("service watchdog", None, "systemctl is not available here"))
    else:
        text = unit.strip()
        if text in ("", "0", "infinity"):
            rows.append(Check("service watchdog", False, "calmtunes.service has no WatchdogSec",
                              "install the unit: sudo ./scripts/install-pi"))
        else:
            rows.append(Check("service watchdog", True, f"WatchdogSec={text}"))
    node = probe.dev / "watchdog"
    manager = probe.run(["systemctl", "show", "-p", "RuntimeWatchdogUSec", "--value"])
    runtime = (manager or "").strip()
    if not node.exists():
        rows.append(Check("hardware watchdog", False, f"no {node}",
                          "on a Raspberry Pi the bcm2835_wdt driver provides it "
                          "(dtparam=watchdog=on in /boot/firmware/config.txt on older images)"))
    elif manager is None:
        rows.append(Check("hardware watchdog", None, f"{node} present; systemctl not available"))
    elif runtime in ("", "0", "infinity"):
        rows.append(Check("hardware watchdog", False,
                          f"{node} present, but systemd does not use it",
                          "sudo ./scripts/install-pi (writes /etc/systemd/system.conf.d/"
                          "calmtunes-watchdog.conf), then sudo systemctl daemon-reexec"))
    else:
        rows.append(Check("hardware watchdog", True, f"{node}, RuntimeWatchdogSec={runtime}"))
    return rows


def check_memory_limit(config: Config, probe: Probe) -> Check:
    """The unit's MemoryHigh=/MemoryMax= need the kernel's memory controller, which Raspberry Pi
    kernels leave off unless cmdline.txt says cgroup_enable=memory."""
    controllers = probe.cgroup / "cgroup.controllers"
    try:
        available = controllers.read_text().split()
    except OSError:
        return Check("memory limit", None, f"no {controllers} (not cgroup v2): cannot tell")
    if "memory" in available:
        return Check("memory limit", True, "memory controller on: the unit's MemoryMax= holds")
    return Check("memory limit", False, "the kernel's memory controller is off, so the unit's "
                 "MemoryMax= does nothing",
                 "add cgroup_enable=memory to /boot/firmware/cmdline.txt (sudo ./scripts/"
                 "install-pi does) and reboot")


def check_state_dir(config: Config, probe: Probe | None = None) -> Check:
    path = Path(config.device.state_dir)
    if path.is_dir() and os.access(path, os.W_OK):
        return Check("state directory", True, str(path))
    return Check("state directory", False, f"{path} is missing or not writable",
                 "systemd creates it (StateDirectory=); by hand: sudo mkdir -p " + str(path))


def check_daemon(config: Config, probe: Probe) -> Check:
    from calmtunes.control import request, socket_path

    path = socket_path(config.device.runtime_dir)
    try:
        reply = request(path, "status", timeout=2.0)
    except PermissionError:
        return Check("daemon", None, f"{path}: no permission (join group calmtunes)")
    except OSError:
        from calmtunes.fault import RETRY, format_fault, read_fault

        note = read_fault(config.device.state_dir)
        if note is not None:  # systemd gave up on it: calmtunes-failed.service left this
            return Check("daemon", False, format_fault(note).split("; see ")[0],
                         f"see `journalctl -u calmtunes`; {RETRY}")
        return Check("daemon", None, "not running (sudo systemctl start calmtunes)")
    return Check("daemon", True, f"running {reply.get('uptime_s', 0):.0f} s, preset "
                 f"{reply.get('preset')}, {'playing' if reply.get('playing') else 'paused'}")


# -- the table ------------------------------------------------------------------------------------
def _guard(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check never crashes the selftest: an unexpected error is its FAIL row."""
    try:
        result = fn()
    except Exception as exc:
        return [Check(name, False, f"check crashed: {type(exc).__name__}: {exc}",
                      "a part or a library answered in a way this check did not expect: run "
                      "the selftest again with the daemon stopped (sudo systemctl stop "
                      "calmtunes), and keep this output for the maintainer")]
    return result if isinstance(result, list) else [result]


def run_checks(config: Config, extra: list[Check] | None = None,
               probe: Probe | None = None) -> list[Check]:
    probe = probe or Probe()
    results = list(extra) if extra is not None else [Check("config", True, "valid")]
    i2c = _guard("MAX30102", lambda: check_i2c(config, probe))
    results += i2c
    sensor_ok = any(r.name == "MAX30102" and r.ok for r in i2c)
    results += _guard("pulse signal", lambda: check_pulse_signal(config, probe, sensor_ok))
    results += _guard("camera", lambda: check_camera(config, probe))
    results += _guard("audio device", lambda: check_audio(config, probe))
    results += _guard("buttons and LEDs", lambda: check_panel(config, probe))
    results += _guard("generator model", lambda: check_model(config, probe))
    results += _guard("watchdog", lambda: check_watchdog(config, probe))
    results += _guard("memory limit", lambda: check_memory_limit(config, probe))
    results += _guard("state directory", lambda: check_state_dir(config, probe))
    results += _guard("daemon", lambda: check_daemon(config, probe))
    return results


def selftest(config_path: str | None, probe: Probe | None = None) -> list[Check]:
    """The whole selftest: the config's own row, then every check (on defaults if it is bad)."""
    row, config = check_config(config_path)
    return run_checks(config, [row], probe)


def format_table(results: list[Check]) -> str:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        mark = "SKIP" if r.ok is None else ("PASS" if r.ok else "FAIL")
        lines.append(f"{mark}  {r.name:<{width}}  {r.detail}")
        if r.ok is False and r.fix:
            lines.append(f"      {'':<{width}}  fix: {r.fix}")
    failed = sum(1 for r in results if r.ok is False)
    lines.append(f"{failed} failed, {sum(1 for r in results if r.ok)} passed, "
                 f"{sum(1 for r in results if r.ok is None)} skipped")
    return "\n".join(lines)
