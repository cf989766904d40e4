"""Arrangement: what the accompaniment plays under a phrase's chords, shared by both composers.

* **Harmonic rhythm** is set by the preset's density (:func:`bars_per_chord`): a sparse preset
  (sleep, density < 0.3) changes chord once a phrase (0.25 changes a bar), a calm one every
  two bars (0.5), a busier one every bar.
* **Pulse.** The keyed ``harmony`` voice plays the chord broken, softly, on every beat, in the
  section's figure (:data:`calmtunes.music.form.FIGURES`: which chord tone each beat takes), all
  beats nearly alike (the first of the bar a shade stronger), each tone doubled softly an
  octave up so its onset reaches more of the spectrum, as clear as the melody's strong beats:
  a gentle beat at the planned tempo and at no other — nothing accents every other beat, so no
  one hears it half as fast, and nothing falls between the beats.
* **Pad** (when the section has it) holds the chord, close-voiced a little below the melody.
* **Bass** is a real bass register (A1–G♯2, 55–104 Hz) and strikes each bar's first beat (and
  the fifth on beat three in a walking section); in a section's closing phrase it holds the
  tonic as a pedal under the cadence.
"""

from __future__ import annotations

from calmtunes.music import theory
from calmtunes.music.events import Chord, NoteEvent
from calmtunes.music.form import FIGURES, PhrasePlan

BEATS_PER_BAR = 4
BASS_LOW = 33  # A1 (55 Hz): the bass root lies in 33–44


def bars_per_chord(density: float) -> int:
    """Bars between chord changes for a density (0–1): 4 sparse, 2 calm, 1 busy."""
    if density < 0.3:
        return 4
    if density < 0.55:
        return 2
    return 1


def area_key(home_pc: int, mode: str, plan: PhrasePlan | None) -> int:
    """The tonic of the section's harmonic area (the home key's scale degree ``plan`` asks)."""
    if plan is None:
        return home_pc
    return theory.degree_root(home_pc, mode, plan.degree_for(mode))


def accompany(chords: list[Chord], plan: PhrasePlan | None, key_pc: int, register: float,
              beats: float) -> list[NoteEvent]:
    """Pad, bass and pulse for ``chords`` (see the module docstring)."""
    section = plan.section if plan is not None else None
    pad_on = section.pad if section is not None else True
    walk = section.walk if section is not None else False
    pulse = section.pulse if section is not None else True
    close = plan is not None and plan.role == "close"
    figure = plan.figure if plan is not None else FIGURES[0]
    out: list[NoteEvent] = []
    pad_centre = 52 + round(register * 10)  # E3–D4 with the melody's register
    pulse_low = 57 + round(register * 8)
    for c in chords:
        pcs = theory.chord_pcs(c.root_pc, c.quality)
        if pad_on:
            for pc in pcs[:4]:
                pitch = pad_centre - 5 + ((pc - pad_centre + 5) % 12)
                out.append(NoteEvent(c.start_beat, c.duration_beats, pitch, 0.32, "pad"))
        end = c.start_beat + c.duration_beats
        root = BASS_LOW + (((key_pc if close else c.root_pc) - BASS_LOW) % 12)
        bar = c.start_beat - c.start_beat % BEATS_PER_BAR
        while bar < end:
            t0 = max(bar, c.start_beat)
            t1 = min(bar + BEATS_PER_BAR, end)
            if walk and not close and t1 - t0 > 2:
                out.append(NoteEvent(t0, 2.0, root, 0.5, "bass"))
                out.append(NoteEvent(t0 + 2.0, t1 - t0 - 2.0, root + 7, 0.42, "bass"))
            elif t1 > t0:
                out.append(NoteEvent(t0, t1 - t0, root, 0.5, "bass"))
            bar += BEATS_PER_BAR
        if pulse:
            tones = sorted(pulse_low + ((pc - pulse_low) % 12) for pc in pcs[:3])
            pattern = tuple(tones[i] for i in figure) if len(tones) == 3 else tones
            beat = float(int(c.start_beat + 0.999))
            while beat < end:
                in_bar = beat % BEATS_PER_BAR
                vel = 0.52 if in_bar == 0 else 0.48
                pitch = pattern[int(in_bar) % len(pattern)]
                out.append(NoteEvent(beat, min(1.0, end - beat), pitch, vel, "harmony"))
                out.append(NoteEvent(beat, min(1.0, end - beat), pitch + 12, vel * 0.6,
                                     "harmony"))
                beat += 1.0
    return [n for n in out if n.start_beat < beats]
