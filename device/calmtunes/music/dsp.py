"""Small DSP helpers shared by the sound modules: stateful biquad cascades and ramps.

Rendering runs in blocks of a few hundred frames, so the fixed cost of each call matters as
much as the arithmetic: :class:`SosFilter` keeps its state in the layout scipy's compiled
second-order-section loop uses and calls it directly (about 2× less overhead than
``scipy.signal.sosfilt`` on a 20 ms block), falling back to the public function if that loop is
not there.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import signal

try:  # the compiled core of scipy.signal.sosfilt (stable since scipy 1.2)
    from scipy.signal._sosfilt import _sosfilt as _compiled_sosfilt
except ImportError:  # pragma: no cover - depends on the scipy build
    _compiled_sosfilt = None


class SosFilter:
    """A cascade of biquads over ``channels`` signals, keeping its state between blocks.

    ``__call__`` takes and returns (channels, frames) float64."""

    def __init__(self, sos: np.ndarray, channels: int) -> None:
        self.sos = np.ascontiguousarray(sos, dtype=np.float64)
        self.channels = channels
        self.zi = np.zeros((channels, self.sos.shape[0], 2))

    def reset(self) -> None:
        self.zi[:] = 0.0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y = np.array(x, dtype=np.float64, order="C", copy=True)
        if y.shape[0] != self.channels:
            raise ValueError(f"filter: expected {self.channels} channels, got {y.shape[0]}")
        if _compiled_sosfilt is not None:
            _compiled_sosfilt(self.sos, y, self.zi)
            return y
        zi = np.moveaxis(self.zi, 0, 1)  # (sections, channels, 2)
        y, zi = signal.sosfilt(self.sos, y, axis=1, zi=zi)
        self.zi = np.ascontiguousarray(np.moveaxis(zi, 1, 0))
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
