"""Typed configuration, validated up front.

The configuration is YAML (``/etc/calmtunes/config.yaml`` on the device, ``--config PATH``
anywhere). Each section is a frozen dataclass; every field carries its default, its type and its
allowed range or choices in ``opt(...)``. :func:`load` reads a file, :func:`parse` a mapping; both
check everything and raise one :class:`ConfigError` listing every problem with its key path, so a
technician fixes the file in one go. Unknown keys are refused with a "did you mean" suggestion.

Sections belong to the parts of the daemon that read them; a part adds a field by adding it to
its own section below (and to ``config.example.yaml``, which a test keeps in step).
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
import re
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from calmtunes.errors import ConfigError

DEFAULT_PATH = Path("/etc/calmtunes/config.yaml")


def opt(
    default: Any,
    *,
    help: str,
    min: float | None = None,
    max: float | None = None,
    choices: tuple[Any, ...] | None = None,
) -> Any:
    """A config field: its default, what it means (with its unit) and what values it takes."""
    meta = {"help": help, "min": min, "max": max, "choices": choices}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: _copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceConfig:
    state_dir: str = opt(
        "/var/lib/calmtunes",
        help="where the small persistent state (last preset, volume) and sessions live; "
        "`calmtunes run` takes $STATE_DIRECTORY instead when systemd sets it (StateDirectory=)",
    )
    runtime_dir: str = opt(
        "/run/calmtunes",
        help="where the control socket lives (mode 0660); must belong to the daemon's user and "
        "not be writable by group or others (made 0750 if missing); `calmtunes run` takes "
        "$RUNTIME_DIRECTORY instead when systemd sets it (RuntimeDirectory=)",
    )
    status_health: str = opt(
        "owner",
        help="who sees health figures (heart rate, HRV, breathing, stress, SpO2) in `calmtunes "
        "status`: only the daemon's own user and root, or everyone who may use the control "
        "socket (its group)",
        choices=("owner", "group"),
    )
    log_level: str = opt(
        "info", help="log verbosity", choices=("debug", "info", "warning", "error")
    )
    hardware: str = opt(
        "pi",
        help="the hardware profile: 'pi' gives each part the backend its own section names; "
        "'sim' (set by `calmtunes simulate`) emulates every sense — the MAX30102, the camera, "
        "the buttons — whatever those say (a part set to 'none' stays off)",
        choices=("pi", "sim"),
    )
    simulate: bool = opt(
        False,
        help="run on the emulated sensor and camera (set with device.hardware: sim); also "
        "allows fault injection over the control socket",
    )


@dataclass(frozen=True)
class AudioConfig:
    backend: str = opt(
        "sounddevice",
        help="where sound goes: the sound card (PortAudio), a WAV file, or nowhere",
        choices=("sounddevice", "wav", "null"),
    )
    device: str = opt(
        "",
        help="part of the output device's name, case-insensitive (e.g. 'hifiberry'); "
        "empty for the system default",
    )
    sample_rate: int = opt(48000, help="output rate in Hz", choices=(44100, 48000))
    block_ms: float = opt(
        20.0, help="the producer renders this much audio at a time, in ms", min=5.0, max=100.0
    )
    buffer_ms: float = opt(
        150.0,
        help="audio kept rendered ahead of the sound card, in ms (more is safer against "
        "underruns, less makes buttons answer sooner: a press is heard after about this much "
        "plus a block and the card's own latency (two 2048-frame periods: 85 ms at 48 kHz), "
        "and must be within 300 ms)",
        min=60.0,
        max=2000.0,
    )
    wav_path: str = opt("calmtunes.wav", help="output file for the 'wav' backend")
    realtime: bool = opt(
        True,
        help="for the 'wav' and 'null' backends: pace output by the clock (false runs as fast "
        "as the CPU allows, for soaks and offline renders)",
    )
    fade_in_s: float = opt(3.0, help="fade-in at start, in seconds", min=0.0, max=30.0)
    fade_out_s: float = opt(
        1.5, help="fade-out on stop, in seconds (systemd waits at most 2 s)", min=0.05, max=1.9
    )
    reopen_max_s: float = opt(
        30.0,
        help="longest wait between attempts to reopen a vanished sound card, in seconds",
        min=1.0,
        max=600.0,
    )


DEFAULT_PRESETS: dict[str, dict[str, Any]] = {
    "calm": {
        "tempo_bpm": 66.0,
        "mode": "major",
        "density": 0.45,
        "register": 0.5,
        "brightness": 0.5,
        "bed_level": 0.35,
        "breath_rate": 6.0,
        "led": "calm",
    },
    "sleep": {
        "tempo_bpm": 60.0,
        "mode": "minor",
        "density": 0.25,
        "register": 0.35,
        "brightness": 0.3,
        "bed_level": 0.5,
        "breath_rate": 6.0,
        "led": "sleep",
    },
    "uplift": {
        "tempo_bpm": 76.0,
        "mode": "major",
        "density": 0.6,
        "register": 0.6,
        "brightness": 0.65,
        "bed_level": 0.2,
        "breath_rate": 8.0,
        "led": "uplift",
    },
}

PRESET_KEYS: dict[str, tuple[type, float | None, float | None]] = {
    # key: (type, min, max)
    "tempo_bpm": (float, 50.0, 90.0),
    "mode": (str, None, None),
    "density": (float, 0.0, 1.0),
    "register": (float, 0.0, 1.0),
    "brightness": (float, 0.0, 1.0),
    "bed_level": (float, 0.0, 1.0),
    "breath_rate": (float, 4.0, 20.0),
    "led": (str, None, None),
}


@dataclass(frozen=True)
class MusicConfig:
    generator: str = opt(
        "onnx",
        help="the composer: the on-device neural generator (falls back to 'procedural' by "
        "itself if the model cannot be used) or the rule-based one",
        choices=("onnx", "procedural"),
    )
    model_path: str = opt(
        "",
        help="the generator model; empty for the one installed with calmtunes",
    )
    model_trust: str = opt(
        "pinned",
        help="which generator manifests load: only those this release pins (its own model), or "
        "'any' (a model you train yourself; logged as a warning at every load)",
        choices=("pinned", "any"),
    )
    temperature: float = opt(
        0.9, help="generator sampling temperature (lower: safer, more repetitive)", min=0.3,
        max=1.5,
    )
    top_p: float = opt(
        0.92, help="generator nucleus sampling: keep the likeliest tokens up to this share of "
        "probability", min=0.5, max=1.0,
    )
    candidates: int = opt(
        4, help="generator: continuations drawn per phrase; the one whose measured density, "
        "register, rhythm and mode come nearest the controls is played (1 = the model alone)",
        min=1, max=16,
    )
    default_preset: str = opt("calm", help="preset on first start (later: the last one used)")
    seed: int = opt(0, help="random seed for composition; 0 picks one per start", min=0)
    lookahead_s: float = opt(
        8.0, help="music composed ahead of the playhead, in seconds", min=2.0, max=60.0
    )
    target_lufs: float = opt(
        -30.0,
        help="integrated loudness at 0 dB volume, in LUFS (ITU-R BS.1770); a bedside is quiet",
        min=-50.0,
        max=-14.0,
    )
    volume_db: float = opt(
        -6.0, help="volume on first start, in dB relative to target_lufs", min=-40.0, max=6.0
    )
    max_volume_db: float = opt(
        0.0,
        help="the loudest the buttons can go, in dB relative to target_lufs",
        min=-20.0,
        max=6.0,
    )
    min_volume_db: float = opt(-30.0, help="the quietest volume step, in dB", min=-60.0, max=-6.0)
    volume_step_db: float = opt(3.0, help="one press of volume up/down, in dB", min=0.5, max=6.0)
    presets: dict = opt(
        DEFAULT_PRESETS,
        help="mood presets by name (1–32 letters, digits, '-' or '_'; not 'auto'); each sets "
        "tempo_bpm (50–90), mode (major/minor), density, register, brightness, bed_level (0–1), "
        "breath_rate (breaths/min) and led",
    )


@dataclass(frozen=True)
class SoundConfig:
    bed: str = opt(
        "surf", help="ambient bed texture", choices=("surf", "wind", "rain", "none")
    )
    reverb: float = opt(0.35, help="reverb wet level (0 dry – 1 wet)", min=0.0, max=1.0)
    breath_pacing: bool = opt(True, help="let the bed and pad swell at the paced breathing rate")
    breath_depth_db: float = opt(
        3.0, help="depth of the breath-pacing swell, in dB", min=0.0, max=9.0
    )
    entrainment: str = opt(
        "off",
        help="opt-in brainwave entrainment (limited evidence; see README): isochronic pulses or "
        "binaural beats (headphones only)",
        choices=("off", "isochronic", "binaural"),
    )
    entrainment_hz: float = opt(
        8.0, help="entrainment beat frequency, in Hz (alpha 8–12, theta 4–8)", min=4.0, max=12.0
    )
    entrainment_level_db: float = opt(
        -24.0, help="entrainment level relative to the music, in dB", min=-40.0, max=-12.0
    )


@dataclass(frozen=True)
class PulseConfig:
    backend: str = opt(
        "max30102",
        help="pulse sensor: the MAX30102 on I2C, the emulated one, or none",
        choices=("max30102", "sim", "none"),
    )
    i2c_bus: int = opt(1, help="I2C bus number (/dev/i2c-N)", min=0, max=20)
    address: int = opt(0x57, help="MAX30102 I2C address (0x57 on every board)", min=0x08, max=0x77)
    int_pin: int = opt(
        -1,
        help="BCM GPIO wired to the sensor's INT line (FIFO almost full); -1 to poll instead",
        min=-1,
        max=27,
    )
    sample_rate: int = opt(
        100, help="sensor sample rate in samples/s", choices=(50, 100, 200, 400)
    )
    pulse_width_us: int = opt(
        411, help="LED pulse width in µs (sets ADC resolution)", choices=(69, 118, 215, 411)
    )
    adc_range_na: int = opt(
        4096, help="ADC full scale in nA", choices=(2048, 4096, 8192, 16384)
    )
    led_current_ma: float = opt(
        7.0, help="initial LED current in mA (adjusted automatically)", min=0.0, max=51.0
    )
    auto_led: bool = opt(True, help="keep the signal in the ADC's useful range automatically")
    almost_full: int = opt(
        17,
        help="samples waiting in the sensor's 32-sample FIFO when it raises INT (or the driver "
        "polls); fewer means more I2C traffic, more means less slack before samples are lost",
        min=17,
        max=30,
    )


@dataclass(frozen=True)
class SceneConfig:
    backend: str = opt(
        "opencv",
        help="camera: a USB camera through OpenCV, the Pi camera through picamera2, the emulated "
        "one, or none",
        choices=("opencv", "picamera2", "sim", "none"),
    )
    enabled: bool = opt(True, help="use the camera at all (the privacy button also turns it off)")
    device: int = opt(0, help="V4L2 camera index for the opencv backend (/dev/videoN)", min=0)
    width: int = opt(320, help="analysis width in pixels", min=80, max=1920)
    height: int = opt(240, help="analysis height in pixels", min=60, max=1080)
    interval_s: float = opt(1.0, help="seconds between analysed frames", min=0.2, max=60.0)
    people_every_s: float = opt(
        5.0, help="seconds between people counts (the face detector is most of a frame's cost; "
        "the count is held in between, light and motion are measured on every frame)",
        min=0.0, max=60.0,
    )
    people_still_s: float = opt(
        60.0, help="in a still room (no movement, the light unchanged since the last count) the "
        "people count is held up to this long before the face detector runs again; 0 counts "
        "every people_every_s whatever the room does",
        min=0.0, max=600.0,
    )


@dataclass(frozen=True)
class PanelConfig:
    backend: str = opt(
        "gpio",
        help="buttons and LEDs: real GPIO through gpiozero, gpiozero's mock pins, or none",
        choices=("gpio", "mock", "none"),
    )
    buttons: dict = opt(
        {
            "calm": 5,
            "sleep": 6,
            "uplift": 13,
            "volume_up": 16,
            "volume_down": 26,
            "play_pause": 12,
            "privacy": 25,
        },
        help="BCM GPIO pin of each button (wired to ground; internal pull-ups used)",
    )
    leds: dict = opt(
        {"calm": 17, "sleep": 27, "uplift": 22, "pulse": 23, "camera": 24},
        help="BCM GPIO pin of each LED (through a resistor to ground)",
    )
    debounce_ms: float = opt(30.0, help="button debounce, in ms", min=5.0, max=200.0)
    long_press_s: float = opt(
        2.0, help="hold play/pause this long for the long-press action, in s", min=0.5, max=10.0
    )
    long_press_action: str = opt(
        "sleep_timer",
        help="what a long press on play/pause does",
        choices=("sleep_timer", "shutdown", "none"),
    )
    sleep_timer_min: float = opt(
        30.0, help="sleep timer: fade out after this many minutes", min=1.0, max=240.0
    )
    new_listener_hold_s: float = opt(
        5.0, help="hold volume up and volume down together this long to start a new listener "
        "(the personaliser starts afresh), in s", min=2.0, max=30.0
    )


@dataclass(frozen=True)
class ConductorConfig:
    glide_bpm_per_min: float = opt(
        2.0, help="fastest tempo change while leading the listener, in bpm per minute",
        min=0.1, max=10.0,
    )
    start_tempo_min: float = opt(
        55.0, help="lowest tempo to start at, whatever the heart rate, in bpm", min=40.0, max=80.0
    )
    start_tempo_max: float = opt(
        90.0, help="highest tempo to start at, whatever the heart rate, in bpm", min=60.0, max=120.0
    )
    target_breath_rate: float = opt(
        6.0, help="breath pacing leads toward this rate, in breaths/min", min=4.0, max=12.0
    )
    breath_glide_per_min: float = opt(
        1.0, help="fastest change of the paced breathing rate, in breaths/min per minute",
        min=0.1, max=5.0,
    )
    min_quality: float = opt(
        0.5, help="pulse signal quality below which the conductor ignores readings (0–1)",
        min=0.0, max=1.0,
    )
    scene_influence: float = opt(
        0.5, help="how much the camera's scene may steer the music (0 none – 1 full)",
        min=0.0, max=1.0,
    )
    max_lead_bpm: float = opt(
        10.0, help="the music's tempo stays within this many bpm of the listener's heart rate "
        "while leading it (iso principle: lead, do not leave behind)", min=2.0, max=30.0,
    )
    stress_pause_rise: float = opt(
        0.05, help="a rise of the stress index (0–1) over its slow average by this much pauses "
        "the tempo glide", min=0.01, max=0.5,
    )
    stress_ease_rise: float = opt(
        0.15, help="a rise of the stress index (0–1) by this much eases the tempo back toward "
        "the heart rate", min=0.02, max=1.0,
    )


@dataclass(frozen=True)
class SessionsConfig:
    enabled: bool = opt(True, help="keep per-session summaries (no raw signals, no images)")
    retention_days: int = opt(90, help="delete sessions older than this, in days", min=1, max=3650)
    trace: bool = opt(
        True,
        help="also keep each session's course in 10-second means (heart rate, RMSSD, breathing, "
        "signal quality, tempo, pacing, volume, preset, scene label) for `calmtunes report`",
    )


# The variations of a preset the personaliser may play (see calmtunes.care.arms).
ARM_VARIATIONS = ("standard", "slower", "no-bed", "no-pacing")


@dataclass(frozen=True)
class CareConfig:
    """the personaliser: learns which preset (or safe variation) calms this listener best"""

    enabled: bool = opt(
        True,
        help="choose each session's arm from this listener's responses (false: always the "
        "default preset as configured)",
    )
    pinned_arm: str = opt(
        "",
        help="always play this arm, e.g. 'sleep' or 'sleep/slower' (variations: slower, no-bed, "
        "no-pacing); empty to let the personaliser choose",
    )
    forbidden_arms: list = opt(
        [],
        help="arms never to play, e.g. ['uplift', 'calm/no-pacing']; a bare preset name forbids "
        "every variation of it",
    )
    variations: list = opt(
        ["standard", "slower", "no-bed"],
        help="the variations of each preset the personaliser may choose from: standard (as "
        "configured), slower (target tempo 4 bpm lower), no-bed (no ambient bed), no-pacing (no "
        "breath-pacing swell); fewer arms are learnt in fewer nights",
    )
    prior_strength: float = opt(
        1.0,
        help="how many nights of evidence the starting belief is worth (more: slower to leave "
        "the default preset)",
        min=0.5,
        max=50.0,
    )
    default_prior_reward: float = opt(
        0.5,
        help="head start of the default preset in the starting belief, in reward units (one "
        "unit: about 5 bpm of heart-rate fall)",
        min=0.0,
        max=3.0,
    )
    reward_sd: float = opt(
        0.6,
        help="expected night-to-night spread of one arm's reward, in reward units",
        min=0.1,
        max=5.0,
    )
    seed: int = opt(0, help="random seed of the choice; 0 picks one per choice", min=0)


@dataclass(frozen=True)
class SimConfig:
    scenario: str = opt(
        "stressed",
        help="simulated listener scenario (see `calmtunes simulate --help`)",
    )
    seed: int = opt(0, help="seed of the simulated listener and room", min=0)


@dataclass(frozen=True)
class Config:
    device: DeviceConfig = field(default_factory=DeviceConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    music: MusicConfig = field(default_factory=MusicConfig)
    sound: SoundConfig = field(default_factory=SoundConfig)
    pulse: PulseConfig = field(default_factory=PulseConfig)
    scene: SceneConfig = field(default_factory=SceneConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    conductor: ConductorConfig = field(default_factory=ConductorConfig)
    sessions: SessionsConfig = field(default_factory=SessionsConfig)
    care: CareConfig = field(default_factory=CareConfig)
    sim: SimConfig = field(default_factory=SimConfig)

    def replace(self, **sections: Any) -> Config:
        """A copy with some options changed: ``cfg.replace(audio={"backend": "wav"})``."""
        data = to_dict(self)
        for name, values in sections.items():
            data[name].update(values)
        return parse(data)


#: the config's sections, in order (each part declares which of them it reads)
SECTIONS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _suggest(key: str, known: typing.Iterable[Any]) -> str:
    """" (did you mean 'x'?)", and the characters that are not what they look like: a key
    typed with a Cyrillic 'о', a zero-width or a no-break space looks right and is not."""
    odd = _odd_characters(key)
    close = difflib.get_close_matches(key, [str(k) for k in known], n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    if odd:
        hint += f"; the name holds {odd}: retype it in plain letters"
    return hint


def _odd_characters(text: str) -> str:
    """The characters of an option name that are not plain ASCII, named (U+0441 CYRILLIC
    SMALL LETTER ES); "" if none."""
    import unicodedata

    seen = []
    for ch in dict.fromkeys(text):
        if not (ch.isascii() and ch.isprintable()):
            seen.append(f"U+{ord(ch):04X} {unicodedata.name(ch, 'an unnamed character')}")
    return ", ".join(seen[:3])


_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 60
_SHOW.maxlevel = 3


def _show(value: Any) -> str:
    """A value as a problem quotes it: its repr, shortened (a value may be large)."""
    return _SHOW.repr(value)


def _type_name(t: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "text",
             dict: "a mapping", list: "a list"}
    return names.get(t, getattr(t, "__name__", str(t)))


def _yaml_hint(value: Any, ftype: Any, choices: tuple | None) -> str:
    """How to write a text value that YAML read as something else, or "".

    YAML 1.1 (PyYAML) reads a bare ``null``, ``~`` or nothing as no value, and ``on``/``off``/
    ``yes``/``no`` as true/false: ``backend: null`` or ``entrainment: off`` arrive as None and
    False, not as the words written."""
    if ftype in (int, float) and isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return ""
        if math.isfinite(number) and "_" not in value:
            # YAML 1.1 reads 2e1 and 1e-3 as text: its floats need a dot and a signed exponent
            shown = int(number) if ftype is int and number == int(number) else number
            return f"; YAML reads {value} as text: write {shown!r}"
        return ""
    if ftype is not str or not (value is None or isinstance(value, bool)):
        return ""
    read_as = {None: ("null", "none"), False: ("off", "no", "false"), True: ("on", "yes", "true")}
    meant = [c for c in choices or () if str(c).lower() in read_as[value]]
    example = (f", e.g. '{meant[0]}'" if meant
               else f" (one of {', '.join(repr(c) for c in choices)})" if choices else "")
    return ("; YAML reads a bare null, ~ or nothing as no value, and on/off/yes/no as true/"
            f"false: write the text in quotes{example}")


def _check_value(path: str, value: Any, ftype: Any, meta: dict, errors: list[str]) -> Any:
    """Check one value against its declared type and range; return it converted, or None."""
    if ftype is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = (
        isinstance(value, ftype)
        and not (ftype in (int, float) and isinstance(value, bool))
    )
    if not ok:
        errors.append(f"{path}: expected {_type_name(ftype)}, got {_show(value)}"
                      + _yaml_hint(value, ftype, meta.get("choices")))
        return None
    if ftype is str and "\x00" in value:  # no path or name can hold one (the OS refuses it)
        errors.append(f"{path}: holds a NUL character (\\0); retype the value")
        return None
    if ftype is float and value != value:  # NaN
        lo, hi = meta.get("min"), meta.get("max")
        span = (f" from {lo!r} to {hi!r}" if lo is not None and hi is not None
                else f" of at least {lo!r}" if lo is not None
                else f" of at most {hi!r}" if hi is not None else "")
        errors.append(f"{path}: expected a number{span}, got NaN")
        return None
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        shown = ", ".join(repr(c) for c in choices)
        errors.append(f"{path}: {_show(value)} is not one of {shown}")
        return None
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo:
        errors.append(f"{path}: {value!r} is below the minimum {lo!r}")
        return None
    if hi is not None and value > hi:
        errors.append(f"{path}: {value!r} is above the maximum {hi!r}")
        return None
    return value


def _resolve(t: Any) -> Any:
    if isinstance(t, str):
        return {"str": str, "int": int, "float": float, "bool": bool, "dict": dict,
                "list": list}[t]
    if isinstance(t, types.GenericAlias):
        return typing.get_origin(t)
    return t


def _parse_section(name: str, cls: type, raw: Any, errors: list[str]) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        errors.append(f"{name}: expected a mapping of options, got {_show(raw)}")
        return cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{name}.{key}"
        if key not in fields:
            errors.append(f"{path}: unknown option{_suggest(str(key), fields)}")
            continue
        f = fields[key]
        checked = _check_value(path, value, _resolve(f.type), dict(f.metadata), errors)
        if checked is not None:
            values[key] = checked
    section = cls(**values)
    _check_section(name, section, errors)
    return section


# A preset's name is typed on the command line, sent over the control socket, shown in the
# status and the clinician's report and joined with a variation as an arm id ("calm/slower"):
# letters (any script), digits, "-" and "_", starting with a letter or digit.
PRESET_NAME = re.compile(r"[^\W_][\w-]{0,31}")
RESERVED_PRESET_NAMES = ("auto",)  # `calmtunes preset auto`: the personaliser chooses


def _check_preset_name(name: Any, errors: list[str]) -> bool:
    if not isinstance(name, str):
        # YAML reads 1, 1.5, true/false/yes/no and null/~ as numbers, booleans and null
        shown = {True: "true", False: "false", None: "null"}.get(name, name) \
            if name is None or isinstance(name, bool) else name
        kind = "null" if name is None else type(name).__name__
        errors.append(f"music.presets: the preset name {shown} is read by YAML as {kind}, not "
                      f"text: quote it (\"{shown}\":) or choose a name of letters")
        return False
    if not PRESET_NAME.fullmatch(name):
        errors.append(
            f"music.presets: the preset name {_show(name)} must be 1–32 letters, digits, '-' or "
            "'_', starting with a letter or digit (no spaces or '/': it is typed in commands "
            "and joined with a variation as 'name/variation')")
        return False
    if name in RESERVED_PRESET_NAMES:
        errors.append(f"music.presets: the preset name {name!r} is reserved (`calmtunes preset "
                      f"{name}` lets the personaliser choose); choose another name")
        return False
    return True


def _check_section(name: str, section: Any, errors: list[str]) -> None:
    """Checks that span several options or look inside mappings."""
    if isinstance(section, DeviceConfig):
        # the daemon makes these folders its own (mode 0750, records, the socket): a relative
        # path would be the working directory of whoever started it, "/" for a service
        for key in ("state_dir", "runtime_dir"):
            folder = getattr(section, key)
            if not folder.startswith("/"):
                errors.append(f"device.{key}: {_show(folder)} is not an absolute path; give "
                              f"the whole path from / (default {DeviceConfig().__dict__[key]})")
    if isinstance(section, MusicConfig):
        if not section.presets:
            errors.append("music.presets: at least one preset is needed")
        for pname, preset in section.presets.items():
            ppath = f"music.presets.{pname}"
            if not _check_preset_name(pname, errors):
                continue
            if not isinstance(preset, dict):
                errors.append(f"{ppath}: expected a mapping, got {_show(preset)}")
                continue
            for key, value in preset.items():
                if key not in PRESET_KEYS:
                    errors.append(f"{ppath}.{key}: unknown option{_suggest(str(key), PRESET_KEYS)}")
                    continue
                t, lo, hi = PRESET_KEYS[key]
                meta = {"min": lo, "max": hi}
                if key == "mode":
                    meta["choices"] = ("major", "minor")
                checked = _check_value(f"{ppath}.{key}", value, t, meta, errors)
                if checked is not None:
                    preset[key] = checked  # ints widened to float
            missing = [k for k in ("tempo_bpm", "mode") if k not in preset]
            if missing:
                errors.append(f"{ppath}: missing {', '.join(missing)}")
        if section.presets and section.default_preset not in section.presets:
            errors.append(
                f"music.default_preset: no preset named {section.default_preset!r}"
                f"{_suggest(section.default_preset, section.presets)}"
            )
        if section.min_volume_db >= section.max_volume_db:
            errors.append("music.min_volume_db: must be below music.max_volume_db")
        if section.volume_db > section.max_volume_db:
            errors.append("music.volume_db: must not exceed music.max_volume_db")
    if isinstance(section, PanelConfig):
        used: dict[int, str] = {}
        for kind, mapping in (("buttons", section.buttons), ("leds", section.leds)):
            for role, pin in mapping.items():
                path = f"panel.{kind}.{role}"
                if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 27:
                    errors.append(f"{path}: expected a BCM GPIO number 0–27, got {_show(pin)}")
                    continue
                if pin in used:
                    errors.append(f"{path}: GPIO{pin} is already used by {used[pin]}")
                used[pin] = path
        for pin, path in used.items():
            if pin in RESERVED_PINS:
                errors.append(f"{path}: GPIO{pin} is taken by {RESERVED_PINS[pin]}; choose "
                              "another pin")
    if isinstance(section, ConductorConfig) and section.start_tempo_min >= section.start_tempo_max:
        errors.append("conductor.start_tempo_min: must be below conductor.start_tempo_max")
    if isinstance(section, ConductorConfig) and (
        section.stress_pause_rise >= section.stress_ease_rise
    ):
        errors.append("conductor.stress_pause_rise: must be below conductor.stress_ease_rise")


def _check_arm_id(path: str, arm: Any, presets: dict, errors: list[str]) -> bool:
    if not isinstance(arm, str) or not arm:
        errors.append(f"{path}: expected an arm like 'sleep' or 'sleep/slower', got {_show(arm)}")
        return False
    preset, _, variation = arm.partition("/")
    ok = True
    if preset not in presets:
        errors.append(f"{path}: no preset named {preset!r}{_suggest(preset, presets)}")
        ok = False
    if variation and variation not in ARM_VARIATIONS:
        errors.append(f"{path}: no variation {variation!r}; choose one of "
                      f"{', '.join(ARM_VARIATIONS)}{_suggest(variation, ARM_VARIATIONS)}")
        ok = False
    return ok


#: GPIO2/3 carry I2C to the MAX30102; GPIO18/19/21 carry I2S to the DAC
RESERVED_PINS = {2: "I2C SDA", 3: "I2C SCL", 18: "I2S BCK", 19: "I2S LRCK", 21: "I2S DOUT"}


def _check_int_pin(config: Config, errors: list[str]) -> None:
    """The pulse sensor's INT line needs a GPIO of its own: one the bus or the sound card
    carries, or a panel button or LED, would read their signal as the sensor's."""
    pin = config.pulse.int_pin
    if pin < 0:
        return
    if pin in RESERVED_PINS:
        errors.append(f"pulse.int_pin: GPIO{pin} is taken by {RESERVED_PINS[pin]}; choose "
                      "another pin, or -1 to poll")
        return
    for kind, mapping in (("buttons", config.panel.buttons), ("leds", config.panel.leds)):
        for role, used in mapping.items():
            if used == pin:
                errors.append(f"pulse.int_pin: GPIO{pin} is already used by "
                              f"panel.{kind}.{role}; choose another pin, or -1 to poll")


#: what a panel button may do besides choosing a preset
PANEL_ACTIONS = ("volume_up", "volume_down", "play_pause", "privacy")
#: what a panel LED may show besides a preset (its ``led`` name, else its own)
PANEL_INDICATORS = ("pulse", "camera")


def preset_led_roles(presets: dict[str, Any]) -> set[str]:
    """The LED roles the presets light: each preset's ``led`` name, else its own."""
    return {str(v.get("led", k)) for k, v in presets.items() if isinstance(v, dict)}


def _check_panel_roles(config: Config, errors: list[str]) -> None:
    """The panel's buttons and LEDs name presets of the music section, or the panel's own
    actions and indicators: a misspelt one would be a button that does nothing (and, as the
    mapping replaces the default one, every other button gone) with only a log line to say so.
    The default panel's own names are let be (presets replaced, a default button may name none:
    it does nothing, and the panel says so when it starts)."""
    presets, panel, default = config.music.presets, config.panel, PanelConfig()
    buttons = (*presets, *PANEL_ACTIONS)
    for role in panel.buttons:
        if role not in buttons and role not in default.buttons:
            errors.append(f"panel.buttons.{role}: no preset or action of that name"
                          f"{_suggest(str(role), buttons)} (have: {', '.join(buttons)})")
    leds = sorted(preset_led_roles(presets) | set(PANEL_INDICATORS))
    for role in panel.leds:
        if role not in leds and role not in default.leds:
            errors.append(f"panel.leds.{role}: nothing shows on an LED of that name"
                          f"{_suggest(str(role), leds)} (have: {', '.join(leds)})")
    for name, p in presets.items():
        led = p.get("led") if isinstance(p, dict) else None
        if led is not None and led not in panel.leds and led not in default.leds:
            errors.append(f"music.presets.{name}.led: no LED named {led!r} in panel.leds"
                          f"{_suggest(str(led), panel.leds)} (have: "
                          f"{', '.join(map(str, panel.leds)) or 'none'}); name one of them, or "
                          "leave led out")


def _check_care(config: Config, errors: list[str]) -> None:
    """The care section names presets of the music section: checked once both are parsed."""
    care, presets = config.care, config.music.presets
    if not care.variations:
        errors.append("care.variations: name at least one, e.g. ['standard']")
    for i, v in enumerate(care.variations):
        if v not in ARM_VARIATIONS:
            errors.append(f"care.variations[{i}]: {_show(v)} is not one of "
                          f"{', '.join(ARM_VARIATIONS)}")
    forbidden = []
    for i, arm in enumerate(care.forbidden_arms):
        if _check_arm_id(f"care.forbidden_arms[{i}]", arm, presets, errors):
            forbidden.append(arm)
    if care.pinned_arm:
        if _check_arm_id("care.pinned_arm", care.pinned_arm, presets, errors):
            pinned = care.pinned_arm
            base = pinned.partition("/")[0]
            if pinned in forbidden or base in forbidden or (
                    pinned == base and f"{base}/standard" in forbidden):
                errors.append(f"care.pinned_arm: {pinned!r} is also in care.forbidden_arms; "
                              "remove it from one of them")
    elif forbidden:
        allowed = [f"{p}/{v}" for p in presets for v in care.variations
                   if p not in forbidden and f"{p}/{v}" not in forbidden
                   and not (v == "standard" and p in forbidden)]
        if not allowed:
            errors.append("care.forbidden_arms: forbids every arm; leave at least one (the "
                          "forbids hold with care.enabled: false too)")


def parse(data: Any, source: str = "config") -> Config:
    """Validate a mapping (as read from YAML) into a :class:`Config`."""
    errors: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"the top level must be a mapping of sections, got "
                                   f"{_show(data)}"])
    sections = {f.name: f for f in dataclasses.fields(Config)}
    parsed: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in sections:
            errors.append(f"{key}: unknown section{_suggest(str(key), sections)}")
            continue
        parsed[key] = _parse_section(key, sections[key].default_factory, raw, errors)  # type: ignore[misc]
    if errors:
        raise ConfigError(source, errors)
    config = Config(**parsed)
    _check_care(config, errors)
    _check_panel_roles(config, errors)
    _check_int_pin(config, errors)
    if errors:
        raise ConfigError(source, errors)
    return config


EMPTY_FILE = ("the file has no settings (it is empty, only comments or only section headers): a "
              "file emptied or cut short by an edit would otherwise put every option, loudness "
              "included, back to its default. Restore it (compare with config.example.yaml); "
              "if the defaults are meant, write `{}` in it")


def load(path: str | os.PathLike[str] | None, *, empty_ok: bool = True) -> Config:
    """Read and validate a YAML file; ``None`` means the defaults.

    Whatever the file is (a FIFO, a 100 MB log, Latin-1, an alias bomb), the answer is a
    :class:`Config` or a :class:`ConfigError` with a short message naming the line and the fix:
    :mod:`calmtunes.config_file` reads it under limits. A file with no settings at all (empty,
    or only comments) is an error unless ``empty_ok``: a reload must not take a file emptied by
    accident for "all defaults" (louder, if the running file set a lower loudness); at start it
    gives the defaults, with a warning (the device plays rather than stay silent)."""
    if path is None:
        return Config()
    from calmtunes.config_file import read_yaml

    source = os.fsdecode(path)
    data = read_yaml(path)
    if isinstance(data, dict) and data and all(
            k in SECTIONS and (v is None or v == {}) for k, v in data.items()):
        data = None  # only section headers (`music:`): no settings either
    if data is None:
        if not empty_ok:
            raise ConfigError(source, [EMPTY_FILE])
        logging.getLogger(__name__).warning("config %s: %s; running on the defaults", source,
                                            EMPTY_FILE.split(":")[0])
    return parse(data, source=source)


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(config)


def describe() -> typing.Iterator[tuple[str, Any, str]]:
    """Every option as (``section.key``, default, help), for docs and the example file."""
    for sf in dataclasses.fields(Config):
        for f in dataclasses.fields(sf.default_factory):  # type: ignore[arg-type]
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            yield f"{sf.name}.{f.name}", default, f.metadata.get("help", "")


def example_yaml() -> str:
    """The fully commented example config: every option, its meaning, unit, range and default.

    ``config.example.yaml`` is this text; a test keeps the file and the schema in step."""
    out = [
        "# calmtunes configuration: /etc/calmtunes/config.yaml on the device.",
        "# Every option is shown with its default; delete what you do not change.",
        "# Check a file with `calmtunes selftest --config FILE`; reload with",
        "# `systemctl reload calmtunes` (a broken file is refused and the old one kept).",
        "",
    ]
    for sf in dataclasses.fields(Config):
        cls = sf.default_factory  # type: ignore[misc]
        doc = (cls.__doc__ or "").strip()
        out.append(f"{sf.name}:" + (f"  # {doc}" if doc and not doc.startswith(cls.__name__)
                                    else ""))
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            meta = f.metadata
            note = meta.get("help", "")
            if meta.get("choices"):
                note += "; one of " + ", ".join(str(c) for c in meta["choices"])
            elif meta.get("min") is not None or meta.get("max") is not None:
                lo = "" if meta.get("min") is None else f"{meta['min']:g}"
                hi = "" if meta.get("max") is None else f"{meta['max']:g}"
                note += f"; range {lo}…{hi}"
            for line in _wrap(note, 94):
                out.append(f"  # {line}")
            text = yaml.safe_dump({f.name: default}, default_flow_style=False, sort_keys=False,
                                  allow_unicode=True).rstrip()
            out.extend("  " + line for line in text.splitlines())
        out.append("")
    return "\n".join(out)


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width) or [""]
