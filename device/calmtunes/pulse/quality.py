"""Input checks and the signal-quality index (0 useless – 1 clean).

The index is the product of three scores, each in [0, 1]:

* **periodicity** – the normalised autocorrelation at the beat period (noise → 0);
* **morphology** – the median correlation of each beat with the window's average beat;
* **regularity** – the share of intervals that needed no correction (missed/extra/ectopic).

A product makes any one failure pull the whole index down. Figures are refused below
:data:`MIN_QUALITY`.
"""

from __future__ import annotations

import numpy as np

from calmtunes.pulse.stats import diff, mean, median

#: below this quality no figure is reported
MIN_QUALITY = 0.2
#: a window of quality below this (just above the floor) must also pass Orphanidou et al.'s
#: own acceptance, a mean template correlation of at least :data:`TEMPLATE_ACCEPT`
WEAK_QUALITY = 0.25
#: Orphanidou et al. (IEEE JBHI 19(3), 2015): a PPG window is acceptable from this mean
#: correlation of its beats with their template
TEMPLATE_ACCEPT = 0.86
#: accepted sampling rates in Hz
FS_RANGE = (25.0, 1000.0)
#: shortest window that can hold enough beats for a heart rate, in s
MIN_SECONDS = 4.0
#: more than this share of missing samples (NaN/inf) makes the window unusable
MAX_MISSING = 0.1
#: more than this share of samples at the lowest or highest value means the sensor clips
MAX_CLIPPED = 0.05
#: a run at the rail at least this long is clipping, not a peak touching the maximum, s
CLIP_RUN_S = 0.04
#: length of the stretches compared for artefacts, s (a beat at 60 bpm)
SWING_BLOCK_S = 1.0
#: a stretch swinging more than this many times the median stretch is an artefact
ARTEFACT_SWING = 3.0
#: margin left out around clipping and artefacts, s: the band-pass rings for about that long
#: and the beat cut by the artefact's edge is not a beat to time
ARTEFACT_MARGIN_S = 0.3
#: at least this share of the window must be free of artefacts to be analysed
MIN_USABLE = 0.7


def check_fs(fs: object) -> str | None:
    """None when ``fs`` is a usable sampling rate, else why not."""
    try:
        f = float(fs)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return f"sampling rate {fs!r} is not a number; pass fs in Hz (25–1000)"
    if not np.isfinite(f) or not FS_RANGE[0] <= f <= FS_RANGE[1]:
        return f"sampling rate {f:g} Hz is outside 25–1000 Hz; pass the rate the PPG was sampled at"
    return None


def repair(x: np.ndarray) -> tuple[np.ndarray | None, str]:
    """Fill short runs of NaN/inf by linear interpolation; refuse when too many are missing."""
    bad = ~np.isfinite(x)
    nbad = int(np.count_nonzero(bad))
    if nbad == 0:
        return x, ""
    if nbad > MAX_MISSING * len(x):
        return None, f"{nbad} of {len(x)} samples are NaN or infinite (more than 10 %)"
    idx = np.arange(len(x))
    y = x.copy()
    y[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return y, f"{nbad} missing samples interpolated"


def input_problem(x: np.ndarray, fs: float) -> str | None:
    """Why a finite window cannot be analysed at all (flat or too short), or None."""
    if len(x) < MIN_SECONDS * fs:
        return f"window of {len(x) / fs:.1f} s is too short; need at least {MIN_SECONDS:g} s"
    lo, hi = float(x.min()), float(x.max())
    top = max(abs(hi), abs(lo))
    if top == 0 or (hi / top - lo / top) <= 1e-12:  # relative span; no overflow at 1e308
        return "signal is flat (no finger, sensor off or LED off)"
    return None


def clipped(x: np.ndarray, fs: float) -> np.ndarray:
    """Samples stuck at the window's lowest or highest value, per sample (bool).

    A saturated ADC (or a camera channel at 255) holds its rail for a run of samples; a
    pulse peak that merely touches the window's maximum does not. Only runs of at least
    :data:`CLIP_RUN_S` count, and only when they add up to more than :data:`MAX_CLIPPED` of the
    window (a quantised signal sits at its extremes now and then without clipping).
    """
    lo, hi = float(x.min()), float(x.max())
    rail = (x == hi) | (x == lo)
    if np.count_nonzero(rail) <= MAX_CLIPPED * len(x):
        return np.zeros(len(x), dtype=bool)
    return _runs_at_least(rail, max(2, round(CLIP_RUN_S * fs)))


def swings(x_bp: np.ndarray, fs: float, quiet_s: float | None = None) -> np.ndarray:
    """Samples in stretches whose swing dwarfs the pulse's: motion or a knock (bool per sample).

    The band-passed window is cut into stretches of :data:`SWING_BLOCK_S`; a stretch whose
    peak-to-peak exceeds :data:`ARTEFACT_SWING` × the median stretch's is an artefact. A pulse's
    own swing changes with breathing by tens of per cent, never threefold within seconds.
    With ``quiet_s``, the reference is the median of the quietest ``quiet_s`` seconds of
    stretches instead: still the pulse's while motion leaves that much of the window clean
    (the plain median is the motion's once motion fills half the window).
    """
    m = max(1, int(SWING_BLOCK_S * fs))
    nb = len(x_bp) // m
    out = np.zeros(len(x_bp), dtype=bool)
    if nb < 3:
        return out
    blocks = x_bp[: nb * m].reshape(nb, m)
    ptp = blocks.max(axis=1) - blocks.min(axis=1)
    if quiet_s is None:
        ref = float(median(ptp))
    else:
        k = min(nb, max(1, round(quiet_s / SWING_BLOCK_S)))
        ref = float(median(np.partition(ptp, k - 1)[:k]))
    if ref <= 0:
        return out
    bad = ptp > ARTEFACT_SWING * ref
    out[: nb * m] = np.repeat(bad, m)
    if len(x_bp) > nb * m:  # the tail shorter than a stretch goes with the last stretch
        tail = x_bp[nb * m :]
        out[nb * m :] = bad[-1] or float(tail.max() - tail.min()) > ARTEFACT_SWING * ref
    return out


def widen(mask: np.ndarray, n: int) -> np.ndarray:
    """``mask`` grown by ``n`` samples on each side."""
    if n <= 0 or not mask.any():
        return mask
    c = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    i = np.arange(len(mask))
    return (c[np.minimum(i + n + 1, len(mask))] - c[np.maximum(i - n, 0)]) > 0


def _runs_at_least(mask: np.ndarray, k: int) -> np.ndarray:
    """Keep only the runs of True in ``mask`` at least ``k`` long."""
    edges = diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = np.zeros(len(mask), dtype=bool)
    for a, b in zip(starts, ends):
        if b - a >= k:
            out[a:b] = True
    return out


def _template_correlations(x_up: np.ndarray, idx: np.ndarray, before: int,
                           after: int) -> np.ndarray | None:
    """Correlation of each beat's segment (``before`` samples before its index, ``after`` from
    it) with the mean of the normalised segments; None when that mean is flat."""
    seg = x_up[idx[:, None] + np.arange(-before, after)]
    seg = seg - seg.mean(axis=1, keepdims=True)
    norm = np.sqrt(np.einsum("ij,ij->i", seg, seg))
    norm[norm == 0] = 1.0
    seg /= norm[:, None]
    tmpl = seg.mean(axis=0)
    tn = float(np.sqrt(tmpl @ tmpl))
    return None if tn == 0 else seg @ (tmpl / tn)


def morphology(x_up: np.ndarray, index: np.ndarray, fs: float, period_s: float) -> float:
    """Median correlation of each beat (−0.3 T … +0.6 T around its upstroke) with the mean beat."""
    if len(index) < 3 or not np.isfinite(period_s):
        return 0.0
    before, after = int(0.3 * period_s * fs), int(0.6 * period_s * fs)
    if before + after < 4:
        return 0.0
    idx = index[(index >= before) & (index + after < len(x_up))]
    if len(idx) < 3:
        return 0.0
    corr = _template_correlations(x_up, idx, before, after)
    return 0.0 if corr is None else float(max(0.0, median(corr)))


def index(periodicity: float, morph: float, regular: float) -> float:
    """Combine the three scores (each 0–1) into the quality index."""
    q = max(0.0, periodicity) * max(0.0, morph) * max(0.0, regular)
    return float(min(1.0, q))


def envelope_cv(x_bp: np.ndarray, fs: float, bad: np.ndarray | None = None) -> float:
    """Coefficient of variation of the RMS of ``x_bp`` second by second, over the whole
    seconds free of ``bad`` samples (0 with fewer than three): how much the signal's strength
    comes and goes."""
    w = max(1, int(fs))
    n = len(x_bp) // w
    if n < 3:
        return 0.0
    rms = np.sqrt(np.mean(x_bp[: n * w].reshape(n, w) ** 2, axis=1))
    if bad is not None:
        rms = rms[~bad[: n * w].reshape(n, w).any(axis=1)]
    m = float(mean(rms)) if len(rms) >= 3 else 0.0
    return float(np.std(rms)) / m if m > 0 else 0.0


#: below this harmonic ratio (:func:`harmonic_ratio`) a weakly shaped wave is a sine, not a
#: pulse: a sine has ~1e-6, the motion windows answered on extra development seeds ≤ 0.0011,
#: real dev windows ≥ 0.037 (bidmc_05, a smooth pulse at 98 bpm)
SINE_HARMONICS = 0.01


def harmonic_ratio(x: np.ndarray, fs: float, period_s: float) -> float:
    """Power within ±15 % of twice and three times the beat frequency over the power within
    ±15 % of the beat frequency itself (Hann-windowed spectrum of ``x``): ~0 for a sine, a
    wave of motion or a hand waving; a pulse wave is no sine, its sharp systole and second
    wave put power into the harmonics."""
    n = len(x)
    if n < 8 or not np.isfinite(period_s) or period_s <= 0:
        return 0.0
    nfft = 1 << int(np.ceil(np.log2(4 * n)))
    p = np.abs(np.fft.rfft(x * np.hanning(n), nfft)) ** 2
    bins = nfft / fs / period_s  # bins per beat frequency (bin i is at i · fs / nfft)

    def near(k: int) -> float:
        # the bins strictly between 0.85 and 1.15 × k beat frequencies
        lo = int(np.floor(0.85 * k * bins)) + 1
        hi = int(np.ceil(1.15 * k * bins))
        return float(p[max(lo, 0) : max(min(hi, len(p)), 0)].sum())

    first = near(1)
    return (near(2) + near(3)) / first if first > 0 else 0.0


def template_match(x_up: np.ndarray, index: np.ndarray, width: int | None = None) -> float:
    """Orphanidou et al. (IEEE JBHI 19(3), 2015) template matching: each beat, a window one
    median interval long (or ``width`` samples) centred on it, correlated with the window's
    mean beat; the mean correlation (0–1; they accept a window from 0.86). 0 with fewer than
    three whole beats. Two rival beat trains are compared with the same, longer ``width``:
    centred on a dicrotic wave, a whole beat's window looks unlike one centred on a beat."""
    if len(index) < 4:
        return 0.0
    w = int(median(diff(index))) if width is None else int(width)
    half = w // 2
    if half < 2:
        return 0.0
    idx = index[(index >= half) & (index + half < len(x_up))]
    if len(idx) < 3:
        return 0.0
    corr = _template_correlations(x_up, idx, half, half)
    return 0.0 if corr is None else float(max(0.0, mean(corr)))
