"""The BS.1770 meter against pyloudnorm and the standard's own reference points."""

import math

import numpy as np
import pytest

from calmtunes.music.loudness import (
    LoudnessMeter,
    integrated_loudness,
    k_weighting_sos,
    true_peak_dbtp,
)

pyloudnorm = pytest.importorskip("pyloudnorm")

FS = 48000


def _signals():
    rng = np.random.default_rng(7)
    t = np.arange(FS * 6) / FS
    from scipy.signal import lfilter

    pink = lfilter([0.049922035, -0.095993537, 0.050612699, -0.004408786],
                   [1, -2.494956002, 2.017265875, -0.522189400],
                   rng.standard_normal((len(t), 2)), axis=0)
    return {
        "sine 997 Hz": np.repeat(0.1 * np.sin(2 * np.pi * 997 * t)[:, None], 2, 1),
        "white noise": 0.05 * rng.standard_normal((len(t), 2)),
        "pink noise": 0.2 * pink,
        "low tones": 0.3 * np.stack([np.sin(2 * np.pi * 60 * t), np.sin(2 * np.pi * 100 * t)], 1),
        "high tone, one side": np.stack([0.2 * np.sin(2 * np.pi * 6000 * t), 0 * t], 1),
        "bursts over quiet": 0.2 * rng.standard_normal((len(t), 2))
        * (np.sin(2 * np.pi * 0.3 * t)[:, None] > 0.5) + 0.001 * rng.standard_normal((len(t), 2)),
    }


@pytest.mark.parametrize("name", list(_signals()))
def test_meter_agrees_with_pyloudnorm(name):
    x = _signals()[name]
    ours = integrated_loudness(x, FS)
    theirs = pyloudnorm.Meter(FS).integrated_loudness(x)
    assert abs(ours - theirs) <= 0.5, f"{name}: ours {ours:.2f}, pyloudnorm {theirs:.2f}"


def test_full_scale_sine_reads_minus_3_per_channel():
    # BS.1770: a 0 dBFS 997 Hz sine in one channel reads −3.01 LUFS
    t = np.arange(FS * 3) / FS
    x = np.sin(2 * np.pi * 997 * t)
    assert integrated_loudness(x, FS) == pytest.approx(-3.01, abs=0.05)


def test_streaming_in_odd_blocks_equals_whole():
    x = _signals()["pink noise"]
    meter = LoudnessMeter(FS)
    i = 0
    for size in (1, 17, 960, 4801, 333) * 200:
        if i >= len(x):
            break
        meter.push(x[i:i + size])
        i += size
    meter.push(x[i:])
    assert meter.integrated == pytest.approx(integrated_loudness(x, FS), abs=1e-6)


def test_momentary_and_short_term_follow_a_level_change():
    t = np.arange(FS * 4) / FS
    x = np.repeat((0.1 * np.sin(2 * np.pi * 997 * t))[:, None], 2, 1)
    meter = LoudnessMeter(FS)
    meter.push(x)
    assert meter.momentary == pytest.approx(-20.0, abs=0.1)
    assert meter.short_term == pytest.approx(-20.0, abs=0.1)
    meter.push(x[: FS // 2] * 0.1)  # 20 dB quieter for 0.5 s
    assert meter.momentary == pytest.approx(-40.0, abs=0.2)
    assert -25.0 < meter.short_term < -20.5


def test_silence_is_minus_infinity_and_gated_out():
    meter = LoudnessMeter(FS)
    meter.push(np.zeros((FS, 2)))
    assert meter.integrated == -math.inf


def test_true_peak_finds_the_peak_between_samples():
    # fs/4 sine at 45°: every sample is at 0.707 of the peak; the true peak is 0 dBFS
    n = np.arange(4800)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4)
    assert 20 * np.log10(np.abs(x).max()) == pytest.approx(-3.01, abs=0.01)
    assert true_peak_dbtp(x) == pytest.approx(0.0, abs=0.3)


def test_meter_refuses_wrong_channel_count():
    with pytest.raises(ValueError, match="channels"):
        LoudnessMeter(FS, 2).push(np.zeros((100, 3)))


@pytest.mark.parametrize("fs", [14700.0, 16000.0, 44100.0, 96000.0])
def test_k_weighting_reads_the_same_at_any_rate(fs):
    # Where the bilinear transform's warping is nothing (100–500 Hz, far under Nyquist) the K
    # filter's gain at another rate must be its gain at 48 kHz: the normaliser meters at 16 kHz
    # (14.7 kHz for 44.1 kHz output), and the standard's high-pass numerator (1, −2, 1, not
    # divided by a0) made it read 0.09 dB high there.
    from calmtunes.iir import sos_response

    def gain_db(rate, f):
        return 20 * np.log10(abs(sos_response(k_weighting_sos(rate), [f], rate)[0]))

    for f in (100.0, 200.0, 500.0):
        assert abs(gain_db(fs, f) - gain_db(48000.0, f)) < 0.01, f
