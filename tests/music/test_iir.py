"""calmtunes.iir and the other scipy-free helpers agree with scipy (the reference, dev only)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal
from scipy.fft import next_fast_len as scipy_next_fast_len

from calmtunes import iir
from calmtunes.music.dsp import SosFilter
from calmtunes.music.loudness import _TP_FIR, oversampled_peaks
from calmtunes.pulse.beats import find_peaks
from calmtunes.pulse.filters import filtfilt, highpass_sos, next_fast_len, pulse_band

DESIGNS = [
    (2, [0.5, 5.0], "bandpass", 125.0),
    (2, [0.5, 5.0], "bandpass", 25.0),
    (2, 5.0, "lowpass", 100.0),
    (3, 10.0, "lowpass", 100.0),
    (2, 0.1, "highpass", 4.0),
    (2, 30.0, "highpass", 48000.0),
    (4, [80.0, 500.0], "bandpass", 48000.0),
    (4, [1500.0, 5000.0], "bandpass", 44100.0),
    (2, [180.0, 4500.0], "bandpass", 48000.0),
]


def response(sos, fs):
    return np.abs(signal.sosfreqz(sos, worN=4096, fs=fs)[1])


@pytest.mark.parametrize(("order", "freqs", "btype", "fs"), DESIGNS)
def test_butterworth_matches_scipy(order, freqs, btype, fs):
    ours = iir.butter_sos(order, freqs, btype, fs)
    ref = signal.butter(order, freqs, btype, fs=fs, output="sos")
    np.testing.assert_allclose(response(ours, fs), response(ref, fs), atol=1e-9)
    x = np.random.default_rng(0).standard_normal(3000)
    y, _ = iir.sosfilt(ours, x)
    np.testing.assert_allclose(y, signal.sosfilt(ref, x), atol=1e-9 * np.abs(y).max())


@pytest.mark.parametrize("fs", [44100.0, 48000.0, 144000.0])
def test_elliptic_matches_scipy(fs):
    ours = iir.ellip_lowpass_sos(6500.0, fs)
    ref = signal.ellip(6, 0.1, 75.0, 6500.0, fs=fs, output="sos")
    np.testing.assert_allclose(response(ours, fs), response(ref, fs), atol=1e-9)


def test_stored_elliptic_prototype_is_scipys():
    z, p, k = signal.ellipap(6, 0.1, 75.0)
    oz, op, ok = iir.ELLIP_6_01_75
    np.testing.assert_allclose(sorted(oz, key=lambda c: (c.real, c.imag)),
                               sorted(z, key=lambda c: (c.real, c.imag)), rtol=1e-14)
    np.testing.assert_allclose(sorted(op, key=lambda c: (c.real, c.imag)),
                               sorted(p, key=lambda c: (c.real, c.imag)), rtol=1e-14)
    assert ok == pytest.approx(k, rel=1e-14)


@pytest.mark.parametrize("sizes", [[960] * 20, [1, 2, 31, 32, 33, 64, 2047, 5000, 7, 960]])
def test_streaming_blocks_equal_one_pass(sizes):
    """State carries across blocks of any size (shorter and longer than a chunk)."""
    sos = signal.butter(2, 30.0, "highpass", fs=48000, output="sos")
    x = np.random.default_rng(1).standard_normal((2, sum(sizes)))
    f = SosFilter(sos, 2)
    out, pos = [], 0
    for n in sizes:
        out.append(f(x[:, pos:pos + n]))
        pos += n
    ref, zf = signal.sosfilt(sos, x, axis=1, zi=np.zeros((1, 2, 2)))
    np.testing.assert_allclose(np.concatenate(out, axis=1), ref, atol=1e-10)
    np.testing.assert_allclose(f.zi, np.moveaxis(zf, 1, 0), atol=1e-10)


def test_blocks_of_many_lengths_keep_one_chunk_state_matrix():
    """A filter fed blocks of every length (a pulse window's, a top-up's) keeps one pair of
    chunk-state matrices, sliced for shorter blocks, in any order of lengths: its memory stays
    put (one pair per length grew to megabytes), and each block is filtered exactly as by a
    filter that saw only that length."""
    sos = iir.butter_sos(2, [0.5, 5.0], "bandpass", 100.0)
    x = np.random.default_rng(4).standard_normal((2, 48 * 32))
    zi = np.random.default_rng(5).standard_normal((2, 4))
    shared = iir.BlockIIR(sos, 48)
    for k in (9, 32, 3, 17, 31, 1, 20, 5):
        y, s = shared.run(x[:, :48 * k], zi)
        fresh_y, fresh_s = iir.BlockIIR(sos, 48).run(x[:, :48 * k], zi)
        np.testing.assert_array_equal(y, fresh_y)
        np.testing.assert_array_equal(s, fresh_s)
        zi_scipy = zi.reshape(2, 2, 2).transpose(1, 0, 2)  # (section, channel, 2)
        ref, zf = signal.sosfilt(sos, x[:, :48 * k], axis=1, zi=zi_scipy)
        np.testing.assert_allclose(y, ref, atol=1e-9)
        np.testing.assert_allclose(s.reshape(2, 2, 2).transpose(1, 0, 2), zf, atol=1e-9)
    assert list(shared._direct_cache) == [1]
    assert shared._direct_cache[1][0].shape == (32 * 4, 32 * 4)


def test_steady_state_is_sosfilt_zi():
    for order, freqs, btype, fs in DESIGNS:
        sos = iir.butter_sos(order, freqs, btype, fs)
        np.testing.assert_allclose(iir.block_iir(sos).steady_state(),
                                   signal.sosfilt_zi(sos).ravel(), atol=1e-9)


def test_zero_phase_filter_matches_sosfiltfilt():
    x = np.cumsum(np.random.default_rng(2).standard_normal(1250))
    ref = signal.sosfiltfilt(signal.butter(2, [0.5, 5.0], "bandpass", fs=125.0, output="sos"), x)
    np.testing.assert_allclose(pulse_band(x, 125.0), ref, atol=1e-9 * np.abs(ref).max())
    ref = signal.sosfiltfilt(signal.butter(2, 0.1, "highpass", fs=4.0, output="sos"), x)
    np.testing.assert_allclose(filtfilt(highpass_sos(4.0, 0.1), x), ref,
                               atol=1e-9 * np.abs(ref).max())


def test_bad_filter_edges_are_refused_by_name():
    with pytest.raises(ValueError, match="Nyquist"):
        iir.butter_sos(2, 30000.0, "lowpass", 48000.0)
    with pytest.raises(ValueError, match="bandpass"):
        iir.butter_sos(2, 30.0, "bandstop", 48000.0)


def test_find_peaks_matches_scipy():
    rng = np.random.default_rng(3)
    for t in range(600):
        x = rng.standard_normal(int(rng.integers(3, 300)))
        if t % 3 == 0:
            x = np.round(x)  # flat tops and equal heights
        if t % 5 == 0:
            x = np.cumsum(x)
        d = int(rng.integers(1, 40))
        np.testing.assert_array_equal(find_peaks(x, d)[0], signal.find_peaks(x, distance=d)[0])


def test_next_fast_len_matches_scipy():
    for n in range(1, 3000):
        assert next_fast_len(n) == scipy_next_fast_len(n, real=True)


def test_true_peak_interpolator_matches_scipy():
    np.testing.assert_allclose(_TP_FIR, 4 * signal.firwin(48, 0.9 / 4, window=("kaiser", 8.0)),
                               atol=1e-15)
    rng = np.random.default_rng(4)
    x, hist = rng.standard_normal((700, 2)), rng.standard_normal((12, 2))
    joined = np.concatenate([hist, x])
    up = signal.upfirdn(_TP_FIR, joined, up=4, axis=0)[48:48 + 4 * len(x)]
    ref = np.abs(up).reshape(len(x), 8).max(axis=1)
    np.testing.assert_allclose(oversampled_peaks(x, hist)[0], ref, atol=1e-12)


@pytest.mark.parametrize("frames", [[1600, 1600, 1600], [5, 16, 17, 1000, 3]])
def test_upsampling_skips_the_zeros_but_matches(frames):
    sos = iir.ellip_lowpass_sos(6500.0, 48000.0)
    x = np.random.default_rng(5).standard_normal((2, sum(frames)))
    stuffed = np.zeros((2, 3 * x.shape[1]))
    stuffed[:, ::3] = x
    ref = signal.sosfilt(sos, stuffed, axis=1)
    f = SosFilter(sos, 2)
    out, pos = [], 0
    for n in frames:
        out.append(f.upsample(x[:, pos:pos + n], 3))
        pos += n
    np.testing.assert_allclose(np.concatenate(out, axis=1), ref, atol=1e-10)


@pytest.mark.filterwarnings("ignore:nperseg")
def test_analysis_helpers_match_scipy():
    from scipy.ndimage import median_filter

    from calmtunes.music.analysis import _median_filter, _welch

    rng = np.random.default_rng(6)
    for size in (3, 4, 200, 201):
        x = rng.standard_normal(5000)
        np.testing.assert_array_equal(_median_filter(x, size),
                                      median_filter(x, size=size, mode="nearest"))
    for n in (100_000, 8192, 5000):
        x = rng.standard_normal(n)
        f, p = _welch(x, 48000.0, 8192)
        rf, rp = signal.welch(x, 48000.0, nperseg=8192)
        np.testing.assert_allclose(f, rf)
        np.testing.assert_allclose(p, rp, rtol=1e-9)


def test_sos_response_matches_scipy():
    from scipy import signal as sps

    from calmtunes.iir import butter_sos, sos_response

    sos = butter_sos(4, [120.0, 2500.0], "bandpass", fs=48000.0)
    freqs, h = sps.sosfreqz(sos, worN=4096, fs=48000.0)
    assert np.allclose(sos_response(sos, freqs, 48000.0), h, rtol=1e-9, atol=1e-12)
