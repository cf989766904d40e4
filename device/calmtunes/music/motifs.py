"""Motif memory: themes kept as they were composed, brought back transformed.

A theme is eight bars of melody — two phrases, ``part`` 0 (statement) and 1 (answer) — stored
in scale steps of the key it was composed in (step 0 = that key's tonic, 7 = the octave above),
so it can come back in any key, mode or register. :meth:`MotifMemory.recall` returns one part
of a theme with the transforms a :class:`~calmtunes.music.form.PhrasePlan` asks for:

* ``transpose`` — moved by a third or a fourth within the scale (diatonically);
* ``augment`` — half the theme at half the speed: part 0 plays the statement's first two bars
  stretched over four, part 1 its last two;
* ``vary`` — the answer's cadence re-aimed: to the tonic, or where it already ends there, to
  the third (an imperfect close), within the line's own span where it can; in a statement of
  :data:`VARY_MIN_NOTES` notes or more one inner note moves to a neighbour step, a shorter one
  comes back as it was, so the return is still heard as one;
* ``reorchestrate`` — an octave up or down (the composer also doubles it in the keyed voice);
* ``reharmonise`` — the melody unchanged; the composer chooses the chords anew.

Both composers use it: the procedural one plays the recalled line over its own chords, the
neural one feeds it to the model, which chooses the chords under it (a new harmonisation).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from calmtunes.music import theory

PHRASE_BEATS = 16.0
VARY_MIN_NOTES = 8  # a statement this long stays recognisable with one note moved


@dataclass(frozen=True)
class MotifNote:
    start_beat: float
    duration_beats: float
    step: int  # scale step from the key's tonic in octave 4 (MIDI 60 + tonic); 7 = an octave up
    velocity: float


def to_steps(pitches: list[int], key_pc: int, mode: str) -> list[int]:
    """Scale steps of MIDI pitches in ``key_pc`` ``mode`` (off-scale pitches: the step below)."""
    scale = theory.SCALES[mode]
    out = []
    for p in pitches:
        rel = p - (60 + key_pc)
        octave, pc = divmod(rel, 12)
        idx = max(i for i, s in enumerate(scale) if s <= pc)
        out.append(octave * 7 + idx)
    return out


def to_pitch(step: int, key_pc: int, mode: str) -> int:
    scale = theory.SCALES[mode]
    octave, idx = divmod(step, 7)
    return 60 + key_pc + 12 * octave + scale[idx]


class MotifMemory:
    """Themes by id, each a dict part -> tuple of :class:`MotifNote`."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.themes: dict[int, dict[int, tuple[MotifNote, ...]]] = {}

    def store(self, theme_id: int, part: int, notes: list[tuple[float, float, int, float]],
              key_pc: int, mode: str) -> None:
        """Keep ``notes`` — (start beat, duration beats, MIDI pitch, velocity) — as ``part``."""
        if not notes:
            return
        steps = to_steps([n[2] for n in notes], key_pc, mode)
        self.themes.setdefault(theme_id, {})[part] = tuple(
            MotifNote(float(s), float(d), st, float(v))
            for (s, d, _, v), st in zip(notes, steps))

    def state(self) -> dict:
        """The themes kept so far (and the random draws to come), for :meth:`restore`."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state: dict) -> None:
        """Forget what was stored since :meth:`state`: a theme nobody heard cannot return."""
        self.__dict__.update(copy.deepcopy(state))

    def has(self, theme_id: int | None, part: int) -> bool:
        return theme_id is not None and part in self.themes.get(theme_id, {})

    def recall(self, theme_id: int, part: int, transform: tuple[str, ...], key_pc: int,
               mode: str, centre: float) -> list[tuple[float, float, int, float]]:
        """Part ``part`` of theme ``theme_id`` transformed, as (start beat, duration beats, MIDI
        pitch, velocity) in ``key_pc`` ``mode``, placed so its mean pitch is near ``centre``."""
        theme = self.themes[theme_id]
        notes = list(theme.get(part) or theme[min(theme)])
        if "augment" in transform:
            source = list(theme.get(0, ())) or notes
            half = [n for n in source if (n.start_beat < PHRASE_BEATS / 2) == (part == 0)]
            offset = 0.0 if part == 0 else PHRASE_BEATS / 2
            notes = [MotifNote(2 * (n.start_beat - offset), 2 * n.duration_beats, n.step,
                               n.velocity) for n in half
                     if 2 * (n.start_beat - offset) < PHRASE_BEATS] or notes
        steps = [n.step for n in notes]
        if "transpose" in transform:
            shift = int(self.rng.choice((-3, 2)))
            steps = [s + shift for s in steps]
        if "vary" in transform and part == 0 and len(steps) >= VARY_MIN_NOTES:
            # one inner note of a long statement moves to a neighbour step; a short one comes
            # back as it was: a sparse eight bars changed in both halves is no longer heard as
            # its theme (0 % returning phrases for some seeds of the sleep preset)
            i = int(self.rng.integers(1, len(steps) - 1))
            steps[i] += int(self.rng.choice((-1, 1)))
        if "vary" in transform and part == 1 and steps:
            last = steps[-1]
            goal = 0 if last % 7 != 0 else 2  # to the tonic, or from it to the third
            # the nearest step of the goal, below or above — inside the line's own span where
            # one is, so a varied return does not leave the register its theme kept to
            options = (last - (last - goal) % 7, last + (goal - last) % 7)
            inside = [s for s in options if min(steps) <= s <= max(steps)] or list(options)
            steps[-1] = min(inside, key=lambda s: abs(s - last))
        # the octave that puts the line's mean nearest the requested centre
        pitches = [to_pitch(s, key_pc, mode) for s in steps]
        mean = float(np.mean(pitches))
        octave = round((centre - mean) / 12.0)
        if "reorchestrate" in transform:
            octave += 1 if mean + 12 * octave < centre else -1
        out = []
        for n, p in zip(notes, pitches):
            dur = min(n.duration_beats, PHRASE_BEATS - n.start_beat)
            if dur > 0:
                out.append((n.start_beat, dur, p + 12 * octave, n.velocity))
        return out
