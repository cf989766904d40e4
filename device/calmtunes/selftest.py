"""``calmtunes selftest``: what can be checked now, as a PASS/FAIL table with fixes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from calmtunes.config import Config


@dataclass
class Check:
    name: str
    ok: bool | None  # None: skipped (not configured)
    detail: str
    fix: str = ""


def check_audio(config: Config) -> Check:
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
    match = [d["name"] for d in devices if wanted in d["name"].lower()] if wanted else [
        d["name"] for d in devices]
    if not match:
        return Check("audio device", False,
                     f"no output matching {config.audio.device!r} among {len(devices)} device(s)",
                     "check the DAC overlay in /boot/firmware/config.txt, `aplay -l`, audio.device")
    return Check("audio device", True, match[0])


def check_state_dir(config: Config) -> Check:
    path = Path(config.device.state_dir)
    if path.is_dir() and os.access(path, os.W_OK):
        return Check("state directory", True, str(path))
    return Check("state directory", False, f"{path} is missing or not writable",
                 "systemd creates it (StateDirectory=); by hand: sudo mkdir -p " + str(path))


CHECKS = [check_audio, check_state_dir]


def run_checks(config: Config, extra: list[Check] | None = None) -> list[Check]:
    results = [Check("config", True, "valid"), *(extra or [])]
    for fn in CHECKS:
        try:
            results.append(fn(config))
        except Exception as exc:  # a check never crashes the selftest
            name = fn.__name__.removeprefix("check_")
            results.append(Check(name, False, f"check crashed: {exc}"))
    return results


def format_table(results: list[Check]) -> str:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        mark = "SKIP" if r.ok is None else ("PASS" if r.ok else "FAIL")
        lines.append(f"{mark}  {r.name:<{width}}  {r.detail}")
        if r.ok is False and r.fix:
            lines.append(f"      {'':<{width}}  fix: {r.fix}")
    return "\n".join(lines)
