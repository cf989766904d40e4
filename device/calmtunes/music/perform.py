"""Performance: a composed phrase played as a person would — breathing, swelling, never on a grid.

:func:`perform` takes a phrase's notes and its :class:`~calmtunes.music.form.PhrasePlan` and
returns them

* **humanised**: every onset moved by a random 10–25 ms (normal, σ = 16 ms; chord tones struck
  together move together), velocities varied by ±6 %;
* with **rubato**: the last bar broadens (a ritardando: onsets later by up to 60 ms at the end,
  150 ms before a section's close), and the first beat of the phrase is never early;
* with a **breath**: when the plan asks for one, the phrase's last 1½ beats are a rest — notes
  end, nothing new begins;
* with the **section's swell**: the pad and the bass play softer at the ends of the section's
  arch than at its high point (:data:`~calmtunes.music.form.ARCH_LOW`), so the balance of the
  sound moves from minute to minute within a section;
* with a **dynamic envelope** in ``meta["dynamics"]``: (beat, dB) breakpoints the mixer follows
  — the section's level, a swell that rises over the first 60 % of the phrase and falls back
  (the phrase's arch, ±2.2–2.8 dB, deeper for a sparser preset), a fade in a closing phrase,
  and a dip of :data:`BREATH_DIP_DB` through a breath, the bed and reverb receding with the
  music into a near-silence. The levels are centred so the envelope's mean power is about 0 dB:
  the loudness target still holds.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from calmtunes.music.events import NoteEvent
from calmtunes.music.form import ARCH_LOW, PhrasePlan

TIMING_SD_MS = 16.0  # onset spread, ms (mean |deviation| ≈ 13 ms)
MAX_SHIFT_MS = 35.0
RIT_MS = 60.0  # ritardando at the end of a phrase, ms
CLOSE_RIT_MS = 150.0
BREATH_BEATS = 1.5  # the rest that ends a breathing phrase
BREATH_DIP_DB = -12.0
# Arch depth, dB: SWELL_DB at density 0, SWELL_PER_DENSITY_DB more per unit of density (sleep
# 3.05, calm 2.95, uplift 2.85). Sparse music is steadier by itself — a few long notes over the pad
# — so its arch must be deeper for the same loudness range: with depths rising with density the
# sleep preset measured 3.3–4.3 LU and calm 4.4–6.2 over five seeds (4–6 wanted).
SWELL_DB = 3.2
SWELL_PER_DENSITY_DB = -0.6
CENTRE_DB = 0.4  # lifts the envelope so its mean power, breaths included, is about 0 dB


def swell_db(density: float) -> float:
    """Depth of the phrase's arch, dB: a sparse (sleep) phrase swells deeper than a busy one."""
    return SWELL_DB + SWELL_PER_DENSITY_DB * min(1.0, max(0.0, float(density)))


def dynamics(plan: PhrasePlan | None, beats: float,
             density: float = 0.45) -> list[tuple[float, float]]:
    """(beat, dB) breakpoints for one phrase."""
    level = (plan.section.level_db if plan is not None else 0.0) + CENTRE_DB
    close = plan is not None and plan.role == "close"
    swell = swell_db(density)
    start, peak, end = level - swell, level + swell * 0.6, level - swell
    if close:
        end -= 4.0
    points = [(0.0, start), (0.6 * beats, peak)]
    if plan is not None and plan.breath:
        points += [(beats - BREATH_BEATS - 0.5, end), (beats - BREATH_BEATS + 0.3, BREATH_DIP_DB),
                   (beats - 0.3, BREATH_DIP_DB)]
    else:
        points += [(beats - 0.3, end)]
    return points


def perform(notes: list[NoteEvent], plan: PhrasePlan | None, beats: float, tempo_bpm: float,
            rng: np.random.Generator, density: float = 0.45
            ) -> tuple[list[NoteEvent], list[tuple[float, float]]]:
    """(performed notes, dynamic envelope); see the module docstring."""
    beat_ms = 60000.0 / max(30.0, tempo_bpm)
    close = plan is not None and plan.role == "close"
    rit = CLOSE_RIT_MS if close else RIT_MS
    breath = plan is not None and plan.breath
    rest_at = beats - BREATH_BEATS if breath else beats
    arch = plan.arch if plan is not None and plan.arch is not None else 1.0
    swell = ARCH_LOW + (1.0 - ARCH_LOW) * arch  # the section's swell, for the pad and the bass
    def rubato(beat: float) -> float:  # ms: the last bar broadens
        return rit * (max(0.0, beat - (beats - 4.0)) / 4.0) ** 2

    # one shift per onset time (a chord is struck together), drawn in time order
    shifts: dict[float, float] = {}
    for beat in sorted({n.start_beat for n in notes if n.start_beat < rest_at}):
        ms = float(np.clip(rng.normal(0.0, TIMING_SD_MS), -MAX_SHIFT_MS, MAX_SHIFT_MS))
        shifts[beat] = ms + rubato(beat)
    out = []
    for n in notes:
        if n.start_beat >= rest_at:
            continue
        end = min(n.start_beat + n.duration_beats, rest_at)
        # a note ending where another begins ends when that one begins: legato stays legato
        end += shifts.get(end, rubato(end)) / beat_ms
        start = max(0.0, n.start_beat + shifts[n.start_beat] / beat_ms)
        end = min(end, beats)
        start = min(start, end - 0.05)
        velocity = n.velocity * (1.0 + rng.uniform(-0.06, 0.06))
        if n.voice in ("pad", "bass"):
            velocity *= swell
        velocity = float(np.clip(velocity, 0.05, 1.0))
        out.append(replace(n, start_beat=start, duration_beats=end - start, velocity=velocity))
    return out, dynamics(plan, beats, density)
