"""Breath pacing: a slow swell of the bed and the pad at a target breathing rate.

The swell follows a breath, not a sine: it rises over the first 40 % of the cycle (inhale) and
falls over the remaining 60 % (exhale; a longer out-breath is what slow-breathing protocols ask
for), with raised-cosine segments so the gain has no corners. Its depth is small (default 3 dB,
``sound.breath_depth_db``), centred so the average loudness does not change: enough to follow,
not enough to notice as an effect.

The rate (breaths/min, 4–20) may change at any time; the cycle's phase is accumulated, so a new
rate bends the current breath rather than jumping within it, and the rate itself glides at
most ``_RATE_GLIDE`` breaths/min per second.
"""

from __future__ import annotations

import math

import numpy as np

from calmtunes.music.dsp import clamp, ramp

MIN_RATE, MAX_RATE = 4.0, 20.0  # breaths/min
INHALE_SHARE = 0.4
_RATE_GLIDE = 0.5  # breaths/min per second


def breath_shape(phase: np.ndarray) -> np.ndarray:
    """0 at the start of inhale → 1 at the top of the breath → 0 at the end of exhale."""
    p = np.mod(phase, 1.0)
    rise = 0.5 - 0.5 * np.cos(math.pi * p / INHALE_SHARE)
    fall = 0.5 + 0.5 * np.cos(math.pi * (p - INHALE_SHARE) / (1.0 - INHALE_SHARE))
    return np.where(p < INHALE_SHARE, rise, fall)


def _shape(phase: float) -> float:
    """:func:`breath_shape` for one phase (plain Python, called per block)."""
    p = phase % 1.0
    if p < INHALE_SHARE:
        return 0.5 - 0.5 * math.cos(math.pi * p / INHALE_SHARE)
    return 0.5 + 0.5 * math.cos(math.pi * (p - INHALE_SHARE) / (1.0 - INHALE_SHARE))


KNOT_S = 0.05  # s: the swell is computed at least this often within a block


class BreathPacer:
    def __init__(self, rate: float, depth_db: float = 3.0, enabled: bool = True) -> None:
        self.rate_bpm = clamp(rate, MIN_RATE, MAX_RATE)  # breaths/min, current
        self.phase = 0.0  # cycles
        self.depth_db = depth_db
        self.enabled = enabled
        self._depth_now = depth_db if enabled else 0.0

    def gains(self, frames: int, fs: float, target_rate: float) -> np.ndarray:
        """Linear gains for the next ``frames`` at ``fs`` Hz, moving toward ``target_rate``."""
        if not math.isfinite(target_rate):
            target_rate = self.rate_bpm
        target = clamp(target_rate, MIN_RATE, MAX_RATE)
        dur = frames / fs
        new_rate = self.rate_bpm + clamp(target - self.rate_bpm, -_RATE_GLIDE * dur,
                                                 _RATE_GLIDE * dur)
        phase1 = self.phase + 0.5 * (self.rate_bpm + new_rate) * dur / 60.0
        # depth glides too (turning pacing on or off mid-breath must not step)
        goal = self.depth_db if self.enabled else 0.0
        step = 1.0 * dur  # dB per second
        depth1 = self._depth_now + clamp(goal - self._depth_now, -step, step)
        g0 = 10.0 ** (self._depth_now * (_shape(self.phase) - 0.5) / 20.0)
        g1 = 10.0 ** (depth1 * (_shape(phase1) - 0.5) / 20.0)
        if dur <= KNOT_S:
            # a breath lasts ≥ 3 s: over a block of ≤ 50 ms the swell joined linearly from its
            # ends is within 0.01 dB of the exact curve (at 20 breaths a minute, 9 dB deep)
            out = ramp(g0, g1, frames)
        else:
            # a longer block (an offline render's 0.4 s chunks: 0.18 dB off at 20 breaths a
            # minute, 0.6 dB at 9 dB depth) is joined from knots KNOT_S apart
            n = math.ceil(dur / KNOT_S)
            t = np.arange(n + 1) / n
            r0, r1 = self.rate_bpm, new_rate
            phase = self.phase + (r0 * t + 0.5 * (r1 - r0) * t * t) * dur / 60.0
            depth = self._depth_now + (depth1 - self._depth_now) * t
            knots = 10.0 ** (depth * (breath_shape(phase) - 0.5) / 20.0)
            knots[0], knots[-1] = g0, g1  # exactly the neighbouring blocks' ends
            out = np.interp(np.arange(frames), t * frames, knots)
        self.rate_bpm, self.phase, self._depth_now = new_rate, phase1 % 1.0, depth1
        return out
