"""Chorus for the pad: two slowly swaying delayed copies, one per side, for width and motion.

Each side reads the pad's (mono) signal ``base_ms`` ± ``depth_ms`` late, the delay swinging with
a slow sine (``rate_hz``; the two sides a quarter-cycle apart), and mixes it with the dry pad.
The moving delay detunes the copy by a few cents — at most 2π·rate·depth ≈ 0.3 % (5 cents)
with the defaults — so the pad gently beats against itself, as an ensemble of players does.
Fractional delays are read with linear interpolation; everything is vectorised per block. The
LFO needs no sine per frame: sin(2π(φ + k·δ)) = sin 2πφ·cos 2πkδ + cos 2πφ·sin 2πkδ, with the
cos/sin of the per-frame steps kept per block length.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

_SPARE = 16384  # frames of room ahead of the write position (moved back when used up)


class Chorus:
    def __init__(self, rate: float, base_ms: float = 14.0, depth_ms: float = 3.0,
                 rate_hz: float = 0.17, wet: float = 0.7) -> None:
        self.rate = float(rate)
        self.base = base_ms * rate / 1000.0
        self.depth = depth_ms * rate / 1000.0
        self.lfo_inc = rate_hz / rate  # cycles per frame
        self.wet = wet
        self.dry = 1.0 - 0.4 * wet
        self.keep = math.ceil(self.base + self.depth) + 2  # history the reads can reach
        self.hist = np.zeros(self.keep + _SPARE)
        self.write = self.keep
        self.t = 0  # frames processed
        self._offsets = np.array([0.0, 0.25])  # LFO phase of left and right, in cycles

    def process(self, x: np.ndarray) -> np.ndarray:
        """(2, frames) pad in → (2, frames) pad with chorus."""
        n = x.shape[1]
        if n > _SPARE:
            return np.concatenate([self.process(x[:, i:i + _SPARE])
                                   for i in range(0, n, _SPARE)], axis=1)
        if self.write + n > len(self.hist):
            self.hist[:self.keep] = self.hist[self.write - self.keep:self.write]
            self.write = self.keep
        w = self.write
        np.add(x[0], x[1], out=self.hist[w:w + n])
        self.hist[w:w + n] *= 0.5
        k, cos_k, sin_k = _steps(n, self.lfo_inc)
        phase = 2.0 * math.pi * np.mod(self.t * self.lfo_inc + self._offsets, 1.0)  # (2,)
        lfo = np.sin(phase)[:, None] * cos_k
        lfo += np.cos(phase)[:, None] * sin_k
        pos = k + (w - self.base) - self.depth * lfo  # read positions, (2, n)
        i = pos.astype(np.intp)
        frac = pos - i
        h0 = self.hist[i]
        out = h0 + (self.hist[i + 1] - h0) * frac
        self.write = w + n
        self.t += n
        return self.dry * x + self.wet * out


@lru_cache(maxsize=8)
def _steps(n: int, inc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames 0…n−1 and the cos and sin of 2π·k·inc for them (read-only, (n,) and (1, n))."""
    k = np.arange(n, dtype=np.float64)
    out = (k, np.cos(2.0 * math.pi * inc * k)[None, :], np.sin(2.0 * math.pi * inc * k)[None, :])
    for a in out:
        a.flags.writeable = False
    return out
