"""Form: the slow structural layer above the phrase — sections, their character, their joins.

A session is a chain of sections, each 3–4 minutes long (the length is drawn per section), in
the order A, A′, B, A″, B′, A‴, … — a theme, its restatement, a contrast in another harmonic
area, the theme's return, and so on. Each section has its own

* register (a shift of the melody centre, 0–1 units of :class:`Controls.register`),
* density (a factor on :class:`Controls.density`),
* instrumentation (which accompaniment voices play: the keyed pulse, the pad, a bass walk),
* harmonic area (the section's tonic, as a scale degree of the home key: I, IV, vi …),
* dynamic level (dB, a section's loudness relative to the others; the mixer plays it),
* timbre (a brightness offset for its notes).

Within a section the sound follows an arch (:attr:`PhrasePlan.arch`): it opens thinner, a
little darker and lower, the pad and the bass swell (:data:`ARCH_LOW`), the timbre brightens
(:data:`ARCH_BRIGHT`) and the melody climbs pair by pair (:data:`ARCH_REGISTER`) steadily to a
high point about three fifths of the way through, and all recede again into the close — the
section's own swell, the phrase's arch on the scale of minutes, so the colour moves from
minute to minute inside a section as well as between sections, and smoothly, never as a step
that could be heard as a section of its own. (Without it a closed-loop session's colour moved
1.7 dB from minute to minute for one seed of five, where 2–4 is wanted: within a section each
minute sounded like the last.)

Its phrases have roles: ``theme`` (new material, kept in the motif memory), ``answer`` (new
material), ``return`` (a stored theme, transformed — see :mod:`calmtunes.music.motifs`) and
``close`` (the section's last phrase: thinner, over a tonic pedal, ending on a cadence, so the
next section is prepared, never cut in).

The form knows time only through the phrases it plans: each phrase lasts ``beats × 60 /
tempo`` seconds, so a slower tempo makes the same section last the same minutes with fewer
phrases.

**The room's changes land on section boundaries, and the room may bring the boundary
forward.** The conductor moves the music's colour with the camera's scene (visitors, dusk,
night): density, register, brightness, the melody's prominence and the bed. A musician playing
in that room would not change character in the middle of a section, nor ignore the room for
five minutes: they let the section they are in come to its close and begin the next one in the
room's new mood. So does the form:

* a section takes the five as they stand when it begins and holds them through the section
  (:attr:`PhrasePlan.character`; the mixer plays the held melody prominence, bed level and bed
  colour from the phrase's ``meta["room"]``), so nothing of the room is heard in mid-section;
* when the room moves the colour by more than :data:`ROOM_MOVE` from what the section holds, the
  section closes early — at the end of the phrase pair under way, with its usual close (thinner,
  over a tonic pedal, cadencing) — as soon as it has lasted :data:`SECTION_MIN_S`; the next
  section begins in the room's new colour. A room change in a section's first
  :data:`SECTION_MIN_S` waits until then: sections stay at least that long, so the room can
  only move boundaries, never crowd them (ten minutes still hold at most three sections).

Sections are drawn 3–4⅓ minutes long; a room change cuts that short to the moment the room
changed (never under three minutes). (Taken phrase by phrase, the room's moves changed the
colour in mid-section and were heard as extra sections: 4.1 in ten minutes for one seed of a
closed-loop session where 2–4 are wanted; with density, register and brightness held but the
bed and the melody's prominence following the room at once, still 5.1 for one seed of five.)
Tempo, breath pacing and volume still follow
the conductor at once: they are the loop's and the room's level, not the section's colour. A
preset change starts a new piece and so a new section with the new preset's character; a step
larger than the scene can make between two phrases (:data:`CHARACTER_JUMP`: an edited preset)
is taken at once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np

from calmtunes.music.controls import Controls

PHRASE_BEATS = 16.0  # four bars of 4/4
# A section is drawn 3–4⅓ minutes long (it ends with the phrase pair under way, so it lasts up to
# half a minute more: inside the 2–5 wanted); a change of the room ends it early, but never under
# SECTION_MIN_S: so ten minutes hold three sections and a fourth can begin only in the last
# minute, whatever the seed and the room (with 2½–3½ minutes four whole sections fitted for some
# seeds, over the 2–4 wanted).
SECTION_S = (180.0, 260.0)
SECTION_MIN_S = 180.0
# The room has moved the colour when one of density, register, brightness, melody prominence or
# bed level (0–1 scales) is this far from what the section holds. The smallest of the scene's
# moves at the default influence 0.5 — dusk after day moves brightness by 0.12, night after dusk
# register by 0.075, visitors the melody's prominence by 0.3 — pass it within a phrase or two of
# the change; what is left of a glide when a section begins (a fifth or so) does not.
ROOM_MOVE = 0.04
# The section's arch (see the module docstring) comes ARCH_PEAK of the way through the section
# and rises and falls in straight lines, so every minute moves the colour about alike. Its
# brightness (0–1 scale) runs from ARCH_BRIGHT / 2 under the section's to as much over it (about
# 0.14 a minute) …
ARCH_BRIGHT = 0.3
ARCH_PEAK = 0.6
# … and the pad and the bass play at this share of their velocity at the arch's ends (−10 dB;
# the accompaniment swells in under the melody and recedes into the close; see
# music/perform.py). With half (−6 dB) and a brightness arch of 0.2 the session's colour still
# moved 1.8 dB a minute for one seed of five.
ARCH_LOW = 0.3
# … and the melody's register rises with it, by ARCH_REGISTER (0–1 scale; ≈ 4–5 semitones)
# from the arch's ends to its high point: the climb to a section's climax and the way down, a
# pair of phrases at a time (the pair's two halves share the step, so eight bars span no
# wider). Within a section the colour moved too little from minute to minute without it:
# 1.5–1.9 dB for five of twelve 10-minute preset renders (seeds 1–4), where 2–4 is wanted;
# with it and ANSWER_LIFT 0.10, 2.1–3.5 dB for seeds 1–2 (which chose it) and 2.0–2.8 for
# seeds 3–4 (which checked it; calm's seed 3 1.98). At 0.2 the step between two pairs took
# sixteen bars of the procedural line past 18 semitones for 3 of 72 three-minute sessions.
ARCH_REGISTER = 0.15
# register lift of a pair's second phrase (0–1 scale; ≈ 3 semitones). It was 0.14 before the
# section's register arch (ARCH_REGISTER) took over part of the climb: with both, sixteen bars
# spanned 19 semitones in some renders, over the 12–18 wanted
ANSWER_LIFT = 0.10
# The melodic arch, semitones from the phrase's register centre, bar by bar: the line starts a
# little low, rises to its high point in the third bar (where the dynamic swell peaks, 60 %
# through the phrase) and settles — the arch, the commonest phrase contour in song (Huron,
# "The melodic arch in Western folksongs", Computing in Musicology 10, 1996). The composers pull
# the line toward it, so even a sparse line (two notes a bar) spans 12 semitones or more in
# sixteen bars instead of circling its centre, and a busy one is not pushed wider by it.
CONTOUR_ST = (-4.0, 0.0, 5.0, -1.0)
# Semitones either side of the register centre a melody may use: 14 in a phrase, about 16 with
# the answer's lift, so sixteen bars span 12–18 (with 12 either side the procedural line
# spanned 17–24).
MELODY_REACH = 7
# A section holds the colour it began with (see the module docstring) unless its density,
# register, brightness or bed level moves more than this (0–1 scale) from one phrase to the next:
# the scene glides (30 s time constant), moving one by 0.13 at most in a 16 s phrase even at
# full scene influence, so a bigger step is a person's choice (an edited preset) — heard at once.
# (The melody's prominence is only ever the room's: no preset sets it.)
CHARACTER_JUMP = 0.15
#: the colour a section holds, in this order (see PhrasePlan.character)
CHARACTER = ("density", "register", "brightness", "melodic", "bed_level")
# The pulse's figure: which tone of the chord (0 the lowest, 1 the middle, 2 the top) each beat
# of a bar plays. Every beat still plays one tone at the same strength (see music/arrange.py);
# the order is the section's own — low-top-middle-top, rising and back, falling and back — drawn
# per section, never the one the section before had, so a new section is heard in its texture as
# well as its register and area, and two seeds' pieces differ in their accompaniment, not only
# in their key and melodies.
FIGURES = ((0, 2, 1, 2), (0, 1, 2, 1), (2, 1, 0, 1))


@dataclass(frozen=True)
class Section:
    name: str
    register_shift: float  # added to Controls.register (0–1 scale, 0.1 ≈ 3 semitones)
    density_scale: float  # multiplies Controls.density
    degree: int  # harmonic area: the section's tonic as a scale degree (0-based) of the home key
    pulse: bool  # the keyed accompaniment plays the beat
    pad: bool  # the sustained pad plays
    walk: bool  # the bass moves on beat 3 (else holds)
    # section loudness relative to the session, dB: within ±1 dB, so ten minutes of sections keep
    # the loudness range inside 4–6 LU (with ±1.5 a ten-minute preset read up to 6.0; SOUND.md)
    level_db: float
    bright: float = 0.0  # timbre: added to Controls.brightness for the section's notes


# The cycle of section characters. Degrees: 3 = the subdominant's key, 4 = the dominant's, in the
# same mode — the nearest keys, one accidental away, so a change of area adds one new pitch
# class and never sounds like a jump.
_CYCLE = (
    Section("A", 0.0, 1.0, 0, pulse=True, pad=True, walk=False, level_db=0.0),
    Section("A'", 0.1, 1.1, 0, pulse=True, pad=False, walk=True, level_db=0.7, bright=0.1),
    Section("B", -0.18, 0.8, 3, pulse=True, pad=True, walk=False, level_db=-1.0, bright=-0.15),
    Section("A''", 0.15, 1.15, 0, pulse=True, pad=True, walk=True, level_db=1.0, bright=0.15),
    Section("B'", -0.1, 0.85, 4, pulse=True, pad=True, walk=False, level_db=-0.7, bright=-0.1),
)


@dataclass(frozen=True)
class PhrasePlan:
    section: Section
    section_index: int  # 0, 1, 2 … in the session
    phrase_index: int  # within the section
    role: str  # theme | answer | return | close
    transform: tuple[str, ...] = ()  # for a return: what is done to the theme
    theme_id: int | None = None  # theme stored (role theme) or returning (role return)
    breath: bool = False  # end the phrase with a rest (a breath between phrases)
    # the controls' CHARACTER (density, register, brightness, melodic, bed_level) when the
    # section began, held through it
    character: tuple[float, ...] | None = None
    # where the phrase's middle lies on the section's arch: 0 (its ends) … 1 (its high point);
    # None: no arch (a phrase planned outside a form)
    arch: float | None = None
    # the section's arch at the middle of the pair this phrase belongs to: where its register
    # stands (both halves of a pair share it); None: no arch
    pair_arch: float | None = None
    # the pulse's figure in this section (one of FIGURES)
    figure: tuple[int, ...] = FIGURES[0]

    @property
    def part(self) -> int:
        """0 for the statement, 1 for the answer: a theme is a pair of phrases (eight bars)."""
        return self.phrase_index % 2

    def degree_for(self, mode: str) -> int:
        return self.section.degree

    def held(self, controls: Controls) -> Controls:
        """``controls`` with the colour (:data:`CHARACTER`) the section began with."""
        if self.character is None:
            return controls
        return controls.with_(**dict(zip(CHARACTER, self.character)))

    def room(self, controls: Controls) -> dict[str, float]:
        """What the mixer plays for this phrase in place of the conductor's current melody
        prominence, bed level and bed colour (the phrase's ``meta["room"]``): the section's."""
        held = self.held(controls)
        return {"melodic": held.melodic, "bed_level": held.bed_level,
                "brightness": held.brightness}

    def brightness_shift(self, controls: Controls) -> float:
        """What the mixer adds to the brightness it plays (the conductor's, now): the section's
        timbre and arch, and the way back to the brightness the section began with."""
        arch = 0.0 if self.arch is None else ARCH_BRIGHT * (self.arch - 0.5)
        return (self.section.bright + arch
                + (self.held(controls).brightness - controls.brightness))

    def apply(self, controls: Controls) -> Controls:
        """The controls as this section colours them (its held character, register, density;
        clamped to 0–1)."""
        s = self.section
        controls = self.held(controls)
        density = controls.density * s.density_scale
        if self.role == "close":
            density *= 0.6  # thinning before the next section
        # the answer of a pair sits a little higher than its statement: the line breathes out
        register = controls.register + s.register_shift + ANSWER_LIFT * self.part
        if self.pair_arch is not None:  # and the pairs climb to the section's high point
            register += ARCH_REGISTER * (self.pair_arch - 0.5)
        return controls.with_(register=float(np.clip(register, 0, 1)),
                              density=float(np.clip(density, 0.0, 1.0)))


class Form:
    """Plans the next phrase's place in the form; see the module docstring."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        # the figures' own draws, so the form's other draws (lengths, transforms) stay the same
        self._figure_rng = np.random.default_rng(None if seed is None else [seed, 0x46494755])
        self.figure = self._draw_figure()
        self.section_index = 0
        self.phrase_index = 0
        self.elapsed_s = 0.0  # in the current section
        self.length_s = self._draw_length()
        self.preset: str | None = None
        self._closing = False
        self._theme: dict[str, int] = {}  # section family (A, B) -> id of its theme
        self._themes = 0
        self._pair: tuple[str, int, tuple[str, ...]] | None = None  # the pair's second half
        self._character: tuple[float, ...] | None = None  # held through the section
        self._asked: tuple[float, ...] | None = None  # as the last phrase asked
        self._room_moved = False  # the room has moved the colour since the section began
        self._pair_arch = 0.5  # the section's arch at the middle of the pair under way

    def _draw_length(self) -> float:
        return float(self.rng.uniform(*SECTION_S))

    def _draw_figure(self, after: tuple[int, ...] | None = None) -> tuple[int, ...]:
        """A figure for the next section: any but the one ``after`` (the section before)."""
        options = [f for f in FIGURES if f != after]
        return options[int(self._figure_rng.integers(len(options)))]

    def state(self) -> dict:
        """Where the piece stands (section, phrase, themes, the random draws to come): give it
        to :meth:`restore` to plan again from here."""
        return copy.deepcopy(self.__dict__)

    def restore(self, state: dict) -> None:
        """Go back to a :meth:`state`: phrases planned since were never heard (a crossfade cut
        them), so the piece goes on as if they had not been written."""
        self.__dict__.update(copy.deepcopy(state))

    @property
    def section(self) -> Section:
        return _CYCLE[self.section_index % len(_CYCLE)]

    def next(self, controls: Controls) -> PhrasePlan:
        """The plan of the next phrase (call once per phrase, in order)."""
        if self.preset is not None and controls.preset != self.preset:
            # a new preset starts its own piece from its first section (themes are kept)
            self.section_index, self.phrase_index, self.elapsed_s = 0, 0, 0.0
            self.length_s, self._closing = self._draw_length(), False
            self._room_moved = False
            self.figure = self._draw_figure(self.figure)
        self.preset = controls.preset
        seconds = PHRASE_BEATS * 60.0 / max(30.0, float(controls.tempo_bpm))
        if self._closing:
            self.section_index += 1
            self.phrase_index, self.elapsed_s = 0, 0.0
            self.length_s, self._closing = self._draw_length(), False
            self._room_moved = False
            self.figure = self._draw_figure(self.figure)
        asked = tuple(float(getattr(controls, name)) for name in CHARACTER)
        last, self._asked = self._asked, asked
        if (self.phrase_index == 0 or self._character is None or last is None
                or max(abs(a - b) for a, b, name in zip(asked, last, CHARACTER)
                       if name != "melodic") > CHARACTER_JUMP):
            self._character = asked
        elif max(abs(a - b) for a, b in zip(asked, self._character)) > ROOM_MOVE:
            self._room_moved = True  # the section closes once it has lasted SECTION_MIN_S
        if self.phrase_index % 2 == 0:  # a pair begins: its middle is this phrase's end
            self._pair_arch = self._arch(self.elapsed_s + seconds)
        plan = replace(self._plan(seconds), character=self._character,
                       arch=self._arch(self.elapsed_s + seconds / 2.0),
                       pair_arch=self._pair_arch, figure=self.figure)
        self.phrase_index += 1
        self.elapsed_s += seconds
        return plan

    def _arch(self, at_s: float) -> float:
        """The section's arch (0 at its ends, 1 at its high point) ``at_s`` seconds in, on its
        planned length (shortened to SECTION_MIN_S when the room has moved)."""
        end = min(self.length_s, SECTION_MIN_S) if self._room_moved else self.length_s
        x = min(1.0, max(0.0, at_s / end))
        return x / ARCH_PEAK if x <= ARCH_PEAK else (1.0 - x) / (1.0 - ARCH_PEAK)

    def _plan(self, seconds: float) -> PhrasePlan:
        """Phrases go in pairs (eight bars): a statement (even index) and its answer (odd)."""
        s, i = self.section, self.phrase_index
        family = s.name.rstrip("'")
        pair, second = divmod(i, 2)
        if second:
            end = min(self.length_s, SECTION_MIN_S) if self._room_moved else self.length_s
            if self.elapsed_s + seconds >= end:
                self._closing = True
                return PhrasePlan(s, self.section_index, i, "close", breath=True)
            if self._pair is not None:  # the second half of a theme or of its return
                role, theme, transform = self._pair
                self._pair = None
                return PhrasePlan(s, self.section_index, i, role, transform, theme,
                                  breath=pair % 2 == 1)
            return PhrasePlan(s, self.section_index, i, "answer", breath=pair % 2 == 1)
        self._pair = None
        if family not in self._theme:
            self._theme[family] = self._themes
            self._themes += 1
            self._pair = ("theme", self._theme[family], ())
            return PhrasePlan(s, self.section_index, i, "theme", theme_id=self._theme[family])
        if pair == 0 or pair % 3 == 2:
            theme = self._theme[family]
            transform = self._transform(s)
            self._pair = ("return", theme, transform)
            return PhrasePlan(s, self.section_index, i, "return", transform, theme)
        return PhrasePlan(s, self.section_index, i, "answer")

    def _transform(self, s: Section) -> tuple[str, ...]:
        """What a return does to its theme, by section: never a literal copy."""
        options = {
            "A": (("reharmonise", "vary"), ("vary",)),
            "A'": (("reorchestrate", "vary"), ("reharmonise", "vary")),
            "B": (("transpose", "vary"), ("augment",)),
            "A''": (("reharmonise", "reorchestrate", "vary"), ("transpose", "vary")),
            "B'": (("augment",), ("transpose", "vary")),
        }[s.name]
        return options[int(self.rng.integers(len(options)))]
