"""The fast DSP blocks against straightforward reference implementations written here.

Each block of the synthesis is computed in a vectorised, block-wise form for speed (lookups
into fixed-point phase tables, gains joined linearly between points, chunked IIR filtering,
one gather for a delay network's reads). These tests compute the same sound the plain way —
frame by frame or over the whole signal at once, from the documented model — and bound the
difference. Tolerances are stated with each test.
"""

import math

import numpy as np
import pytest
from scipy import signal

from calmtunes.config import Config
from calmtunes.iir import butter_sos, chunk_for, ellip_lowpass_sos
from calmtunes.music.chorus import Chorus
from calmtunes.music.dsp import SosFilter
from calmtunes.music.instruments import (
    BUSES,
    TABLE_SIZE,
    TIMBRES,
    Ensemble,
    NoteRow,
    TableBank,
    _table,
)
from calmtunes.music.loudness import k_weighting_sos
from calmtunes.music.mixer import Mixer
from calmtunes.music.reverb import FDNReverb

RATE = 16000.0


# ------------------------------------------------------------------ instruments


def _notes() -> list[NoteRow]:
    """A little of everything: pad pairs (long attack and release), keyed notes (quick
    attack, release mid-block), a bass, a note released during its attack, notes starting
    mid-block."""
    rows = []
    for i, (voice, pitch, start, dur) in enumerate([
            ("pad", 57, 0.0, 3.0), ("pad", 64, 0.0, 3.0), ("melody", 72, 0.25, 0.4),
            ("melody", 76, 0.71, 0.9), ("harmony", 67, 0.5, 1.1), ("bass", 45, 0.05, 2.2),
            ("pad", 60, 1.3, 0.6), ("melody", 84, 1.9, 0.3)]):
        t = TIMBRES[voice]
        freq = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
        common = dict(start=start * RATE + 37.5 * i, end=(start + dur) * RATE, velocity=0.8,
                      voice=voice, attack=t.attack_s * RATE, release=t.release_s * RATE,
                      bright=0.6)
        if t.detune_cents:
            for sign in (-1.0, 1.0):
                rows.append(NoteRow(freq=freq * 2.0 ** (sign * t.detune_cents / 1200.0),
                                    pan=t.pan + sign * t.spread, phase0=0.3 + 0.2 * sign,
                                    **common))
        else:
            rows.append(NoteRow(freq=freq, pan=t.pan, **common))
    return rows


@pytest.mark.parametrize("voice", list(TIMBRES))
@pytest.mark.parametrize("freq", [55.0, 440.0, 1760.0, 4000.0])
def test_tables_are_the_partials_that_fit_below_nyquist(voice, freq):
    """Each table (made by an inverse FFT) against the sum of sines it stands for, the partials
    at or above 0.45 × rate left out for the band's top note. Tolerance 1e-6 (float32)."""
    ens = Ensemble(RATE)
    at = ens.tables.offset(voice, freq)
    band = math.floor(math.log2(freq / 20.0))
    top = 20.0 * 2.0 ** (band + 1)
    phase = 2 * np.pi * np.arange(TABLE_SIZE) / TABLE_SIZE
    for table, partials in ((ens.tables.body, TIMBRES[voice].body),
                            (ens.tables.shimmer, TIMBRES[voice].shimmer)):
        ref = sum(a * np.sin(k * phase) for k, a in enumerate(partials, start=1)
                  if top * k < 0.45 * RATE)
        np.testing.assert_allclose(table[at:at + TABLE_SIZE], ref, atol=1e-6)


def test_bands_with_the_same_partials_share_their_tables():
    """Every band of the bank reads exactly the tables made for it alone, while the bands whose
    partials all fit (the same tables) are stored once."""
    bank = TableBank(RATE)
    for (voice, band), at in bank._offsets.items():
        top = 20.0 * 2.0 ** (band + 1)
        for table, partials in ((bank.body, TIMBRES[voice].body),
                                (bank.shimmer, TIMBRES[voice].shimmer)):
            alone = _table(partials, top, RATE).astype(np.float32)
            assert np.array_equal(table[at:at + TABLE_SIZE], alone), (voice, band)
    stored = bank.body.size // TABLE_SIZE
    assert stored == len(set(bank._offsets.values())) < len(bank._offsets)


def _reference_buses(ens: Ensemble, frames: int) -> np.ndarray:
    """Frame by frame from the model: table read at the truncated phase, exact exponential
    decays, smoothstep attack × (1 − r)² release, constant-power pan."""
    t = np.arange(frames, dtype=np.float64)
    out = np.zeros((2 * len(BUSES), frames))
    for r in ens.rows:
        timbre = TIMBRES[r.voice]
        scale = (r.freq / 261.63) ** 0.5
        dt = t - r.start
        phase = np.mod(r.phase0 + r.freq / RATE * dt, 1.0)
        idx = ens.tables.offset(r.voice, r.freq) + np.floor(phase * TABLE_SIZE).astype(int)
        d = np.maximum(dt, 0.0)
        body = ens.tables.body[idx] * timbre.gain * r.velocity * np.exp(
            -timbre.body_decay * scale / RATE * d)
        shimmer = ens.tables.shimmer[idx] * timbre.gain * r.velocity * r.bright * np.exp(
            -timbre.shimmer_decay * scale / RATE * d)
        x = np.clip(dt / max(r.attack, 1.0), 0.0, 1.0)
        rel = np.clip((dt - (r.end - r.start)) / max(r.release, 1.0), 0.0, 1.0)
        env = x * x * (3.0 - 2.0 * x) * (1.0 - rel) ** 2
        env[dt < 0] = 0.0
        wave = (body + shimmer) * env
        angle = (max(-1.0, min(1.0, r.pan)) + 1.0) * math.pi / 4.0
        b = BUSES.index(r.voice)
        out[2 * b] += math.cos(angle) * wave
        out[2 * b + 1] += math.sin(angle) * wave
    return out


@pytest.mark.parametrize("block", [1600, 6400, 999])
def test_instruments_match_the_frame_by_frame_model(block):
    """Tolerance: 2 % of the loudest bus sample at any frame, 0.1 % in RMS. What separates the
    two is documented in Ensemble.render — the decays joined linearly every 100 ms (under
    0.2 % for the body; up to a few % of the quickly fading shimmer of a high note, here C6,
    which gives the largest difference, about 1 %) and float32 arithmetic — and must not grow
    with the block length."""
    frames = int(3.5 * RATE)
    ens = Ensemble(RATE)
    ens.add(_notes())
    got = np.concatenate([ens.render(s, min(block, frames - s))
                          for s in range(0, frames, block)], axis=1)
    ref = _reference_buses(ens, frames)
    peak = np.abs(ref).max()
    assert peak > 0.1
    assert np.abs(got - ref).max() < 0.02 * peak
    assert np.sqrt(np.mean((got - ref) ** 2)) < 0.001 * peak


def test_instruments_silent_before_and_after_their_notes():
    ens = Ensemble(RATE)
    ens.add([NoteRow(start=16000.0, end=17000.0, freq=440.0, velocity=1.0, voice="melody",
                     pan=0.0, attack=96.0, release=7200.0, bright=1.0)])
    assert not ens.render(0, 16000).any()
    assert ens.render(16000, 1600).any()
    assert not ens.render(17000 + 7200, 1600).any()


# ------------------------------------------------------------------ chorus


def test_chorus_matches_the_whole_signal_formula():
    """Block-wise chorus (LFO by angle addition, fractional reads) against the formula over
    the whole signal at once with one sine per frame. Tolerance 1e-9 (float64 rounding)."""
    rng = np.random.default_rng(3)
    n = int(RATE * 4)
    x = rng.standard_normal((2, n))
    ch = Chorus(RATE)
    got = np.concatenate([ch.process(x[:, i:i + 1600]) for i in range(0, n, 1600)], axis=1)
    ref_ch = Chorus(RATE)
    mono = np.concatenate([np.zeros(ref_ch.keep), 0.5 * (x[0] + x[1])])
    k = np.arange(n)
    for side, offset in enumerate((0.0, 0.25)):
        delay = ref_ch.base + ref_ch.depth * np.sin(2 * np.pi * (k * ref_ch.lfo_inc + offset))
        pos = ref_ch.keep + k - delay
        i = np.floor(pos).astype(int)
        frac = pos - i
        wet = mono[i] + (mono[i + 1] - mono[i]) * frac
        ref = ref_ch.dry * x[side] + ref_ch.wet * wet
        np.testing.assert_allclose(got[side], ref, atol=1e-9)


# ------------------------------------------------------------------ reverb


def test_reverb_matches_a_sample_by_sample_network():
    """The block-wise FDN against the network run one sample at a time: input band-pass
    (scipy), pre-delay, eight delay lines, damping (1 − c)·o[n] + c·o[n − 1] on each line's
    output, Hadamard feedback with per-line decay gains. Tolerance 1e-10 of the input level."""
    rng = np.random.default_rng(4)
    n = 6000
    x = rng.standard_normal((2, n))
    rev = FDNReverb(RATE)
    got = np.concatenate([rev.process(x[:, i:i + 1600]) for i in range(0, n, 1600)], axis=1)

    ref_rev = FDNReverb(RATE)  # its design (lengths, gains, maps), not its running code
    c = 0.3  # the default damping
    sos = butter_sos(2, [180.0, 4500.0], "bandpass", fs=RATE)
    u = signal.sosfilt(sos, x, axis=1)
    u = np.concatenate([np.zeros((2, ref_rev.predelay)), u], axis=1)[:, :n]
    lengths = ref_rev.lengths
    lines = np.zeros((ref_rev.n, n + int(lengths.max()) + 1))  # line inputs, by time
    prev = np.zeros(ref_rev.n)
    ref = np.zeros((2, n))
    for t in range(n):
        o = np.array([lines[i, t - lengths[i]] if t >= lengths[i] else 0.0
                      for i in range(ref_rev.n)])
        damped = (1.0 - c) * o + c * prev
        prev = o
        lines[:, t] = (ref_rev.matrix * ref_rev.gains[:, None]) @ damped + ref_rev._in_map @ u[:, t]
        ref[:, t] = ref_rev._out_map @ o
    np.testing.assert_allclose(got, ref, atol=1e-10)


# ------------------------------------------------------------------ filters


@pytest.mark.parametrize("sos_name", ["highpass", "bandpass", "k-weighting"])
@pytest.mark.parametrize("block", [1600, 1470, 6400, 960, 1001])
def test_filters_in_any_chunking_equal_one_pass(sos_name, block):
    """SosFilter picks its chunk per block length (calmtunes.iir.chunk_for); whatever it
    picks, the output equals scipy's sosfilt over the whole signal. Tolerance 1e-10."""
    sos = {"highpass": butter_sos(2, 55.0, "highpass", fs=RATE),
           "bandpass": butter_sos(2, [180.0, 4500.0], "bandpass", fs=RATE),
           "k-weighting": k_weighting_sos(RATE)}[sos_name]
    x = np.random.default_rng(5).standard_normal((2, block * 5 + 17))
    f = SosFilter(sos, 2)
    sizes = [block] * 5 + [17]
    out, pos = [], 0
    for size in sizes:
        out.append(f(x[:, pos:pos + size]))
        pos += size
    ref = signal.sosfilt(sos, x, axis=1)
    np.testing.assert_allclose(np.concatenate(out, axis=1), ref, atol=1e-10)


@pytest.mark.parametrize("frames", [1600, 1470, 333])
def test_upsampling_in_any_chunking_equals_filtering_the_zero_stuffed_signal(frames):
    sos = ellip_lowpass_sos(6500.0, fs=48000)
    x = np.random.default_rng(6).standard_normal((2, frames * 4))
    f = SosFilter(sos, 2)
    got = np.concatenate([f.upsample(x[:, i:i + frames], 3)
                          for i in range(0, x.shape[1], frames)], axis=1)
    stuffed = np.zeros((2, x.shape[1] * 3))
    stuffed[:, ::3] = x
    np.testing.assert_allclose(got, signal.sosfilt(sos, stuffed, axis=1), atol=1e-10)


def test_chunk_choice_divides_the_block_or_falls_back():
    assert 1600 % chunk_for(1600, 2) == 0 and (1600 // chunk_for(1600, 2)) * 2 <= 128
    assert 1600 % chunk_for(1600, 4) == 0 and (1600 // chunk_for(1600, 4)) * 4 <= 128
    assert chunk_for(4800, 12, up=3) % 3 == 0
    assert chunk_for(1601, 2) == 48  # a prime-ish length: the default


# ------------------------------------------------------------------ phrase dynamics


def test_dynamics_fast_path_equals_interpolating_every_frame():
    """The mixer returns one gain where the envelope is level; it must equal the per-frame
    interpolation everywhere (tolerance 1e-12 relative)."""
    mixer = Mixer(48000, Config())
    rng = np.random.default_rng(7)
    for _ in range(2000):
        k = int(rng.integers(1, 6))
        xs = np.sort(rng.choice(np.arange(0, 8000, 400), size=k, replace=False)).astype(float)
        ys = rng.choice([0.0, 0.0, -3.0, 2.0], size=k)
        t0, n = int(rng.integers(0, 8000)), int(rng.choice([1, 400, 1600]))
        mixer._dyn_x, mixer._dyn_y = xs.tolist(), ys.tolist()
        got = mixer._dynamics(t0, n)
        ref = 10.0 ** (np.interp(np.arange(t0, t0 + n, dtype=float), xs, ys) / 20.0)
        np.testing.assert_allclose(np.broadcast_to(got, ref.shape), ref, rtol=1e-12)


def test_longer_chunks_sound_the_same():
    """The mixer's chunk only changes how the work is cut — the same notes, the same mix — and
    when the slow loops (normalisation, glides) take their next step: once a chunk. So 100 ms
    and 400 ms chunks give the same loudness to 0.15 LU, and once the normaliser has settled
    (after its 10 s prior) waveforms that differ by under 0.5 % in RMS."""
    from calmtunes.music.controls import Controls
    from calmtunes.music.fallback import ProceduralComposer
    from calmtunes.music.loudness import integrated_loudness

    config = Config()
    outs = []
    for chunk_s in (0.1, 0.4):
        mixer = Mixer(48000, config.replace(music={"seed": 3}), chunk_s=chunk_s)
        controls = Controls.from_preset("calm", config.music.presets["calm"], volume_db=0.0)
        mixer.set_controls(controls)
        mixer.fade_in(1.0)
        composer = ProceduralComposer(5)
        blocks = []
        for _ in range(int(20 * 48000 / 960)):
            while mixer.scheduled_until <= mixer.position + 960 + 48000:
                mixer.schedule(composer.next_phrase(controls))
            blocks.append(mixer.render(960))
        outs.append(np.concatenate(blocks).astype(np.float64))
    a, b = outs
    assert integrated_loudness(a, 48000) == pytest.approx(integrated_loudness(b, 48000),
                                                          abs=0.15)
    late = slice(10 * 48000, None)
    rms = lambda v: np.sqrt(np.mean(v ** 2))  # noqa: E731
    assert rms(a[late]) > 1e-3
    assert rms(a[late] - b[late]) < 0.005 * rms(a[late])


def test_chunk_out_of_range_is_refused():
    with pytest.raises(ValueError, match="chunk"):
        Mixer(48000, Config(), chunk_s=5.0)


def test_rendering_on_after_a_fade_out_while_the_gain_still_moves():
    """After a fade-out the master stage keeps running (silent) while the normalisation and
    volume still glide: a silent block, not an error."""
    mixer = Mixer(48000, Config())
    mixer.fade_in(0.05)
    mixer.render(4800)
    mixer.fade_out(0.05)
    mixer.render(4800)
    assert mixer.faded_out
    mixer.set_volume_db(-6.0)  # the volume glides over the next blocks
    out = mixer.render(960)
    assert out.shape == (960, 2) and np.abs(out).max() < 1e-6  # the limiter's 2 ms tail


@pytest.mark.parametrize("chunks", [67, 100, 91, 20])
def test_chunk_states_by_scan_two_levels_or_one_product_agree_with_scipy(chunks):
    """The chunk-end states come from one product (20 chunks), two levels of products (100 =
    4 × 25, 91 = 7 × 13) or the prefix scan (67, a prime); all equal scipy. Tolerance 1e-10."""
    from calmtunes.iir import BlockIIR

    sos = k_weighting_sos(RATE)
    f = BlockIIR(sos, chunk=48)
    x = np.random.default_rng(8).standard_normal((2, 48 * chunks * 3))
    s = np.zeros((2, f.order))
    out = []
    for i in range(0, x.shape[1], 48 * chunks):
        y, s = f.run(x[:, i:i + 48 * chunks], s)
        out.append(y)
    np.testing.assert_allclose(np.concatenate(out, axis=1), signal.sosfilt(sos, x, axis=1),
                               atol=1e-10)
