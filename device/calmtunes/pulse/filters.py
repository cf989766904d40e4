"""Filters and cheap spectral helpers shared by every pulse measurement.

All filters are Butterworth second-order sections designed once per sampling rate and cached,
so a call costs only the filtering itself (tens of µs for 10 s at 125 Hz). The pulse and slow
bands are designed at the rate rounded to 0.1 Hz (:func:`design_rate`): the streaming analyser
measures the sensor's own rate window by window, and that figure moves in its last digits
every second; a design for each (about 2.5 ms for the two bands at 100 Hz) would cost more
than the filtering.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from calmtunes.iir import block_iir, butter_sos, sosfilt
from calmtunes.pulse.stats import mean

#: pulse band in Hz: 0.5 Hz (30 bpm) to 5 Hz holds the first harmonics of a resting pulse;
#: above it a camera or a dim LED adds mostly noise that jitters the beat timing
PULSE_BAND_HZ = (0.5, 5.0)
#: the slow band that carries respiratory baseline and amplitude modulation, in Hz
SLOW_CUTOFF_HZ = 5.0
#: the bands are designed for the sampling rate rounded to this many decimals (0.1 Hz): their
#: edges move by at most 0.05 Hz / 25 Hz = 0.2 % of themselves (1 mHz at 0.5 Hz), far inside a
#: Butterworth edge's own slope; rates in tenths of a Hz (125, 100, 60, 29.9) are kept exactly
DESIGN_DECIMALS = 1


#: power at half the beat frequency, relative to the beat frequency, that marks every other
#: detected wave as a dicrotic hump rather than a beat
HALF_POWER_RATIO = 0.3

Design = tuple[np.ndarray, np.ndarray]  # second-order sections and their step-response state


def _design(sos: np.ndarray) -> Design:
    return sos, block_iir(sos).steady_state()


@lru_cache(maxsize=64)
def bandpass_sos(fs: float, lo: float, hi: float, order: int = 2) -> Design:
    """Band-pass sections for ``fs`` Hz; ``hi`` is capped below Nyquist."""
    hi = min(hi, 0.45 * fs)
    return _design(butter_sos(order, [lo, hi], "bandpass", fs))


@lru_cache(maxsize=64)
def lowpass_sos(fs: float, hi: float, order: int = 2) -> Design:
    """Low-pass sections for ``fs`` Hz; ``hi`` is capped below Nyquist."""
    hi = min(hi, 0.45 * fs)
    return _design(butter_sos(order, hi, "lowpass", fs))


@lru_cache(maxsize=64)
def highpass_sos(fs: float, lo: float, order: int = 2) -> Design:
    """High-pass sections for ``fs`` Hz."""
    return _design(butter_sos(order, lo, "highpass", fs))


def filtfilt(design: Design, x: np.ndarray) -> np.ndarray:
    """Zero-phase filtering, as scipy's ``sosfiltfilt`` (odd extension at both ends, filter
    state started at the edge value) but with the initial state cached with the design.

    ``x`` is one signal, or several of one length as the rows of a 2-D array: those are
    filtered together, at the Python cost of one (the results agree with one at a time to
    float64 rounding, ~1e-16 relative)."""
    sos, zi = design
    pad = min(x.shape[-1] - 1, 3 * (2 * len(sos) + 1))
    if pad < 1:
        return x.astype(float, copy=True)
    if x.ndim == 1:
        ext = np.concatenate(
            (2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1])
        )
        y = sosfilt(sos, ext, zi=zi * ext[0])[0]
        y = sosfilt(sos, y[::-1], zi=zi * y[-1])[0]
        return y[::-1][pad:-pad]
    ext = np.concatenate(
        (2 * x[:, :1] - x[:, pad:0:-1], x, 2 * x[:, -1:] - x[:, -2 : -pad - 2 : -1]), axis=1
    )
    f = block_iir(sos)
    y = f.run(ext, ext[:, :1] * zi)[0][:, ::-1]
    y = f.run(y, y[:, :1] * zi)[0]
    return y[:, ::-1][:, pad:-pad]


@lru_cache(maxsize=256)
def next_fast_len(n: int) -> int:
    """The smallest 5-smooth number (2^a·3^b·5^c) ≥ ``n``: a fast FFT length."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def design_rate(fs: float) -> float:
    """The rate the bands are designed for: ``fs`` Hz rounded to :data:`DESIGN_DECIMALS`."""
    return round(float(fs), DESIGN_DECIMALS)


def pulse_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase band-pass to the pulse band (0.5–5 Hz)."""
    return filtfilt(bandpass_sos(design_rate(fs), *PULSE_BAND_HZ), x)


#: the band the harmonic test sees, Hz: the pulse band's 5 Hz edge removes the second
#: harmonic from 150 bpm (2.5 Hz) and the third from 100 bpm; up to 12 Hz holds the third
#: harmonic of the fastest pulse searched (220 bpm: 3 × 3.67 = 11 Hz)
HARMONIC_BAND_HZ = (0.5, 12.0)


def harmonic_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase band-pass wide enough for a pulse's 2nd and 3rd harmonics (0.5–12 Hz, the
    top held at 40 % of ``fs`` where that is lower: beyond Nyquist there is nothing to see)."""
    lo, hi = HARMONIC_BAND_HZ
    return filtfilt(bandpass_sos(design_rate(fs), lo, min(hi, 0.4 * design_rate(fs))), x)


def slow_band(x: np.ndarray, fs: float) -> np.ndarray:
    """Zero-phase low-pass (5 Hz) keeping the baseline, for respiratory modulation."""
    return filtfilt(lowpass_sos(design_rate(fs), SLOW_CUTOFF_HZ), x)


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
    nfft = next_fast_len(n + hi + 2)  # no wrap-around up to lag hi + 1
    spec = np.fft.rfft(x - mean(x), nfft)
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
    k = _trigeminy(k, lo + idx, vals)
    twice = idx[np.abs(lo + idx - 2 * k) <= max(1, k // 8)]
    if twice.size and mid[twice].max() > mid[pick]:
        # Two rival readings: every other wave is weaker (alternating pulse; period k), or each
        # beat has a second hump (dicrotic wave; period 2k). A real beat train at 2k has its
        # fundamental at half the frequency, a strong–weak train at k barely any: decide there.
        power = spec.real**2 + spec.imag**2
        f1 = nfft / k  # bin of the frequency 1/k
        full = power[int(0.9 * f1) : int(1.1 * f1) + 2].sum()
        half = power[int(0.45 * f1) : int(0.55 * f1) + 2].sum()
        if half >= HALF_POWER_RATIO * full:
            k = lo + int(twice[np.argmax(mid[twice])])
    y0, y1, y2 = ac[k - 1], ac[k], ac[k + 1]
    den = y0 - 2 * y1 + y2
    off = 0.5 * (y0 - y2) / den if den < 0 else 0.0
    return (k + off) / fs, float(min(1.0, max(0.0, y1)))


#: autocorrelation an earlier lag needs to be read as the beat inside a three-beat pattern
SUBPERIOD_MIN_AC = 0.25


def _trigeminy(k: int, lags: np.ndarray, vals: np.ndarray) -> int:
    """The beat period when the pattern at lag ``k`` is three beats long, else ``k``.

    In trigeminy (two normal beats and an ectopic one, or any rhythm repeating every third
    beat) the autocorrelation peaks highest at the pattern's length, 3 T, with weaker but clear
    peaks at T and 2 T. Three waves per beat does not happen (a dicrotic wave gives two), so
    when both sub-multiples are local maxima with a positive correlation the period is T.
    """
    tol = max(1, k // 12)
    near = [
        lags[(np.abs(lags - k * j / 3.0) <= tol) & (vals >= SUBPERIOD_MIN_AC)] for j in (1, 2)
    ]
    if near[0].size and near[1].size:
        return int(near[0][0])
    return k
