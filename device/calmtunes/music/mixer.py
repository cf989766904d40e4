"""The renderer and mixer: phrases in, 48 kHz stereo float32 out, block by block.

Notes are scheduled at absolute frame positions; ``render(frames)`` synthesises every note that
sounds in the block, applies the master gain (loudness target + volume, ramped so nothing jumps),
the fades, and a soft limiter, and returns a new (frames, 2) float32 array that is always finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from calmtunes.config import Config
from calmtunes.music.controls import Controls
from calmtunes.music.events import Phrase
from calmtunes.music.theory import midi_to_hz

# Level at 0 dB volume that lands near the default −30 LUFS target with this instrument set;
# the loudness meter in the sound issue refines this into a measured normalisation.
_REFERENCE_LUFS = -30.0
_BASE_GAIN = 0.18


@dataclass
class _Voice:
    freq: float
    start: int  # absolute frame of note-on
    end: int  # absolute frame of note-off (release follows)
    velocity: float
    voice: str
    release_override: int | None = None  # frames, when cut short by a crossfade


# voice -> (attack s, release s, pan -1..1, partial amplitudes, partial decay per s)
_TIMBRES = {
    "pad": (1.2, 2.0, 0.0, (1.0, 0.35, 0.12), (0.0, 0.0, 0.0)),
    "melody": (0.008, 0.6, 0.15, (1.0, 0.45, 0.18, 0.08), (0.9, 1.6, 2.6, 3.5)),
    "harmony": (0.01, 0.6, -0.25, (1.0, 0.4, 0.12), (1.0, 1.8, 3.0)),
    "bass": (0.05, 0.5, 0.0, (1.0, 0.25), (0.3, 0.8)),
}
_VOICE_GAIN = {"pad": 0.22, "melody": 0.55, "harmony": 0.35, "bass": 0.45}


class Mixer:
    def __init__(self, sample_rate: int, config: Config) -> None:
        self.sr = sample_rate
        self.config = config
        self.position = 0  # absolute frame of the next rendered sample
        self.scheduled_until = 0  # absolute frame where the scheduled music ends
        self._voices: list[_Voice] = []
        self._gain = 0.0  # current master gain (linear), ramped toward _target_gain
        self._volume_db = config.music.volume_db
        self._fade = 0.0  # 0 silent – 1 full
        self._fade_target = 0.0
        self._fade_rate = 1.0  # per frame
        self.controls = Controls()
        self.current_phrase: Phrase | None = None

    # -- control -------------------------------------------------------------------------------
    def reconfigure(self, config: Config) -> None:
        self.config = config

    def set_controls(self, controls: Controls) -> None:
        self.controls = controls
        self.set_volume_db(controls.volume_db)

    def set_volume_db(self, db: float) -> None:
        m = self.config.music
        self._volume_db = float(np.clip(db, m.min_volume_db, m.max_volume_db))

    def fade_in(self, seconds: float) -> None:
        self._fade_target = 1.0
        self._fade_rate = 1.0 / max(1.0, seconds * self.sr)

    def fade_out(self, seconds: float) -> None:
        self._fade_target = 0.0
        self._fade_rate = 1.0 / max(1.0, seconds * self.sr)

    @property
    def faded_out(self) -> bool:
        return self._fade <= 0.0 and self._fade_target == 0.0

    def schedule(self, phrase: Phrase, start_frame: int | None = None,
                 crossfade_s: float = 0.0) -> None:
        """Queue ``phrase`` at ``start_frame`` (default: right after what is scheduled).

        With ``crossfade_s``, notes of earlier phrases that have not started yet are dropped and
        sounding ones released over that time, so a preset change glides in."""
        start = self.scheduled_until if start_frame is None else int(start_frame)
        if crossfade_s > 0:
            fade = int(crossfade_s * self.sr)
            kept = []
            for v in self._voices:
                if v.start >= start:
                    continue
                if v.end > start:
                    v.end = start
                    v.release_override = fade
                kept.append(v)
            self._voices = kept
        spb = 60.0 / phrase.tempo_bpm * self.sr  # frames per beat
        for n in phrase.notes:
            if n.voice not in _TIMBRES or not (0 <= n.pitch <= 127) or n.duration_beats <= 0:
                continue
            on = start + int(n.start_beat * spb)
            off = on + max(1, int(n.duration_beats * spb))
            vel = float(np.clip(n.velocity, 0.0, 1.0))
            self._voices.append(_Voice(midi_to_hz(n.pitch), on, off, vel, n.voice))
        self.scheduled_until = start + int(phrase.beats * spb)
        self.current_phrase = phrase

    # -- rendering -----------------------------------------------------------------------------
    def render(self, frames: int) -> np.ndarray:
        out = np.zeros((frames, 2), dtype=np.float64)
        t0, t1 = self.position, self.position + frames
        alive = []
        for v in self._voices:
            attack, release, pan, partials, decays = _TIMBRES[v.voice]
            rel = v.release_override or int(release * self.sr)
            if v.end + rel <= t0:
                continue  # finished
            alive.append(v)
            if v.start >= t1:
                continue  # not yet
            out += self._render_voice(v, t0, frames, attack, rel, pan, partials, decays)
        self._voices = alive
        self.position = t1
        return self._master(out)

    def _render_voice(self, v: _Voice, t0: int, frames: int, attack: float, rel: int, pan: float,
                      partials, decays) -> np.ndarray:
        n = np.arange(t0, t0 + frames, dtype=np.float64)
        since = (n - v.start) / self.sr  # seconds since note-on (negative before it)
        env = np.clip(since / attack, 0.0, 1.0)
        released = n >= v.end
        if released.any():
            after = (n - v.end) / rel
            env = np.where(released, env * np.clip(1.0 - after, 0.0, 1.0) ** 2, env)
        env[since < 0] = 0.0
        bright = 0.5 + self.controls.brightness
        sig = np.zeros(frames)
        phase = 2 * math.pi * v.freq * np.maximum(since, 0.0)
        for k, (amp, decay) in enumerate(zip(partials, decays), start=1):
            if v.freq * k > 0.45 * self.sr:
                break
            a = amp * (bright ** (k - 1))
            sig += a * np.sin(phase * k) * (np.exp(-decay * np.maximum(since, 0)) if decay else 1.0)
        sig *= env * v.velocity * _VOICE_GAIN[v.voice]
        left = math.cos((pan + 1) * math.pi / 4)
        right = math.sin((pan + 1) * math.pi / 4)
        return np.stack([sig * left, sig * right], axis=1)

    def _master(self, x: np.ndarray) -> np.ndarray:
        frames = len(x)
        target = _BASE_GAIN * 10 ** ((self.config.music.target_lufs - _REFERENCE_LUFS
                                      + self._volume_db) / 20)
        # Master gain glides at most 1 dB per ~50 ms: volume steps never click.
        gains = np.linspace(self._gain, target, frames + 1)[1:] if self._gain != target else None
        step = self._fade_rate * (1 if self._fade_target > self._fade else -1)
        fades = np.clip(self._fade + step * np.arange(1, frames + 1), 0.0, 1.0)
        if self._fade_target >= self._fade:
            fades = np.minimum(fades, self._fade_target)
        else:
            fades = np.maximum(fades, self._fade_target)
        self._fade = float(fades[-1])
        g = (gains if gains is not None else target) * fades
        self._gain = target
        y = x * (g[:, None] if np.ndim(g) else g)
        y = np.tanh(y * 1.2) / 1.2  # soft limiter: gentle above ~-6 dBFS, never past ±0.83
        np.nan_to_num(y, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        return y.astype(np.float32)
