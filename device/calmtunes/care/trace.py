"""A session's course in 10-second steps: what the report plots and the reward is computed from.

:class:`SessionTrace` takes the once-a-second pulse readings, the conductor's controls and the
scene label as they come and keeps one :class:`TracePoint` per :data:`STEP_S` seconds of session
time: the means of the usable readings (a reading is usable when
:func:`calmtunes.music.conductor.check_reading` says so), the share of readings that were usable,
and the music's state at the step's end. An 8-hour night is 2 880 points (about 200 KiB in
SQLite; the session recorder keeps in memory only those not yet written); only these means are
kept, never raw samples.
"""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

STEP_S = 10.0  # s of session time per point
MAX_POINTS = 12 * 360  # 12 h of points; a longer session keeps its first 12 h


@dataclass(frozen=True, slots=True)
class TracePoint:
    t_s: float  # s since the session started: the step's start
    hr_bpm: float | None = None  # mean of the usable readings in the step
    rmssd_ms: float | None = None
    breathing_rate: float | None = None  # breaths/min
    stress: float | None = None  # 0–1
    quality: float = 0.0  # mean signal quality of every reading in the step, 0–1
    usable: float = 0.0  # share of the step's readings that were usable, 0–1
    tempo_bpm: float | None = None  # the music's tempo at the step's end
    pace_rate: float | None = None  # the paced breathing rate at the step's end, breaths/min
    volume_db: float | None = None
    preset: str | None = None
    scene: str | None = None  # the camera's label, when it had one

    def as_row(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TracePoint:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


POINT_FIELDS = tuple(f.name for f in fields(TracePoint))
_FIGURES = (("hr_bpm", "hr_bpm"), ("rmssd_ms", "rmssd_ms"),
            ("breathing_rate", "breathing_rate"), ("stress", "stress"))


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class SessionTrace:
    """Collects one session's points; times are the caller's clock in s (any origin)."""

    def __init__(self, started_at: float, step_s: float = STEP_S) -> None:
        self.started_at = started_at
        self.step_s = step_s
        self.points: list[TracePoint] = []  # closed steps (a recorder removes written ones)
        self.closed = 0  # steps closed so far
        self.preset_steps: collections.Counter[str] = collections.Counter()  # steps per preset
        self._open(0)
        self._music: dict[str, Any] = {}
        self._scene: str | None = None

    def _open(self, index: int) -> None:
        self._index = index
        self._sums = dict.fromkeys((f for f, _ in _FIGURES), 0.0)
        self._counts = dict.fromkeys((f for f, _ in _FIGURES), 0)
        self._quality = 0.0
        self._readings = 0
        self._usable = 0
        self._touched = False  # something arrived during this step

    def _advance(self, now: float) -> None:
        index = int(max(0.0, now - self.started_at) // self.step_s)
        while index > self._index:
            self._close()
            self._open(self._index + 1)

    def _close(self) -> None:
        if self.closed >= MAX_POINTS:
            return
        self.closed += 1
        means = {f: (self._sums[f] / self._counts[f] if self._counts[f] else None)
                 for f, _ in _FIGURES}
        n = self._readings
        if self._music.get("preset"):
            self.preset_steps[self._music["preset"]] += 1
        self.points.append(TracePoint(
            t_s=self._index * self.step_s, **means,
            quality=self._quality / n if n else 0.0, usable=self._usable / n if n else 0.0,
            tempo_bpm=self._music.get("tempo_bpm"), pace_rate=self._music.get("breath_rate"),
            volume_db=self._music.get("volume_db"), preset=self._music.get("preset"),
            scene=self._scene))

    def reading(self, now: float, reading: Any, usable: bool) -> None:
        """One pulse reading; only a usable one adds to the means."""
        self._advance(now)
        self._touched = True
        self._readings += 1
        q = getattr(reading, "quality", None)
        self._quality += float(q) if _finite(q) and 0.0 <= q <= 1.0 else 0.0
        if not usable:
            return
        self._usable += 1
        for f, attr in _FIGURES:
            v = getattr(reading, attr, None)
            if _finite(v):
                self._sums[f] += float(v)
                self._counts[f] += 1

    def controls(self, now: float, controls: Any) -> None:
        """The conductor's controls (tempo, paced breathing, volume, preset) at ``now``."""
        self._advance(now)
        self._touched = True
        playing = getattr(controls, "playing", True)
        self._music = {k: getattr(controls, k, None) for k in
                       ("tempo_bpm", "breath_rate", "volume_db", "preset")} if playing else {}

    def scene(self, now: float, label: str | None) -> None:
        self._advance(now)
        self._touched = True
        self._scene = label or None

    def finish(self, now: float) -> list[TracePoint]:
        """Close the steps up to ``now`` (a partial last step included); the points. May be
        called again later (the points so far are kept)."""
        self._advance(now)
        if self._touched:
            self._close()
            self._open(self._index + 1)
        return self.points
