"""The pulse path's cheaper computations give what the plain ones give: peak picking as scipy's,
the driver's median as numpy's, one filter design for a rate that jitters in its last digits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import find_peaks as scipy_find_peaks
from scipy.signal import sosfiltfilt

from calmtunes.pulse import beats, filters, respiration
from calmtunes.pulse.stats import median


@pytest.mark.parametrize("seed", range(40))
def test_find_peaks_keeps_the_peaks_scipy_keeps(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 4000))
    x = rng.standard_normal(n)
    if seed % 2:
        x = np.round(x, 1)  # plateaus and equal heights: scipy's tie order must hold too
    for distance in (1, 2, 7, int(rng.integers(1, 120))):
        ours, _ = beats.find_peaks(x, distance)
        theirs, _ = scipy_find_peaks(x, distance=distance)
        np.testing.assert_array_equal(ours, theirs)


def test_find_peaks_on_a_pulse_slope():
    fs = 100.0
    t = np.arange(0, 60, 1 / fs)
    x = np.sin(2 * np.pi * 1.2 * t) + 0.4 * np.sin(2 * np.pi * 2.4 * t + 1.0)
    d = np.diff(x + 0.05 * np.random.default_rng(3).standard_normal(len(t)))
    for distance in (10, 37, 60):
        np.testing.assert_array_equal(beats.find_peaks(d, distance)[0],
                                      scipy_find_peaks(d, distance=distance)[0])


@pytest.mark.parametrize("n", [1, 2, 3, 16, 17, 32])
def test_driver_median_is_numpys(n):
    rng = np.random.default_rng(n)
    for v in (rng.integers(0, 262143, n).astype(float), rng.standard_normal(n)):
        assert median(v) == float(np.median(v))


def test_a_rate_jittering_in_its_last_digits_shares_one_design():
    x = np.random.default_rng(0).standard_normal(3000)
    ref = filters.pulse_band(x, 100.0)
    for fs in (100.0 + 1e-12, 100.0 - 1e-12, 100.02, 99.96):
        assert filters.design_rate(fs) == 100.0
        np.testing.assert_array_equal(filters.pulse_band(x, fs), ref)
        np.testing.assert_array_equal(filters.slow_band(x, fs), filters.slow_band(x, 100.0))


@pytest.mark.parametrize("fs", [125.0, 100.0, 60.0, 29.9, 25.0])
def test_rates_in_tenths_of_a_hertz_are_designed_exactly(fs):
    assert filters.design_rate(fs) == fs
    x = np.random.default_rng(1).standard_normal(int(20 * fs))
    exact = sosfiltfilt(filters.bandpass_sos(fs, *filters.PULSE_BAND_HZ)[0], x)
    np.testing.assert_allclose(filters.pulse_band(x, fs), exact, atol=1e-9)


@pytest.mark.parametrize("fs", [25.04, 29.97, 100.04, 117.35])
def test_the_rounded_design_stays_within_a_fraction_of_the_signal(fs):
    """Off a tenth of a hertz, the band's edges move by at most 0.2 %; the output by far less
    than the pulse's own size."""
    t = np.arange(0, 30, 1 / fs)
    rng = np.random.default_rng(2)
    x = np.sin(2 * np.pi * 1.1 * t) + 0.3 * np.sin(2 * np.pi * 0.25 * t)
    x += 0.1 * rng.standard_normal(len(t))
    exact = sosfiltfilt(filters.bandpass_sos(fs, *filters.PULSE_BAND_HZ)[0], x)
    got = filters.pulse_band(x, fs)
    assert np.max(np.abs(got - exact)) < 2e-3 * np.max(np.abs(exact))


@pytest.mark.parametrize("n", [5, 40, 241, 6043])
def test_signals_filtered_together_match_one_at_a_time(n):
    rows = np.random.default_rng(n).standard_normal((3, n)).cumsum(axis=1)
    for design in (filters.bandpass_sos(100.0, *filters.PULSE_BAND_HZ),
                   filters.highpass_sos(4.0, 0.1), filters.lowpass_sos(60.0, 5.0)):
        together = filters.filtfilt(design, rows)
        for row, got in zip(rows, together):
            one = filters.filtfilt(design, row)
            np.testing.assert_allclose(got, one, rtol=0, atol=1e-12 * np.abs(one).max())
            if n > 15:  # scipy's padding needs a longer signal
                np.testing.assert_allclose(got, sosfiltfilt(design[0], row), rtol=0,
                                           atol=1e-9 * np.abs(one).max())


def test_breaths_counted_together_are_counted_as_one_at_a_time():
    t = np.arange(0, 60, 1 / respiration.RESAMPLE_HZ)
    rng = np.random.default_rng(4)
    series = np.stack([np.sin(2 * np.pi * rate / 60 * t) + 0.3 * rng.standard_normal(len(t))
                       for rate in (9.0, 14.0, 21.0)])
    centred = series - series.mean(axis=1, keepdims=True)
    band = respiration._breath_band(centred, 0.6)
    for row, s in enumerate(series):
        alone = respiration.count_breaths(s, 0.6)
        assert alone is not None
        assert respiration._count(band[row]) == pytest.approx(alone, abs=1e-9)
