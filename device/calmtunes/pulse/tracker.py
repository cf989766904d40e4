"""Heart rate tracked across windows: continuity against half- and double-rate readings.

One window can be read at twice the rate (a strong dicrotic wave counted as a beat) or half
of it (every other beat missed, a two-beat pattern taken as one). Each reading therefore
offers three candidates — the rate measured, twice it and half of it — and an online Viterbi
search (the best path over the candidates of every reading so far) picks one:

* a candidate other than the measured rate costs :data:`HARMONIC_COST` per reading;
* moving from one reading's candidate to the next costs ``½ (ln(new/old) / (σ √dt))²`` with
  σ = :data:`DRIFT_PER_SQRT_S` (a resting heart drifts a few per cent in seconds), capped at
  :data:`JUMP_COST`: a real change of any size costs the same once it is larger than drift.

So a true change (60 → 90 bpm) is followed at once — the measured candidate pays the jump
once, a harmonic one would pay :data:`HARMONIC_COST` on top — while a sudden halving or
doubling is read back on the tracked rate until it has persisted for
``JUMP_COST / HARMONIC_COST`` readings (3 s at one reading a second), then believed.
Each path remembers the rate it held before its last suspected halving or doubling (a move by
a ratio in :data:`SUSPECT_RATIOS`): coming back to that rate costs only the drift since, not a
jump, so once a halving has been believed the true rate returning is believed at once rather
than read as half of it for two more readings.
Cumulative costs are kept relative to the best, so the search is O(1) per reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: cost of reading a window as twice or half what was measured, per reading
HARMONIC_COST = 1.5
#: relative heart-rate drift of a resting listener, per √s (ln units)
DRIFT_PER_SQRT_S = 0.03
#: the most a change between two readings can cost
JUMP_COST = 4.0
#: without a reading for this long the track starts afresh, s
RESET_AFTER_S = 15.0
#: the factors each reading's candidates are the measured rate times
FACTORS = (1.0, 2.0, 0.5)
#: candidates outside this range are not considered, bpm
RANGE_BPM = (30.0, 220.0)
#: a move by a ratio in these bands is a suspected halving or doubling (the conductor's
#: ``music.conductor.SUSPECT_RATIOS``: ½× or 2× within the spread of a misread rhythm)
SUSPECT_RATIOS = ((0.4, 0.6), (1.67, 2.5))


@dataclass(frozen=True)
class Tracked:
    hr_bpm: float  # the rate chosen
    factor: float  # the measured rate times this is hr_bpm (1, 2 or ½)


class RateTracker:
    """Online Viterbi over {1, 2, ½} × the measured rate. Not thread-safe (one per analyser)."""

    def __init__(self) -> None:
        self._t: float | None = None
        # (rate, cumulative cost, (rate held before the path's last suspected halving or
        # doubling, its time) or None) per candidate
        self._states: list[tuple[float, float, tuple[float, float] | None]] = []

    def reset(self) -> None:
        self._t = None
        self._states = []

    def update(self, t: float, hr_bpm: float) -> Tracked:
        """Take the rate measured at ``t`` (s, monotonic); return the rate to report."""
        cands = [
            (f * hr_bpm, 0.0 if f == 1.0 else HARMONIC_COST, f)
            for f in FACTORS
            if RANGE_BPM[0] <= f * hr_bpm <= RANGE_BPM[1]
        ]
        new: list[tuple[float, float, tuple[float, float] | None]]
        if self._t is None or not self._states or t - self._t > RESET_AFTER_S or t <= self._t:
            new = [(r, c, None) for r, c, _ in cands]
        else:
            t_old = self._t
            new = []
            for r, c, _ in cands:
                best, keep = math.inf, None
                for old, cost, anchor in self._states:
                    step = _move(old, r, t - t_old)
                    if anchor is not None and _move(anchor[0], r, t - anchor[1]) < step:
                        # back to the rate held before a suspected halving or doubling
                        step, nxt = _move(anchor[0], r, t - anchor[1]), None
                    elif any(lo <= r / old <= hi for lo, hi in SUSPECT_RATIOS):
                        nxt = (old, t_old)
                    elif step < JUMP_COST:
                        nxt = anchor  # drift: the path still remembers where it came from
                    else:
                        nxt = None  # a true change: nothing to come back to
                    if cost + step < best:
                        best, keep = cost + step, nxt
                new.append((r, c + best, keep))
        low = min(c for _, c, _ in new)
        self._states = [(r, c - low, a) for r, c, a in new]
        self._t = t
        k = min(range(len(new)), key=lambda i: new[i][1])
        return Tracked(cands[k][0], cands[k][2])


def _move(old: float, new: float, dt: float) -> float:
    """Cost of the rate moving from ``old`` to ``new`` in ``dt`` s: drift, capped at a jump."""
    scale = DRIFT_PER_SQRT_S * math.sqrt(max(dt, 1e-9))
    return min(JUMP_COST, 0.5 * (math.log(new / old) / scale) ** 2)
