"""Breathing rate from the PPG itself: respiratory modulations, counted and cross-checked.

Breathing modulates the pulse wave three ways (Karlen et al., IEEE TBME 60(7), 2013; Charlton et
al., Physiol. Meas. 37(4), 2016):

* **baseline** (RIIV) – intrathoracic pressure shifts venous volume: the mid-level of each beat;
* **amplitude** (RIAV) – stroke volume falls on inspiration: peak minus foot of each beat;
* **frequency** (RIFV) – respiratory sinus arrhythmia: the inter-beat intervals.

Each per-beat series is resampled at 4 Hz. Two estimates are made over the window:

1. **Breath count** (the rate reported): the baseline series, band-passed from 0.1 Hz (6 /min;
   slow drift and vasomotor waves leak in otherwise) to the lower of 0.7 Hz (42 /min) and half
   the heart rate (each beat samples the modulation once; faster breathing would alias), has
   its breaths counted in the time domain with the "count-orig" rule of Schäfer & Kratky (Ann.
   Biomed. Eng. 36(3), 2008): maxima above 0.2 × the 75th percentile of the maxima, minima
   likewise, and a breath is a pair of consecutive maxima with exactly one minimum between
   them. Rate = 60 / mean breath duration. Counting follows a breath-by-breath rhythm where a
   spectral peak can be pulled by a slow wave or split by an irregular one.
2. **Fused spectrum** (the cross-check): each of the three series high-passed at 0.1 Hz,
   Hann-windowed, its power spectrum taken between 5 and 42 /min (and below half the heart
   rate), normalised to unit power in band, weighted by its peakedness (peak over mean power:
   a clean modulation is one sharp line, a missing one is flat) and summed; the interior peak,
   parabola-refined.

When the two disagree by more than :data:`AGREEMENT_BPM` the window holds no single breathing
rhythm the pulse can vouch for, and the rate is None with that reason; likewise when the fused
spectrum has no peak standing out or fewer than two breaths are counted. The confidence grows
with the spectral peakedness and with the agreement. Needs a window of at least
:data:`MIN_SECONDS`.
"""

from __future__ import annotations

import numpy as np

from calmtunes.pulse.filters import bandpass_sos, filtfilt, highpass_sos

#: band searched, in breaths per minute
BAND_BPM = (5.0, 42.0)
#: resampling rate of the per-beat series, Hz
RESAMPLE_HZ = 4.0
#: shortest window giving a breathing rate, s (3 cycles at the slowest rate)
MIN_SECONDS = 30.0
#: drift below this is removed from the per-beat series, Hz
DRIFT_CUTOFF_HZ = 0.1
#: the fused peak must exceed this multiple of the mean fused power in band
MIN_PEAKEDNESS = 2.5
#: count-orig: extrema below this fraction of the 75th percentile extremum are not breaths
COUNT_THRESHOLD = 0.2
#: the breath count and the fused spectrum must agree within this, breaths/min
AGREEMENT_BPM = 5.0


def _features(
    x_slow: np.ndarray, index: np.ndarray, fs: float, period_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-beat baseline and amplitude from the low-passed PPG around each upstroke."""
    back = max(1, int(0.35 * period_s * fs))
    fwd = max(1, int(0.45 * period_s * fs))
    idx = index[(index >= back) & (index + fwd < len(x_slow))]
    foot = x_slow[idx[:, None] + np.arange(-back, 1)].min(axis=1)
    peak = x_slow[idx[:, None] + np.arange(0, fwd + 1)].max(axis=1)
    return idx, np.stack([(peak + foot) / 2, peak - foot])


def count_breaths(series: np.ndarray, top_hz: float) -> float | None:
    """Breaths/min in a per-beat series sampled at :data:`RESAMPLE_HZ` by counting breaths
    (count-orig, see the module notes) in its 0.1 Hz – ``top_hz`` band; None below 2 breaths."""
    top = round(min(top_hz, 0.45 * RESAMPLE_HZ), 2)  # rounded: the designs stay cached
    if top <= 1.5 * DRIFT_CUTOFF_HZ or len(series) < 16:
        return None
    s = filtfilt(bandpass_sos(RESAMPLE_HZ, DRIFT_CUTOFF_HZ, top), series - series.mean())
    mid, left, right = s[1:-1], s[:-2], s[2:]
    peaks = np.flatnonzero((mid > left) & (mid >= right)) + 1
    troughs = np.flatnonzero((mid < left) & (mid <= right)) + 1
    if len(peaks) < 3 or len(troughs) < 2:
        return None
    peaks = peaks[s[peaks] > COUNT_THRESHOLD * np.percentile(s[peaks], 75)]
    troughs = troughs[-s[troughs] > COUNT_THRESHOLD * np.percentile(-s[troughs], 75)]
    if len(peaks) < 3:
        return None
    # a breath: consecutive maxima with exactly one minimum between them
    between = np.searchsorted(troughs, peaks[1:]) - np.searchsorted(troughs, peaks[:-1], "right")
    dur = np.diff(peaks)[between == 1] / RESAMPLE_HZ
    if len(dur) < 2:
        return None
    return float(60.0 / dur.mean())


def breathing_rate(
    x_slow: np.ndarray,
    beat_index: np.ndarray,
    beat_times: np.ndarray,
    ibi_s: np.ndarray,
    fs: float,
    period_s: float,
) -> tuple[float | None, float, str]:
    """Breaths per minute, a confidence in [0, 1] and why not when None.

    ``x_slow`` is the upright low-passed PPG, ``beat_index``/``beat_times`` the detected beats
    (samples / s) and ``ibi_s`` the corrected intervals ending at each corrected beat.
    """
    if len(x_slow) < MIN_SECONDS * fs or len(beat_times) < 4:
        return None, 0.0, f"breathing needs a window of at least {MIN_SECONDS:g} s"
    idx, feats = _features(x_slow, beat_index, fs, period_s)
    t0, t1 = float(beat_times[0]), float(beat_times[-1])
    grid = np.arange(t0, t1, 1.0 / RESAMPLE_HZ)
    series = [np.interp(grid, idx / fs, f) for f in feats]
    if len(ibi_s) >= 4:
        ibi_t = beat_times[1 : len(ibi_s) + 1]
        series.append(np.interp(grid, ibi_t, ibi_s))
    n = len(grid)
    nfft = max(1024, 1 << int(np.ceil(np.log2(4 * n))))
    freqs = np.fft.rfftfreq(nfft, 1.0 / RESAMPLE_HZ) * 60.0
    # sampled once a beat, breathing faster than half the heart rate would alias
    top = min(BAND_BPM[1], 0.5 * 60.0 / period_s) if np.isfinite(period_s) else BAND_BPM[1]
    band = (freqs >= BAND_BPM[0]) & (freqs <= top)
    if np.count_nonzero(band) < 5:
        return None, 0.0, "heart rate too slow to sample breathing"
    win = np.hanning(n)
    hp = highpass_sos(RESAMPLE_HZ, DRIFT_CUTOFF_HZ)
    fused = np.zeros(int(np.count_nonzero(band)))
    for s in series:
        s = filtfilt(hp, s - s.mean())
        p = np.abs(np.fft.rfft(s * win, nfft))[band] ** 2
        total = p.sum()
        if total <= 0:
            continue
        p = p / total
        fused += p * (p.max() * len(p))
    if not np.any(fused > 0):
        return None, 0.0, "no respiratory modulation in the pulse"
    # a maximum on the band's edge is leakage from outside the band, not a breathing rate
    inner = np.flatnonzero((fused[1:-1] >= fused[:-2]) & (fused[1:-1] >= fused[2:])) + 1
    if inner.size == 0:
        return None, 0.0, "no clear breathing rhythm in the pulse"
    k = int(inner[np.argmax(fused[inner])])
    peakedness = float(fused[k] / fused.mean())
    f = freqs[band]
    spectral = float(f[k])
    if 0 < k < len(fused) - 1:
        y0, y1, y2 = fused[k - 1], fused[k], fused[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            spectral += 0.5 * (y0 - y2) / den * (f[1] - f[0])
    conf = float(np.clip((peakedness - 1.0) / 10.0, 0.0, 1.0))
    if peakedness < MIN_PEAKEDNESS:
        return None, conf, "no clear breathing rhythm in the pulse"
    counted = count_breaths(series[0], top / 60.0)
    if counted is None:
        return None, conf, "fewer than two breaths counted in the pulse baseline"
    gap = abs(counted - spectral)
    if gap > AGREEMENT_BPM:
        why = f"breath count ({counted:.0f} /min) and spectrum ({spectral:.0f} /min) disagree"
        return None, conf * 0.5, why
    return counted, conf * (1.0 - 0.5 * gap / AGREEMENT_BPM), ""
