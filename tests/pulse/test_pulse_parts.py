"""The pieces of the pulse analysis: interval correction, polarity, period, SpO2, filters."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import sosfiltfilt

from calmtunes.pulse import beats, filters, hrv, spo2


def regular(n=30, ibi=0.8, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(ibi + rng.normal(0, 0.02, n))


def test_missed_beat_is_put_back():
    t = regular()
    iv = hrv.correct(np.delete(t, 10))
    assert iv.missed == 1 and iv.extra == 0
    assert len(iv.beat_times) == len(t)
    assert hrv.heart_rate(iv) == pytest.approx(60 / np.mean(np.diff(t)), abs=0.5)
    assert not iv.clean[9] and not iv.clean[10]  # the interpolated beat is kept out of HRV


def test_extra_beat_is_removed():
    t = regular()
    iv = hrv.correct(np.sort(np.append(t, t[12] + 0.3)))
    assert iv.extra == 1 and iv.missed == 0
    np.testing.assert_allclose(iv.beat_times, t)


def test_ectopic_beat_is_left_out_of_hrv_only():
    t = regular(seed=1)
    t[15] -= 0.25  # premature beat, compensatory pause after it
    iv = hrv.correct(t)
    assert iv.ectopic >= 1 and iv.missed == 0 and iv.extra == 0
    assert len(iv.beat_times) == len(t)
    clean_rmssd = hrv.rmssd_ms(hrv.correct(regular(seed=1)))
    assert hrv.rmssd_ms(iv) == pytest.approx(clean_rmssd, rel=0.3)


def test_premature_beat_and_pause_count_for_the_rate_not_for_hrv():
    t = regular(seed=2)
    t[15] -= 0.3  # premature beat: 0.5 s after the last one, then a 1.1 s pause
    iv = hrv.correct(t)
    assert iv.premature[14] and iv.premature[15]
    assert not iv.clean[14] and not iv.clean[15]
    assert np.count_nonzero(iv.premature) == 2
    # both intervals are real beats: with them, the mean interval is the true one
    ok = iv.clean | iv.premature
    assert 60 / np.mean(iv.ibi_s[ok]) == pytest.approx(60 / np.mean(np.diff(t)), abs=0.3)


def test_double_detections_in_noise_are_not_premature_beats():
    # intervals from a noisy camera window (Welltory subject_19): a short-long pair after a
    # run of double detections is not a premature beat within a regular rhythm
    ibi = [0.557, 0.557, 0.659, 0.365, 0.464, 0.786, 0.865, 0.857, 0.764, 0.778, 1.03, 0.512]
    t = np.cumsum([0.0, *ibi, 0.745])
    assert not hrv.correct(t).premature.any()


def test_rmssd_and_sdnn_definitions():
    t = np.cumsum([0.8, 0.82, 0.78, 0.81, 0.79, 0.8, 0.83, 0.77, 0.8, 0.8])
    iv = hrv.correct(t)
    ibi = np.diff(t) * 1000
    assert hrv.rmssd_ms(iv) == pytest.approx(np.sqrt(np.mean(np.diff(ibi) ** 2)))
    assert hrv.sdnn_ms(iv) == pytest.approx(np.std(ibi, ddof=1))


def test_orient_turns_falling_pulses_upright():
    t = np.arange(1000) / 100
    # fast rise, slow fall: a sawtooth-like pulse
    up = ((t * 1.2) % 1.0) ** 0.2 * (1 - (t * 1.2) % 1.0)
    _, flipped = beats.orient(up - up.mean())
    assert not flipped
    _, flipped = beats.orient(-(up - up.mean()))
    assert flipped


def test_dominant_period_prefers_beats_over_alternating_amplitude():
    fs, period = 100.0, 0.7
    t = np.arange(int(12 * fs)) / fs
    k = np.floor(t / period)
    amp = np.where(k % 2 == 0, 1.0, 0.6)  # strong, weak, strong, weak …
    x = amp * np.exp(-0.5 * (((t % period) - 0.15) / 0.06) ** 2)
    p, _ = filters.dominant_period(filters.pulse_band(x, fs), fs, 0.27, 2.0)
    assert p == pytest.approx(period, rel=0.05)


def test_dominant_period_ignores_dicrotic_hump():
    fs, period = 100.0, 1.0
    t = np.arange(int(12 * fs)) / fs
    ph = t % period
    x = np.exp(-0.5 * ((ph - 0.15) / 0.07) ** 2) + 0.5 * np.exp(-0.5 * ((ph - 0.55) / 0.1) ** 2)
    p, _ = filters.dominant_period(filters.pulse_band(x, fs), fs, 0.27, 2.0)
    assert p == pytest.approx(period, rel=0.05)


def test_filtfilt_matches_scipy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(777).cumsum()
    design = filters.bandpass_sos(125.0, 0.5, 5.0)
    np.testing.assert_allclose(filters.filtfilt(design, x), sosfiltfilt(design[0], x), atol=1e-9)


def test_spo2_calibration_and_range():
    assert spo2.spo2_percent(0.5) == pytest.approx(-45.060 * 0.25 + 30.354 * 0.5 + 94.845)
    assert spo2.spo2_percent(0.1) is None and spo2.spo2_percent(1.5) is None
    assert spo2.spo2_percent(None) is None


def test_ratio_of_ratios_from_raw_counts():
    fs = 100.0
    t = np.arange(1000) / fs
    pulse = np.sin(2 * np.pi * 1.2 * t)
    ir = 100_000 * (1 - 0.010 * pulse)
    red = 80_000 * (1 - 0.005 * pulse)
    assert spo2.ratio_of_ratios(red, ir, fs) == pytest.approx(0.5, rel=0.02)
    assert spo2.ratio_of_ratios(red[:50], ir[:50], fs) is None


def _train(fs, ibis, second=0.0):
    """Upright band-passed pulses at the given intervals; ``second`` adds a mid-beat wave."""
    t = np.arange(int(sum(ibis) * fs) + int(fs)) / fs
    x = np.zeros_like(t)
    b = 0.3
    for ibi in ibis:
        x += np.exp(-0.5 * ((t - b) / 0.06) ** 2)
        x += second * np.exp(-0.5 * ((t - b - ibi / 2) / 0.06) ** 2)
        b += ibi
    return filters.pulse_band(x, fs)


def test_strong_mid_beat_wave_is_not_a_beat():
    fs = 100.0
    x = _train(fs, [0.6] * 16, second=0.4)  # 100 bpm with a big reflected wave in each beat
    period, _ = filters.dominant_period(x, fs, 0.27, 2.0)
    found = beats.detect(x, fs, period)
    assert 60 / np.median(np.diff(found.times)) == pytest.approx(100, abs=2)


def test_irregular_rhythm_keeps_every_beat():
    fs = 100.0
    rng = np.random.default_rng(4)
    ibis = list(rng.uniform(0.45, 1.0, 14))  # atrial-fibrillation-like
    x = _train(fs, ibis)
    period, _ = filters.dominant_period(x, fs, 0.27, 2.0)
    found = beats.detect(x, fs, period)
    assert len(found.times) == len(ibis)  # one pulse per interval drawn
    np.testing.assert_allclose(np.diff(found.times), ibis[:-1], atol=0.02)


@pytest.mark.parametrize("rate", [8.0, 15.0, 24.0])
def test_breaths_are_counted_in_the_time_domain(rate):
    from calmtunes.pulse import respiration

    rng = np.random.default_rng(3)
    t = np.arange(0, 60, 1 / respiration.RESAMPLE_HZ)
    # irregular breaths: each cycle 10 % longer or shorter, plus noise and a slow drift
    phase = np.cumsum(rate / 60 / respiration.RESAMPLE_HZ * rng.uniform(0.9, 1.1, len(t)))
    s = np.sin(2 * np.pi * phase) + 0.15 * rng.normal(size=len(t)) + 0.5 * t / 60
    got = respiration.count_breaths(s, top_hz=0.7)
    assert got == pytest.approx(phase[-1], rel=0.1)  # cycles in 60 s = breaths/min


def test_breath_count_needs_breaths():
    from calmtunes.pulse import respiration

    assert respiration.count_breaths(np.zeros(240), top_hz=0.7) is None
    assert respiration.count_breaths(np.ones(8), top_hz=0.7) is None


def test_swings_against_the_quietest_stretches_marks_motion_filling_most_of_the_window():
    # 60 s: a steady pulse for the first 20 s, then 40 s swinging five times as far. The median
    # stretch is motion, so the plain test marks nothing; the quietest 10 s still hold the pulse.
    from calmtunes.pulse import quality

    fs = 100.0
    t = np.arange(int(60 * fs)) / fs
    x = np.sin(2 * np.pi * 1.2 * t) * np.where(t < 20, 1.0, 5.0)
    assert not quality.swings(x, fs).any()
    bad = quality.swings(x, fs, quiet_s=10.0)
    assert not bad[t < 20].any() and bad[t >= 20].all()
    # a window of steady pulse has nothing to mark either way
    steady = np.sin(2 * np.pi * 1.2 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / 5))
    assert not quality.swings(steady, fs, quiet_s=10.0).any()
