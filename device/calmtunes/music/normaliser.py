"""Loudness normalisation: a running BS.1770 measurement and a slow, bounded gain correction.

The mixer's programme (instruments, reverb, bed — before any gain) is measured by a
:class:`~calmtunes.music.loudness.LoudnessMeter` over a sliding 20 s window with the standard's
gates. The gain that brings that measurement to ``target_lufs`` is approached slowly — at most
``SLEW_DB_PER_S`` (0.5 dB per second) — so the correction is heard as nothing at all: never a
pump, never a jump. The measurement is of the programme *before* the gain, so the loop has no
feedback and cannot oscillate.

Until the window holds music, the estimate leans on ``PRIOR_LUFS``; the prior's weight fades
over the first ~10 s, and without any gated block (silence) the gain simply holds. The prior is
the loud end of the programme loudness the presets measure (``scripts/bench_render``'s "prog"
column), not their middle: a prior below the programme starts the music louder than its target
for as long as the estimate takes to catch up — at power-on, the loudest seconds of the session
— where a prior above it starts the music a little under its target and lets it come up at the
slow rate, inside the fade-in's first seconds.

Safety: if the programme's short-term (3 s) loudness would put the output more than
``SURGE_LU`` above the loudest allowed level, the gain comes down faster (``SURGE_DB_PER_S``);
and the gain never leaves ``PRIOR`` ± the ``RANGE_DB`` bounds, so silence is never amplified
into hiss.
"""

from __future__ import annotations

import math

import numpy as np

from calmtunes.music.dsp import clamp
from calmtunes.music.loudness import LoudnessMeter, energy_to_lufs, gated_stats, lufs_to_energy

# LUFS: the programme (instruments, reverb, bed, before any gain) of the loudest preset, rounded
# up. Measured over seeds 1–12 of 1-minute renders with the onnx composer (as the daemon plays):
# uplift −14.7…−15.6, calm −15.2…−16.2, sleep −16.7…−18.7; the procedural one −15.7…−17.8
PRIOR_LUFS = -14.5
PRIOR_BLOCKS = 50.0  # weight of the prior, in 100 ms gating blocks (5 s), fading with PRIOR_FADE_S
PRIOR_FADE_S = 10.0
WINDOW_S = 20.0
SLEW_DB_PER_S = 0.5
SURGE_LU = 4.0
SURGE_DB_PER_S = 6.0
RANGE_DB = (-24.0, 12.0)  # gain bounds around target − PRIOR_LUFS


class Normaliser:
    def __init__(self, rate: float, target_lufs: float) -> None:
        self.meter = LoudnessMeter(rate, 2, window_s=WINDOW_S)
        self.rate = float(rate)
        self.target = float(target_lufs)
        self.gain_db = self.target - PRIOR_LUFS  # current correction, in dB
        self.goal_db = self.gain_db
        self.elapsed = 0.0  # seconds measured
        self.estimate_lufs = PRIOR_LUFS
        self._surge = False

    def set_target(self, target_lufs: float) -> None:
        """A new target moves the gain by the difference, at the normal slow rate."""
        self.target = float(target_lufs)

    def measure(self, programme: np.ndarray) -> None:
        """Feed (frames, 2) of programme at ``rate``; updates the goal gain."""
        done = self.meter.blocks_done
        self.meter.push(programme)
        self.elapsed += len(programme) / self.rate
        if self.meter.blocks_done == done:
            return  # no new 400 ms block: nothing new to measure
        blocks = self.meter.block_energies
        prior_w = PRIOR_BLOCKS * math.exp(-self.elapsed / PRIOR_FADE_S)
        gated, n = gated_stats(blocks)
        if n:
            energy = (lufs_to_energy(PRIOR_LUFS) * prior_w + gated * n) / (prior_w + n)
            self.estimate_lufs = energy_to_lufs(energy)
        goal = self.target - self.estimate_lufs
        lo, hi = RANGE_DB
        base = self.target - PRIOR_LUFS
        goal = min(max(goal, base + lo), base + hi)
        short = self.meter.short_term
        self._surge = False
        if math.isfinite(short):
            # output = programme + gain + volume, and volume ≤ max_volume_db: bounding
            # programme + gain by target + SURGE_LU bounds the output by the cap + SURGE_LU.
            # Judged on the gain in force, not the goal: after a long quiet passage the goal
            # falls as soon as the loud music is measured, while the gain that climbed in the
            # quiet would take 20 s at the slow rate to come down
            ceiling = self.target + SURGE_LU
            goal = min(goal, ceiling - short)
            self._surge = short + self.gain_db > ceiling
        self.goal_db = goal

    def advance(self, seconds: float) -> tuple[float, float]:
        """Move the gain toward the goal for ``seconds``; returns (start dB, end dB)."""
        rate = SURGE_DB_PER_S if self._surge else SLEW_DB_PER_S
        step = rate * seconds
        start = self.gain_db
        self.gain_db = start + clamp(self.goal_db - start, -step, step)
        return start, self.gain_db
