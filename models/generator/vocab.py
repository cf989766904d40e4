"""The event vocabulary: bars, positions, chords, melody pitches and durations.

Time is on a sixteenth-note grid in bars of four quarter notes (2/4 tunes pair their bars).
One melody note is ``POS_p [CHORD_r_q] PITCH_m DUR_d``; a chord change without a melody onset is
``POS_p CHORD_r_q``; ``BAR`` opens each bar. Pitches are absolute MIDI numbers, so the same
vocabulary serves every key; the key is part of the conditioning. The corpus scores carry no
performance dynamics, so there are no velocity tokens: the runtime derives velocity from the
metrical position and the ``melodic`` control.
"""

from __future__ import annotations

from dataclasses import dataclass

STEPS_PER_BEAT = 4  # sixteenths per quarter note
STEPS_PER_BAR = 16  # bars of four quarter notes
PITCH_LO, PITCH_HI = 48, 88  # C3–E6, melody range after transposition
MAX_DUR = 16  # sixteenths; longer notes are clipped to a whole bar
QUALITIES = ("maj", "min", "dim", "sus4", "dom7", "maj7", "min7")

SPECIALS = ("PAD", "BOS", "BAR")


def build_tokens() -> tuple[str, ...]:
    toks = list(SPECIALS)
    toks += [f"POS_{p}" for p in range(STEPS_PER_BAR)]
    toks += [f"CHORD_{r}_{q}" for r in range(12) for q in QUALITIES]
    toks += [f"PITCH_{m}" for m in range(PITCH_LO, PITCH_HI + 1)]
    toks += [f"DUR_{d}" for d in range(1, MAX_DUR + 1)]
    return tuple(toks)


TOKENS = build_tokens()
INDEX = {t: i for i, t in enumerate(TOKENS)}
PAD, BOS, BAR = INDEX["PAD"], INDEX["BOS"], INDEX["BAR"]


@dataclass(frozen=True)
class Note:
    start: int  # sixteenths from the start of the piece
    dur: int  # sixteenths, 1–MAX_DUR
    pitch: int  # MIDI


@dataclass(frozen=True)
class ChordMark:
    start: int  # sixteenths from the start of the piece
    root: int  # pitch class
    quality: str  # one of QUALITIES


def encode(notes: list[Note], chords: list[ChordMark], shift: int = 0) -> list[int]:
    """Tokens for a piece (BOS first), transposed by ``shift`` semitones."""
    events: dict[int, list] = {}
    for c in chords:
        events.setdefault(c.start, [None, None])[0] = c
    for n in notes:
        slot = events.setdefault(n.start, [None, None])
        if slot[1] is None:  # monophonic melody: the first note at an onset wins
            slot[1] = n
    if not events:
        return [BOS]
    last_bar = max(events) // STEPS_PER_BAR
    out = [BOS]
    for bar in range(last_bar + 1):
        out.append(BAR)
        for t in range(bar * STEPS_PER_BAR, (bar + 1) * STEPS_PER_BAR):
            if t not in events:
                continue
            chord, note = events[t]
            out.append(INDEX[f"POS_{t - bar * STEPS_PER_BAR}"])
            if chord is not None:
                out.append(INDEX[f"CHORD_{(chord.root + shift) % 12}_{chord.quality}"])
            if note is not None:
                out.append(INDEX[f"PITCH_{note.pitch + shift}"])
                out.append(INDEX[f"DUR_{min(MAX_DUR, max(1, note.dur))}"])
    return out


def decode(tokens: list[int]) -> tuple[list[Note], list[ChordMark], int]:
    """Notes and chord changes from tokens (inverse of :func:`encode`); also the bar count.

    Tokens out of grammar are skipped, so a partial stream decodes to what it holds."""
    notes: list[Note] = []
    chords: list[ChordMark] = []
    bar, pos, pitch = -1, 0, None
    for i in tokens:
        name = TOKENS[i]
        if name == "BAR":
            bar += 1
            pos = 0
        elif name.startswith("POS_"):
            pos = int(name[4:])
        elif name.startswith("CHORD_") and bar >= 0:
            _, r, q = name.split("_")
            chords.append(ChordMark(bar * STEPS_PER_BAR + pos, int(r), q))
        elif name.startswith("PITCH_"):
            pitch = int(name[6:])
        elif name.startswith("DUR_") and pitch is not None and bar >= 0:
            notes.append(Note(bar * STEPS_PER_BAR + pos, int(name[4:]), pitch))
            pitch = None
    return notes, chords, bar + 1
