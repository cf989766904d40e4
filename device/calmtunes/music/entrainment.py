"""Opt-in entrainment tones: isochronic pulses, or binaural beats for headphones. Off by default.

What it is: a soft 200 Hz tone mixed well under the music (``sound.entrainment_level_db``,
default −24 dB relative to the programme loudness), either

* ``isochronic`` — the tone pulsed at ``sound.entrainment_hz`` with raised-cosine pulses
  (smooth edges, no clicks); works on a loudspeaker; or
* ``binaural`` — a steady 200 Hz tone in the left ear and 200 + ``entrainment_hz`` Hz in the
  right; the "beat" exists only inside the head, so it needs headphones (on a speaker the two
  tones simply mix into a slow acoustic beat).

What the evidence says, honestly: the idea is that the brain's rhythms follow an external beat
in the alpha (8–12 Hz) or theta (4–8 Hz) range and that this relaxes the listener. Studies of
binaural beats and isochronic tones report small, inconsistent effects on anxiety and
relaxation; trials are small, often unblinded, and reviews find the EEG "entrainment" itself
weakly supported. Treat it as an optional texture some listeners like, not as a therapy. It is
off unless ``sound.entrainment`` is set.
"""

from __future__ import annotations

import math

import numpy as np

from calmtunes.iir import sos_response
from calmtunes.music.dsp import clamp, ramp
from calmtunes.music.loudness import k_weighting_sos

CARRIER_HZ = 200.0
MODES = ("off", "isochronic", "binaural")
#: the sin² pulse keeps 3/8 of a steady tone's power; this restores the configured loudness
ISOCHRONIC_MAKEUP = math.sqrt(8.0 / 3.0)


#: the K filter at the carrier (dB): its high-pass takes 0.27 dB off a 200 Hz tone
CARRIER_K_DB = 20.0 * math.log10(abs(sos_response(k_weighting_sos(48000.0), [CARRIER_HZ],
                                                  48000.0)[0]))


def amplitude_for_lufs(lufs: float) -> float:
    """Peak amplitude of a steady 200 Hz tone in both channels that measures ``lufs``:
    loudness = −0.691 + K(200 Hz) + 10·log10(2 · A²/2)."""
    return 10.0 ** ((lufs + 0.691 - CARRIER_K_DB) / 20.0)


class Entrainment:
    def __init__(self, fs: float, mode: str = "off", beat_hz: float = 8.0) -> None:
        if mode not in MODES:
            raise ValueError(f"entrainment: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not (0.5 <= beat_hz <= 40.0) or not math.isfinite(beat_hz):
            raise ValueError(f"entrainment: beat of {beat_hz} Hz is outside 0.5–40 Hz")
        self.fs = float(fs)
        self.mode = mode
        self.beat_hz = float(beat_hz)
        self._phase = np.zeros(3)  # cycles: left carrier, right carrier, pulse
        self._gain = 0.0  # glides 0↔1 when switched on or off (over 2 s)
        self._on = mode != "off"
        self._next: tuple[str, float] | None = None

    def set(self, mode: str, beat_hz: float) -> None:
        """Change mode/beat; the tone fades out, and the new one fades in, over 2 s each."""
        if mode not in MODES:
            raise ValueError(f"entrainment: unknown mode {mode!r}; use one of {', '.join(MODES)}")
        self._next = (mode, clamp(beat_hz, 0.5, 40.0))
        self._on = False  # fade the present one out first
        if self._gain == 0.0:  # nothing sounding (it was off): the new one fades in now
            self.mode, self.beat_hz = self._next
            self._next = None
            self._on = self.mode != "off"

    @property
    def active(self) -> bool:
        return self._gain > 0.0 or self._on

    def render(self, frames: int, amplitude: np.ndarray | float) -> np.ndarray:
        """(frames, 2): the tone at ``amplitude`` (linear peak, per frame or constant)."""
        goal = 1.0 if self._on else 0.0
        step = frames / (2.0 * self.fs)
        new = self._gain + clamp(goal - self._gain, -step, step)
        gains = ramp(self._gain, new, frames)
        self._gain = new
        out = self._tone(frames, gains, amplitude)
        if new == 0.0 and self._next is not None:  # faded out: switch to the new setting
            self.mode, self.beat_hz = self._next
            self._next = None
            self._on = self.mode != "off"
        return out

    def _tone(self, frames: int, gains: np.ndarray, amplitude: np.ndarray | float) -> np.ndarray:
        if self.mode == "off" or not gains.any():
            return np.zeros((frames, 2))
        n = np.arange(1, frames + 1)
        left_hz = CARRIER_HZ
        right_hz = CARRIER_HZ + (self.beat_hz if self.mode == "binaural" else 0.0)
        incs = np.array([left_hz, right_hz, self.beat_hz]) / self.fs
        ph = self._phase[:, None] + incs[:, None] * n[None, :]
        self._phase = ph[:, -1] % 1.0
        left = np.sin(2 * math.pi * ph[0])
        right = np.sin(2 * math.pi * ph[1])
        if self.mode == "isochronic":
            # one raised-cosine pulse per beat period: smooth at both ends
            pulse = np.sin(math.pi * np.mod(ph[2], 1.0)) ** 2
            left, right = left * pulse, right * pulse
            amp = gains * amplitude * ISOCHRONIC_MAKEUP
        else:
            amp = gains * amplitude
        return np.stack([left * amp, right * amp], axis=1)
