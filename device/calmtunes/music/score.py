"""Checking a phrase before it sounds: bad events are clamped or dropped, and said so.

A composer (the neural one especially) can emit nonsense: a pitch of 200, a velocity of 3, a
NaN duration, a tempo of 0, a thousand notes at once, the same key struck twice on top of
itself. :func:`clean_phrase` returns what can be played plus one line describing every fix, which
the mixer logs once per phrase.

Rules (units as in :mod:`calmtunes.music.events`):

* tempo outside 30–200 bpm is clamped; a non-finite tempo becomes 60 bpm;
* phrase length (beats) must be finite and positive, else it becomes the end of its last note
  (or 4 beats for an empty phrase), and is capped at 256 beats;
* pitches are folded by octaves into MIDI 21–108 (A0–C8, the piano's range); non-finite → dropped;
* velocities are clamped to 0–1; zero, negative or non-finite velocity → dropped;
* start beats are clamped to ≥ 0; non-finite → dropped; durations ≤ 0 or non-finite → dropped,
  longer than 64 beats → clamped;
* an unknown voice is played by the melody instrument;
* overlapping notes of the same pitch in the same voice are made legato (the earlier one ends
  where the later begins: a key cannot be struck while it is still down);
* at most :data:`MAX_NOTES` notes per phrase (the loudest kept).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

from calmtunes.music.events import VOICES, NoteEvent, Phrase

MIN_TEMPO, MAX_TEMPO = 30.0, 200.0  # bpm
MIN_PITCH, MAX_PITCH = 21, 108  # MIDI A0–C8
MAX_BEATS = 256.0
MAX_NOTE_BEATS = 64.0
MAX_NOTES = 512


def _finite(*values: float) -> bool:
    try:
        return all(math.isfinite(float(v)) for v in values)
    except (TypeError, ValueError):
        return False


def clean_phrase(phrase: Phrase) -> tuple[list[NoteEvent], float, float, list[str]]:
    """(playable notes, tempo in bpm, length in beats, problems found)."""
    problems: list[str] = []
    tempo = phrase.tempo_bpm
    if not _finite(tempo):
        problems.append(f"tempo {tempo!r} is not a number; using 60 bpm")
        tempo = 60.0
    elif not MIN_TEMPO <= tempo <= MAX_TEMPO:
        clamped = min(MAX_TEMPO, max(MIN_TEMPO, float(tempo)))
        problems.append(f"tempo {tempo:g} bpm is outside {MIN_TEMPO:g}–{MAX_TEMPO:g}; "
                        f"using {clamped:g}")
        tempo = clamped
    tempo = float(tempo)

    notes: list[NoteEvent] = []
    dropped: dict[str, int] = {}
    folded = clamped_vel = remapped = 0

    def drop(reason: str) -> None:
        dropped[reason] = dropped.get(reason, 0) + 1

    for n in phrase.notes:
        if not _finite(n.pitch, n.velocity, n.start_beat, n.duration_beats):
            drop("non-numeric field")
            continue
        if n.velocity <= 0:
            drop("velocity ≤ 0")
            continue
        if n.duration_beats <= 0:
            drop("duration ≤ 0")
            continue
        pitch = round(n.pitch)
        if not MIN_PITCH <= pitch <= MAX_PITCH:
            folded += 1
            while pitch < MIN_PITCH:
                pitch += 12
            while pitch > MAX_PITCH:
                pitch -= 12
        velocity = float(n.velocity)
        if velocity > 1.0:
            clamped_vel += 1
            velocity = 1.0
        voice = n.voice
        if voice not in VOICES:
            remapped += 1
            voice = "melody"
        notes.append(NoteEvent(max(0.0, float(n.start_beat)),
                               min(float(n.duration_beats), MAX_NOTE_BEATS), pitch, velocity,
                               voice))
    for reason, count in dropped.items():
        problems.append(f"dropped {count} note(s): {reason}")
    if folded:
        problems.append(f"folded {folded} pitch(es) by octaves into MIDI {MIN_PITCH}–{MAX_PITCH}")
    if clamped_vel:
        problems.append(f"clamped {clamped_vel} velocity(ies) above 1 to 1")
    if remapped:
        problems.append(f"{remapped} note(s) with an unknown voice played as melody "
                        f"(voices: {', '.join(VOICES)})")

    notes, overlaps = _legato(notes)
    if overlaps:
        problems.append(f"shortened {overlaps} note(s) that overlapped the same pitch and voice")
    if len(notes) > MAX_NOTES:
        problems.append(f"{len(notes)} notes in one phrase; kept the {MAX_NOTES} loudest")
        notes = sorted(notes, key=lambda n: -n.velocity)[:MAX_NOTES]
        notes.sort(key=lambda n: n.start_beat)

    beats = phrase.beats
    last = max((n.start_beat + n.duration_beats for n in notes), default=0.0)
    if not _finite(beats) or beats <= 0:
        fixed = min(MAX_BEATS, last) if last > 0 else 4.0
        problems.append(f"phrase length {beats!r} beats is not positive; using {fixed:g}")
        beats = fixed
    elif beats > MAX_BEATS:
        problems.append(f"phrase length {beats:g} beats is over {MAX_BEATS:g}; cut there")
        beats = MAX_BEATS
        notes = [n for n in notes if n.start_beat < MAX_BEATS]
    return notes, tempo, float(beats), problems


#: an overlap up to this is rounding, not two notes on one key: a performed note ends where the
#: next begins, but its start plus its duration (each rounded) can land an ulp past it, beats
TOUCH_BEATS = 1e-9


def _legato(notes: list[NoteEvent]) -> tuple[list[NoteEvent], int]:
    """End each note where the next one of the same pitch and voice begins, if they overlap
    (by more than :data:`TOUCH_BEATS`)."""
    by_key: dict[tuple[str, int], list[int]] = {}
    order = sorted(range(len(notes)), key=lambda i: notes[i].start_beat)
    for i in order:
        by_key.setdefault((notes[i].voice, notes[i].pitch), []).append(i)
    out = list(notes)
    fixed = 0
    keep = [True] * len(notes)
    for idx in by_key.values():
        for a, b in itertools.pairwise(idx):
            na, nb = out[a], out[b]
            if na.start_beat + na.duration_beats > nb.start_beat + TOUCH_BEATS:
                fixed += 1
                if nb.start_beat <= na.start_beat:  # struck twice at once: keep one
                    keep[a] = False
                    out[b] = replace(nb, velocity=max(na.velocity, nb.velocity))
                else:
                    out[a] = replace(na, duration_beats=nb.start_beat - na.start_beat)
    return [n for n, k in zip(out, keep) if k], fixed
