"""The true-peak limiter: hot audio stays under −1 dBTP, quiet audio passes untouched."""

import numpy as np
import pytest

from calmtunes.music.analysis import find_clicks
from calmtunes.music.limiter import TruePeakLimiter
from calmtunes.music.loudness import true_peak_dbtp

FS = 48000


def _run(lim, x, block=960):
    return np.concatenate([lim.process(x[i:i + block]) for i in range(0, len(x), block)])


def _hot_signal(seconds=3.0):
    rng = np.random.default_rng(3)
    t = np.arange(int(FS * seconds)) / FS
    swell = 0.3 + 1.6 * (np.sin(2 * np.pi * 0.7 * t) > 0.6)  # sudden +15 dB bursts
    x = np.stack([np.sin(2 * np.pi * 440 * t) * swell, 0.9 * np.sin(2 * np.pi * 3000 * t + 1)], 1)
    x += 0.3 * rng.standard_normal(x.shape) * (t > 2)[:, None]
    return x


def test_hot_signal_is_held_under_the_ceiling():
    lim = TruePeakLimiter(FS, -1.0)
    y = _run(lim, _hot_signal())
    assert true_peak_dbtp(y) <= -1.0
    assert lim.clipped == 0  # the gain did the work, not the safety clip


@pytest.mark.parametrize("block", [7, 37, 960, 4096])
def test_any_block_size_gives_the_same_result(block):
    x = _hot_signal(1.0)
    ref = _run(TruePeakLimiter(FS), x, 960)
    assert np.allclose(_run(TruePeakLimiter(FS), x, block), ref, atol=1e-9)


def test_quiet_signal_passes_unchanged_after_the_delay():
    t = np.arange(FS) / FS
    x = np.repeat((0.1 * np.sin(2 * np.pi * 220 * t))[:, None], 2, 1)
    lim = TruePeakLimiter(FS)
    y = _run(lim, x)
    d = lim.delay
    assert np.array_equal(y[d:], x[:-d])
    assert np.all(y[:d] == 0)


def test_limiting_does_not_click():
    # a tone that swells +20 dB in 20 ms, far over the ceiling: the gain must glide, not step
    t = np.arange(2 * FS) / FS
    rise = np.clip((t - 1.0) / 0.02, 0.0, 1.0)
    amp = 0.2 + 1.8 * (0.5 - 0.5 * np.cos(np.pi * rise))
    x = np.repeat((amp * np.sin(2 * np.pi * 100 * t))[:, None], 2, 1)
    assert len(find_clicks(x, FS, floor_db=-60)) == 0  # the input is smooth
    lim = TruePeakLimiter(FS)
    y = _run(lim, x)
    assert lim.reduction_db > 6.0  # 2.0 peak held at 0.87: about 7 dB of reduction
    assert len(find_clicks(y, FS, floor_db=-60)) == 0


def test_bad_ceiling_is_refused():
    with pytest.raises(ValueError, match="ceiling"):
        TruePeakLimiter(FS, ceiling_dbtp=3.0)
