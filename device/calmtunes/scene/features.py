"""The only thing that leaves calmtunes.scene: a small record, published on ``"scene"``."""

from __future__ import annotations

from dataclasses import dataclass

LABELS = ("night", "dim", "quiet_day", "active")


@dataclass(frozen=True)
class SceneFeatures:
    t: float  # monotonic time, in s
    luminance: float  # mean luminance, 0 (black) – 1 (white)
    colour_temp_k: float | None  # estimated correlated colour temperature, K
    motion: float  # motion energy from frame differences, 0 (still) – 1
    people: int  # people detected in view
    label: str  # one of LABELS, with hysteresis
