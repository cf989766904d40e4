"""Ambient bed: filtered-noise textures under the music, slowly alive, never busy.

Each texture mixes a *dark* and a *bright* band of stereo noise (independent left and right, so
the bed is wide and diffuse) with slow, smooth modulation:

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

import numpy as np

from calmtunes.iir import butter_sos
from calmtunes.music.dsp import SosFilter, clamp, ramp

TEXTURES = ("surf", "wind", "rain", "none")

# texture: ((dark band Hz), (bright band Hz), gain) – gains make the textures equally loud
# (within 0.5 LU at colour 0.5)
_BANDS = {
    "surf": ((80.0, 500.0), (400.0, 2200.0), 1.17),
    "wind": ((250.0, 700.0), (700.0, 1800.0), 1.0),
    "rain": ((500.0, 1500.0), (1500.0, 5000.0), 0.39),
}
_POOL = 1 << 16  # frames of stored noise (4 s at 16 kHz)
_SLEW_PER_S = 0.25  # level and colour glide at most this much (of their 0–1 range) per second


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
            top = 0.45 * rate
            self._filters = [
                SosFilter(butter_sos(4, [lo, min(hi, top)], "bandpass", fs=rate), 2)
                for lo, hi in (dark, bright)]
        phases = self.rng.random(4) * 2.0 * math.pi
        self._lfo_phase = [float(v) for v in phases]
        # a pool of white noise read from a random place each block: white noise has no
        # memory, so the joins are inaudible, and drawing it costs nothing per block
        self._pool = self.rng.standard_normal((2, _POOL)).astype(np.float32)

    def _noise(self, frames: int) -> np.ndarray:
        if frames > _POOL:
            return self.rng.standard_normal((2, frames))
        at = int(self.rng.integers(0, _POOL - frames + 1))
        return self._pool[:, at:at + frames]

    def _glide(self, current: float, target: float, frames: int) -> tuple[np.ndarray, float]:
        step = _SLEW_PER_S * frames / self.rate
        new = current + clamp(target - current, -step, step)
        return ramp(current, new, frames), new

    def render(self, frames: int, level: float, colour: float) -> np.ndarray:
        """(2, frames) of bed at the given target level and colour (both 0–1)."""
        levels, self.level = self._glide(self.level, clamp(level, 0.0, 1.0), frames)
        colours, self.colour = self._glide(self.colour, clamp(colour, 0.0, 1.0), frames)
        if self.texture == "none":
            self.t += frames
            return np.zeros((2, frames))
        noise = self._noise(frames)
        dark = self._filters[0](noise)
        bright = self._filters[1](noise)
        # the motion is slow (periods ≥ 9 s): evaluated at the block's ends and joined linearly
        t0, t1 = self.t / self.rate, (self.t + frames) / self.rate
        self.t += frames
        (d0, b0), (d1, b1) = self._motion(t0), self._motion(t1)
        wd, wb = ramp(d0, d1, frames), ramp(b0, b1, frames)
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
