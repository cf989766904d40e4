"""True-peak limiter: keeps the output at or below −1 dBTP, with a short look-ahead.

A safety net, not a sound: at the bedside loudness the mixer aims for, the music's peaks sit
well below the ceiling and the limiter passes it untouched (a fast path costs nothing then).

How it works, block by block (no per-sample loop):

1. True peak per frame from 4× oversampling (:func:`calmtunes.music.loudness.oversampled_peaks`).
2. The gain each frame needs: ``min(1, ceiling / peak)``.
3. A running minimum over the look-ahead window, then a moving average of the same length:
   every averaged value is at most the need of the frame it is applied to (the audio is delayed
   by the look-ahead), so the gain reaches its level before the peak, along a smooth ramp.
4. Release: the gain returns toward 1 through a one-pole filter (``release_ms``); the smaller of
   the ramp and the release curve is used, so attack stays exact and release stays slow.
5. Finally a hard clip at the ceiling catches anything the estimate missed; it never acts on a
   normal programme (the tests count it).
"""

from __future__ import annotations

import math

import numpy as np

from calmtunes.iir import block_iir
from calmtunes.music.loudness import TP_LAG_FRAMES, TP_TAPS_PER_PHASE, oversampled_peaks

_QUIET = 0.5  # below half the ceiling (−6 dB) the oversampled estimate is skipped
_TP_TAPS = TP_TAPS_PER_PHASE


class TruePeakLimiter:
    def __init__(self, fs: float, ceiling_dbtp: float = -1.0, lookahead_ms: float = 2.0,
                 release_ms: float = 120.0, channels: int = 2) -> None:
        if not -20.0 <= ceiling_dbtp <= 0.0:
            raise ValueError(f"limiter: ceiling {ceiling_dbtp} dBTP is outside −20…0 dBTP")
        self.fs = float(fs)
        self.ceiling = 10.0 ** (ceiling_dbtp / 20.0)
        # aim a little under the ceiling: the 4× estimate can read up to ~0.2 dB low
        self._aim = self.ceiling * 10.0 ** (-0.25 / 20.0)
        self.ramp = max(2, round(lookahead_ms * fs / 1000.0))  # frames of gain ramp
        # the peak estimate lags by TP_LAG_FRAMES and spans ±1 frame: hold and delay cover it
        self.hold = self.ramp + TP_LAG_FRAMES + 2
        self.delay = self.ramp + TP_LAG_FRAMES + 1  # frames of latency
        self._audio = np.zeros((self.delay, channels))  # delayed audio not yet output
        self._need = np.ones(self.hold - 1)  # recent gain needs (for the running minimum)
        self._held = np.ones(self.ramp - 1)  # recent running-minimum values (for the average)
        self._pole = math.exp(-1.0 / (release_ms * fs / 1000.0))
        # release: y[n] = (1 − pole)·x[n] + pole·y[n − 1]; its state is pole·y[n − 1]
        self._release = block_iir(np.array([[1.0 - self._pole, 0.0, 0.0, 1.0, -self._pole, 0.0]]))
        self._rel_zi = np.array([self._pole, 0.0])  # steady state at gain 1
        self._tp_hist: np.ndarray | None = None
        # True while the gain is 1 throughout its memory (needs, running minima, release): the
        # state the fast path needs, kept as a flag rather than re-read every block
        self._idle = True
        # True when every frame waiting in the delay line was found below the fast path's
        # level as it came in (so the final clip cannot act on it)
        self._pending_quiet = True
        self.clipped = 0  # frames the final hard clip had to touch (should stay 0)
        self.reduction_db = 0.0  # deepest gain reduction in the last block, in dB

    def process(self, x: np.ndarray) -> np.ndarray:
        """Limit the (frames, channels) block ``x``; returns the same shape, ``delay`` late."""
        frames = len(x)
        if frames == 0:
            return x.copy()
        audio = np.concatenate([self._audio, x], axis=0)
        self._audio = audio[frames:]
        delayed = audio[:frames]
        quiet = self._aim * _QUIET
        if self._idle and x.max() < quiet and x.min() > -quiet:
            # Far below the ceiling and fully released: nothing to do. (For audio band-limited
            # well under Nyquist, as the mixer's is, peaks between samples exceed the samples by
            # far less than the 6 dB margin.)
            if len(x) >= _TP_TAPS:
                self._tp_hist = x[-_TP_TAPS:].copy()
            elif self._tp_hist is not None:
                self._tp_hist = np.concatenate([self._tp_hist, x])[-_TP_TAPS:]
            self.reduction_db = 0.0
            if self._pending_quiet:  # all of it was checked on the way in: under the ceiling
                return delayed
            self._pending_quiet = frames >= self.delay  # the unchecked frames are out now
            return self._clip(delayed)
        self._pending_quiet = False
        peaks, self._tp_hist = oversampled_peaks(x, self._tp_hist)
        sample_peaks = np.abs(x).max(axis=1)
        need = np.minimum(1.0, self._aim / np.maximum(np.maximum(peaks, sample_peaks), 1e-12))
        joined = np.concatenate([self._need, need])
        self._need = joined[-(self.hold - 1):]
        w = self.hold  # trailing window [k − w + 1, k]
        # every window lies inside `joined`, which holds the hold − 1 previous needs
        held = np.lib.stride_tricks.sliding_window_view(joined, w).min(axis=1)[-frames:]
        hj = np.concatenate([self._held, held])
        self._held = hj[-(self.ramp - 1):]
        c = np.cumsum(np.concatenate([[0.0], hj]))
        ramp = (c[self.ramp:] - c[:-self.ramp]) / self.ramp  # mean of the last `ramp` values
        rel, zi = self._release.run(ramp[None, :], self._rel_zi[None, :])
        rel, self._rel_zi = rel[0], zi[0]
        gain = np.minimum(ramp, rel)
        self._idle = bool(self._rel_zi[0] >= self._pole - 1e-12 and self._held.min() >= 1.0
                          and self._need.min() >= 1.0)
        self.reduction_db = float(-20.0 * math.log10(max(float(gain.min()), 1e-6)))
        return self._clip(delayed * gain[:, None])

    def _clip(self, y: np.ndarray) -> np.ndarray:
        if y.max(initial=0.0) > self.ceiling or y.min(initial=0.0) < -self.ceiling:
            self.clipped += int((np.abs(y) > self.ceiling).any(axis=1).sum())
            y = np.clip(y, -self.ceiling, self.ceiling)
        return y
