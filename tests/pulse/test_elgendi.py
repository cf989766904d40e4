"""Elgendi's second-opinion detector: its vectorised parts against their plain definitions."""

import numpy as np
import pytest

from calmtunes.pulse.elgendi import _moving_average, block_maxima, systolic_peaks


def moving_average_by_definition(y, n):
    size = len(y)
    return np.array([y[max(0, i - n // 2):min(size, i + n - n // 2)].mean() for i in range(size)])


@pytest.mark.parametrize("size", [1, 2, 5, 13, 14, 15, 100, 1000])
@pytest.mark.parametrize("n", [1, 2, 3, 14, 83])
def test_moving_average_is_the_centred_mean_cut_at_the_edges(size, n):
    y = np.random.default_rng(size * 100 + n).standard_normal(size)
    assert np.allclose(_moving_average(y, n), moving_average_by_definition(y, n),
                       rtol=1e-12, atol=1e-12)


def test_block_maxima_take_the_first_maximum_of_each_block():
    rng = np.random.default_rng(7)
    for _ in range(200):
        y = np.round(rng.standard_normal(int(rng.integers(1, 400))) * 2) / 2  # many ties
        cuts = np.unique(rng.integers(0, len(y) + 1, int(rng.integers(0, 12))))
        starts, ends = cuts[:-1:2], cuts[1::2]
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        if len(y) > 3 and rng.random() < 0.2:
            y[rng.integers(0, len(y), 2)] = [np.nan, np.inf][int(rng.integers(0, 2))]
        want = [a + int(np.argmax(y[a:b])) for a, b in zip(starts, ends)]
        got = block_maxima(y, starts, ends)
        assert got.dtype == np.int64 and got.tolist() == want


def test_systolic_peaks_of_a_clean_pulse_are_one_a_beat():
    fs, hr = 125.0, 72.0
    t = np.arange(int(20 * fs)) / fs
    x = np.sin(2 * np.pi * hr / 60 * t) + 0.3 * np.sin(4 * np.pi * hr / 60 * t + 1.0)
    peaks = systolic_peaks(x, fs)
    assert len(peaks) in (23, 24, 25)
    assert np.median(np.diff(peaks)) / fs == pytest.approx(60 / hr, abs=0.02)
    assert len(systolic_peaks(np.zeros(1000), fs)) == 0
