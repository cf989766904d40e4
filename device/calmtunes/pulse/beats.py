"""Beat detection on a band-passed PPG: polarity, upstroke fiducials, sub-sample timing.

A beat is timed at the steepest point of its systolic upstroke (the maximum of the first
derivative). That fiducial is sharper than the peak or the foot and tracks the ECG R wave with
the least jitter, which matters for HRV. Peaks of the derivative are searched with a minimum
spacing of 45 % of the window's dominant period (so a dicrotic notch or a noise wiggle inside one
beat cannot count twice, while an alternating strong–weak pulse, whose autocorrelation may prefer
twice the period, still has every beat found) and kept when at least 15 % of the median upstroke
(weak ectopic beats count too), then timed to a fraction of a sample by fitting a parabola
through the three samples around each peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import find_peaks

#: physiological limits of the search, in bpm
MIN_BPM = 30.0
MAX_BPM = 220.0
#: fraction of the dominant period below which two upstrokes cannot both be beats
MIN_SPACING = 0.45
#: an upstroke smaller than this fraction of the median one is noise, not a beat
MIN_HEIGHT = 0.15


def orient(x_bp: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``x_bp`` turned so that blood volume rises upwards, and whether it was flipped.

    A pulse rises quickly (systole, ~0.1 s) and falls slowly (diastole), so the slope of a
    correctly oriented PPG has tall positive and shallow negative excursions: its skewness is
    positive. Raw MAX30102 counts and camera brightness fall with blood volume (more absorption)
    and are flipped here; a monitor's pleth curve is already upright.
    """
    d = np.diff(x_bp)
    d = d - d.mean()
    m2 = float(np.dot(d, d))
    m3 = float(np.dot(d * d, d))
    if m2 > 0 and m3 < 0:
        return -x_bp, True
    return x_bp, False


@dataclass(frozen=True)
class Beats:
    times: np.ndarray  # s from the start of the window, sub-sample precision
    index: np.ndarray  # nearest sample index of each upstroke
    heights: np.ndarray  # maximum slope of each upstroke, in signal units per sample


def detect(x_up: np.ndarray, fs: float, period_s: float) -> Beats:
    """Find beats in an upright, band-passed PPG whose dominant period is ``period_s``."""
    d = np.diff(x_up)
    spacing = MIN_SPACING * period_s if np.isfinite(period_s) else 60.0 / MAX_BPM
    spacing = max(spacing, 60.0 / MAX_BPM)
    peaks, _ = find_peaks(d, distance=max(1, int(spacing * fs)))
    # a peak on the first or last slope sample cannot be interpolated, and is cut by the edge
    peaks = peaks[(peaks > 0) & (peaks < len(d) - 1)]
    h = d[peaks]
    if h.size:
        keep = h > MIN_HEIGHT * np.median(h[h > 0]) if np.any(h > 0) else h > 0
        peaks, h = peaks[keep], h[keep]
    y0, y1, y2 = d[peaks - 1], h, d[peaks + 1]
    den = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)
    off = np.clip(off, -0.5, 0.5)
    # slope d[i] sits between samples i and i + 1
    times = (peaks + 0.5 + off) / fs
    # times = refine(x_up, peaks, times, fs, period_s)
    return Beats(times=times, index=peaks, heights=h)


def refine(
    x_up: np.ndarray, index: np.ndarray, times: np.ndarray, fs: float, period_s: float
) -> np.ndarray:
    """Re-time each beat by matching the whole upstroke against the window's mean upstroke.

    The steepest-slope point rests on three samples and picks up their noise; the best lag of
    the stretch from 0.2 T before to 0.3 T after it against the average of all beats uses every
    sample of the upstroke, which cuts the timing jitter that inflates RMSSD on noisy sensors.
    The lag is searched within ±0.1 T and interpolated by a parabola; beats too close to the
    window's edges keep their slope timing.
    """
    if len(index) < 4 or not np.isfinite(period_s):
        return times
    a, b, k = int(0.2 * period_s * fs), int(0.3 * period_s * fs), int(0.1 * period_s * fs)
    if a + b < 6 or k < 1:
        return times
    ok = (index - a - k >= 0) & (index + b + k < len(x_up))
    if np.count_nonzero(ok) < 4:
        return times
    idx = index[ok]
    span = np.arange(-a, b)
    seg = x_up[idx[:, None] + span]
    tmpl = (seg - seg.mean(axis=1, keepdims=True)).mean(axis=0)
    lags = np.arange(-k, k + 1)
    shifted = x_up[idx[:, None, None] + lags[None, :, None] + span[None, None, :]]
    score = np.einsum("blj,j->bl", shifted, tmpl)  # tmpl is zero-mean: offsets cancel
    best = np.clip(np.argmax(score, axis=1), 1, len(lags) - 2)
    rows = np.arange(len(idx))
    y0, y1, y2 = score[rows, best - 1], score[rows, best], score[rows, best + 1]
    den = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)
    shift = lags[best] + np.clip(off, -0.5, 0.5)
    # keep the slope-based time scale: move each beat by its lag relative to the median lag
    out = times.copy()
    out[ok] = times[ok] + (shift - np.median(shift)) / fs
    return out
