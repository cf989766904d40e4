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

from calmtunes.pulse.stats import diff, mean, median, percentile

#: physiological limits of the search, in bpm
MIN_BPM = 30.0
MAX_BPM = 220.0
#: fraction of the dominant period below which two upstrokes cannot both be beats
MIN_SPACING = 0.45
#: an upstroke smaller than this fraction of the median one is noise, not a beat
MIN_HEIGHT = 0.15
#: a pulse rises faster than it falls: below this skewness of the slope the window holds no
#: pulse shape (noise, motion); real PPG windows (BIDMC, camera) sit above 0.4, synthetic
#: noise families and motion below 0.1 (dev split, ANALYSIS.md)
MIN_SLOPE_SKEW = 0.2


def find_peaks(x: np.ndarray, distance: int) -> tuple[np.ndarray, dict]:
    """Local maxima of ``x`` at least ``distance`` samples apart, highest kept first, as
    ``scipy.signal.find_peaks(x, distance=distance)`` (a flat top counts once, at its middle)."""
    n = len(x)
    if n < 3:
        return np.zeros(0, dtype=np.intp), {}
    mid, left, right = x[1:-1], x[:-2], x[2:]
    if np.all(x[1:] != x[:-1]):  # no flat stretch (the usual case for filtered data)
        peaks = np.flatnonzero((mid > left) & (mid > right)) + 1
    else:
        change = np.flatnonzero(x[1:] != x[:-1]) + 1  # first sample of each run of equals
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change - 1, [n - 1]))
        v = x[starts]
        top = np.flatnonzero((v[1:-1] > v[:-2]) & (v[1:-1] > v[2:])) + 1
        peaks = (starts[top] + ends[top]) // 2
    if distance > 1 and len(peaks) > 1:
        # the peaks are in order: those closer than ``distance`` to peak i are the runs
        # lo[i]:i and i+1:hi[i], found for all at once
        lo = np.searchsorted(peaks, peaks - distance, side="right").tolist()
        hi = np.searchsorted(peaks, peaks + distance, side="left").tolist()
        keep = [True] * len(peaks)
        for i in np.argsort(x[peaks])[::-1].tolist():  # highest first (scipy's order, ties too)
            if keep[i]:
                for j in range(lo[i], i):
                    keep[j] = False
                for j in range(i + 1, hi[i]):
                    keep[j] = False
        peaks = peaks[np.array(keep, dtype=bool)]
    return peaks.astype(np.intp), {}


def slope_skewness(x_bp: np.ndarray) -> float:
    """Skewness of the slope of ``x_bp``: positive for an upright pulse (fast rise, slow fall),
    negative for an inverted one, near 0 for noise and smooth motion, which rise as they fall."""
    d = diff(x_bp)
    d = d - mean(d)
    m2 = float(np.dot(d, d)) / max(1, len(d))
    if m2 <= 0:
        return 0.0
    return float(np.dot(d * d, d)) / max(1, len(d)) / m2**1.5


#: motion: beats whose upstrokes vary by more than this (coefficient of variation) …
MOTION_HEIGHT_CV = 0.45
#: … and whose steepest rise is less than this many times their steepest fall (median per
#: beat) are waves of motion: a pulse keeps its size within a breath's modulation and rises
#: faster than it falls (dev split: real windows ≥ 1.3 in 99 %, motion bursts 1.1–1.7)
MOTION_UPDOWN = 1.5
#: bursts: a band whose RMS, second by second, varies by more than this (coefficient of
#: variation over the seconds kept; dev split: real windows ≤ 0.28 in 95 %) …
MOTION_ENVELOPE_CV = 0.4
#: … with a weak pulse shape (slope skewness below this; real windows ≥ 0.45 in 99 %) …
MOTION_WEAK_SKEW = 0.6
#: … and rising less than this many times as fast as falling, is motion too: bursts come and
#: go, a pulse keeps its strength (dev split: 5 of the 12 noise windows answered before
#: caught, 2 of 702 real windows refused)
MOTION_BURST_UPDOWN = 1.75
#: shapeless: a weak pulse shape (slope skewness below this; real BIDMC and Welltory windows
#: of the dev split ≥ 0.46 in 99 %, 0.4 % below it) …
SHAPELESS_SKEW = 0.4
#: … beats unlike their mean beat (median correlation below this; real dev windows 4 %) …
SHAPELESS_MORPH = 0.96
#: … and of changing size (upstroke coefficient of variation above this; real dev windows
#: 6 %): each weak alone, together they are noise (dev: 11 of the 26 band-limited and
#: motion windows answered on extra development seeds 1000–1399, 1 of 699 real windows)
SHAPELESS_CV = 0.3
#: steady beats: at least this mean Orphanidou template correlation (they accept from 0.86) …
STEADY_TEMPLATE = 0.9
#: … upstrokes and second-by-second RMS varying at most this much (coefficient of variation)
STEADY_CV = 0.25
#: … and at least this much power in the harmonics (2nd and 3rd) for the fundamental's: a
#: sine is not a pulse (sines ~1e-6, noise let through 0.02, HeartPy's data3 0.8–2.9)
STEADY_HARMONICS = 0.1


def upstroke_cv(b: Beats) -> float:
    """Coefficient of variation of the beats' upstrokes (0 with fewer than three)."""
    if len(b.heights) < 3:
        return 0.0
    return float(np.std(b.heights)) / max(1e-12, float(mean(b.heights)))


def looks_like_motion(
    x_up: np.ndarray, b: Beats, envelope_cv: float = 0.0, skew: float = np.inf
) -> bool:
    """True when the beats ``b`` of the upright ``x_up`` swing in size like smooth motion
    bursts and fall about as fast as they rise (see :data:`MOTION_HEIGHT_CV`), or when the
    window's strength comes and goes (``envelope_cv``) under a weak pulse shape (``skew``,
    the slope skewness) and they rise barely faster than they fall
    (see :data:`MOTION_ENVELOPE_CV`)."""
    if len(b.index) < 3:
        return False
    swings = upstroke_cv(b) > MOTION_HEIGHT_CV
    bursts = envelope_cv > MOTION_ENVELOPE_CV and skew < MOTION_WEAK_SKEW
    if not (swings or bursts):
        return False
    d = diff(x_up)
    ratio = float(median([
        d[a:c].max() / max(1e-12, -float(d[a:c].min()))
        for a, c in zip(b.index[:-1], b.index[1:])
    ]))
    return (swings and ratio < MOTION_UPDOWN) or (bursts and ratio < MOTION_BURST_UPDOWN)


def looks_shapeless(b: Beats, skew: float, morphology: float) -> bool:
    """True when the beats ``b`` have no pulse shape to speak of: the window falls nearly as
    fast as it rises (``skew``, the slope skewness, below :data:`SHAPELESS_SKEW`), its beats
    are unlike their mean beat (``morphology`` below :data:`SHAPELESS_MORPH`) and change size
    (upstrokes varying more than :data:`SHAPELESS_CV`). A real pulse, even a weak one, keeps
    at least one of the three; band-limited noise whose peaks happen to be evenly spaced
    keeps none."""
    return (
        len(b.index) >= 3
        and skew < SHAPELESS_SKEW
        and morphology < SHAPELESS_MORPH
        and upstroke_cv(b) > SHAPELESS_CV
    )


#: rhythmless: in a window with a weak pulse shape (slope skewness below
#: :data:`MOTION_WEAK_SKEW`), beats whose intervals vary by more than this (coefficient of
#: variation of the corrected intervals: a missed beat put back) are waves of motion at
#: changing frequencies (dev split: real BIDMC and Welltory windows that weak ≤ 0.2;
#: HeartPy's data3 ≤ 0.2 but one window with half its beats missed, 0.8)
RHYTHMLESS_CV = 0.3
#: surges: the band's strength, second by second, varying by more than this (coefficient of
#: variation) …
SURGE_ENVELOPE_CV = 0.6
#: … with upstrokes varying by more than this …
SURGE_HEIGHT_CV = 0.6
#: … under a pulse shape weaker than this (slope skewness): one burst of motion waxing and
#: waning. Dev split: no real window below this skewness varies by more than 0.43 and 0.55
#: (bidmc_05 at 150 s); the two that vary more (bidmc_05 at 115 s, bidmc_35 at 250 s) rise
#: far faster (≥ 1.23); the motion windows caught lie at 0.44–0.90
SURGE_SKEW = 1.0


def interval_cv(intervals: np.ndarray) -> float:
    """Coefficient of variation of beat ``intervals`` (0 with fewer than three)."""
    if len(intervals) < 3:
        return 0.0
    return float(np.std(intervals)) / max(1e-12, float(mean(intervals)))


def looks_rhythmless(intervals: np.ndarray, skew: float) -> bool:
    """True when the window has neither a pulse's shape nor its rhythm: it falls nearly as
    fast as it rises (``skew`` below :data:`MOTION_WEAK_SKEW`) and its beats come at
    ``intervals`` (corrected, none across left-out samples) varying by more than
    :data:`RHYTHMLESS_CV`. A pulse with a weak shape still beats at a rate; waves of motion
    at changing frequencies do not."""
    return skew < MOTION_WEAK_SKEW and interval_cv(intervals) > RHYTHMLESS_CV


def looks_like_surges(b: Beats, envelope_cv: float, skew: float) -> bool:
    """True when the window's strength surges and fades (``envelope_cv`` above
    :data:`SURGE_ENVELOPE_CV`) and its beats change size with it (upstrokes varying by more
    than :data:`SURGE_HEIGHT_CV`) under a moderate pulse shape (``skew`` below
    :data:`SURGE_SKEW`): a burst of motion waxing and waning. A pulse's strength follows the
    breath by tens of per cent; a pulse that fades out leaves a flat line, no beats."""
    return (
        len(b.index) >= 3
        and skew < SURGE_SKEW
        and envelope_cv > SURGE_ENVELOPE_CV
        and upstroke_cv(b) > SURGE_HEIGHT_CV
    )


#: irregular rhythm: intervals whose robust spread (1.4826 × median absolute deviation over
#: the median, a normal distribution's coefficient of variation) exceeds this have no regular
#: rhythm to judge a missed or extra beat by (atrial fibrillation: ~0.1–0.3; the normalised
#: RMSSD that AF detectors threshold is of the same order). Fixed before it was tried; dev
#: sweep in ANALYSIS.md (round six)
IRREGULAR_SPREAD = 0.1


def robust_spread(intervals: np.ndarray) -> float:
    """1.4826 × the median absolute deviation of ``intervals`` over their median (a normal
    distribution's coefficient of variation, unmoved by a few outliers such as one missed
    beat); 0 with fewer than four."""
    if len(intervals) < 4:
        return 0.0
    med = float(median(intervals))
    return 1.4826 * float(median(np.abs(intervals - med))) / med if med > 0 else 0.0


def irregular_but_clear(intervals: np.ndarray, b: Beats, skew: float) -> bool:
    """True when the beats ``b`` look like clear pulses at an irregular rhythm (atrial
    fibrillation): their ``intervals`` (as found, none across left-out samples) spread by more
    than :data:`IRREGULAR_SPREAD`, the window has a pulse's shape (``skew`` ≥
    :data:`MOTION_WEAK_SKEW`) and the upstrokes keep their size (variation ≤
    :data:`MOTION_HEIGHT_CV`). The caller also asks for Orphanidou et al.'s template
    acceptance (costlier, so last)."""
    return (
        robust_spread(intervals) > IRREGULAR_SPREAD
        and skew >= MOTION_WEAK_SKEW
        and upstroke_cv(b) <= MOTION_HEIGHT_CV
    )


def steady(b: Beats, template: float, envelope_cv: float, harmonics: float) -> bool:
    """Beats of one shape and one size, with harmonics: a pulse, even where it falls as fast
    as it rises (a heavily smoothed sensor output, a strong second wave), which motion and
    noise are not: their waves change shape and come and go, or are plain sines."""
    return (
        len(b.index) >= 4
        and template >= STEADY_TEMPLATE
        and upstroke_cv(b) <= STEADY_CV
        and envelope_cv <= STEADY_CV
        and harmonics >= STEADY_HARMONICS
    )


def orient(x_bp: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``x_bp`` turned so that blood volume rises upwards, and whether it was flipped.

    A pulse rises quickly (systole, ~0.1 s) and falls slowly (diastole), so the slope of a
    correctly oriented PPG has tall positive and shallow negative excursions: its skewness is
    positive. Raw MAX30102 counts and camera brightness fall with blood volume (more absorption)
    and are flipped here; a monitor's pleth curve is already upright.
    """
    d = diff(x_bp)
    d = d - mean(d)
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


def detect(
    x_up: np.ndarray, fs: float, period_s: float, *, check_second_wave: bool = True
) -> Beats:
    """Find beats in an upright, band-passed PPG whose dominant period is ``period_s``."""
    d = diff(x_up)
    spacing = MIN_SPACING * period_s if np.isfinite(period_s) else 60.0 / MAX_BPM
    spacing = max(spacing, 60.0 / MAX_BPM)
    peaks, _ = find_peaks(d, distance=max(1, int(spacing * fs)))
    if check_second_wave and np.isfinite(period_s) and _second_wave_counted(
        d, peaks, fs, period_s
    ):
        peaks, _ = find_peaks(d, distance=max(1, int(0.7 * period_s * fs)))
    # a peak on the first or last slope sample cannot be interpolated, and is cut by the edge
    peaks = peaks[(peaks > 0) & (peaks < len(d) - 1)]
    h = d[peaks]
    if h.size:
        keep = h > MIN_HEIGHT * median(h[h > 0]) if np.any(h > 0) else h > 0
        peaks, h = peaks[keep], h[keep]
    y0, y1, y2 = d[peaks - 1], h, d[peaks + 1]
    den = y0 - 2 * y1 + y2
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(den < 0, 0.5 * (y0 - y2) / den, 0.0)
    off = np.clip(off, -0.5, 0.5)
    # slope d[i] sits between samples i and i + 1
    times = (peaks + 0.5 + off) / fs
    return Beats(times=times, index=peaks, heights=h)


#: a dicrotic (reflected) wave's upstroke follows the systolic one by the ejection time and a
#: little more: Weissler's LVET = 413 − 1.7·HR ms is at most ~0.36 s at rest (40 bpm), so a
#: second upstroke later than this after a beat is not that beat's dicrotic wave, s
DICROTIC_MAX_S = 0.45
#: an in-between upstroke at least this fraction of the beats' median one can be a beat
EXTRA_MIN_HEIGHT = 0.35
#: the half-period search is taken when it finds at least this share more beats
EXTRA_MIN_SHARE = 0.3


def harmonic_check(x_up: np.ndarray, fs: float, period_s: float, found: Beats) -> Beats:
    """Cross-check ``found`` against the ½× and 2× rates; return the beats to use.

    *Double rate* (a strong dicrotic wave counted as a beat): the intervals alternate short
    and long, the short one no longer than :data:`DICROTIC_MAX_S`, and the beat after each
    short interval has the weaker upstroke; then only the strong beats are beats.
    *Half rate* (the autocorrelation found a two-beat pattern: bigeminy, an irregular rhythm,
    alternans): the search is repeated at half the period; when that finds in-between
    upstrokes of a beat's size (≥ :data:`EXTRA_MIN_HEIGHT` of the median) later than a
    dicrotic wave could come (> :data:`DICROTIC_MAX_S` after the beat before), in a fair share
    of the intervals, they are beats too.
    """
    strong = _dicrotic_pairs(found)
    if strong is not None:
        return Beats(found.times[strong], found.index[strong], found.heights[strong])
    # an in-between beat needs more than DICROTIC_MAX_S on either side: a shorter period
    # has no room for one, and the second search is skipped
    if not np.isfinite(period_s) or period_s <= 2 * DICROTIC_MAX_S or len(found.times) < 3:
        return found
    half = 0.5 * period_s
    alt = detect(x_up, fs, half, check_second_wave=False)
    if len(alt.times) < (1.0 + EXTRA_MIN_SHARE) * len(found.times):
        return found
    if _dicrotic_pairs(alt) is not None:
        return found
    ref = float(median(found.heights))
    old = np.isin(alt.index, found.index)
    keep = old.copy()
    last = -np.inf
    for i in range(len(alt.times)):
        if old[i]:
            last = alt.times[i]
        elif alt.heights[i] >= EXTRA_MIN_HEIGHT * ref and alt.times[i] - last > DICROTIC_MAX_S:
            # a beat also needs room before the next known beat for its own dicrotic wave
            nxt = found.times[found.times > alt.times[i]]
            if nxt.size == 0 or nxt[0] - alt.times[i] > DICROTIC_MAX_S:
                keep[i] = True
                last = alt.times[i]
    if np.count_nonzero(keep & ~old) < EXTRA_MIN_SHARE * (len(found.times) - 1):
        return found
    return Beats(alt.times[keep], alt.index[keep], alt.heights[keep])


#: share of the weak upstrokes that must alternate with stronger ones on both sides for the
#: window's weak upstrokes to be read as dicrotic waves (a pattern, not a wave at a time)
DICROTIC_ALTERNATING = 2 / 3


def _dicrotic_pairs(b: Beats) -> np.ndarray | None:
    """The beats to keep when a fair share of ``b`` are dicrotic waves, else None.

    A dicrotic wave is tied to its beat: a weaker upstroke (< 0.75 × the 75th percentile) at a
    steady lag (spread ≤ 60 ms) of at most :data:`DICROTIC_MAX_S` after the beat before it,
    and, waves and beats alternating, most of them (:data:`DICROTIC_ALTERNATING`) weaker than
    both the beat they follow and the next one.
    Breathing weakens the beats of a tachycardia (respiratory amplitude modulation) several
    in a row, each about as strong as its neighbours, and above 133 bpm every interval is
    under :data:`DICROTIC_MAX_S` and steady: without the alternation those beats were taken
    for waves. A premature beat comes at a lag set by the ectopic focus, usually later, and
    its own pulse follows; a run of them at a steady short lag is read as dicrotic waves.
    """
    if len(b.times) < 6:
        return None
    h = b.heights
    lag = diff(b.times)  # lag[k]: from upstroke k to upstroke k + 1
    weak = h < 0.75 * float(percentile(h, 75))
    cand = weak[1:] & (lag <= DICROTIC_MAX_S)
    n = np.count_nonzero(cand)
    if n < 0.25 * len(lag) or float(np.std(lag[cand])) > 0.06:
        return None
    # The pattern is judged over the window: waves alternate with their beats, so most weak
    # upstrokes are weaker than both the beat before and the next one (a breath may weaken a
    # beat below a neighbour's wave now and then); breathing weakens a tachycardia's beats in
    # runs, where few are. The last has no successor to judge by.
    below_next = np.concatenate((h[1:-1] < h[2:], [True]))
    alone = cand & (h[1:] < h[:-1]) & below_next
    if np.count_nonzero(alone) < DICROTIC_ALTERNATING * n:
        return None
    return ~np.concatenate(([False], cand))


def _second_wave_counted(d: np.ndarray, peaks: np.ndarray, fs: float, period_s: float) -> bool:
    """True when every beat's upstroke was found together with a second, weaker one.

    The signs: twice as many upstrokes as the signal has periods, and their slopes strictly
    alternating strong–weak (≥ 90 % of neighbours), the weak ones under half the strong ones.
    That is a dicrotic or reflected wave inside each beat. Ectopic beats, atrial fibrillation
    and pulsus alternans do not alternate that strictly, or not by that much.
    """
    h = d[peaks]
    if len(peaks) < 6 or median(diff(peaks)) >= 0.7 * period_s * fs:
        return False
    step = np.sign(diff(h))
    strict = float(mean(step[1:] != step[:-1]))
    a, b = float(median(h[0::2])), float(median(h[1::2]))
    return strict >= 0.9 and min(a, b) < 0.5 * max(a, b)
