"""Ambient bed: textures of smooth noise under the music, slowly alive, never busy.

Each texture mixes a *dark* and a *bright* band of stereo "smooth noise" (independent left and
right, so the bed is wide and diffuse) with slow, smooth modulation. The noise is a dense cloud
of narrow, slowly wandering partials (:func:`line_cloud`), not white noise through a filter:
filtered white noise flickers in every band from one 20 ms moment to the next, a grain that
adds onsets everywhere and blurs the music's pulse (a listener, or a beat tracker, then hears
the sleep preset's 60 bpm as 120 as readily as 60); the cloud's spectrum moves only over
seconds, so the bed's only motion is the swell below — at the breath rate, never on a beat.

* ``surf`` — waves on a distant shore: a low rumble (80–500 Hz) and a wash (400–2200 Hz) that
  swell together with a period of 8–13 s; the wash rises a little later in each swell, like
  foam after the wave.
* ``wind`` — air through trees: bands at 250–700 Hz and 700–1800 Hz whose balance drifts with
  incommensurate slow LFOs (20–40 s), so the "whistle" wanders without a pattern to follow.
* ``rain`` — steady soft rain: 500–1500 Hz and 1.5–5 kHz, almost constant (±1.5 dB drift).
* ``none`` — silence.

``level`` (0–1, the conductor's bed_level) scales the bed linearly in amplitude; ``colour``
(0–1, the brightness) shifts the mix from the dark band to the bright. Both glide: whatever the
setting does, the gain never moves more than ``_SLEW_PER_S`` per second.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from calmtunes.iir import butter_sos, sos_response
from calmtunes.music.dsp import clamp, ramp

TEXTURES = ("surf", "wind", "rain", "none")

# texture: ((dark band Hz), (bright band Hz), gain) – gains make the textures equally loud
# (within 0.5 LU at colour 0.5)
_BANDS = {
    "surf": ((80.0, 500.0), (400.0, 2200.0), 1.17),
    "wind": ((250.0, 700.0), (700.0, 1800.0), 1.0),
    "rain": ((500.0, 1500.0), (1500.0, 5000.0), 0.39),
}
_LOOP = 1 << 18  # frames of each band's stored cloud (16.4 s at 16 kHz): a seamless loop
LINE_SPACING_HZ = 24.0  # partials at least this far apart …
LINE_SPACING_REL = 0.028  # … and at least this share of their frequency apart (~ a mel band)
LINE_WIDTH_HZ = 0.3  # each partial's bandwidth: its level and pitch wander over seconds
_SLEW_PER_S = 0.25  # level and colour glide at most this much (of their 0–1 range) per second


def line_cloud(rate: float, lo: float, hi: float, frames: int = _LOOP) -> np.ndarray:
    """(2, frames) float32: a band of slowly wandering partials, as loud as filtered noise.

    Partials are spread over ``lo``–``hi`` Hz about one per :data:`LINE_SPACING_HZ` (or
    :data:`LINE_SPACING_REL` of the frequency, whichever is wider — about one per band of an
    auditory (mel) filterbank), each a narrow band of noise :data:`LINE_WIDTH_HZ` wide, left
    and right independent. Within any ~50 ms look the spectrum is steady: the only motion is
    the partials' slow wandering (over seconds), so the bed adds no onsets of its own —
    white noise filtered to the same band flickers in every band every few milliseconds, which
    is heard as grain and is what a listener's (or a beat tracker's) sense of onsets picks up.
    Made once by an inverse FFT of ``frames`` (a whole number of cycles of every bin), so it
    loops without a seam; its power spectrum follows the 4th-order Butterworth band it replaces,
    and its RMS equals that of unit white noise through that band. A bed keeps it as 16-bit
    samples (:func:`stored_cloud`)."""
    rng = np.random.default_rng([int(rate), int(lo), int(hi), frames])
    top = min(hi, 0.45 * rate)
    sos = butter_sos(4, [lo, top], "bandpass", fs=rate)
    grid = np.arange(8192) * (0.5 * rate / 8192)  # Hz, 0 up to (not including) Nyquist
    gain = np.abs(sos_response(sos, grid, rate))
    noise_power = float(np.mean(gain ** 2))  # unit white noise through the band
    bins = frames // 2 + 1
    df = rate / frames
    # single precision from the start: each line is computed in double and rounded as it is
    # stored, the same values as rounding the whole spectrum before the transform, without a
    # 4 MB double spectrum and its copy at start-up (the daemon's peak RSS)
    spec = np.zeros((2, bins), dtype=np.complex64)
    half = max(1, round(LINE_WIDTH_HZ / df))
    offsets = np.arange(-half, half + 1)
    shape = np.exp(-0.5 * (offsets * df / (0.5 * LINE_WIDTH_HZ)) ** 2)  # ±σ = ±width/2
    f = lo * 0.7
    while f < top * 1.2:
        step = max(LINE_SPACING_HZ, LINE_SPACING_REL * f)
        k = round((f + rng.uniform(0.15, 0.85) * step) / df)
        if half < k < bins - half - 1:
            z = rng.standard_normal((2, half * 2 + 1)) + 1j * rng.standard_normal((2, half * 2 + 1))
            g = float(np.interp(k * df, grid, gain))
            spec[:, k + offsets] = z * (shape * (g * math.sqrt(step)))
        f += step
    # in single precision (half the work of the 2^18-point transform, the bed's whole start-up
    # cost; the cloud is stored as float32 anyway, and the rounding is ~−140 dB)
    y = np.fft.irfft(spec, n=frames, axis=1)
    power = np.mean(y * y, axis=1, keepdims=True, dtype=np.float64)
    y *= np.sqrt(noise_power / np.maximum(power, 1e-30)).astype(np.float32)
    return y


@lru_cache(maxsize=8)
def stored_cloud(rate: float, lo: float, hi: float) -> tuple[np.ndarray, float]:
    """:func:`line_cloud` as a bed keeps it: (2, frames) int16 samples and the scale that gives
    the cloud back (``samples × scale``), its peak at full scale. Half the memory of float32
    (the two bands of a bed, 2.1 MB instead of 4.2, the daemon's largest table). The rounding
    is noise 87–89 dB below the cloud itself (whose crest factor is 4.2–5.2); in a 3-minute
    render it changed 0.1 % of the 16-bit output samples by one step (the difference at
    −120 to −125 dBFS, 81–87 dB below the music), under the output's own dither. Kept
    (read-only) for the next bed of the same rate and band: a texture change costs no
    recomputation."""
    cloud = line_cloud(rate, lo, hi)
    scale = float(np.abs(cloud).max()) / 32767.0 or 1.0
    cloud *= np.float32(1.0 / scale)
    np.rint(cloud, out=cloud)
    samples = cloud.astype(np.int16)
    samples.flags.writeable = False
    return samples, scale


class Bed:
    def __init__(self, rate: float, texture: str = "surf", seed: int | None = None) -> None:
        if texture not in TEXTURES:
            raise ValueError(f"bed: unknown texture {texture!r}; use one of {', '.join(TEXTURES)}")
        self.rate = float(rate)
        self.texture = texture
        self.rng = np.random.default_rng(seed)
        self.t = 0  # frames rendered
        self.level = 0.0  # current (glided) values
        self.colour = 0.5
        if texture != "none":
            dark, bright, self._gain = _BANDS[texture]
            stored = [stored_cloud(self.rate, lo, hi) for lo, hi in (dark, bright)]
            self._clouds = [samples for samples, _ in stored]
            self._scales = [scale for _, scale in stored]  # folded into the bands' gains
            # each bed reads the shared clouds from its own place
            self._offset = int(self.rng.integers(0, _LOOP))
        phases = self.rng.random(4) * 2.0 * math.pi
        self._lfo_phase = [float(v) for v in phases]

    def _read(self, cloud: np.ndarray, frames: int) -> np.ndarray:
        """The next ``frames`` of a looped cloud (it is periodic: the loop has no join)."""
        size = cloud.shape[1]
        at = (self.t + self._offset) % size
        if at + frames <= size:
            return cloud[:, at:at + frames]
        return cloud[:, np.arange(at, at + frames) % size]

    def _glide(self, current: float, target: float, frames: int
               ) -> tuple[np.ndarray | float, float]:
        step = _SLEW_PER_S * frames / self.rate
        new = current + clamp(target - current, -step, step)
        return (current if new == current else ramp(current, new, frames)), new

    def render(self, frames: int, level: float, colour: float) -> np.ndarray:
        """(2, frames) of bed at the given target level and colour (both 0–1)."""
        levels, self.level = self._glide(self.level, clamp(level, 0.0, 1.0), frames)
        colours, self.colour = self._glide(self.colour, clamp(colour, 0.0, 1.0), frames)
        if self.texture == "none":
            self.t += frames
            return np.zeros((2, frames))
        dark = self._read(self._clouds[0], frames)
        bright = self._read(self._clouds[1], frames)
        # the motion is slow (periods ≥ 9 s): evaluated at the block's ends and joined linearly
        t0, t1 = self.t / self.rate, (self.t + frames) / self.rate
        self.t += frames
        (d0, b0), (d1, b1) = self._motion(t0), self._motion(t1)
        if isinstance(levels, float) and isinstance(colours, float):
            # level and colour at rest (most blocks): each band's gain is one straight line
            mix_b = 0.1 + 0.5 * colours
            a, b = (1.0 - mix_b) * levels * self._gain, mix_b * levels * self._gain
            a, b = a * self._scales[0], b * self._scales[1]
            out = dark * ramp(d0 * a, d1 * a, frames)
            out += bright * ramp(b0 * b, b1 * b, frames)
            return out
        wd = ramp(d0 * self._scales[0], d1 * self._scales[0], frames)
        wb = ramp(b0 * self._scales[1], b1 * self._scales[1], frames)
        mix_b = 0.1 + 0.5 * colours  # bright share 10–60 %: the bed stays darker than the music
        out = dark * (wd * (1.0 - mix_b)) + bright * (wb * mix_b)
        return out * (levels * self._gain)

    def _motion(self, t: float) -> tuple[float, float]:
        """Slow gains of the dark and bright bands (around 1) at time ``t`` (s)."""
        p = self._lfo_phase
        sin, tau = math.sin, 2.0 * math.pi
        if self.texture == "surf":
            # two incommensurate swells (≈ 9.5 s and ≈ 13 s) make irregular waves
            a = 0.5 + 0.5 * sin(tau * t / 9.5 + p[0])
            b = 0.5 + 0.5 * sin(tau * t / 13.1 + p[1])
            swell = 0.35 + 0.65 * (0.6 * a + 0.4 * b) ** 1.5
            wash = 0.3 + 0.7 * (0.5 + 0.3 * sin(tau * t / 9.5 + p[0] - 0.9)) ** 2
            return swell * 1.2, swell * wash * 1.4
        if self.texture == "wind":
            a = sin(tau * t / 23.0 + p[0])
            b = sin(tau * t / 37.0 + p[1])
            gust = 0.75 + 0.25 * sin(tau * t / 17.0 + p[2])
            return gust * (1.0 + 0.4 * a), gust * (1.0 + 0.5 * b)
        drift = 1.0 + 0.18 * sin(tau * t / 29.0 + p[0])  # rain: ±1.5 dB
        return drift, drift
