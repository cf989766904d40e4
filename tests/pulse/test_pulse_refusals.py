"""Windows with and without a pulse: steady symmetric pulses are answered, motion refused."""

from __future__ import annotations

import numpy as np
import pytest
from ppg_synth import make_ppg

from calmtunes.pulse import analyze, beats, filters, quality


@pytest.mark.parametrize("hr", [85.0, 100.0, 120.0])
@pytest.mark.parametrize("dicrotic", [0.3, 0.5])
def test_a_symmetric_steady_pulse_is_a_pulse(hr, dicrotic):
    # a heavily smoothed sensor output whose second wave sits half a beat after the first
    # (HeartPy's bundled data3 looks like this): it falls exactly as fast as it rises, so the
    # slope is not skewed, but every beat has one shape and one size
    ppg = make_ppg(seconds=10, fs=100, hr=hr, dicrotic=dicrotic,
                   dicrotic_delay_s=0.5 * 60.0 / hr, fall=1.0, seed=int(hr), noise=0.01)
    up = beats.orient(ppg.x - ppg.x.mean())[0]
    assert abs(beats.slope_skewness(up)) < beats.MIN_SLOPE_SKEW  # no pulse shape to go by
    r = analyze(ppg.x, ppg.fs)
    assert r.hr_bpm == pytest.approx(ppg.hr_bpm, abs=1.0), r.reason


def _train(fs: float, seconds: float, rate_hz: float, envelope: np.ndarray) -> np.ndarray:
    """Smooth waves rising about 1.6 times as fast as they fall (more than motion bursts'
    1.5, less than a pulse's ~2) under a given envelope."""
    th = 2 * np.pi * rate_hz * np.arange(int(seconds * fs)) / fs
    return envelope * (np.sin(th) + 0.08 * np.sin(2 * th))


def test_waves_that_come_and_go_are_motion():
    fs = 100.0
    t = np.arange(int(10 * fs)) / fs
    # bursts a second or two long; within each the waves keep their size
    env = sum(np.exp(-0.5 * ((t - c) / 0.6) ** 2) for c in (1.5, 5.0, 8.5))
    x = _train(fs, 10, 1.3, env)
    found = beats.detect(x, fs, 1 / 1.3)
    ev, skew = quality.envelope_cv(x, fs), beats.slope_skewness(x)
    assert ev > beats.MOTION_ENVELOPE_CV and skew < beats.MOTION_WEAK_SKEW
    assert beats.looks_like_motion(x, found, ev, skew)
    # the same waves at a steady strength: not motion by this test
    steady = _train(fs, 10, 1.3, np.ones_like(t))
    assert not beats.looks_like_motion(steady, beats.detect(steady, fs, 1 / 1.3),
                                       quality.envelope_cv(steady, fs), skew)


def test_envelope_leaves_out_what_was_left_out():
    fs = 100.0
    x = np.sin(2 * np.pi * 1.2 * np.arange(1000) / fs)
    bad = np.zeros(1000, dtype=bool)
    x_gap = x.copy()
    x_gap[300:500] = 0.0  # bridged by a straight line: no signal there
    bad[300:500] = True
    assert quality.envelope_cv(x_gap, fs) > 0.4
    assert quality.envelope_cv(x_gap, fs, bad) < 0.05


def band_noise(seed: int) -> np.ndarray:
    """10 s at 100 Hz of Gaussian noise band-limited to 0.7–3 Hz (the pulse band), edges cut."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(4, [0.7, 3.0], btype="bandpass", fs=100, output="sos")
    return sosfiltfilt(sos, np.random.default_rng(seed).standard_normal(1400))[200:-200]


@pytest.mark.parametrize("seed", [851, 934, 1162, 1183])
def test_weak_windows_must_match_their_template(seed):
    # band-limited noise (0.7–3 Hz) that passes the quality floor and the shape tests by
    # chance: its "beats" do not match their mean beat as a pulse's do (Orphanidou)
    r = analyze(band_noise(seed), 100)
    assert r.hr_bpm is None
    assert r.reason


def test_shapeless_needs_all_three_signs():
    t = np.arange(8.0)
    swinging = beats.Beats(t, (t * 100).astype(int), np.array([1, .4, 1.2, .5, 1.1, .3, 1, .6]))
    assert beats.upstroke_cv(swinging) > beats.SHAPELESS_CV
    assert beats.looks_shapeless(swinging, skew=0.3, morphology=0.9)
    # any one sign of a pulse is enough to keep it: a skewed slope, alike beats, one size
    assert not beats.looks_shapeless(swinging, skew=0.5, morphology=0.9)
    assert not beats.looks_shapeless(swinging, skew=0.3, morphology=0.98)
    even = beats.Beats(t, (t * 100).astype(int), np.array([1, .9, 1.1, 1, .95, 1.05, 1, .9]))
    assert not beats.looks_shapeless(even, skew=0.3, morphology=0.9)


@pytest.mark.parametrize("seed", [158, 771, 979, 1518])
def test_noise_without_a_pulse_shape_is_refused(seed):
    # band-limited noise (0.7–3 Hz) whose peaks fall evenly enough to pass the quality floor,
    # the slope test (skewness just above 0.2) and the template test; its "beats" are unlike
    # each other and change size, which a pulse's do not both do under such a weak shape
    r = analyze(band_noise(seed), 100)
    assert r.hr_bpm is None
    assert r.reason.startswith("no pulse")  # shapeless, or swinging like motion


@pytest.mark.parametrize("hr", [70.0, 90.0, 110.0])
def test_a_weakly_shaped_pulse_swinging_with_breath_is_still_a_pulse(hr):
    # a smoothed pulse with its second wave half a beat later (slope skewness 0.3, below
    # SHAPELESS_SKEW) whose size swings with deep breaths (upstrokes varying by 0.4): two of
    # the three signs of noise, but its beats keep one shape
    ppg = make_ppg(seconds=10, fs=100, hr=hr, br=18.0, fall=1.4, dicrotic=0.5,
                   dicrotic_delay_s=0.5 * 60.0 / hr, baseline=0.0, noise=0.01, seed=int(hr))
    x = ppg.x * (1 + 0.45 * np.sin(2 * np.pi * 0.3 * np.arange(len(ppg.x)) / ppg.fs))
    up = beats.orient(filters.pulse_band(x - x.mean(), ppg.fs))[0]  # as analyze() sees it
    assert beats.MIN_SLOPE_SKEW < beats.slope_skewness(up) < beats.SHAPELESS_SKEW
    r = analyze(x, ppg.fs)
    assert r.hr_bpm == pytest.approx(ppg.hr_bpm, abs=1.0), r.reason


@pytest.mark.parametrize("rail", ["top", "bottom"])
def test_a_clipping_window_names_its_rail_and_the_right_cure(rail):
    # At the bottom rail the sensor needs more light, not less: the advice once always said
    # "reduce LED current".
    x = make_ppg(seconds=10, fs=100, hr=70.0, seed=1).x
    x = np.minimum(x, np.percentile(x, 50)) if rail == "top" else np.maximum(
        x, np.percentile(x, 50))
    r = analyze(x, 100)
    assert r.hr_bpm is None
    assert f"clips at its {rail} rail" in r.reason, r.reason
    assert ("reduce the LED current" if rail == "top" else "raise the LED current") in r.reason
