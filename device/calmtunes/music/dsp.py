"""Small DSP helpers shared by the sound modules: stateful biquad cascades and ramps.

Rendering runs in blocks of a few hundred frames; :class:`SosFilter` runs each block through
:class:`calmtunes.iir.BlockIIR` (a few small matrix products, no per-sample Python, no scipy).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from calmtunes.iir import BlockIIR, block_iir, chunk_for


class SosFilter:
    """A cascade of biquads over ``channels`` signals, keeping its state between blocks.

    ``__call__`` takes and returns (channels, frames) float64. ``zi`` is the state, laid out
    (channels, sections, 2) as scipy's ``sosfilt`` keeps it (direct form II transposed).
    Each block length gets the chunking that filters it fastest (:func:`calmtunes.iir.chunk_for`;
    the state carries over whatever the chunking)."""

    def __init__(self, sos: np.ndarray, channels: int) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.channels = channels
        self._iir = block_iir(self.sos)
        self._by_length: dict[tuple[int, int], BlockIIR] = {}
        self.zi = np.zeros((channels, self.sos.shape[0], 2))

    def _for(self, frames: int, up: int = 1) -> BlockIIR:
        got = self._by_length.get((frames, up))
        if got is None:
            if len(self._by_length) > 16:  # block lengths that keep changing: the default
                return self._iir
            chunk = chunk_for(frames, self._iir.order, up)
            got = self._by_length[(frames, up)] = block_iir(self.sos, chunk)
        return got

    def reset(self) -> None:
        self.zi[:] = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] != self.channels:
            raise ValueError(f"filter: expected {self.channels} channels, got {x.shape[0]}")
        y, s = self._for(x.shape[1]).run(x, self.zi.reshape(self.channels, -1))
        self.zi = s.reshape(self.zi.shape)
        return y

    def upsample(self, x: np.ndarray, factor: int) -> np.ndarray:
        """Filter ``x`` (channels, frames) zero-stuffed to ``factor`` × the rate (each frame
        followed by ``factor − 1`` zeros), without computing on the zeros: (channels,
        frames × factor). ``factor`` must divide 48 (the filter's chunk)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] != self.channels:
            raise ValueError(f"filter: expected {self.channels} channels, got {x.shape[0]}")
        y, s = self._for(x.shape[1] * factor, factor).run(
            x, self.zi.reshape(self.channels, -1), up=factor)
        self.zi = s.reshape(self.zi.shape)
        return y


@lru_cache(maxsize=32)
def _fractions(n: int) -> np.ndarray:
    steps = np.arange(n, dtype=np.float64) / n
    steps.flags.writeable = False
    return steps


def ramp(start: float, stop: float, n: int) -> np.ndarray:
    """``n`` values from ``start`` toward ``stop`` (``stop`` itself is the next block's first)."""
    if start == stop:
        return np.full(n, start)
    return start + (stop - start) * _fractions(n)


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0→1 with zero slope at both ends (for fades and attacks: no corners)."""
    return x * x * (3.0 - 2.0 * x)


def clamp(value: float, lo: float, hi: float) -> float:
    """A scalar limited to [lo, hi] (plain Python: no array overhead per call)."""
    return lo if value < lo else hi if value > hi else value


# OpenBLAS hands a matrix product to its thread pool once rows × columns × inner size passes
# about 262 144; for the small products of a render block, waking those threads costs far more
# than the arithmetic (and on a busy Pi, much more again). Products are split to stay under it.
_SINGLE_THREAD_MNK = 200_000


def matmul_single(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` computed in column slices small enough to stay on the calling thread."""
    m, k = a.shape
    n = b.shape[1]
    if m * n * k <= _SINGLE_THREAD_MNK:
        return a @ b
    out = np.empty((m, n), dtype=np.result_type(a, b))
    width = max(1, _SINGLE_THREAD_MNK // max(1, m * k))
    for s in range(0, n, width):
        np.matmul(a, b[:, s:s + width], out=out[:, s:s + width])
    return out
