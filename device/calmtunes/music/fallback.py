"""The procedural composer: rule-based calm music, always available.

It plays while the neural generator loads, and takes over for good if the generator fails.
Each phrase is four bars of 4/4: a gentle diatonic progression under a soft pad, a bass that
walks the roots, and a melody or arpeggio that moves mostly by step over chord tones, its
density and register set by the controls, ending each phrase on a chord tone.
"""

from __future__ import annotations

import numpy as np

from calmtunes.music import theory
from calmtunes.music.controls import TEMPO_RANGE, Controls
from calmtunes.music.events import Chord, NoteEvent, Phrase

BEATS_PER_BAR = 4
BARS = 4
CALM_KEYS = {"major": (0, 5, 7, 2, 3), "minor": (9, 2, 4, 0)}  # C F G D Eb / A D E C


class ProceduralComposer:
    name = "procedural"

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self._key: dict[str, int] = {}
        self._last_pitch: int | None = None
        self._progression_index = -1

    def key_for(self, mode: str) -> int:
        if mode not in self._key:
            self._key[mode] = self.rng.choice(CALM_KEYS[mode]).item()
        return self._key[mode]

    def next_phrase(self, controls: Controls) -> Phrase:
        mode = controls.mode if controls.mode in theory.SCALES else "major"
        key = self.key_for(mode)
        progs = theory.PROGRESSIONS[mode]
        # Walk the progressions without immediate repeats: variety without surprise.
        choices = [i for i in range(len(progs)) if i != self._progression_index]
        self._progression_index = int(self.rng.choice(choices))
        progression = progs[self._progression_index]

        notes: list[NoteEvent] = []
        chords: list[Chord] = []
        scale = sorted(theory.scale_pcs(key, mode))
        centre = 60 + round(controls.register * 14)  # melody centre, C4–D5
        density = float(np.clip(controls.density, 0.0, 1.0))
        for bar, (degree, quality) in enumerate(progression):
            start = bar * BEATS_PER_BAR
            root = theory.degree_root(key, mode, degree)
            chords.append(Chord(start, BEATS_PER_BAR, root, quality))
            pcs = theory.chord_pcs(root, quality)
            notes += self._pad(start, pcs)
            notes += self._bass(start, root, density)
            notes += self._melody(start, pcs, scale, centre, density, controls.melodic,
                                  last_bar=bar == BARS - 1)
        return Phrase(
            notes=tuple(notes),
            beats=BARS * BEATS_PER_BAR,
            tempo_bpm=float(np.clip(controls.tempo_bpm, *TEMPO_RANGE)),
            key_pc=key,
            mode=mode,
            controls=controls,
            chords=tuple(chords),
            source=self.name,
        )

    # -- voices -------------------------------------------------------------------------------
    def _pad(self, start: float, pcs: tuple[int, ...]) -> list[NoteEvent]:
        """Close-voiced chord around G3–E4, held for the bar."""
        out = []
        for pc in pcs[:4]:
            pitch = 55 + ((pc - 55) % 12)
            out.append(NoteEvent(start, BEATS_PER_BAR, pitch, 0.35, "pad"))
        return out

    def _bass(self, start: float, root: int, density: float) -> list[NoteEvent]:
        pitch = 36 + root if root < 8 else 24 + root  # E1–G2 range kept warm, not boomy
        if density < 0.5:
            return [NoteEvent(start, BEATS_PER_BAR, pitch, 0.45, "bass")]
        fifth = pitch + 7
        return [
            NoteEvent(start, 2.0, pitch, 0.45, "bass"),
            NoteEvent(start + 2.0, 2.0, fifth if self.rng.random() < 0.5 else pitch, 0.4, "bass"),
        ]

    def _melody(self, start: float, pcs: tuple[int, ...], scale: list[int], centre: int,
                density: float, melodic: float, last_bar: bool) -> list[NoteEvent]:
        # Rhythm: from one note a bar (sparse) to eighth notes (busy), never a grid of equals.
        slots = [0.0, 1.0, 2.0, 3.0] if density > 0.3 else [0.0, 2.0]
        if density > 0.6:
            slots += [1.5, 2.5, 3.5]
        slots.sort()
        probability = 0.35 + 0.6 * density
        onsets = [s for s in slots if s == 0.0 or self.rng.random() < probability]
        if last_bar:
            onsets = [s for s in onsets if s < 2.0] or [0.0]
        out = []
        velocity = 0.35 + 0.25 * melodic
        for i, onset in enumerate(onsets):
            end = onsets[i + 1] if i + 1 < len(onsets) else BEATS_PER_BAR
            strong = onset in (0.0, 2.0)
            pitch = self._next_pitch(pcs if (strong or last_bar) else tuple(scale), centre)
            dur = end - onset
            out.append(NoteEvent(start + onset, dur, pitch,
                                 velocity * (1.0 if strong else 0.8), "melody"))
        return out

    def _next_pitch(self, allowed_pcs, centre: int) -> int:
        candidates = [p for p in range(centre - 9, centre + 10) if p % 12 in allowed_pcs]
        last = self._last_pitch if self._last_pitch is not None else centre
        # Prefer small steps, and drift back toward the centre.
        weights = np.array([
            np.exp(-abs(p - last) / 2.5) * np.exp(-abs(p - centre) / 8.0)
            * (0.3 if p == last else 1.0)
            for p in candidates
        ])
        pitch = int(self.rng.choice(candidates, p=weights / weights.sum()))
        self._last_pitch = pitch
        return pitch
