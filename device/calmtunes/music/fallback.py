"""The procedural composer: rule-based calm music, always available.

It plays while the neural generator loads, and takes over for good if the generator fails.
Each phrase is four bars of 4/4 placed in the form (:mod:`calmtunes.music.form`): its section
sets register, density, instrumentation and harmonic area, and its role says whether the melody
is new, a stored theme coming back transformed (:mod:`calmtunes.music.motifs`), or a closing
phrase that thins out over a tonic pedal and cadences. Chords change as often as the preset's
harmonic rhythm allows (:func:`calmtunes.music.arrange.bars_per_chord`); the accompaniment
(:mod:`calmtunes.music.arrange`) gives the beat; the melody moves mostly by step over chord
tones, follows the phrase's arch (low, rising to a high point in the third bar, settling),
tires of pitches it has used lately, spans 12–18 semitones in sixteen bars and ends each phrase
on a chord tone; finally the phrase is
performed (:mod:`calmtunes.music.perform`): humanised, with rubato, breaths and swells.
"""

from __future__ import annotations

import numpy as np

from calmtunes.music import theory
from calmtunes.music.arrange import accompany, area_key, bars_per_chord
from calmtunes.music.controls import TEMPO_RANGE, Controls
from calmtunes.music.events import Chord, NoteEvent, Phrase
from calmtunes.music.form import CONTOUR_ST, MELODY_REACH, Form
from calmtunes.music.motifs import MotifMemory
from calmtunes.music.perform import perform

BEATS_PER_BAR = 4
BARS = 4
CALM_KEYS = {"major": (0, 5, 7, 2, 3), "minor": (9, 2, 4, 0)}  # C F G D Eb / A D E C
STEP_ST = 2.7  # the odds of a melodic interval fall by e per this many semitones
CONTOUR_PULL_ST = 6.0  # the melody's odds fall by e per this many semitones from the arch
SPARSE_ARCH = 1.5  # a sparse line (two notes a bar) follows a 1.5× deeper arch: with so few
#                    notes it otherwise spanned 10 semitones in sixteen bars for some seeds
TIRE = 3.0  # a pitch's odds fall by e^TIRE per recent use (decaying 0.85 a note): with few
#            notes (sleep: two a bar) a weaker fatigue let one pitch take over a third of them


class ProceduralComposer:
    name = "procedural"

    def __init__(self, seed: int | None = None, form: Form | None = None,
                 motifs: MotifMemory | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.form = form if form is not None else Form(seed)
        self.motifs = motifs if motifs is not None else MotifMemory(seed)
        self._key: dict[str, int] = {}
        self._last_pitch: int | None = None
        self._progression_index = -1
        self._phrases = 0
        self._counts: dict[int, float] = {}  # recent use of each melody pitch (decaying)

    def key_for(self, mode: str) -> int:
        if mode not in self._key:
            self._key[mode] = self.rng.choice(CALM_KEYS[mode]).item()
        return self._key[mode]

    def next_phrase(self, controls: Controls) -> Phrase:
        mode = controls.mode if controls.mode in theory.SCALES else "major"
        plan = self.form.next(controls)
        played = plan.apply(controls)
        key = area_key(self.key_for(mode), mode, plan)
        progs = theory.PROGRESSIONS[mode]
        # Walk the progressions without immediate repeats: variety without surprise.
        choices = [i for i in range(len(progs)) if i != self._progression_index]
        self._progression_index = int(self.rng.choice(choices))
        progression = progs[self._progression_index]
        span = bars_per_chord(played.density)
        tonic = "maj" if mode == "major" else "min"
        if plan.role == "close":  # a plagal cadence (IV–I / iv–i) over the tonic pedal
            span = max(2, span)
            degrees = [(3, tonic), (0, tonic)] if span == 2 else [(0, tonic)]
        else:
            offset = 0 if span < 4 else self._phrases % len(progression)
            degrees = [progression[(offset + j * span) % len(progression)]
                       for j in range(BARS // span)]
        self._phrases += 1
        beats = float(BARS * BEATS_PER_BAR)
        chords = [Chord(j * span * BEATS_PER_BAR, span * BEATS_PER_BAR,
                        theory.degree_root(key, mode, degree), quality)
                  for j, (degree, quality) in enumerate(degrees)]
        scale = sorted(theory.scale_pcs(key, mode))
        centre = 55 + round(played.register * 22)  # melody centre, G3–E5
        density = float(np.clip(played.density, 0.0, 1.0))
        velocity = 0.35 + 0.25 * float(np.clip(played.melodic, 0.0, 1.0))  # the section's
        if plan.role == "return" and self.motifs.has(plan.theme_id, plan.part):
            line = self.motifs.recall(plan.theme_id, plan.part, plan.transform, key, mode,
                                      centre)
            melody = [NoteEvent(s, d, p, v, "melody") for s, d, p, v in line]
        else:
            melody = []
            for chord in chords:
                pcs = theory.chord_pcs(chord.root_pc, chord.quality)
                for bar in range(int(chord.duration_beats) // BEATS_PER_BAR):
                    start = chord.start_beat + bar * BEATS_PER_BAR
                    last = start + BEATS_PER_BAR >= beats
                    melody += self._melody(start, pcs, scale, centre, density, velocity, last)
            if plan.role == "theme":
                self.motifs.store(plan.theme_id, plan.part, [
                    (n.start_beat, n.duration_beats, n.pitch, n.velocity) for n in melody],
                    key, mode)
        notes = melody + accompany(chords, plan, key, played.register, beats)
        tempo = float(np.clip(controls.tempo_bpm, *TEMPO_RANGE))
        notes, envelope = perform(notes, plan, beats, tempo, self.rng, played.density)
        return Phrase(
            notes=tuple(sorted(notes, key=lambda n: (n.start_beat, n.voice))),
            beats=beats,
            tempo_bpm=tempo,
            key_pc=key,
            mode=mode,
            controls=controls,
            chords=tuple(chords),
            source=self.name,
            meta={"dynamics": envelope, "section": plan.section.name, "role": plan.role,
                  "brightness_shift": plan.brightness_shift(controls),
                  "room": plan.room(controls)},
        )

    # -- melody ------------------------------------------------------------------------------
    def _melody(self, start: float, pcs: tuple[int, ...], scale: list[int], centre: int,
                density: float, velocity: float, last_bar: bool) -> list[NoteEvent]:
        # Rhythm: from one note a bar (sparse) to eighth notes (busy), never a grid of equals.
        sparse = density <= 0.3
        # a sparse line's second note falls on the third beat or, more often, the fourth (a
        # pickup): on the third alone it marked every other beat, heard as half the tempo when
        # the loop plays the sleep preset at a stressed listener's heart rate (88 bpm)
        slots = [0.0, 1.0, 2.0, 3.0] if not sparse else [
            0.0, 3.0 if self.rng.random() < 2 / 3 else 2.0]
        if density > 0.6:
            slots += [1.5, 2.5, 3.5]
        slots.sort()
        probability = 0.35 + 0.6 * density
        onsets = [s for s in slots if s == 0.0 or self.rng.random() < probability]
        if last_bar:
            onsets = [s for s in onsets if s < 2.0] or [0.0]
        out = []
        arch = CONTOUR_ST[int(start // BEATS_PER_BAR) % len(CONTOUR_ST)]
        target = centre + arch * (SPARSE_ARCH if sparse else 1.0)
        for i, onset in enumerate(onsets):
            end = onsets[i + 1] if i + 1 < len(onsets) else BEATS_PER_BAR
            # chord tones on the strong beats; a sparse line's second note may be any scale
            # tone (a passing or neighbour note), else it has only the chords' pitch classes
            strong = onset == 0.0 or (onset == 2.0 and not sparse)
            pitch = self._next_pitch(pcs if (strong or last_bar) else tuple(scale), centre,
                                     target)
            out.append(NoteEvent(start + onset, end - onset, pitch,
                                 velocity * (1.0 if strong else 0.8), "melody"))
        return out

    def _next_pitch(self, allowed_pcs, centre: int, target: float) -> int:
        candidates = [p for p in range(centre - MELODY_REACH, centre + MELODY_REACH + 1)
                      if p % 12 in allowed_pcs]
        last = self._last_pitch if self._last_pitch is not None else centre
        # Prefer small steps, follow the phrase's arch (``target``, the bar's point of it), and
        # tire of pitches heard often lately, so the line travels instead of circling one note.
        weights = np.array([
            np.exp(-abs(p - last) / STEP_ST) * np.exp(-abs(p - target) / CONTOUR_PULL_ST)
            * (0.25 if p == last else 1.0) * np.exp(-TIRE * self._counts.get(p, 0.0))
            for p in candidates
        ])
        pitch = int(self.rng.choice(candidates, p=weights / weights.sum()))
        for k in list(self._counts):
            self._counts[k] *= 0.85
        self._counts[pitch] = self._counts.get(pitch, 0.0) + 1.0
        self._last_pitch = pitch
        return pitch
