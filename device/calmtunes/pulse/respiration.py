"""Breathing rate from the PPG itself: three respiratory modulations, gated and fused.

Breathing modulates the pulse wave three ways (Karlen et al., IEEE TBME 60(7), 2013; Charlton et
al., Physiol. Meas. 37(4), 2016):

* **intensity** (RIIV) – intrathoracic pressure shifts venous volume: the mid-level of each beat;
* **amplitude** (RIAV) – stroke volume falls on inspiration: peak minus foot of each beat;
* **frequency** (RIFV) – respiratory sinus arrhythmia: the inter-beat intervals.

Each per-beat series is resampled at 4 Hz, high-passed at 0.1 Hz (slow drift and vasomotor waves
leak in otherwise) and measured two ways over the window, between 5 /min and the lower of
42 /min and half the heart rate (each beat samples the modulation once; faster breathing would
alias):

* its **breath count**, in the time domain, by the "count-orig" rule of Schäfer & Kratky (Ann.
  Biomed. Eng. 36(3), 2008): maxima above 0.2 × the 75th percentile of the maxima, minima
  likewise, and a breath is a pair of consecutive maxima with exactly one minimum between them;
  rate = 60 / mean breath duration. Counting follows a breath-by-breath rhythm where a spectral
  peak can be pulled by a slow wave or split by an irregular one;
* its **spectral peak** (Hann window, parabola-refined) and the peak's **peakedness** (peak over
  mean power in band: a clean modulation is one sharp line, a missing one is flat).

The rate is then the first of three answers that holds:

1. **Smart Fusion** (Karlen et al. 2013), with a quality gate per modulation: a modulation passes
   when its peakedness is at least :data:`GATE_PEAKEDNESS` and its breath count and spectral peak
   agree within :data:`GATE_AGREEMENT_BPM` (one rhythm, seen the same way in time and in
   frequency); its rate is the mean of the two. The modulations that pass are fused only when
   they agree (spread at most :data:`FUSION_SPREAD_BPM`): their peakedness-weighted mean; two
   that agree outvote a third; with no two agreeing, the most peaked one. A modulation that
   passes alone must be **corroborated**: another modulation's breath count or spectral peak
   within :data:`FUSION_SPREAD_BPM` of it (a second mechanism seeing the same rhythm, even
   where it is too weak to pass its own gate); otherwise the next answer is tried. Karlen
   fused all three whenever their spread was below 4 /min; gating each first keeps a flat
   modulation out and lets the amplitude and the intervals speak where the baseline carries a
   slower vasomotor wave.
2. **Breath count against the fused spectrum**: the intensity series' breath count, when the
   spectra of all three (normalised, weighted by peakedness, summed) have a peak standing out
   (≥ :data:`MIN_PEAKEDNESS` × mean) within :data:`AGREEMENT_BPM` of it.
3. **Intensity and amplitude agree**: the intensity count, when the amplitude count, the
   amplitude spectral peak or the intensity spectral peak lies within :data:`FALLBACK_BPM` of
   it: the median of those that do and the count.

Otherwise the window holds no breathing rhythm the pulse can vouch for, and the rate is None with
the reason. The confidence grows with the peakedness and the agreement, and falls at each tier.
Needs a window of at least :data:`MIN_SECONDS`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calmtunes.pulse.filters import bandpass_sos, filtfilt, highpass_sos
from calmtunes.pulse.stats import diff, mean, median

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
#: Smart Fusion's gate per modulation: its spectral peak stands this far above its mean power
GATE_PEAKEDNESS = 4.0
#: ... and its breath count and spectral peak agree within this, breaths/min
GATE_AGREEMENT_BPM = 2.0
#: gated modulations are fused when their rates spread at most this, breaths/min
FUSION_SPREAD_BPM = 3.0
#: last resort: the intensity count and an amplitude/intensity estimate agree within this, /min
FALLBACK_BPM = 3.0

#: the modulations in the order their series are built
MODULATIONS = ("intensity", "amplitude", "frequency")


@dataclass(frozen=True)
class Modulation:
    """One respiratory modulation measured over the window (rates in breaths/min)."""

    name: str
    count: float | None  # breath count; None below two breaths, or not counted (see below)
    spectral: float  # spectral peak, parabola-refined
    peakedness: float  # peak / mean power in band

    def passes_gate(self) -> bool:
        """Smart Fusion's quality gate: a peak standing out, seen alike in time and frequency."""
        return (
            self.count is not None
            and self.peakedness >= GATE_PEAKEDNESS
            and abs(self.count - self.spectral) <= GATE_AGREEMENT_BPM
        )

    @property
    def rate(self) -> float:
        """The gated rate: the mean of the breath count and the spectral peak."""
        return 0.5 * (self.spectral + (self.count if self.count is not None else self.spectral))


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


def _p75(v: np.ndarray) -> float:
    """75th percentile with linear interpolation (numpy's default), without its overhead."""
    v = np.sort(v)
    pos = 0.75 * (len(v) - 1)
    lo = int(pos)
    return float(v[lo] + (pos - lo) * (v[min(lo + 1, len(v) - 1)] - v[lo]))


def count_breaths(series: np.ndarray, top_hz: float) -> float | None:
    """Breaths/min in a per-beat series sampled at :data:`RESAMPLE_HZ` by counting breaths
    (count-orig, see the module notes) in its 0.1 Hz – ``top_hz`` band; None below 2 breaths."""
    band = _breath_band(series - mean(series), top_hz)
    return None if band is None else _count(band)


def _breath_band(centred: np.ndarray, top_hz: float) -> np.ndarray | None:
    """The mean-free series (one, or several as rows) band-passed 0.1 Hz – ``top_hz`` for
    counting; None when the band or the series is too short to count breaths in."""
    top = round(min(top_hz, 0.45 * RESAMPLE_HZ), 2)  # rounded: the designs stay cached
    if top <= 1.5 * DRIFT_CUTOFF_HZ or centred.shape[-1] < 16:
        return None
    return filtfilt(bandpass_sos(RESAMPLE_HZ, DRIFT_CUTOFF_HZ, top), centred)


def _count(s: np.ndarray) -> float | None:
    """count-orig on one band-passed series: breaths/min, None below 2 breaths."""
    mid, left, right = s[1:-1], s[:-2], s[2:]
    peaks = np.flatnonzero((mid > left) & (mid >= right)) + 1
    troughs = np.flatnonzero((mid < left) & (mid <= right)) + 1
    if len(peaks) < 3 or len(troughs) < 2:
        return None
    peaks = peaks[s[peaks] > COUNT_THRESHOLD * _p75(s[peaks])]
    troughs = troughs[-s[troughs] > COUNT_THRESHOLD * _p75(-s[troughs])]
    if len(peaks) < 3:
        return None
    # a breath: consecutive maxima with exactly one minimum between them
    between = np.searchsorted(troughs, peaks[1:]) - np.searchsorted(troughs, peaks[:-1], "right")
    dur = diff(peaks)[between == 1] / RESAMPLE_HZ
    if len(dur) < 2:
        return None
    return float(60.0 / mean(dur))


def _refined(p: np.ndarray, k: int, f: np.ndarray) -> float:
    """Frequency of bin ``k`` of ``p`` refined by a parabola through it and its neighbours."""
    rate = float(f[k])
    if 0 < k < len(p) - 1:
        y0, y1, y2 = p[k - 1], p[k], p[k + 1]
        den = y0 - 2 * y1 + y2
        if den < 0:
            rate += 0.5 * (y0 - y2) / den * (f[1] - f[0])
    return rate


def _corroborated(m: Modulation, mods: list[Modulation]) -> bool:
    """Whether another modulation's breath count or spectral peak lies within
    :data:`FUSION_SPREAD_BPM` of ``m``'s gated rate: a second mechanism seeing the same rhythm,
    even where it is too weak or too mixed to pass its own gate."""
    return any(
        v is not None and abs(v - m.rate) <= FUSION_SPREAD_BPM
        for o in mods
        if o.name != m.name
        for v in (o.count, o.spectral)
    )


def smart_fusion(mods: list[Modulation]) -> tuple[float | None, float]:
    """Karlen's Smart Fusion over the modulations that pass their own gate: the
    peakedness-weighted mean of those that agree (spread at most :data:`FUSION_SPREAD_BPM`);
    when not all do, of the best-supported agreeing pair (two modulations against one); when
    none agree, the most peaked one's. A modulation passing alone needs another's count or
    spectral peak near it (:func:`_corroborated`). Returns the rate (None when none passes, or
    one passes uncorroborated) and the peakedness behind it."""
    ok = [m for m in mods if m.passes_gate()]
    if not ok or (len(ok) == 1 and not _corroborated(ok[0], mods)):
        return None, 0.0
    rates = np.array([m.rate for m in ok])
    weights = np.array([m.peakedness for m in ok])
    if np.ptp(rates) > FUSION_SPREAD_BPM:
        pairs = [
            (weights[i] + weights[j], [i, j])
            for i in range(len(ok))
            for j in range(i + 1, len(ok))
            if abs(rates[i] - rates[j]) <= FUSION_SPREAD_BPM
        ]
        pick = max(pairs)[1] if pairs else [int(np.argmax(weights))]
        rates, weights = rates[pick], weights[pick]
    return float(np.average(rates, weights=weights)), float(weights.max())


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
    f = freqs[band]
    fused = np.zeros(len(f))
    mods: list[Modulation] = []
    # the series, one a row, each filtered and transformed together
    centred = np.stack([s - mean(s) for s in series])
    power = np.abs(np.fft.rfft(filtfilt(hp, centred) * win, nfft))[:, band] ** 2
    counting = _breath_band(centred, top / 60.0)
    for row, (name, p) in enumerate(zip(MODULATIONS, power)):
        total = p.sum()
        if total <= 0:
            continue
        p = p / total
        k = int(np.argmax(p))
        peaked = float(p[k] * len(p))
        # the interval series is only ever used through its gate: not counted when flat
        counted = counting is not None and (peaked >= GATE_PEAKEDNESS or name != "frequency")
        count = _count(counting[row]) if counted else None
        mods.append(Modulation(name, count, _refined(p, k, f), peaked))
        fused += p * peaked
    if not mods:
        return None, 0.0, "no respiratory modulation in the pulse"

    # 1. Smart Fusion of the modulations that pass their own quality gate
    rate, peaked = smart_fusion(mods)
    if rate is not None:
        return rate, float(np.clip((peaked - 1.0) / 10.0, 0.0, 1.0)), ""

    # 2. the intensity breath count, vouched for by the fused spectrum
    counted = mods[0].count if mods[0].name == "intensity" else None
    # a maximum on the band's edge is leakage from outside the band, not a breathing rate
    inner = np.flatnonzero((fused[1:-1] >= fused[:-2]) & (fused[1:-1] >= fused[2:])) + 1
    conf, why = 0.0, "no clear breathing rhythm in the pulse"
    if inner.size:
        k = int(inner[np.argmax(fused[inner])])
        peakedness = float(fused[k] / mean(fused))
        spectral = _refined(fused, k, f)
        conf = float(np.clip((peakedness - 1.0) / 10.0, 0.0, 1.0))
        if counted is None:
            why = "fewer than two breaths counted in the pulse baseline"
        elif peakedness >= MIN_PEAKEDNESS:
            gap = abs(counted - spectral)
            if gap <= AGREEMENT_BPM:
                return counted, 0.5 * conf * (1.0 - 0.5 * gap / AGREEMENT_BPM), ""
            why = (f"breath count ({counted:.0f} /min) and spectrum ({spectral:.0f} /min) "
                   "disagree")

    # 3. the intensity count, where the amplitude or the intensity spectrum agrees with it
    if counted is not None and len(mods) >= 2:
        others = [mods[1].count, mods[1].spectral, mods[0].spectral]
        near = [o for o in others if o is not None and abs(o - counted) <= FALLBACK_BPM]
        if near:
            return float(median([counted, *near])), 0.25 * conf, ""
    return None, 0.5 * conf, why
