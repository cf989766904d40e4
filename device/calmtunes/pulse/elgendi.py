"""A second, independent beat detector: Elgendi's two event-related moving averages.

Elgendi M, Norton I, Brearley M, Abbott D, Schuurmans D. "Systolic peak detection in
acceleration photoplethysmograms measured from emergency responders in tropical conditions",
PLoS ONE 8(10): e76585, 2013 (the TERMA method applied to the PPG itself, as in Elgendi's
benchmark of PPG detectors):

1. band-pass 0.5–8 Hz (second-order Butterworth, zero phase), keep the positive part, square
   (here the window's own 0.5–5 Hz pulse band is used, already filtered: one filter pass less,
   and above 5 Hz a camera or a dim LED adds mostly noise);
2. MA_peak = moving average over W1 = 111 ms (one systolic wave), MA_beat over W2 = 667 ms
   (one beat);
3. blocks of interest: where MA_peak > MA_beat + β·mean(y²), β = 0.02; a block at least W1
   long holds one systolic peak, its maximum.

It shares nothing with the upstroke detector but the input: no dominant period, no spacing
rule. :mod:`calmtunes.pulse.analysis` uses it as a second opinion on the beat count.
"""

from __future__ import annotations

import numpy as np

from calmtunes.pulse.stats import diff, mean

#: window of the systolic-peak moving average, s (Elgendi 2013)
W1_S = 0.111
#: window of the beat moving average, s (Elgendi 2013)
W2_S = 0.667
#: offset of the threshold, times the mean squared signal (Elgendi 2013)
BETA = 0.02


def _moving_average(y: np.ndarray, n: int) -> np.ndarray:
    """Centred moving average over ``n`` samples (shorter at the edges): sample i averages
    ``y[max(0, i − n//2) : min(len(y), i + n − n//2)]``."""
    size, back = len(y), n // 2
    fwd = n - back
    c = np.concatenate(([0.0], np.cumsum(y)))
    if size - fwd < back:  # shorter than the window: every sample is an edge
        i = np.arange(size)
        lo, hi = np.maximum(0, i - back), np.minimum(size, i + fwd)
        return (c[hi] - c[lo]) / (hi - lo)
    out = np.empty(size)
    out[back:size - fwd + 1] = (c[n:] - c[:size - n + 1]) / n  # whole windows, as slices
    i = np.arange(back)  # the first samples: windows cut at the start
    out[:back] = c[i + fwd] / (i + fwd)
    i = np.arange(size - fwd + 1, size)  # the last: cut at the end
    out[size - fwd + 1:] = (c[size] - c[i - back]) / (size - (i - back))
    return out


def block_maxima(y: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Index of the first maximum of ``y`` in each block [starts[k], ends[k]) (disjoint,
    ascending, none empty), without a Python loop over the blocks."""
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    lengths = ends - starts
    # the blocks' samples, one after another, and each one's block
    first = np.cumsum(lengths) - lengths
    index = np.arange(int(lengths.sum())) + np.repeat(starts - first, lengths)
    values = y[index]
    if not np.isfinite(values).all():  # argmax's own rule for NaN (the first wins), block by block
        return np.array([a + int(np.argmax(y[a:b])) for a, b in zip(starts, ends)], dtype=np.int64)
    top = np.maximum.reduceat(values, first)
    at = np.flatnonzero(values == np.repeat(top, lengths))
    # the first hit of each block: hits are ascending, and every block has one
    return index[at[np.searchsorted(at, first)]].astype(np.int64)


def systolic_peaks(x_bp: np.ndarray, fs: float) -> np.ndarray:
    """Sample indices of the systolic peaks of an upright, band-passed PPG at ``fs`` Hz."""
    y = np.where(x_bp > 0, x_bp, 0.0) ** 2
    w1, w2 = max(1, round(W1_S * fs)), max(2, round(W2_S * fs))
    ma_peak = _moving_average(y, w1)
    ma_beat = _moving_average(y, w2)
    block = ma_peak > ma_beat + BETA * float(mean(y))
    edges = diff(np.concatenate(([0], block.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= w1
    return block_maxima(y, starts[keep], ends[keep])
