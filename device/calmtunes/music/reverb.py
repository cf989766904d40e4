"""Reverb: an 8-line feedback-delay network (FDN), run a block at a time.

Eight delay lines of 41–107 ms (mutually prime lengths), mixed through a scaled Hadamard matrix
(orthogonal, so the loop is lossless before the per-line gains), each line with a gain that makes
its level fall 60 dB in ``rt60_s`` and a gentle two-tap low-pass (−8 dB at the top of the band)
so highs die first, as in a furnished room. The input is band-limited to 180 Hz–4.5 kHz before
it enters — lows in a reverb are mud, highs are hiss — and arrives after a 22 ms pre-delay so the
dry attack stays clear.

Because every line is at least as long as the block, a block of outputs is read from the lines'
past in one slice, so the network needs no per-sample loop: a block longer than the shortest line
is cut into pieces that are not. Per piece the work is a handful of numpy calls: all eight lines
are read with one gather (their read positions, relative to the write position, are fixed), and
written with one slice (every line is written at the same position).
"""

from __future__ import annotations

import numpy as np

from calmtunes.iir import butter_sos
from calmtunes.music.dsp import SosFilter

_DELAYS_MS = (41.0, 47.0, 53.0, 61.0, 71.0, 79.0, 89.0, 107.0)
_SPARE = 8192  # frames of room ahead of the write position


def _hadamard(n: int) -> np.ndarray:
    h = np.array([[1.0]])
    while len(h) < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


class FDNReverb:
    """Stereo in, stereo out (wet only), at ``rate`` Hz. ``process`` takes (2, frames)."""

    def __init__(self, rate: float, rt60_s: float = 2.2, damping: float = 0.3,
                 predelay_ms: float = 22.0) -> None:
        self.rate = float(rate)
        lengths = [round(ms * rate / 1000.0) for ms in _DELAYS_MS]
        self.lengths = np.array(sorted(set(lengths)), dtype=np.int64)
        self.n = len(self.lengths)
        if self.n != len(_DELAYS_MS):
            raise ValueError(f"reverb: sample rate {rate} Hz is too low for distinct delay lines")
        self._len_list = [int(v) for v in self.lengths]
        self.matrix = _hadamard(self.n)
        self.size = int(self.lengths.max()) + 2
        # line inputs, linear: written at `write`, read `length` behind it; when the end is
        # reached the last `size` frames move to the front (one copy every ~0.5 s)
        self.hist = np.zeros((self.n, self.size + _SPARE))
        self._flat = self.hist.reshape(-1)  # the same memory, for the one-gather reads
        self._read_cache: dict[int, tuple[np.ndarray, ...]] = {}
        self.write = self.size
        self.gains = 10.0 ** (-3.0 * self.lengths / (rt60_s * rate))  # −60 dB in rt60_s
        # damping y[n] = (1 − c)·x[n] + c·x[n − 1] (unity at DC, 1 − 2c at Nyquist). It is the
        # same linear filter on every line, so it commutes with the constant feedback matrix
        # and is applied to the lines' outputs; (1 − c) and the decay gains fold into the matrix.
        self._damp_ratio = damping / (1.0 - damping)
        self._feedback = (self.matrix * self.gains[:, None]) * (1.0 - damping)
        self._in_filter = SosFilter(butter_sos(2, [180.0, min(4500.0, 0.45 * rate)],
                                               "bandpass", fs=rate), 2)
        self.predelay = max(1, int(predelay_ms * rate / 1000.0))
        self._pre = np.zeros((2, self.predelay))
        # stereo in: left feeds the even lines, right the odd; out: alternating signs, so the
        # two outputs are decorrelated (a wide, enveloping tail from a narrow source)
        self._in_map = np.zeros((self.n, 2))
        self._in_map[0::2, 0] = 1.0
        self._in_map[1::2, 1] = 1.0
        signs = np.array([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0])
        self._out_map = np.stack([signs * (np.arange(self.n) % 2 == 0) + 0.3 * signs,
                                  signs * (np.arange(self.n) % 2 == 1) - 0.3 * signs[::-1]])
        self._out_map *= 1.0 / np.sqrt(self.n / 2.0)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Wet signal for the (2, frames) input ``x``."""
        frames = x.shape[1]
        y = self._in_filter(x)
        joined = np.concatenate([self._pre, y], axis=1)
        self._pre = joined[:, frames:]
        feed = self._in_map @ joined[:, :frames]  # what enters each line, (lines, frames)
        out = np.empty((2, frames))
        step = int(self.lengths.min())
        for s in range(0, frames, step):
            b = min(step, frames - s)
            if self.write + b > self.hist.shape[1]:
                self.hist[:, :self.size] = self.hist[:, self.write - self.size:self.write]
                self.write = self.size
            w = self.write
            # each line's output for this piece, with one frame before it (for the damping);
            # indices, gather and damping in buffers kept per piece length (no allocations)
            reads, idx, ext, damped = self._buffers(b)
            np.add(reads, w, out=idx)
            np.take(self._flat, idx, out=ext, mode="clip")  # in range by construction
            lines = ext[:, 1:]
            np.multiply(ext[:, :-1], self._damp_ratio, out=damped)
            damped += lines
            into = self.hist[:, w:w + b]
            np.matmul(self._feedback, damped, out=into)
            into += feed[:, s:s + b]
            self.write = w + b
            np.matmul(self._out_map, lines, out=out[:, s:s + b])
        return out

    def _buffers(self, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For pieces of ``b`` frames (cached per length): the flat indices into ``hist`` of
        each line's last ``b + 1`` outputs relative to the write position, and room for the
        absolute indices, the lines' outputs and their damped copy."""
        got = self._read_cache.get(b)
        if got is None:
            rows = np.arange(self.n)[:, None] * self.hist.shape[1]
            reads = rows - self.lengths[:, None] - 1 + np.arange(b + 1)[None, :]
            got = (reads, np.empty_like(reads), np.empty(reads.shape), np.empty((self.n, b)))
            self._read_cache[b] = got
        return got
