"""The pulse path's small-array statistics give exactly numpy's results (the analysis's figures
must not move by a bit when they replace ``np.median``, ``np.mean``, ``np.diff`` and
``np.percentile``)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from calmtunes.pulse.stats import diff, mean, median, percentile


def _arrays(seed: int):
    rng = np.random.default_rng(seed)
    for n in (1, 2, 3, 4, 7, 16, 17, 100, 255, 256, 257, 1001, 7500):  # sorted, partitioned
        yield rng.standard_normal(n)
        yield rng.integers(0, 262143, n)  # sensor counts
        yield rng.integers(-5, 6, n).astype(np.int8)
        yield rng.random(n) < 0.3  # masks
        yield (rng.standard_normal(n) * 1e6).astype(np.float32)
        yield np.round(rng.standard_normal(n), 1)  # ties


@pytest.mark.parametrize("seed", range(6))
def test_the_figures_are_numpys_to_the_bit(seed):
    for a in _arrays(seed):
        assert median(a) == float(np.median(a))
        assert mean(a) == float(np.mean(a))
        np.testing.assert_array_equal(diff(a), np.diff(a))
        assert diff(a).dtype == np.diff(a).dtype
        if a.dtype.kind != "b" and a.dtype != np.float32:  # percentile: as doubles
            for q in (0, 10, 25, 50, 62.5, 75, 90, 99.9, 100):
                assert percentile(a, q) == float(np.percentile(a, q)), (a, q)


def test_lists_and_2d_are_taken_flat_like_numpy():
    v = [[3.0, 1.0], [2.0, 8.0]]
    assert median(v) == float(np.median(v)) == 2.5
    assert mean(v) == float(np.mean(v))
    assert percentile(v, 75) == float(np.percentile(v, 75))


def test_nothing_or_nan_gives_nan_as_numpy_does():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for empty in (np.zeros(0), []):
            assert math.isnan(median(empty)) and math.isnan(float(np.median(empty)))
            assert math.isnan(mean(empty)) and math.isnan(float(np.mean(empty)))
        with_nan = np.array([1.0, np.nan, 3.0, 0.5])
        assert math.isnan(median(with_nan)) and math.isnan(float(np.median(with_nan)))
        long = np.random.default_rng(0).standard_normal(7500)  # a median that partitions
        for at in (0, 3749, 3750, 7499):
            one = long.copy()
            one[at] = np.nan
            assert math.isnan(median(one)) and math.isnan(float(np.median(one)))
        assert math.isnan(percentile(with_nan, 75))
        assert math.isnan(float(np.percentile(with_nan, 75)))
