"""The parts on their own: reverb, bed, breath pacing, entrainment."""

import itertools
import math

import numpy as np
import pytest
from scipy import signal

from calmtunes.music.analysis import find_clicks, measure_frequency
from calmtunes.music.bed import TEXTURES, Bed, line_cloud, stored_cloud
from calmtunes.music.chorus import Chorus
from calmtunes.music.entrainment import Entrainment, amplitude_for_lufs
from calmtunes.music.loudness import integrated_loudness
from calmtunes.music.pacing import BreathPacer, breath_shape
from calmtunes.music.reverb import FDNReverb

RATE = 16000


def test_reverb_decays_at_its_rt60_and_is_stereo():
    rev = FDNReverb(RATE, rt60_s=2.0)
    x = np.zeros((2, RATE * 4))
    x[0, 0] = 1.0
    y = np.concatenate([rev.process(x[:, i:i + 1280]) for i in range(0, x.shape[1], 1280)], 1)
    energy = (y ** 2).sum(axis=0)
    per_s = [10 * np.log10(energy[s * RATE:(s + 1) * RATE].sum()) for s in range(4)]
    slopes = np.diff(per_s[1:])  # dB per second, after the onset
    assert np.all((slopes > -40) & (slopes < -22))  # −60 dB in 1.5–2.7 s
    corr = np.corrcoef(y[0, RATE // 2:RATE], y[1, RATE // 2:RATE])[0, 1]
    assert abs(corr) < 0.5  # decorrelated: a wide tail
    assert np.all(y[:, : int(0.02 * RATE)] == 0)  # pre-delay keeps the attack dry


def test_reverb_block_size_does_not_matter():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, RATE))
    a = FDNReverb(RATE)
    b = FDNReverb(RATE)
    ya = np.concatenate([a.process(x[:, i:i + 1280]) for i in range(0, RATE, 1280)], 1)
    yb = np.concatenate([b.process(x[:, i:i + 333]) for i in range(0, RATE, 333)], 1)
    assert np.allclose(ya, yb)


@pytest.mark.parametrize("texture", [t for t in TEXTURES if t != "none"])
def test_bed_textures_are_calm_noise_that_follows_the_level(texture):
    bed = Bed(RATE, texture, seed=1)
    quiet = np.concatenate([bed.render(1280, 0.2, 0.5) for _ in range(200)], 1)
    bed2 = Bed(RATE, texture, seed=1)
    loud = np.concatenate([bed2.render(1280, 0.8, 0.5) for _ in range(200)], 1)
    lq = integrated_loudness(quiet.T[RATE * 6:], RATE)
    ll = integrated_loudness(loud.T[RATE * 6:], RATE)
    assert ll - lq == pytest.approx(20 * math.log10(4), abs=1.0)  # amplitude ∝ level
    assert np.isfinite(loud).all()


def _band_flux_db(x: np.ndarray) -> float:
    """Mean rise of band levels from one 24 ms frame to the next, dB (96 ms windows, bands
    ~50 Hz wide below 1 kHz and 5 % above, floor 80 dB under the loudest): the spectral flux an
    onset detector sums, the grain a listener hears."""
    f, _, z = signal.stft(x, RATE, nperseg=1536, noverlap=1152)
    p = np.abs(z) ** 2
    edges = np.concatenate([np.arange(50.0, 1000.0, 50.0), np.geomspace(1000.0, 6000.0, 37)])
    bands = np.array([p[(f >= a) & (f < b)].sum(axis=0) for a, b in itertools.pairwise(edges)])
    db = 10 * np.log10(np.maximum(bands, 1e-30))
    db = np.maximum(db, db.max() - 80.0)
    return float(np.maximum(np.diff(db, axis=1), 0.0).mean())


@pytest.mark.parametrize("texture", [t for t in TEXTURES if t != "none"])
def test_bed_is_smooth_noise_that_adds_no_onsets(texture):
    """The bed moves only slowly: its band levels flicker far less than white noise filtered
    to the same bands (which blurs the music's pulse), and its stored loop has no seam."""
    bed = Bed(RATE, texture, seed=3)
    y = np.concatenate([bed.render(1280, 0.5, 0.5) for _ in range(150)], 1).mean(axis=0)
    rng = np.random.default_rng(3)
    lo, hi = (80.0, 2200.0) if texture == "surf" else (250.0, 1800.0) if texture == "wind" \
        else (500.0, 5000.0)
    sos = signal.butter(4, [lo, hi], "bandpass", fs=RATE, output="sos")
    grainy = signal.sosfilt(sos, rng.standard_normal(len(y)))
    smooth, grain = _band_flux_db(y[RATE * 2:]), _band_flux_db(grainy[RATE * 2:])
    assert grain > 0.7  # the measure sees the grain of filtered noise …
    assert smooth < 0.45  # … and the bed has none: ~0.3 dB, its slow swell and wandering
    cloud = line_cloud(float(RATE), lo, hi)
    step = np.abs(np.diff(cloud, axis=1)).max()
    assert np.abs(cloud[:, 0] - cloud[:, -1]).max() <= step  # the loop joins like any sample


def test_stored_cloud_is_the_cloud_in_16_bits():
    """The bed keeps its clouds as int16 and a scale: within about half a step of the cloud,
    the rounding noise more than 80 dB below it, the peak at full scale."""
    cloud = line_cloud(float(RATE), 400.0, 2200.0)
    samples, scale = stored_cloud(float(RATE), 400.0, 2200.0)
    assert samples.dtype == np.int16 and samples.shape == cloud.shape
    assert np.abs(samples).max() == 32767
    error = samples * scale - cloud
    assert np.abs(error).max() <= 0.51 * scale  # half a step, and float32 rounding
    assert 20 * np.log10(np.std(error) / np.std(cloud)) < -80.0


def test_bed_none_is_silent_and_unknown_texture_refused():
    assert not np.any(Bed(RATE, "none").render(1000, 1.0, 1.0))
    with pytest.raises(ValueError, match="texture"):
        Bed(RATE, "thunder")


def test_bed_level_glides_instead_of_jumping():
    bed = Bed(RATE, "surf", seed=2)
    for _ in range(50):
        bed.render(1280, 0.0, 0.5)
    bed.render(1280, 1.0, 0.5)
    assert bed.level <= 0.25 * 1280 / RATE + 1e-9  # moved only by the slew limit


def test_breath_pacing_swells_at_the_asked_rate():
    pacer = BreathPacer(6.0, depth_db=3.0)
    g = np.concatenate([pacer.gains(640, RATE, 6.0) for _ in range(int(60 * RATE / 640))])
    db = 20 * np.log10(g)
    assert db.max() - db.min() == pytest.approx(3.0, abs=0.05)
    spectrum = np.abs(np.fft.rfft(db - db.mean()))
    freqs = np.fft.rfftfreq(len(db), 1 / RATE)
    assert freqs[np.argmax(spectrum)] * 60 == pytest.approx(6.0, abs=0.5)  # breaths/min


@pytest.mark.parametrize("block", [640, 4800, 19200])  # 40 ms, 0.4 s, 1.6 s at 12 kHz
@pytest.mark.parametrize("depth", [3.0, 9.0])
def test_the_breath_swell_follows_its_curve_whatever_the_block(block, depth):
    # an offline render synthesises in 0.4 s chunks: joined linearly from the chunk's ends the
    # swell was 0.18 dB off its curve at 20 breaths a minute, 0.6 dB at 9 dB depth
    rate, fs = 20.0, RATE
    pacer = BreathPacer(rate, depth_db=depth)
    g = np.concatenate([pacer.gains(block, fs, rate) for _ in range(int(30 * fs / block))])
    phase = np.arange(len(g)) * rate / 60.0 / fs
    exact = depth * (breath_shape(phase) - 0.5)
    assert np.abs(20 * np.log10(g) - exact).max() < 0.015


def test_breath_shape_inhales_shorter_than_it_exhales():
    p = np.linspace(0, 1, 1001)
    s = breath_shape(p)
    assert s[0] == pytest.approx(0) and s.max() == pytest.approx(1)
    assert p[np.argmax(s)] == pytest.approx(0.4, abs=0.01)


def test_breath_rate_change_glides():
    pacer = BreathPacer(12.0)
    pacer.gains(640, RATE, 4.0)
    assert pacer.rate_bpm > 11.9  # 0.5 breaths/min per second at most


def test_binaural_beat_puts_the_beat_between_the_ears():
    ent = Entrainment(48000, "binaural", 8.0)
    y = np.concatenate([ent.render(960, 0.1) for _ in range(200)])  # 4 s (2 s fade-in)
    left = measure_frequency(y[96000:, 0], 48000)
    right = measure_frequency(y[96000:, 1], 48000)
    assert left == pytest.approx(200.0, abs=0.2) and right == pytest.approx(208.0, abs=0.2)
    assert len(find_clicks(y, 48000)) == 0


def test_isochronic_pulses_at_the_beat_and_keeps_its_loudness():
    ent = Entrainment(48000, "isochronic", 6.0)
    amp = amplitude_for_lufs(-40.0)
    y = np.concatenate([ent.render(960, amp) for _ in range(400)])[96000:]
    envelope = np.abs(y[:, 0])
    spectrum = np.abs(np.fft.rfft(envelope - envelope.mean()))
    freqs = np.fft.rfftfreq(len(envelope), 1 / 48000)
    assert freqs[np.argmax(spectrum[freqs < 50])] == pytest.approx(6.0, abs=0.3)
    assert integrated_loudness(y, 48000) == pytest.approx(-40.0, abs=0.5)
    assert len(find_clicks(y, 48000)) == 0


@pytest.mark.parametrize("mode", ["binaural", "isochronic"])
def test_the_tone_measures_the_level_asked(mode):
    # the K filter takes 0.27 dB off a 200 Hz tone: left out, every tone read that much low
    ent = Entrainment(48000, mode, 8.0)
    y = np.concatenate([ent.render(960, amplitude_for_lufs(-30.0)) for _ in range(600)])[96000:]
    assert integrated_loudness(y, 48000) == pytest.approx(-30.0, abs=0.05)


def test_entrainment_is_off_by_default_and_checks_its_settings():
    assert not Entrainment(48000).active
    with pytest.raises(ValueError, match="beat"):
        Entrainment(48000, "binaural", 100.0)
    with pytest.raises(ValueError, match="mode"):
        Entrainment(48000, "hypnotic")


def test_chorus_widens_the_pad_without_moving_its_pitch():
    t = np.arange(RATE * 6) / RATE
    tone = np.sin(2 * np.pi * 220 * t) * np.clip(t / 0.05, 0, 1) ** 2  # a smooth start
    chorus = Chorus(RATE)
    y = np.concatenate([chorus.process(np.stack([tone, tone])[:, i:i + 1280])
                        for i in range(0, len(t), 1280)], 1)
    assert not np.allclose(y[0], y[1])  # the two sides differ: width
    for ch in (0, 1):
        assert measure_frequency(y[ch, RATE:], RATE) == pytest.approx(220.0, abs=1.0)
    assert len(find_clicks(y.T, RATE, hf_hz=6000)) == 0


@pytest.mark.parametrize("rows", [1, 10, 300])
def test_single_thread_matmul_equals_matmul(rows):
    from calmtunes.music.dsp import matmul_single

    rng = np.random.default_rng(rows)
    a = rng.standard_normal((32, rows)).astype(np.float32)
    b = rng.standard_normal((rows, 3200)).astype(np.float32)
    assert np.allclose(matmul_single(a, b), a @ b, atol=1e-4)
