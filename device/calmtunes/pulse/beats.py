"""Beat detection on a band-passed PPG: polarity, upstroke fiducials, sub-sample timing.

A beat is timed at the steepest point of its systolic upstroke (the maximum of the first
derivative). That fiducial is sharper than the peak or the foot and tracks the ECG R wave with
the least jitter, which matters for HRV. Peaks of the derivative are searched with a minimum
spacing of 45 % of the window's dominant period (loose enough for irregular rhythms and for an
alternating strong–weak pulse whose autocorrelation prefers twice the period) and kept when at
least 15 % of the median upstroke
(weak ectopic beats count too). When that finds twice as many upstrokes as the signal has
periods, strictly alternating strong–weak, a second wave inside each beat was counted and the
search is repeated with 70 % of the period. Beats are then timed to a fraction of a sample by
fitting a parabola through the three samples around each peak.
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
    if np.isfinite(period_s) and _second_wave_counted(d, peaks, fs, period_s):
        peaks, _ = find_peaks(d, distance=max(1, int(0.7 * period_s * fs)))
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
    return Beats(times=times, index=peaks, heights=h)


def _second_wave_counted(d: np.ndarray, peaks: np.ndarray, fs: float, period_s: float) -> bool:
    """True when every beat's upstroke was found together with a second, weaker one.

    The signs: twice as many upstrokes as the signal has periods, and their slopes strictly
    alternating strong–weak (≥ 90 % of neighbours), the weak ones under half the strong ones.
    That is a dicrotic or reflected wave inside each beat. Ectopic beats, atrial fibrillation
    and pulsus alternans do not alternate that strictly, or not by that much.
    """
    h = d[peaks]
    if len(peaks) < 6 or np.median(np.diff(peaks)) >= 0.7 * period_s * fs:
        return False
    step = np.sign(np.diff(h))
    strict = float(np.mean(step[1:] != step[:-1]))
    a, b = float(np.median(h[0::2])), float(np.median(h[1::2]))
    return strict >= 0.9 and min(a, b) < 0.5 * max(a, b)
