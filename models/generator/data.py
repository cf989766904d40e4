"""Token sequences with per-token conditioning, and transposition augmentation.

Each piece becomes its token sequence plus, per token, the index of its four-bar phrase. Controls
are measured per phrase (:mod:`models.generator.attributes`), so the model learns to follow
controls that change at phrase boundaries, which is how the runtime uses them. Transposition by
``shift`` semitones is a lookup table over tokens (pitches move, chord roots rotate); the
register control and the key tonic move with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.generator.attributes import REGISTER_SPAN, control_vector, measure
from models.generator.corpus import Piece
from models.generator.vocab import (
    BAR,
    INDEX,
    PAD,
    PITCH_HI,
    PITCH_LO,
    STEPS_PER_BAR,
    TOKENS,
    Note,
    encode,
)

BARS_PER_PHRASE = 4
SHIFTS = tuple(range(-5, 7))  # transpositions used for augmentation, semitones


def shift_table(shift: int) -> np.ndarray:
    """Token id → token id transposed by ``shift`` (-1 where a pitch leaves the range)."""
    table = np.arange(len(TOKENS), dtype=np.int64)
    for i, name in enumerate(TOKENS):
        if name.startswith("PITCH_"):
            m = int(name[6:]) + shift
            table[i] = INDEX[f"PITCH_{m}"] if PITCH_LO <= m <= PITCH_HI else -1
        elif name.startswith("CHORD_"):
            _, r, q = name.split("_")
            table[i] = INDEX[f"CHORD_{(int(r) + shift) % 12}_{q}"]
    return table


SHIFT_TABLES = {s: shift_table(s) for s in SHIFTS}


@dataclass
class Sequence:
    tokens: np.ndarray  # [T] int64, BOS first
    phrase: np.ndarray  # [T] phrase index of each token
    controls: np.ndarray  # [P, C] conditioning per phrase (untransposed)
    tonic: int
    mode: str
    lo: int  # lowest and highest melody pitch, to choose valid shifts
    hi: int
    piece_id: str

    def valid_shifts(self) -> list[int]:
        return [s for s in SHIFTS if self.lo + s >= PITCH_LO and self.hi + s <= PITCH_HI]

    def transposed(self, shift: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, controls per token [T, C]) transposed by ``shift`` semitones."""
        toks = SHIFT_TABLES[shift][self.tokens]
        ctl = self.controls[self.phrase].copy()
        if shift:
            tonic = (self.tonic + shift) % 12
            ctl[:, :12] = 0.0
            ctl[:, tonic] = 1.0
            reg = ctl[:, 14] + shift / REGISTER_SPAN
            ctl[:, 14] = np.clip(reg, 0.0, 1.0)
        return toks, ctl


def sequence_of(piece: Piece) -> Sequence | None:
    pitches = [n.pitch for n in piece.notes]
    if not pitches or min(pitches) < PITCH_LO - 5 or max(pitches) > PITCH_HI + 5:
        return None
    lo, hi = min(pitches), max(pitches)
    # bring pieces written outside the range inside it by octaves
    octave = 0
    while lo + octave < PITCH_LO:
        octave += 12
    while hi + octave > PITCH_HI:
        octave -= 12
    if lo + octave < PITCH_LO:
        return None
    notes = [Note(n.start, n.dur, n.pitch + octave) for n in piece.notes]
    tokens = np.array(encode(notes, piece.chords), dtype=np.int64)
    phrase = np.cumsum(tokens == BAR) - 1
    phrase = np.maximum(phrase, 0) // BARS_PER_PHRASE
    n_phrases = int(phrase.max()) + 1
    span = BARS_PER_PHRASE * STEPS_PER_BAR
    ctl = []
    for k in range(n_phrases):
        a, b = k * span, (k + 1) * span
        pn = [n for n in notes if a <= n.start < b]
        pc = [c for c in piece.chords if a <= c.start < b]
        end = max([n.start + n.dur for n in notes] + [c.start + 1 for c in piece.chords])
        beats = (min(b, max(end, a + STEPS_PER_BAR)) - a) / 4
        ctl.append(control_vector(piece.tonic, piece.mode, measure(pn, pc, beats)))
    return Sequence(tokens, phrase, np.stack(ctl), piece.tonic, piece.mode,
                    lo + octave, hi + octave, piece.id)


def sequences(pieces: list[Piece]) -> list[Sequence]:
    return [s for s in (sequence_of(p) for p in pieces) if s is not None]


def batch(seqs: list[Sequence], rng: np.random.Generator, size: int, length: int,
          augment: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random windows: (tokens [B, L+1], controls [B, L+1, C], mask [B, L+1]).

    A window starts at the beginning of a piece or at a bar line, so that the first input
    token is BOS or BAR."""
    C = seqs[0].controls.shape[1]
    toks = np.full((size, length + 1), PAD, dtype=np.int64)
    ctls = np.zeros((size, length + 1, C), dtype=np.float32)
    mask = np.zeros((size, length + 1), dtype=np.float32)
    for b in range(size):
        s = seqs[rng.integers(len(seqs))]
        shift = int(rng.choice(s.valid_shifts())) if augment else 0
        t, c = s.transposed(shift)
        starts = np.flatnonzero(t == BAR)
        start = 0 if len(starts) == 0 or rng.random() < 0.1 else int(rng.choice(starts))
        t, c = t[start:start + length + 1], c[start:start + length + 1]
        toks[b, :len(t)] = t
        ctls[b, :len(t)] = c
        mask[b, :len(t)] = 1.0
    return toks, ctls, mask
