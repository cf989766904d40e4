"""Filters and cheap spectral helpers shared by every pulse measurement.

All filters are Butterworth second-order sections designed once per sampling rate and cached,
so a call costs only the filtering itself (tens of µs for 10 s at 125 Hz).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfiltfilt

#: pulse band in Hz: 0.5 Hz (30 bpm) to 8 Hz keeps the systolic upstroke sharp
PULSE_BAND_HZ = (0.5, 8.0)
#: the slow band that carries respiratory baseline and amplitude modulation, in Hz
SLOW_CUTOFF_HZ = 5.0


@lru_cache(maxsize=64)
def bandpass_sos(fs: float, lo: float, hi: float, order: int = 2) -> np.ndarray:
    """Band-pass sections for ``fs`` Hz; ``hi`` is capped below Nyquist."""
    hi = min(hi, 0.45 * fs)
    return butter(order, [lo, hi], btype="bandpass", fs=fs, output="sos")


@lru_cache(maxsize=64)
def lowpass_sos(fs: float, hi: float, order: int = 2) -> np.ndarray:
    """Low-pass sections for ``fs`` Hz; ``hi`` is capped below Nyquist."""
    hi = min(hi, 0.45 * fs)
    return butter(order, hi, btype="lowpass", fs=fs, output="sos")


@lru_cache(maxsize=64)
def highpass_sos(fs: float, lo: float, order: int = 2) -> np.ndarray:
    """High-pass sections for ``fs`` Hz."""
    return butter(order, lo, btype="highpass", fs=fs, output="sos")


def pulse_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase band-pass to the pulse band (0.5–8 Hz)."""
    return sosfiltfilt(bandpass_sos(float(fs), *PULSE_BAND_HZ), x)


def slow_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase low-pass (5 Hz) keeping the baseline, for respiratory modulation."""
    return sosfiltfilt(lowpass_sos(float(fs), SLOW_CUTOFF_HZ), x)


def dominant_period(x: np.ndarray, fs: float, min_s: float, max_s: float) -> tuple[float, float]:
    """The fundamental period of ``x`` in s, from its autocorrelation, and its strength (0–1).

    The autocorrelation is computed through the FFT. Among its local maxima between ``min_s`` and
    ``max_s`` the earliest one reaching 60 % of the highest is taken, so that a multiple of the
    period (every beat repeats at 2 T too) never wins over the period itself. Strength is the
    normalised autocorrelation at that lag: 1 for a perfectly periodic signal, ≈0 for noise.
    Returns ``(nan, 0.0)`` when there is no peak in range.
    """
    n = len(x)
    lo = max(1, int(min_s * fs))
    hi = min(n - 2, int(np.ceil(max_s * fs)) + 1)
    if hi - lo < 3:
        return float("nan"), 0.0
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    spec = np.fft.rfft(x - x.mean(), nfft)
    ac = np.fft.irfft(spec.real**2 + spec.imag**2, nfft)[: hi + 2]
    if ac[0] <= 0:
        return float("nan"), 0.0
    # unbiased: each lag k sums n - k products
    ac = ac / ac[0] * (n / (n - np.arange(len(ac))))
    seg = ac[lo - 1 : hi + 1]
    mid = seg[1:-1]
    is_max = (mid > seg[:-2]) & (mid >= seg[2:]) & (mid > 0)
    idx = np.flatnonzero(is_max)
    if idx.size == 0:
        return float("nan"), 0.0
    vals = mid[idx]
    pick = idx[np.argmax(vals >= 0.6 * vals.max())]
    k = lo + pick
    y0, y1, y2 = ac[k - 1], ac[k], ac[k + 1]
    den = y0 - 2 * y1 + y2
    off = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return (k + off) / fs, float(min(1.0, max(0.0, y1)))
