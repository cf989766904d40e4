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
#: the decays are joined linearly over pieces of at most this long (seconds), whatever the length
#: of the block rendered (see Ensemble.render for the error this allows)
GAIN_STEP_S = 0.100


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


def _fitting(partials: tuple[float, ...], f0: float, rate: float) -> tuple[tuple[int, float], ...]:
    """(k, amplitude) of the partials a table for fundamentals up to ``f0`` carries: those
    sounding below 0.45 × rate (no aliasing)."""
    return tuple((k, amp) for k, amp in enumerate(partials, start=1)
                 if amp and f0 * k < 0.45 * rate)


def _table(partials: tuple[float, ...], f0: float, rate: float) -> np.ndarray:
    """One cycle of the given partials, those above 0.45 × rate left out (no aliasing).

    Made by one inverse FFT (partial k in bin k) rather than a sum of sines: the same values to
    float64 rounding, at a fraction of the cost (the bank builds ~36 tables at start-up)."""
    spec = np.zeros(TABLE_SIZE // 2 + 1, dtype=np.complex128)
    for k, amp in _fitting(partials, f0, rate):
        spec[k] = -0.5j * amp * TABLE_SIZE  # irfft of −i·N/2 in bin k is sin(2πk·n/N)
    return np.fft.irfft(spec, n=TABLE_SIZE)


class TableBank:
    """All wavetables, as two flat float32 arrays — bodies and shimmers at the same offsets —
    so one index array fetches both parts of a row. A row names its tables by offset.

    Tables are made per (voice, octave band) so a note only carries partials that fit below
    the Nyquist limit; every band the playable range (MIDI 21–108) needs is built up front, so
    nothing is computed mid-play. Bands whose tables carry the same partials (all the bands
    below the one where a voice's top partial first passes the limit) share one place: 12 pairs
    of tables for the 32 bands at 16 kHz, 0.75 MB instead of 2 MB."""

    def __init__(self, rate: float, warm: bool = True) -> None:
        self.rate = rate
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []
        self._size = 0
        self.body = np.zeros(0, dtype=np.float32)
        self.shimmer = np.zeros(0, dtype=np.float32)
        self._offsets: dict[tuple[str, int], int] = {}
        self._shared: dict[tuple, int] = {}  # the partials a pair of tables carries: its offset
        if warm:
            for voice in TIMBRES:
                for pitch in range(21, 109, 6):
                    self._add(voice, 440.0 * 2.0 ** ((pitch - 69) / 12.0))
            self._join()

    @staticmethod
    def _key(voice: str, freq: float) -> tuple[str, int]:
        return voice, max(0, math.floor(math.log2(max(freq, 20.0) / 20.0)))  # octave above 20 Hz

    def _add(self, voice: str, freq: float) -> int:
        key = self._key(voice, freq)
        if key not in self._offsets:
            top = 20.0 * 2.0 ** (key[1] + 1)  # highest fundamental in this band
            timbre = TIMBRES[voice]
            # a table is made of the partials that fit (_table): the same ones, the same table
            carried = (_fitting(timbre.body, top, self.rate),
                       _fitting(timbre.shimmer, top, self.rate))
            if carried not in self._shared:
                self._shared[carried] = self._size
                self._parts.append((_table(timbre.body, top, self.rate).astype(np.float32),
                                    _table(timbre.shimmer, top, self.rate).astype(np.float32)))
                self._size += TABLE_SIZE
            self._offsets[key] = self._shared[carried]
        return self._offsets[key]

    def _join(self) -> None:
        if self._parts:  # one concatenation for all the new tables
            self.body = np.concatenate([self.body, *(b for b, _ in self._parts)])
            self.shimmer = np.concatenate([self.shimmer, *(s for _, s in self._parts)])
            self._parts = []

    def offset(self, voice: str, freq: float) -> int:
        offset = self._add(voice, freq)
        self._join()
        return offset


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

    def forget(self, before: float) -> None:
        """Forget every row that has fully faded before frame ``before`` now (where nothing is
        rendered, :meth:`prune` has no row arrays to batch its work by)."""
        kept = [r for r in self.rows if r.end + r.release > before]
        if len(kept) < len(self.rows):
            self.replace(kept)

    def _build(self) -> dict[str, np.ndarray]:
        cols: dict[str, list[float]] = {k: [] for k in _ROW_FIELDS}
        route = np.zeros((2 * len(BUSES), len(self.rows)))
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
        arrays["offset"] = arrays["offset"].astype(np.uint32)
        arrays["route"] = route
        return arrays

    # -- rendering ------------------------------------------------------------------------
    def render(self, t0: int, frames: int) -> np.ndarray:
        """Buses for frames [t0, t0 + frames): array (2 × len(BUSES), frames), float64.

        Rows 2b and 2b+1 are the left and right channels of bus ``BUSES[b]``.

        The exponential decays are evaluated every :data:`GAIN_STEP_S` (100 ms) — and at the
        note-on of a note starting inside such a piece — and joined linearly (the body's decays
        are ≤ 1.2 /s, an error under 0.2 %; the shimmer of the highest notes fades at up to
        ~7 /s, where the chord of the curve lies up to ~7 % above it mid-piece — on a component
        that is gone within half a second — and the curve stays continuous); attack and
        release are computed per frame, and only for the rows that are in their attack or
        release during this block.

        Layout, for speed: the sounding rows' body and shimmer waves are looked up into one
        (2·rows, frames) float32 array, rows in attack or release first (their envelopes then
        touch one contiguous block); per 100 ms piece, one real matrix product with
        (16 × 2·rows) weights — each row's pan times its gain at the piece's start, and the
        gain's change over it — gives every bus's left and right sums and their slopes."""
        out_rows = 2 * len(BUSES)
        if not self.rows:
            return np.zeros((out_rows, frames))
        if self._arrays is None:
            self._arrays = self._build()
        a = self._arrays
        t1 = t0 + frames
        start_all, end_all = a["start"], a["end"]
        sounding = (start_all < t1) & (end_all + a["release"] > t0)
        shaping = sounding & ((t0 - start_all < a["attack"]) | (end_all < t1))
        shaped = int(np.count_nonzero(shaping))
        if shaped:  # rows in attack or release first
            live = np.concatenate([np.flatnonzero(shaping), np.flatnonzero(sounding ^ shaping)])
        else:
            live = np.flatnonzero(sounding)
        count = live.size
        if count == 0:
            return np.zeros((out_rows, frames))
        start, inc = start_all[live], a["inc"][live]
        dt0 = t0 - start  # frames since note-on at the block's first frame (< 0: not yet)
        k32, ku = _steps(frames)
        # phase as 32-bit fixed point (2^32 = one cycle; wraps by itself): the start of the
        # block from float64 per row, the frames after it in integer arithmetic; the top
        # _TABLE_BITS bits index the table, whose offset (a multiple of TABLE_SIZE) is OR-ed in
        start_phase = np.mod(a["phase0"][live] + inc * dt0, 1.0)
        acc = (inc * _ONE).astype(np.uint32)[:, None] * ku
        acc += (start_phase * _ONE).astype(np.uint32)[:, None]
        acc >>= np.uint32(32 - _TABLE_BITS)
        acc |= a["offset"][live, None]
        idx = acc.astype(np.intp)
        waves = np.empty((2 * count, frames), dtype=np.float32)  # body rows, then shimmer rows
        # mode="clip": every index is in range by construction, and with ``out`` the default
        # "raise" buffers the whole gather to check first (three times the cost)
        np.take(self.tables.body, idx, out=waves[:count], mode="clip")
        np.take(self.tables.shimmer, idx, out=waves[count:], mode="clip")
        if shaped:
            sl = live[:shaped]
            env = _envelope(k32 + dt0[:shaped, None].astype(np.float32), a["attack"][sl],
                            a["release"][sl], end_all[sl] - start_all[sl])
            waves[:shaped] *= env
            waves[count:count + shaped] *= env
        # Decays: each row's gain runs linearly from g0 (a piece's first frame) to g1 (the next
        # piece's first frame): Σ_rows w·(g0 + (g1 − g0)·k/n) = Σ w·g0 + (k/n)·Σ w·(g1 − g0).
        # Rows 0–7 of the weights give the g0 sums per bus channel, 8–15 the slopes.
        gain = np.stack([a["body_gain"][live], a["shimmer_gain"][live]])  # (body|shimmer, row)
        decay = -np.stack([a["body_decay"][live], a["shimmer_decay"][live]])
        route = a["route"][:, None, live]  # (bus channel, 1, row)
        out = np.empty((out_rows, frames))
        step = max(1, round(GAIN_STEP_S * self.rate))
        g1 = gain * np.exp(decay * np.maximum(dt0, 0.0))
        for s in range(0, frames, step):
            n = min(step, frames - s)
            g0, g1 = g1, gain * np.exp(decay * np.maximum(dt0 + (s + n), 0.0))
            # a note that starts inside the piece (silent before, by its envelope): its line
            # runs from its full gain at its first frame, not from the piece's first frame
            wait = -(dt0 + s)  # frames from the piece's start to the note-on
            late = (wait > 0) & (wait < n)
            if late.any():
                k = wait[late]
                g0 = g0.copy()
                g0[:, late] = gain[:, late] - (g1[:, late] - gain[:, late]) * (k / (n - k))
            weights = (np.stack([g0, g1 - g0])[:, None] * route).astype(np.float32)
            mixed = matmul_single(weights.reshape(2 * out_rows, 2 * count), waves[:, s:s + n])
            slope = mixed[out_rows:]
            slope *= _fractions32(n)
            np.add(mixed[:out_rows], slope, out=out[:, s:s + n])
        return out


def _envelope(dt: np.ndarray, attack: np.ndarray, release: np.ndarray,
              held: np.ndarray) -> np.ndarray:
    """Attack × release envelope at ``dt`` (rows × frames, float32) frames after note-on: a
    smoothstep rise over ``attack`` frames (no corner at either end), then from ``held``
    frames a fall ``(1 − r)²`` over ``release`` frames, from wherever the rise has got to (so
    a note released during its attack stays continuous). ``attack``, ``release``, ``held``:
    one value per row."""
    inv_a = (1.0 / attack).astype(dt.dtype)[:, None]
    inv_r = (1.0 / release).astype(dt.dtype)[:, None]
    held = held.astype(dt.dtype)[:, None]
    x = dt * inv_a
    np.clip(x, 0.0, 1.0, out=x)
    env = x * x
    x *= -2.0
    x += 3.0
    env *= x
    r = dt - held
    r *= inv_r
    np.clip(r, 0.0, 1.0, out=r)
    np.subtract(1.0, r, out=r)
    r *= r
    env *= r
    return env


@lru_cache(maxsize=8)
def _fractions32(n: int) -> np.ndarray:
    """k/n for frames k = 0…n−1 of a piece, as a float32 (1, n) row (read-only)."""
    out = np.arange(n, dtype=np.float32)[None, :] * np.float32(1.0 / n)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=8)
def _steps(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame offsets 0…frames−1 as a (1, frames) row: float32 and uint32."""
    out = tuple(np.arange(frames, dtype=t)[None, :] for t in (np.float32, np.uint32))
    for a in out:
        a.flags.writeable = False
    return out
