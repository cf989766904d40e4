"""The WAV sink's 16-bit PCM: TPDF dither and a rounding quantiser, so that what is written is
the music plus a constant, signal-independent noise, down to the quietest tails and fades."""

from __future__ import annotations

import wave

import numpy as np

from calmtunes.audio.ring import AudioRing
from calmtunes.audio.sinks import WavSink

LSB = 1.0 / 32767.0  # the sink's full scale: a sample of 1.0 is written as 32767


def write_and_read(tmp_path, signal: np.ndarray) -> np.ndarray:
    """``signal`` (frames × 2, float32) through a real WavSink's PCM conversion, in the card's
    periods (the sink's own thread and its emulated card are left out: they decide when a
    block is written, not what); the 16-bit samples read back from the file."""
    sink = WavSink(AudioRing(48000), 48000, tmp_path / "pcm.wav", realtime=False)
    sink.open()
    period = sink.block_frames
    assert len(signal) % period == 0
    for start in range(0, len(signal), period):
        sink._consume(signal[start:start + period], period)
    sink.close()
    with wave.open(str(tmp_path / "pcm.wav"), "rb") as wav:
        raw = wav.readframes(wav.getnframes())
    pcm = np.frombuffer(raw, dtype="<i2").reshape(-1, 2).astype(np.float64)
    assert len(pcm) == len(signal)
    return pcm


def test_dithered_pcm_is_unbiased_at_every_level_under_a_few_lsb(tmp_path):
    # Levels from −3 to +3 LSB, about a second each. A rounding quantiser after ±1 LSB TPDF dither
    # gives each level back on average (the error's mean does not depend on the signal); one
    # that truncates toward zero pulls every level half an LSB toward zero and leaves those
    # within an LSB of it at nearly nothing — crossover distortion in every quiet tail.
    levels = np.array([-3.0, -2.3, -1.0, -0.6, -0.25, 0.25, 0.6, 1.0, 2.3, 3.0])
    frames = 49152
    signal = np.repeat(levels * LSB, frames).astype(np.float32)
    pcm = write_and_read(tmp_path, np.column_stack([signal, signal]))
    for i, level in enumerate(levels):
        got = pcm[i * frames:(i + 1) * frames].mean()
        assert abs(got - level) < 0.03, (level, got)


def test_dither_noise_is_tpdf_of_two_lsb_and_independent_per_channel(tmp_path):
    # Silence in: the noise out is TPDF ±1 LSB rounded, so samples of −1, 0, +1 with shares
    # 1/8, 3/4, 1/8 (its power 1/4 LSB², −101 dBFS), the two channels' draws independent.
    pcm = write_and_read(tmp_path, np.zeros((98304, 2), dtype=np.float32))
    values, counts = np.unique(pcm, return_counts=True)
    share = dict(zip(values.tolist(), (counts / counts.sum()).tolist()))
    assert set(share) <= {-1.0, 0.0, 1.0}
    assert abs(share[0.0] - 0.75) < 0.01
    assert abs(share[1.0] - 0.125) < 0.01 and abs(share[-1.0] - 0.125) < 0.01
    assert abs(np.corrcoef(pcm[:, 0], pcm[:, 1])[0, 1]) < 0.02


def test_a_low_sine_keeps_its_shape(tmp_path):
    # A 1 kHz sine of 2 LSB peak: its third harmonic stays in the noise (a quantiser biased
    # toward zero puts a crossover step in every cycle, about −15 dB under the tone)
    sr, frames = 48000, 98304
    t = np.arange(frames) / sr
    x = (2.0 * LSB * np.sin(2 * np.pi * 1000.0 * t)).astype(np.float32)
    pcm = write_and_read(tmp_path, np.column_stack([x, x]))[:, 0]
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(frames)))
    freqs = np.fft.rfftfreq(frames, 1 / sr)
    tone = spectrum[np.argmin(np.abs(freqs - 1000.0))]
    third = spectrum[np.argmin(np.abs(freqs - 3000.0))]
    noise = np.median(spectrum[(freqs > 5000) & (freqs < 20000)])
    assert 20 * np.log10(tone / third) > 40, 20 * np.log10(tone / third)
    assert third < 6 * noise
