"""Instruments: note events → stereo voice buses, every sounding note at once, vectorised.

Each note becomes one or two oscillators ("rows"). A row reads two band-limited wavetables —
a *body* (the steady, low partials) and a *shimmer* (upper partials) — each with its own
exponential decay, under an attack/release envelope, and is placed in the stereo field with a
constant-power pan. All rows sounding in a chunk are computed as one (rows × frames) array, so
the cost per chunk is a fixed number of numpy operations whatever the polyphony.

The instruments (voice names as in :data:`calmtunes.music.events.VOICES`):

* ``pad`` — warm pad: soft-sawtooth partials rolled off steeply, 1.4 s attack, 2.6 s release;
  the mixer widens it with a slow chorus (:mod:`calmtunes.music.chorus`).
* ``melody`` — soft keyed instrument between a felt piano and a harp: a quick 6 ms attack, the
  upper partials fading within about a third of a second, the body ringing for seconds.
* ``harmony`` — the same keyed instrument, darker and placed left of centre.
* ``bass`` — a bass with body: fundamental and 2nd harmonic nearly equal, the 3rd–5th behind
  (a small speaker reproduces little below ~100 Hz, and the ear hears the fundamental from its
  harmonics there; a better speaker gets the real low end), 80 ms attack, slow decay.

Brightness (0–1) sets, per note at its start, how much of the shimmer table sounds. Times are in
frames of the instrument rate (the mixer runs instruments at a third of the output rate; every
partial stays below 0.45 of that rate — tables for high notes drop the partials that would not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from calmtunes.music.dsp import matmul_single

_TABLE_BITS = 13
TABLE_SIZE = 1 << _TABLE_BITS  # samples per wavetable cycle; truncation noise ≈ −60 dB re the note
_ONE = float(1 << 32)  # one cycle in the 32-bit phase accumulator


@dataclass(frozen=True)
class Timbre:
    body: tuple[float, ...]  # partial amplitudes (1 = fundamental) of the sustained part
    shimmer: tuple[float, ...]  # partial amplitudes of the bright, faster-decaying part
    attack_s: float
    release_s: float
    body_decay: float  # per second (0 = sustained); scaled up for higher notes
    shimmer_decay: float  # per second
    pan: float  # −1 left … +1 right
    gain: float  # per row, before velocity
    detune_cents: float = 0.0  # > 0: two rows per note, ± this, spread by ``spread``
    spread: float = 0.0


TIMBRES: dict[str, Timbre] = {
    "pad": Timbre(body=(1.0, 0.42, 0.2, 0.09, 0.04, 0.02),
                  shimmer=(0.0, 0.3, 0.3, 0.22, 0.15, 0.1, 0.06),
                  attack_s=1.4, release_s=2.6, body_decay=0.0, shimmer_decay=0.15, pan=0.0,
                  gain=0.12),
    "melody": Timbre(body=(1.0, 0.22, 0.05), shimmer=(0.0, 0.6, 0.4, 0.25, 0.15, 0.08),
                     attack_s=0.006, release_s=0.45, body_decay=0.55, shimmer_decay=3.2,
                     pan=0.12, gain=0.42),
    "harmony": Timbre(body=(1.0, 0.18, 0.04), shimmer=(0.0, 0.4, 0.22, 0.1, 0.05),
                      attack_s=0.01, release_s=0.5, body_decay=0.5, shimmer_decay=3.8,
                      pan=-0.3, gain=0.28),
    "bass": Timbre(body=(0.9, 0.75, 0.45, 0.2, 0.08), shimmer=(0.0, 0.3, 0.3, 0.15, 0.08),
                   attack_s=0.08, release_s=0.6, body_decay=0.12, shimmer_decay=1.5,
                   pan=0.0, gain=0.24),
}
BUSES = ("pad", "melody", "harmony", "bass")


def _table(partials: tuple[float, ...], f0: float, rate: float) -> np.ndarray:
    """One cycle of the given partials, those above 0.45 × rate left out (no aliasing)."""
    phase = np.arange(TABLE_SIZE) / TABLE_SIZE * 2.0 * math.pi
    out = np.zeros(TABLE_SIZE)
    for k, amp in enumerate(partials, start=1):
        if amp and f0 * k < 0.45 * rate:
            out += amp * np.sin(k * phase)
    return out


class TableBank:
    """All wavetables in one flat complex64 array: body in the real part, shimmer in the
    imaginary part, so one lookup fetches both. A row names its table pair by offset.

    Tables are made per (voice, octave band) so a note only carries partials that fit below
    the Nyquist limit; every band the playable range (MIDI 21–108) needs is built up front, so
    nothing is computed mid-play."""

    def __init__(self, rate: float, warm: bool = True) -> None:
        self.rate = rate
        self._flat = np.zeros(0, dtype=np.complex64)
        self._offsets: dict[tuple[str, int], int] = {}
        if warm:
            for voice in TIMBRES:
                for pitch in range(21, 109, 6):
                    self.offset(voice, 440.0 * 2.0 ** ((pitch - 69) / 12.0))

    @property
    def flat(self) -> np.ndarray:
        return self._flat

    def offset(self, voice: str, freq: float) -> int:
        band = max(0, math.floor(math.log2(max(freq, 20.0) / 20.0)))  # octave above 20 Hz
        key = (voice, band)
        if key not in self._offsets:
            top = 20.0 * 2.0 ** (band + 1)  # highest fundamental in this band
            timbre = TIMBRES[voice]
            table = (_table(timbre.body, top, self.rate)
                     + 1j * _table(timbre.shimmer, top, self.rate)).astype(np.complex64)
            self._offsets[key] = len(self._flat)
            self._flat = np.concatenate([self._flat, table])
        return self._offsets[key]


@dataclass
class NoteRow:
    """One oscillator of one note, times in instrument frames (absolute)."""

    start: float
    end: float  # note-off; release follows
    freq: float
    velocity: float
    voice: str
    pan: float
    attack: float  # frames
    release: float  # frames
    bright: float  # 0–1, share of the shimmer table
    phase0: float = 0.0  # cycles


_ROW_FIELDS = ("start", "end", "inc", "phase0", "attack", "release", "body_decay",
               "shimmer_decay", "body_gain", "shimmer_gain", "offset")


class Ensemble:
    """The set of scheduled note rows and their rendering into per-voice stereo buses."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.tables = TableBank(rate)
        self.rows: list[NoteRow] = []
        self._arrays: dict[str, np.ndarray] | None = None
        self._route = np.zeros((2 * len(BUSES), 0), dtype=np.float32)

    # -- row set --------------------------------------------------------------------------
    def add(self, rows: list[NoteRow]) -> None:
        self.rows.extend(rows)
        self._arrays = None

    def replace(self, rows: list[NoteRow]) -> None:
        self.rows = rows
        self._arrays = None

    def prune(self, before: float, keep_dead: int = 48) -> None:
        """Forget rows that have fully faded before frame ``before``.

        Finished rows cost nothing to render (they are masked out), while rebuilding the row
        arrays costs about a millisecond; so they are dropped in batches of ``keep_dead``."""
        if self._arrays is None:
            return  # rebuilt at the next render anyway
        a = self._arrays
        if np.count_nonzero(a["end"] + a["release"] <= before) > keep_dead:
            self.replace([r for r in self.rows if r.end + r.release > before])

    def _build(self) -> dict[str, np.ndarray]:
        cols: dict[str, list[float]] = {k: [] for k in _ROW_FIELDS}
        route = np.zeros((2 * len(BUSES), len(self.rows)), dtype=np.float32)
        for i, r in enumerate(self.rows):
            t = TIMBRES[r.voice]
            pitch_scale = (r.freq / 261.63) ** 0.5  # higher notes ring shorter, as strings do
            cols["start"].append(r.start)
            cols["end"].append(r.end)
            cols["inc"].append(r.freq / self.rate)
            cols["phase0"].append(r.phase0)
            cols["attack"].append(max(r.attack, 1.0))
            cols["release"].append(max(r.release, 1.0))
            cols["body_decay"].append(t.body_decay * pitch_scale / self.rate)
            cols["shimmer_decay"].append(t.shimmer_decay * pitch_scale / self.rate)
            cols["body_gain"].append(t.gain * r.velocity)
            cols["shimmer_gain"].append(t.gain * r.velocity * r.bright)
            cols["offset"].append(self.tables.offset(r.voice, r.freq))
            b = BUSES.index(r.voice)
            angle = (max(-1.0, min(1.0, r.pan)) + 1.0) * math.pi / 4.0  # constant power
            route[2 * b, i] = math.cos(angle)
            route[2 * b + 1, i] = math.sin(angle)
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in cols.items()}
        arrays["offset"] = arrays["offset"].astype(np.intp)
        self._route = route
        return arrays

    # -- rendering ------------------------------------------------------------------------
    def render(self, t0: int, frames: int) -> np.ndarray:
        """Buses for frames [t0, t0 + frames): array (2 × len(BUSES), frames), float32.

        Rows 2b and 2b+1 are the left and right channels of bus ``BUSES[b]``.

        The exponential decays are evaluated at both ends of the chunk and joined linearly
        (a chunk is 100 ms; the body's decays are ≤ 1.2 /s, an error under 0.2 %; the shimmer
        of the highest notes fades at up to ~7 /s, where the chord of the curve lies up to ~7 %
        above it mid-chunk — on a component that is gone within half a second — and the curve
        stays continuous); attack and release are computed per frame, and only for the rows
        that are in their attack or release during this chunk."""
        out_rows = 2 * len(BUSES)
        if not self.rows:
            return np.zeros((out_rows, frames), dtype=np.float32)
        if self._arrays is None:
            self._arrays = self._build()
        a = self._arrays
        t1 = t0 + frames
        live = np.flatnonzero((a["start"] < t1) & (a["end"] + a["release"] > t0))
        if live.size == 0:
            return np.zeros((out_rows, frames), dtype=np.float32)
        start, end, inc = a["start"][live], a["end"][live], a["inc"][live]
        attack, release = a["attack"][live], a["release"][live]
        dt0 = t0 - start  # frames since note-on at the chunk's first frame (< 0: not yet)
        k64, k32, ku = _steps(frames)
        # phase as 32-bit fixed point (2^32 = one cycle; wraps by itself): the start of the
        # chunk from float64 per row, the frames after it in integer arithmetic
        start_phase = np.mod(a["phase0"][live] + inc * dt0, 1.0)
        acc0 = (start_phase * _ONE).astype(np.uint32)
        step = (inc * _ONE).astype(np.uint32)
        acc = step[:, None] * ku
        acc += acc0[:, None]
        idx = (acc >> np.uint32(32 - _TABLE_BITS)).astype(np.intp)
        idx += a["offset"][live, None]
        waves = self.tables.flat[idx]  # complex: body + i·shimmer, one lookup for both
        shaping = np.flatnonzero((dt0 < attack) | (end < t1))  # in attack or release here
        if shaping.size:
            dts = (dt0[shaping][:, None] + k64).astype(np.float32)
            x = np.clip(dts / attack[shaping, None].astype(np.float32), 0.0, 1.0)
            env = x * x * (3.0 - 2.0 * x)  # smoothstep attack: no corner at either end
            rel_from = (end - start)[shaping, None].astype(np.float32)
            r = np.clip((dts - rel_from) / release[shaping, None].astype(np.float32), 0.0, 1.0)
            r = 1.0 - r
            env *= r * r  # release from wherever the envelope is: continuous
            waves[shaping] *= env
        # Decays: each row's gain runs linearly from g0 (first frame) to g1 (next chunk's first
        # frame), and route @ (w ∘ (g0 + (g1 − g0)·k/n)) = (route·g0) @ w + ((route·(g1 − g0))
        # @ w) ∘ k/n. The complex rows viewed as float32 pairs (re, im, re, im, …) go through
        # one real matrix product with the body and shimmer weights stacked; even columns then
        # hold the body sums, odd ones the shimmer sums. (A complex product would hand the
        # work to a multi-threaded BLAS path that is far slower at this size; see
        # dsp.matmul_single for why the real product is cut into slices too.)
        d0, d1 = np.maximum(dt0, 0.0), np.maximum(dt0 + frames, 0.0)
        bg, bd = a["body_gain"][live], a["body_decay"][live]
        sg, sd = a["shimmer_gain"][live], a["shimmer_decay"][live]
        b0, b1 = bg * np.exp(-bd * d0), bg * np.exp(-bd * d1)
        s0, s1 = sg * np.exp(-sd * d0), sg * np.exp(-sd * d1)
        route = self._route[:, live]
        weights = np.concatenate([route * b0, route * s0, route * (b1 - b0), route * (s1 - s0)])
        mixed = matmul_single(weights.astype(np.float32), waves.view(np.float32))
        rows = route.shape[0]
        out = mixed[:rows, 0::2] + mixed[rows:2 * rows, 1::2]
        slope = mixed[2 * rows:3 * rows, 0::2] + mixed[3 * rows:, 1::2]
        slope *= k32 / np.float32(frames)
        out += slope
        return out


@lru_cache(maxsize=8)
def _steps(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame offsets 0…frames−1 as a (1, frames) row: float64, float32 and uint32."""
    out = tuple(np.arange(frames, dtype=t)[None, :] for t in (np.float64, np.float32, np.uint32))
    for a in out:
        a.flags.writeable = False
    return out
