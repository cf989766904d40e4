"""The scene label, from luminance, motion and people, held steady by hysteresis.

Two kinds of hysteresis keep the label from flickering:

- **Bands with margins** (a Schmitt trigger): to leave the current label the measurement must
  cross the boundary by ``margin``; e.g. with night below 0.12 luminance and a 0.03 margin, a
  night room must brighten past 0.15 to become dim, and a dim one darken below 0.09 to become
  night.
- **Dwell**: a new label must win ``hold`` analysed frames in a row (3 at 1 frame/s) before it
  is taken, so a person walking past a dark doorway, or the one frame in which the lights go
  out, changes nothing.

Labels (:data:`~calmtunes.scene.features.LABELS`):

======== ==========================================================================
night    the room is dark but for a lamp (mean luminance below ``night_below``)
dim      dim light, no activity (luminance below ``day_above``)
quiet_day daylight or full room light, no activity
active   people moving (motion above ``active_motion``) or two or more people in view
======== ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from calmtunes.scene.features import LABELS


@dataclass(frozen=True)
class Thresholds:
    night_below: float = 0.12  # mean luminance 0–1
    day_above: float = 0.32  # mean luminance 0–1
    light_margin: float = 0.03  # luminance a band's edge must be crossed by
    active_motion: float = 0.04  # share of the view changed between frames, 0–1
    motion_margin: float = 0.02
    active_people: int = 2  # this many people in view is a visit, moving or not


class LabelTracker:
    """Feeds on one frame's measurements at a time and returns the steady label."""

    def __init__(self, thresholds: Thresholds | None = None, hold: int = 3) -> None:
        if hold < 1:
            raise ValueError(f"hold must be at least 1 frame, got {hold}")
        self.thresholds = thresholds or Thresholds()
        self.hold = hold
        self.label: str | None = None
        self._candidate: str | None = None
        self._count = 0

    def reset(self) -> None:
        self.label, self._candidate, self._count = None, None, 0

    def raw(self, luminance: float, motion: float, people: int | None) -> str:
        """The label these measurements alone call for, with margins around the current one."""
        th, current = self.thresholds, self.label
        m = th.motion_margin if current == "active" else 0.0
        if motion >= th.active_motion - m or (people or 0) >= th.active_people:
            return "active"
        light = current if current in ("night", "dim", "quiet_day") else None
        night_edge = th.night_below + (th.light_margin if light == "night" else 0.0)
        night_edge -= th.light_margin if light in ("dim", "quiet_day") else 0.0
        day_edge = th.day_above - (th.light_margin if light == "quiet_day" else 0.0)
        day_edge += th.light_margin if light in ("night", "dim") else 0.0
        if luminance < night_edge:
            return "night"
        if luminance < day_edge:
            return "dim"
        return "quiet_day"

    def update(self, luminance: float, motion: float, people: int | None) -> str:
        raw = self.raw(luminance, motion, people)
        assert raw in LABELS
        if self.label is None:  # the first frame has nothing to be steady against
            self.label = raw
        elif raw == self.label:
            self._candidate, self._count = None, 0
        else:
            if raw == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = raw, 1
            if self._count >= self.hold:
                self.label, self._candidate, self._count = raw, None, 0
        return self.label
