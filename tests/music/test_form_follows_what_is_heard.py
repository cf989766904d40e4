"""The form and the motif memory follow what is heard: a crossfade (the iso start, a preset
change) drops the phrases written ahead and cuts the one playing, and the piece goes on as if
they had never been written — no theme returns that nobody heard, and phrase pairs stay whole."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from calmtunes.config import Config
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.form import ANSWER_LIFT, ARCH_BRIGHT, ARCH_REGISTER, Form
from calmtunes.music.motifs import MotifMemory


def _engine(seed: int = 4, tempo: float = 60.0) -> tuple[ComposerComponent, dict]:
    controls = {"now": Controls(tempo_bpm=tempo)}
    cfg = Config().replace(music={"seed": seed, "generator": "procedural"})
    return ComposerComponent(cfg, Hub(), lambda: controls["now"]), controls


def test_a_crossfade_takes_the_piece_back_to_before_the_phrase_it_cuts():
    engine, controls = _engine()
    first = engine.take_phrase() or engine.compose_now()  # the theme's statement begins
    assert first.meta["role"] == "theme"
    engine.step(0.0)  # its answer, written ahead
    assert engine.queued_seconds > 0
    # the iso start: the heart is at 84 bpm; the music at that tempo crossfades in now
    controls["now"] = Controls(tempo_bpm=84.0)
    engine.flush()
    again = engine.take_phrase() or engine.compose_now()
    assert again.meta["role"] == "theme"  # the theme is stated again, now in full
    assert again.tempo_bpm == 84.0
    form = engine.composer.form
    assert (form.section_index, form.phrase_index) == (0, 1)
    assert form.elapsed_s == 16 * 60.0 / 84.0  # the cut phrase's time is not counted


def test_a_theme_nobody_heard_is_never_brought_back():
    engine, controls = _engine(seed=7)
    engine.compose_now()  # the statement of theme 0, stored as written …
    cut = engine.composer.motifs.themes[0][0]
    engine.flush()  # … and cut after a few seconds
    heard = engine.compose_now()
    engine.compose_now()
    stored = engine.composer.motifs.themes
    # what is kept is the statement played after the cut, not the cut one
    assert stored[0][0] != cut
    assert len(stored[0][0]) == sum(n.voice == "melody" for n in heard.notes)
    assert set(stored) == {0} and set(stored[0]) == {0, 1}
    plans = [engine.composer.form.next(controls["now"]) for _ in range(10)]
    returns = [p for p in plans if p.role == "return"]
    assert returns and all(p.theme_id in stored for p in returns)


def test_phrases_dropped_unheard_leave_no_trace_in_the_form():
    engine, _ = _engine(seed=2)
    for _ in range(5):  # a minute and a half of music, each phrase handed out and played
        engine.compose_now()
    before = engine.composer.form.state()
    engine.compose_now()  # the phrase now playing …
    for _ in range(3):
        engine.step(0.0)  # … and those written ahead
    engine.flush()
    engine.compose_now()
    replay = Form()
    replay.restore(before)
    plan = replay.next(Controls(tempo_bpm=60.0))
    form = engine.composer.form
    assert (form.section_index, form.phrase_index) == (plan.section_index, plan.phrase_index + 1)


def test_a_flush_before_any_phrase_changes_nothing():
    engine, _ = _engine()
    engine.flush()
    assert engine.compose_now().meta["role"] == "theme"


def test_form_and_motif_states_restore_exactly():
    form, motifs = Form(seed=5), MotifMemory(seed=5)
    controls = Controls(tempo_bpm=70.0)
    for _ in range(7):
        form.next(controls)
    motifs.store(0, 0, [(0.0, 2.0, 64, 0.5), (2.0, 2.0, 67, 0.5)], 0, "major")
    f, m = form.state(), motifs.state()
    ahead = [form.next(controls) for _ in range(30)]
    motifs.store(1, 0, [(0.0, 4.0, 60, 0.5)], 0, "major")
    form.restore(f)
    motifs.restore(m)
    assert [form.next(controls) for _ in range(30)] == ahead  # the same draws to come
    assert set(motifs.themes) == {0}


def test_the_room_s_changes_of_colour_wait_for_the_next_section():
    # night falls in mid-section: the conductor asks for sparser, lower, darker music
    form = Form(seed=3)
    day = Controls(tempo_bpm=70.0, density=0.5, register=0.5, brightness=0.5)
    night = day.with_(density=0.4, register=0.42, brightness=0.37, tempo_bpm=68.0)
    plans = [form.next(day) for _ in range(4)]
    while form.section_index == 0:
        plans.append(form.next(night))
    first = [p for p in plans if p.section_index == 0]
    assert len(first) > 6 and plans[-1].section_index == 1
    for p in first:  # the section keeps the colour it began with …
        held = p.apply(night)
        assert p.held(night).density == 0.5 and p.held(night).brightness == 0.5
        assert held.register == min(1.0, 0.5 + p.section.register_shift + ANSWER_LIFT * p.part
                                    + ARCH_REGISTER * (p.pair_arch - 0.5))
        assert p.brightness_shift(night) == pytest.approx(
            p.section.bright + ARCH_BRIGHT * (p.arch - 0.5) + 0.5 - 0.37)
    assert plans[-1].held(night) == night  # … and the next one takes the night's
    assert plans[-1].brightness_shift(night) == pytest.approx(
        plans[-1].section.bright + ARCH_BRIGHT * (plans[-1].arch - 0.5))


def test_a_composed_phrase_keeps_the_section_s_colour_but_follows_the_tempo():
    composer = ProceduralComposer(seed=6)
    day = Controls(tempo_bpm=70.0, density=0.35, brightness=0.5)
    composer.next_phrase(day)
    dusk = day.with_(tempo_bpm=66.0, density=0.28, brightness=0.42)  # the scene's glide
    phrase = composer.next_phrase(dusk)
    assert phrase.tempo_bpm == 66.0
    arch = ARCH_BRIGHT * (composer.form._arch(16 * 60 / 70 + 8 * 60 / 66) - 0.5)
    assert phrase.meta["brightness_shift"] == pytest.approx(
        composer.form.section.bright + arch + 0.08)
    melody = [n for n in phrase.notes if n.voice == "melody"]
    # density 0.35 (the section's) writes up to four notes a bar; 0.28 would be sparse, two a
    # bar at most (seven in the phrase, whose last bar has one)
    assert len(melody) > 8


def test_a_step_no_scene_could_make_is_heard_at_once():
    # a person edits the preset's register mid-section: not the room's glide, so no waiting
    form = Form(seed=3)
    c = Controls(tempo_bpm=70.0, register=0.5)
    for _ in range(3):
        form.next(c)
    plan = form.next(c.with_(register=0.2))
    assert plan.section_index == 0 and plan.phrase_index == 3
    assert plan.held(c).register == 0.2


def _section_lengths(seed: int, room_at: float | None, tempo: float = 64.0):
    """(Seconds into the session where sections 0, 1 and 2 begin, the plans with their times,
    the form, day and dusk) with the room changing (dusk: sparser, darker, a little more bed)
    at ``room_at`` s, or never."""
    form, t, starts = Form(seed=seed), 0.0, {}
    day = Controls(tempo_bpm=tempo, density=0.3, register=0.4, brightness=0.42, bed_level=0.5)
    dusk = day.with_(density=0.27, brightness=0.3, bed_level=0.55)
    plans = []
    while len(starts) < 3:
        plan = form.next(dusk if room_at is not None and t >= room_at else day)
        starts.setdefault(plan.section_index, t)
        plans.append((t, plan))
        t += 16 * 60.0 / tempo
    return starts, plans, form, day, dusk


def test_a_change_of_the_room_begins_the_next_section():
    # a seed whose first section is drawn long: without the room it runs past four minutes
    seed = next(s for s in range(1, 50) if Form(seed=s).length_s > 240.0)
    quiet, _, _, _, _ = _section_lengths(seed, None)
    assert quiet[1] > 240.0
    # the room changes 3 min 10 s in: the section ends with the pair under way (its close) and
    # the next begins in the room's colour, instead of a change in the middle of the section
    starts, plans, _, day, dusk = _section_lengths(seed, 190.0)
    assert 190.0 < starts[1] <= 190.0 + 2 * 15.0 + 1e-9
    before = [p for t, p in plans if p.section_index == 0]
    assert before[-1].role == "close" and before[-1].breath  # prepared: thinned, cadenced
    assert all(p.held(dusk) == day for p in before)  # the room waited for the boundary
    assert all(p.room(dusk) == {"melodic": 1.0, "bed_level": 0.5, "brightness": 0.42}
               for p in before)
    first_of_next = next(p for t, p in plans if p.section_index == 1)
    assert first_of_next.held(day) == dusk
    assert first_of_next.room(day) == {"melodic": 1.0, "bed_level": 0.55, "brightness": 0.3}


def test_a_room_change_early_in_a_section_waits_for_its_three_minutes():
    seed = next(s for s in range(1, 50) if Form(seed=s).length_s > 240.0)
    starts, *_ = _section_lengths(seed, 40.0)
    assert 180.0 <= starts[1] <= 180.0 + 2 * 15.0  # brought forward, but never crowded
    assert starts[2] - starts[1] >= 180.0  # the next section keeps its own length
    # ten minutes of a room that keeps changing still hold no more than three sections
    form, t, begun = Form(seed=seed), 0.0, {}
    while t < 600.0:
        c = Controls(tempo_bpm=64.0, density=0.3, brightness=0.4 + 0.1 * (int(t // 50) % 2))
        begun.setdefault(form.next(c).section_index, t)  # the room changes every 50 s
        t += 15.0
    assert all(b - a >= 180.0 for a, b in itertools.pairwise(sorted(begun.values())))
    assert sum(1 for b in begun.values() if b < 540.0) <= 3


def test_the_mixer_plays_the_section_s_room_colour_not_the_conductor_s_of_the_moment():
    import numpy as np

    from calmtunes.music.events import NoteEvent, Phrase
    from calmtunes.music.mixer import Mixer

    cfg = Config().replace(sound={"bed": "none", "reverb": 0.0, "breath_pacing": False})

    def level(now: Controls, room: dict | None) -> float:
        mixer = Mixer(48000, cfg)
        mixer.set_controls(now.with_(volume_db=0.0))  # the conductor, this second
        mixer.fade_in(0.01)
        notes = tuple(NoteEvent(float(b), 1.0, 67, 0.5, "melody") for b in range(8))
        meta = {} if room is None else {"room": room}
        mixer.schedule(Phrase(notes, 8.0, 60.0, 0, "major", Controls(), meta=meta))
        y = np.concatenate([mixer.render(4800) for _ in range(60)])
        return 20 * np.log10(np.sqrt(np.mean(y[48000:5 * 48000] ** 2)))

    visitors = Controls(melodic=0.4)  # the room changed after the section began
    held = {"melodic": 1.0, "bed_level": 0.35, "brightness": 0.5}
    assert level(visitors, held) == pytest.approx(level(Controls(), None), abs=0.05)
    assert level(visitors, None) < level(Controls(), None) - 2.0  # without it: at once


def test_a_section_s_timbre_rises_to_its_high_point_and_settles_into_the_close():
    form, c = Form(seed=2), Controls(tempo_bpm=60.0)
    plans = [form.next(c) for _ in range(40)]
    first = [p.brightness_shift(c) - p.section.bright for p in plans if p.section_index == 0]
    top = int(np.argmax(first))
    assert 0.45 <= top / len(first) <= 0.75  # the high point three fifths of the way through
    assert first[top] - first[0] >= 0.7 * ARCH_BRIGHT
    assert first[top] - first[-1] >= 0.6 * ARCH_BRIGHT
    steps = np.diff(first)
    assert np.all(steps[:top] > 0) and np.all(steps[top:] < 0)  # smooth: no step back and forth
    assert np.max(np.abs(steps)) <= ARCH_BRIGHT / 4  # never a jump


def test_the_pad_and_bass_swell_with_the_section_s_arch_and_the_melody_does_not():
    from dataclasses import replace

    from calmtunes.music.events import NoteEvent
    from calmtunes.music.form import _CYCLE, ARCH_LOW, PhrasePlan
    from calmtunes.music.perform import perform

    notes = [NoteEvent(float(b), 1.0, 48 + b, 0.5, voice)
             for b, voice in enumerate(("pad", "bass", "melody", "harmony") * 3)]
    plan = PhrasePlan(_CYCLE[0], 0, 2, "answer")

    def velocities(arch):
        played, _ = perform(notes, replace(plan, arch=arch), 16.0, 60.0,
                            np.random.default_rng(1))
        return {v: np.mean([n.velocity for n in played if n.voice == v])
                for v in ("pad", "bass", "melody", "harmony")}

    top, end, none = velocities(1.0), velocities(0.0), velocities(None)
    for voice in ("pad", "bass"):
        assert end[voice] == pytest.approx(ARCH_LOW * top[voice], rel=1e-9)
    for voice in ("melody", "harmony"):
        assert end[voice] == top[voice]
    assert none == top  # a phrase planned outside a form plays at full


def test_the_audio_thread_never_writes_a_phrase_while_the_composer_s_thread_is_writing_one():
    """compose_now (the audio thread, the queue empty) and the component's own step run in two
    threads; the form and themes are one piece's state, so the phrases must be written one at a
    time, and a phrase the component's thread was writing is taken rather than a second one."""
    import threading
    import time

    engine, _ = _engine(seed=9)
    composer = engine.fallback
    real = composer.next_phrase
    inside, overlaps = [0], [0]
    guard = threading.Lock()

    def next_phrase(controls):
        with guard:
            inside[0] += 1
            overlaps[0] += inside[0] > 1
        try:
            time.sleep(0.002)  # a phrase takes a while: long enough for the threads to meet
            return real(controls)
        finally:
            with guard:
                inside[0] -= 1

    composer.next_phrase = next_phrase
    stop = threading.Event()

    def component_thread():
        while not stop.is_set():
            engine.step(0.0)
            engine.take_phrase()  # the queue never fills: the thread keeps writing

    worker = threading.Thread(target=component_thread, daemon=True)
    worker.start()
    try:
        phrases = [engine.compose_now() for _ in range(60)]
    finally:
        stop.set()
        worker.join(5)
    assert overlaps[0] == 0
    assert all(p.notes for p in phrases)
