"""One window of PPG in, heart rate, HRV, breathing and quality out.

:func:`analyze` is the whole algorithm; the streaming :class:`~calmtunes.pulse.analyser.
PulseAnalyser` calls it once a second on its ring of recent samples, so the benchmarks measure
exactly what the device runs. Steps:

1. check the rate and the samples (flat, clipping, NaN, too short) — never raise, say why;
2. band-pass 0.5–5 Hz, clip artefacts beyond 8 robust amplitudes, turn the pulse upright;
3. dominant beat period from the autocorrelation (also the periodicity score);
4. upstroke beats (:mod:`.beats`), artefact-corrected intervals (:mod:`.hrv`);
5. quality index (:mod:`.quality`); figures refused below its floor;
6. heart rate over the last ``hr_span_s`` (the whole window by default), RMSSD/SDNN over the
   whole window, breathing from the respiratory modulations (:mod:`.respiration`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from calmtunes.pulse import beats as beats_mod
from calmtunes.pulse import elgendi, filters, hrv, quality, respiration
from calmtunes.pulse.stats import diff, mean, median

#: in band-passed units, samples beyond this many median absolute amplitudes are artefacts
ARTEFACT_CLIP = 8.0
#: HRV needs this many seconds of beats
HRV_MIN_SECONDS = 8.0


@dataclass(frozen=True)
class PulseAnalysis:
    """What one window yields. Every figure is None when it cannot be measured honestly."""

    hr_bpm: float | None  # beats per minute over the HR span
    rmssd_ms: float | None  # ms, over the window
    sdnn_ms: float | None  # ms, over the window
    breathing_rate: float | None  # breaths per minute, over the window
    quality: float  # 0 (useless) – 1 (clean)
    reason: str = ""  # why figures are None ("" when everything was measured)
    beat_times: np.ndarray = field(default_factory=lambda: np.zeros(0))  # s from window start
    ibi_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))  # corrected intervals, ms
    clean: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # per interval
    breathing_confidence: float = 0.0  # 0–1
    flipped: bool = False  # the input was upside down (raw sensor counts usually are)
    #: why the breathing rate is None, or what qualifies it ("" when measured plainly); also in
    #: ``reason``. Empty when the caller asked for no breathing (``analyze(breathing=False)``)
    breathing_reason: str = ""


def _refuse(reason: str, q: float = 0.0) -> PulseAnalysis:
    return PulseAnalysis(None, None, None, None, q, reason)


def _artefacts(
    x: np.ndarray, x_bp: np.ndarray, fs: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Leave clipping and motion out of the window.

    Returns the signal and its band-passed version with the artefacts bridged, the samples
    left out (with their margin; None when all are usable), and the reason to refuse the
    window when too little is left. Clipped runs are bridged first, so the band-pass's ringing
    after a jump to the rail is not taken for motion.
    """
    margin = int(quality.ARTEFACT_MARGIN_S * fs)
    too_much = 1.0 - quality.MIN_USABLE
    clip = quality.clipped(x, fs)
    bad = quality.widen(clip, margin)
    if mean(bad) > too_much:
        return x, x_bp, bad, _clip_reason(x, clip)
    if bad.any():
        x = _bridge(x, bad)
        x_bp = filters.pulse_band(x, fs)
    swing = quality.swings(x_bp, fs)
    if swing.any():
        bad = bad | quality.widen(swing, margin)
        if mean(bad) > too_much:
            return x, x_bp, bad, (
                f"artefacts (motion?) cover {100 * mean(bad):.0f} % of the window"
            )
        x = _bridge(x, bad)
        x_bp = filters.pulse_band(x, fs)
    return x, x_bp, (bad if bad.any() else None), ""


def _clip_reason(x: np.ndarray, clip: np.ndarray) -> str:
    """Why a clipping window is refused, naming the rail and its cure: at the top the sensor
    gets more light than its range holds (an 18-bit count or a camera channel at its maximum),
    at the bottom too little to leave the floor."""
    top = int(np.count_nonzero(clip & (x >= float(x.max()))))
    share = f"{100 * mean(clip):.0f} % of samples"
    if top >= np.count_nonzero(clip) - top:
        return (f"signal clips at its top rail: {share} sit at the highest value (too much "
                "light: reduce the LED current, or lighten the finger's pressure)")
    return (f"signal clips at its bottom rail: {share} sit at the lowest value (too little "
            "light: raise the LED current, or cover the sensor fully with the finger)")


def _bridge(x: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``x`` with the ``bad`` samples replaced by straight lines between their good neighbours."""
    idx = np.arange(len(x))
    y = x.copy()
    y[bad] = np.interp(idx[bad], idx[~bad], x[~bad])
    return y


#: the two detectors' rates may differ by this share before the second opinion is weighed
DETECTOR_AGREEMENT = 0.1


def _second_opinion(x_up: np.ndarray, fs: float, s0: int, bt: beats_mod.Beats) -> beats_mod.Beats:
    """Fuse the upstroke beats with Elgendi's systolic peaks (:mod:`.elgendi`).

    When the two detectors' median rates over the HR span agree within
    :data:`DETECTOR_AGREEMENT`, the upstroke beats stand. When they do not, the upstrokes are
    searched again at Elgendi's period, and the beat train whose beats match their own mean
    beat better (Orphanidou template matching) is kept: a doubled or halved count mixes two
    shapes in its template, the right one does not.
    """
    pk = s0 + elgendi.systolic_peaks(x_up[s0:], fs)
    mine = bt.index[bt.index >= s0]
    if len(pk) < 3 or len(mine) < 3:
        return bt
    p_e = float(median(diff(pk))) / fs
    p_o = float(median(diff(mine))) / fs
    if abs(p_e - p_o) <= DETECTOR_AGREEMENT * p_e:
        return bt
    alt = beats_mod.detect(x_up, fs, p_e)
    mine_alt = alt.index[alt.index >= s0]
    p_a = float(median(diff(mine_alt))) / fs if len(mine_alt) >= 3 else np.inf
    if abs(p_a - p_e) > DETECTOR_AGREEMENT * p_e:
        return bt
    w = int(max(p_a, p_o) * fs)
    if quality.template_match(x_up, mine_alt, w) > quality.template_match(x_up, mine, w):
        return alt
    return bt


def _spans(bad: np.ndarray, beat_times: np.ndarray, fs: float) -> np.ndarray:
    """Per interval between ``beat_times`` (s): whether it spans any ``bad`` sample."""
    c = np.concatenate(([0], np.cumsum(bad, dtype=np.int64)))
    i = np.clip((beat_times * fs).astype(np.int64), 0, len(bad) - 1)
    return (c[i[1:] + 1] - c[i[:-1]]) > 0


def analyze(signal: object, fs: float, *, hr_span_s: float | None = None,
            breathing: bool = True) -> PulseAnalysis:
    """Analyse one window of PPG (any polarity and scale) sampled at ``fs`` Hz (25–1000).

    ``hr_span_s`` restricts the heart rate (and the quality it is judged by) to the last that
    many seconds of the window; HRV and breathing always use the whole window.
    ``breathing=False`` leaves the breathing rate out (None, no reason given for it): a third
    of the cost of a 60 s window, for a caller that measures it less often than the pulse.
    Never raises on bad data: the result carries None figures, low quality and the reason.
    """
    why = quality.check_fs(fs)
    if why:
        return _refuse(why)
    fs = float(fs)
    try:
        x = np.asarray(signal, dtype=float)
    except (TypeError, ValueError) as e:
        return _refuse(f"signal is not numeric: {e}; pass a 1-D array of samples")
    if x.ndim != 1:
        if x.ndim == 2 and 1 in x.shape:
            x = x.ravel()
        else:
            return _refuse(f"signal has shape {x.shape}; pass a 1-D array of samples")
    if x.size == 0:
        return _refuse("signal is empty")
    x, note = quality.repair(x)
    if x is None:
        return _refuse(note)
    why = quality.input_problem(x, fs)
    if why:
        return _refuse(why)
    notes = [note] if note else []

    # any scale: bring the samples to ±1 so that sums of squares cannot overflow
    x = x / float(np.max(np.abs(x)))
    x = x - mean(x)
    x_bp = filters.pulse_band(x, fs)
    # artefacts are bridged before filtering again, so their edges do not ring into the pulse
    # around them; what lies under them is never used
    x, x_bp, bad, why = _artefacts(x, x_bp, fs)
    if why:
        return _refuse(why)
    if bad is not None:
        notes.append(f"{100 * mean(bad):.0f} % of the window left out (clipping or motion)")
    scale = float(median(np.abs(x_bp)))
    if scale <= 0:
        return _refuse("no pulsatile component in the signal")
    np.clip(x_bp, -ARTEFACT_CLIP * scale, ARTEFACT_CLIP * scale, out=x_bp)
    x_up, flipped = beats_mod.orient(x_bp)

    n = len(x_up)
    duration = n / fs
    span = duration if hr_span_s is None else min(duration, max(hr_span_s, quality.MIN_SECONDS))
    s0 = n - int(span * fs)
    period, periodicity = filters.dominant_period(
        x_up[s0:], fs, 60.0 / beats_mod.MAX_BPM, 60.0 / beats_mod.MIN_BPM
    )
    if not np.isfinite(period):
        return _refuse("no pulse rhythm between 30 and 220 bpm", 0.0)
    first = beats_mod.detect(x_up, fs, period)
    bt = _second_opinion(x_up, fs, s0, beats_mod.harmonic_check(x_up, fs, period, first))
    if len(bt.times) >= 4 and not 0.7 < len(bt.times) / max(1, len(first.times)) < 1.4:
        # the ½×/2× check found another rate: judge the beats at their own spacing
        period = float(median(diff(bt.times)))
    if bad is not None:
        bt = beats_mod.Beats(*(a[~bad[bt.index]] for a in (bt.times, bt.index, bt.heights)))
    in_window = bt.index >= s0
    span_beats = beats_mod.Beats(bt.times[in_window], bt.index[in_window], bt.heights[in_window])
    skew = beats_mod.slope_skewness(x_up[s0:])
    # an irregular rhythm of clear beats (atrial fibrillation): every beat found is a beat, and
    # an interval twice the median is no sign of a missed one
    found_iv = diff(span_beats.times)
    if bad is not None and len(found_iv):
        found_iv = found_iv[~_spans(bad, span_beats.times, fs)]
    irregular = beats_mod.irregular_but_clear(found_iv, span_beats, skew) and (
        quality.template_match(x_up, span_beats.index) >= quality.TEMPLATE_ACCEPT
    )
    iv = hrv.correct(bt.times, put_back=not irregular)
    if bad is not None:
        # an interval spanning left-out samples is not an interval between two seen beats
        seen = ~_spans(bad, iv.beat_times, fs)
        iv = replace(iv, clean=iv.clean & seen)
    else:
        seen = np.ones(len(iv.ibi_s), dtype=bool)
    in_span = (iv.beat_times[1:] >= duration - span) & seen
    ibi_span = iv.ibi_s[in_span]
    if irregular:
        # nothing in an irregular rhythm is a correction: its irregularity is no sign of noise
        regular = 1.0
    elif len(ibi_span) >= 2:
        ref = iv.reference[in_span]
        regular = float(mean(np.abs(ibi_span - ref) <= hrv.TOLERANCE * ref))
        regular *= 1.0 - (iv.missed + iv.extra) / max(1, len(iv.ibi_s))
    else:
        regular = 0.0
    morph = quality.morphology(x_up, bt.index[bt.index >= s0], fs, period)
    q = quality.index(periodicity, morph, regular)
    if bad is not None:
        q *= 1.0 - float(mean(bad))  # what was left out carried no pulse
    base = dict(
        beat_times=iv.beat_times,
        ibi_ms=iv.ibi_s * 1000.0,
        clean=iv.clean,
        flipped=flipped,
    )
    env = quality.envelope_cv(x_up[s0:], fs, None if bad is None else bad[s0:])
    motion = beats_mod.looks_like_motion(x_up, span_beats, env, skew)
    shapeless = beats_mod.looks_shapeless(span_beats, skew, morph)
    surges = beats_mod.looks_like_surges(span_beats, env, skew)
    # the intervals as corrected (a missed beat put back), none across left-out samples
    rhythmless = beats_mod.looks_rhythmless(ibi_span, skew)
    harm: float | None = None

    def harmonics() -> float:
        # on a band that keeps them: the pulse band's 5 Hz edge removes the 2nd and 3rd
        # harmonics of a fast pulse (≥ 150 bpm), which was then refused as a sine
        return quality.harmonic_ratio(filters.harmonic_band(x, fs)[s0:], fs, period)

    if skew < beats_mod.MIN_SLOPE_SKEW or motion:
        harm = harmonics()
    weak = quality.MIN_QUALITY <= q < quality.WEAK_QUALITY
    # Orphanidou's template matching, computed once for the two tests that use it
    match = (quality.template_match(x_up, span_beats.index)
             if harm is not None or weak else 1.0)
    # beats of one shape and size are a pulse even when they fall as fast as they rise
    steady = harm is not None and beats_mod.steady(span_beats, match, env, harm)
    # a weak window must at least pass the template matching
    unmatched = weak and match < quality.TEMPLATE_ACCEPT
    refused = (q < quality.MIN_QUALITY or len(ibi_span) < 2 or unmatched or shapeless
               or rhythmless or surges
               or (not steady and (skew < beats_mod.MIN_SLOPE_SKEW or motion)))
    sine = False
    if not refused and skew < beats_mod.MOTION_WEAK_SKEW:
        # a weak pulse shape must show harmonics: a wave without them is a sine, not a pulse
        # (a strongly skewed slope has them by its sharp upstroke); last, as it costs a spectrum
        harm = harmonics() if harm is None else harm
        sine = refused = harm < quality.SINE_HARMONICS
    if refused:
        why = f"signal quality {q:.2f} below {quality.MIN_QUALITY:g}"
        no_pulse = True  # not a weak pulse but none: the quality says so too
        if len(ibi_span) < 2:
            why = "fewer than three beats found"
            no_pulse = False
        elif skew < beats_mod.MIN_SLOPE_SKEW and not steady:
            why = (f"no pulse shape: the signal falls as fast as it rises (slope skewness "
                   f"{skew:.2f} < {beats_mod.MIN_SLOPE_SKEW:g}) and its beats are not steady "
                   "in shape and size; noise or motion, not a pulse")
        elif motion and not steady:
            why = ("no pulse: the waves swing in size and fall as fast as they rise "
                   "(motion, not a pulse)")
        elif shapeless:
            # never steady: its upstrokes vary more than steady beats may
            why = (f"no pulse shape: the signal falls nearly as fast as it rises (slope "
                   f"skewness {skew:.2f}), its beats are unlike each other (morphology "
                   f"{morph:.2f}) and change size; noise, not a pulse")
        elif unmatched:
            why = (f"signal quality {q:.2f} is weak and the beats do not match their template "
                   f"(mean correlation below {quality.TEMPLATE_ACCEPT:g})")
        elif rhythmless:
            why = (f"no pulse: the signal falls nearly as fast as it rises (slope skewness "
                   f"{skew:.2f}) and its beats keep no rhythm (intervals vary by "
                   f"{100 * beats_mod.interval_cv(ibi_span):.0f} %); motion, not a pulse")
        elif surges:
            why = (f"no pulse: the signal's strength surges and fades (second-by-second "
                   f"variation {env:.2f}) and its waves change size "
                   f"({beats_mod.upstroke_cv(span_beats):.2f}); motion, not a pulse")
        elif sine:
            why = (f"no pulse: the wave is a sine (harmonics {harm:.3f} of the fundamental's "
                   "power); a pulse wave's sharp upstroke has harmonics")
        else:
            no_pulse = False
        if no_pulse:
            q = min(q, quality.MIN_QUALITY * 0.99)
        return PulseAnalysis(None, None, None, None, q, "; ".join([*notes, why]), **base)

    clean_span = iv.clean[in_span] | iv.premature[in_span]
    if irregular:
        # every beat counts, as the ECG counts them (an extra wave found is still removed)
        hr = 60.0 / float(mean(ibi_span))
        notes.append("irregular rhythm (atrial fibrillation?): the rate counts every beat")
    elif np.count_nonzero(clean_span) >= max(2, len(ibi_span) // 2):
        hr = 60.0 / float(mean(ibi_span[clean_span]))
    else:
        hr = 60.0 / float(mean(ibi_span))
    if not beats_mod.MIN_BPM <= hr <= beats_mod.MAX_BPM:
        why = f"beats give {hr:.0f} bpm, outside {beats_mod.MIN_BPM:g}–{beats_mod.MAX_BPM:g} bpm"
        return PulseAnalysis(None, None, None, None, q, "; ".join([*notes, why]), **base)
    if iv.beat_times[-1] - iv.beat_times[0] >= HRV_MIN_SECONDS:
        rmssd, sdnn = hrv.rmssd_ms(iv), hrv.sdnn_ms(iv)
        if rmssd is None or sdnn is None:
            notes.append("too few clean intervals for HRV")
    else:
        rmssd = sdnn = None
        notes.append(f"HRV needs at least {HRV_MIN_SECONDS:g} s of beats")

    br, br_conf, why = None, 0.0, ""
    if breathing and duration >= respiration.MIN_SECONDS:
        x_slow = filters.slow_band(x, fs)
        if flipped:
            x_slow = -x_slow
        br, br_conf, why = respiration.breathing_rate(
            x_slow, bt.index, iv.beat_times, iv.ibi_s, fs, period
        )
    elif breathing:
        why = f"breathing needs a window of at least {respiration.MIN_SECONDS:g} s"
    if why:
        notes.append(why)
    return PulseAnalysis(
        hr, rmssd, sdnn, br, q, "; ".join(notes), breathing_confidence=br_conf,
        breathing_reason=why, **base
    )
