"""Shared fixtures: configs that run the daemon here, without hardware, in temporary folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `models.generator` is importable from the repo root
sys.path.insert(0, str(ROOT / "tests"))  # shared helpers: clocked (virtual time), ppg_synth

from calmtunes.config import Config  # noqa: E402


def ppg_data_dir() -> Path | None:
    """The real PPG recordings (BIDMC, Welltory), or None where they are not available."""
    env = os.environ.get("CALMTUNES_PPG_DATA")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "ppg"
    return path if path.is_dir() else None


@pytest.fixture
def tmp_config(tmp_path: Path) -> Config:
    """A config for an in-process daemon: no hardware, audio to nowhere, folders in tmp."""
    return Config().replace(
        device={"state_dir": str(tmp_path / "state"), "runtime_dir": str(tmp_path / "run"),
                "simulate": True},
        audio={"backend": "null", "realtime": True, "fade_in_s": 0.2},
        music={"generator": "procedural", "seed": 7},
        pulse={"backend": "none"},
        scene={"backend": "none"},
        panel={"backend": "none"},
        care={"enabled": False},  # the presets as chosen; tests/daemon/test_care_loop.py has care
    )
