"""Form, themes and performance: sections with their own character and prepared joins, themes
that come back transformed in both composers, the preset's harmonic rhythm, humanised timing,
breaths and swells that the mixer plays after its loudness measurement."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from calmtunes.config import DEFAULT_PRESETS, Config
from calmtunes.music.arrange import accompany
from calmtunes.music.controls import Controls
from calmtunes.music.events import Chord, NoteEvent, Phrase
from calmtunes.music.fallback import ProceduralComposer
from calmtunes.music.form import ANSWER_LIFT, ARCH_REGISTER, FIGURES, Form
from calmtunes.music.mixer import Mixer
from calmtunes.music.motifs import MotifMemory, to_pitch, to_steps
from calmtunes.music.perform import BREATH_BEATS, perform


def _session(composer, controls: Controls, minutes: float):
    out, t = [], 0.0
    while t < minutes * 60:
        p = composer.next_phrase(controls)
        out.append((t, p))
        t += p.seconds
    return out


def test_sections_last_two_to_five_minutes_and_close_before_the_next():
    form = Form(seed=3)
    c = Controls(tempo_bpm=60.0)
    plans = [form.next(c) for _ in range(120)]  # 32 minutes at 16 s a phrase
    lengths, run = [], 1
    for a, b in itertools.pairwise(plans):
        if b.section_index != a.section_index:
            assert a.role == "close" and a.breath  # thinned, cadenced, with a breath
            assert b.phrase_index == 0
            lengths.append(run * 16.0)
            run = 1
        else:
            run += 1
    assert len(lengths) >= 6
    assert all(120.0 <= s <= 300.0 for s in lengths)
    assert all(n % 2 == 0 for n in (s / 16.0 for s in lengths))  # eight-bar pairs stay aligned
    names = [p.section.name for p in plans if p.phrase_index == 0]
    assert names[:4] == ["A", "A'", "B", "A''"]
    # each section has its own register, density, instrumentation or harmonic area
    chars = {(p.section.register_shift, p.section.density_scale, p.section.pad,
              p.section.walk, p.section.degree) for p in plans}
    assert len(chars) >= 4


def test_themes_return_transformed_in_pairs():
    form = Form(seed=1)
    plans = [form.next(Controls(tempo_bpm=66.0)) for _ in range(60)]
    returns = [p for p in plans if p.role == "return"]
    assert len(returns) >= 8 and all(p.transform for p in returns)
    assert 0.1 <= len(returns) / len(plans) <= 0.4
    for a, b in itertools.pairwise(plans):  # a return's two halves come together
        if a.role == "return" and a.part == 0:
            assert b.role in ("return", "close")
    themes = [p for p in plans if p.role == "theme"]
    assert {p.section.name for p in themes} == {"A", "B"}


def test_motif_memory_transposes_augments_and_varies_without_copying():
    mem = MotifMemory(seed=2)
    line = [(0.0, 1.0, 64, 0.5), (1.0, 1.0, 65, 0.5), (2.0, 2.0, 67, 0.5), (4.0, 2.0, 69, 0.5),
            (6.0, 2.0, 67, 0.5), (8.0, 4.0, 64, 0.5), (12.0, 4.0, 62, 0.5)]
    mem.store(0, 0, line, 0, "major")
    assert to_pitch(to_steps([64], 0, "major")[0], 0, "major") == 64
    same = mem.recall(0, 0, ("reharmonise",), 0, "major", 65.0)
    assert [n[2] for n in same] == [n[2] for n in line]
    moved = mem.recall(0, 0, ("transpose",), 7, "major", 65.0)  # G major, moved a step-group
    assert all(p % 12 in {7, 9, 11, 0, 2, 4, 6} for _, _, p, _ in moved)
    assert [n[2] for n in moved] != [n[2] for n in line]
    slow = mem.recall(0, 0, ("augment",), 0, "major", 65.0)
    assert [(s, d) for s, d, _, _ in slow] == [(0.0, 2.0), (2.0, 2.0), (4.0, 4.0), (8.0, 4.0),
                                               (12.0, 4.0)]
    mem.store(0, 1, line, 0, "major")
    varied = mem.recall(0, 1, ("vary",), 0, "major", 65.0)
    assert [n[2] for n in varied][:-1] == [n[2] for n in line][:-1]
    assert [n[:2] for n in varied] == [n[:2] for n in line]  # same rhythm: a near-repeat
    assert varied[-1][2] % 12 == 0  # the answer re-aimed to the tonic
    mem.store(0, 1, [*line[:-1], (12.0, 4.0, 60, 0.5)], 0, "major")  # ends on the tonic already
    assert mem.recall(0, 1, ("vary",), 0, "major", 65.0)[-1][2] % 12 == 4  # … so to the third
    # a short statement comes back as it was (that is what makes a sparse return heard); a
    # long one with one inner note a step away
    assert [n[2] for n in mem.recall(0, 0, ("vary",), 0, "major", 65.0)] == [n[2] for n in line]
    long = [*line[:-1], (12.0, 2.0, 62, 0.5), (14.0, 2.0, 64, 0.5)]
    mem.store(1, 0, long, 0, "major")
    moved = [a[2] != b[2] for a, b in zip(mem.recall(1, 0, ("vary",), 0, "major", 65.0), long)]
    assert sum(moved) == 1 and not moved[0] and not moved[-1]


@pytest.mark.parametrize("preset,limit", [("calm", 0.5), ("sleep", 0.25)])
def test_procedural_harmony_changes_no_faster_than_the_preset_allows(preset, limit):
    c = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    ps = [p for _, p in _session(ProceduralComposer(4), c, 6)]
    chords = [(ch.root_pc, ch.quality) for p in ps for ch in p.chords]
    changes = sum(a != b for a, b in itertools.pairwise(chords))
    assert changes / (4 * len(ps)) <= limit


def test_procedural_themes_come_back_as_near_repeats():
    ps = [p for _, p in _session(ProceduralComposer(6), Controls(tempo_bpm=66.0), 10)]
    theme = [n for n in ps[0].notes if n.voice == "melody"]
    returns = [p for p in ps if p.meta["role"] == "return"]
    assert returns
    near = 0
    for p in returns:
        mel = [n for n in p.notes if n.voice == "melody"]
        if len(mel) == len(theme):
            intervals = np.diff([n.pitch for n in mel])
            near += np.mean(np.abs(intervals - np.diff([n.pitch for n in theme])) <= 2) > 0.7
    assert near >= 1
    for p in returns:  # never a literal loop
        assert [n.pitch for n in p.notes if n.voice == "melody"] != [n.pitch for n in theme]


def test_each_section_has_its_own_pulse_figure_and_the_seed_chooses_them():
    def figures(seed: int, phrases: int = 120) -> list[tuple[int, ...]]:
        form = Form(seed=seed)
        plans = [form.next(Controls(tempo_bpm=66.0)) for _ in range(phrases)]
        by_section = {}
        for p in plans:
            assert by_section.setdefault(p.section_index, p.figure) == p.figure  # held
        return [by_section[i] for i in sorted(by_section)]

    for seed in range(12):
        f = figures(seed)
        assert len(f) >= 6 and set(f) <= set(FIGURES)
        assert all(a != b for a, b in itertools.pairwise(f))  # a new section, a new texture
    assert len({figures(seed, 2)[0] for seed in range(12)}) >= 2  # the seed varies the opening
    # the form's other draws do not move for it: the same lengths and transforms as before
    a, b = Form(seed=5), Form(seed=5)
    b._draw_figure()
    pa = [a.next(Controls(tempo_bpm=66.0)) for _ in range(60)]
    pb = [b.next(Controls(tempo_bpm=66.0)) for _ in range(60)]
    assert [(p.section_index, p.role, p.transform) for p in pa] == [
        (p.section_index, p.role, p.transform) for p in pb]


@pytest.mark.parametrize("figure", FIGURES)
def test_the_pulse_plays_the_section_s_figure_one_tone_a_beat(figure):
    plan = Form(seed=1).next(Controls(tempo_bpm=66.0))
    plan = replace(plan, figure=figure)
    notes = accompany([Chord(0.0, 8.0, 0, "maj")], plan, 0, 0.5, 8.0)
    beats: dict[float, list[int]] = {}
    for n in notes:
        if n.voice == "harmony":
            beats.setdefault(n.start_beat, []).append(n.pitch)
    assert sorted(beats) == [float(b) for b in range(8)]  # every beat, and nothing between
    # one tone a beat (with its soft octave above it)
    assert all(len(p) == 2 and max(p) - min(p) == 12 for p in beats.values())
    played = [min(beats[b]) for b in sorted(beats)]
    tones = sorted(set(played))
    assert len(tones) == 3
    assert [tones.index(p) for p in played] == list(figure) * 2


def test_performance_is_humanised_breathes_and_swells():
    from calmtunes.music.form import _CYCLE, PhrasePlan

    rng = np.random.default_rng(0)
    notes = [NoteEvent(float(b), 1.0, 60 + b % 5, 0.5, "harmony") for b in range(16)]
    plan = PhrasePlan(_CYCLE[0], 0, 3, "answer", breath=True)
    played, env = perform(notes, plan, 16.0, 60.0, rng)
    ms = [(p.start_beat - n.start_beat) * 1000.0 for p, n in zip(played, notes)]
    assert 8.0 <= np.mean(np.abs(ms[:12])) <= 25.0  # 60 bpm: a beat is 1000 ms
    late = [perform(notes, plan, 16.0, 60.0, np.random.default_rng(k))[0] for k in range(200)]
    shift = [np.mean([p[i].start_beat - i for p in late]) * 1000.0 for i in (4, 14)]
    assert shift[1] > shift[0] + 8.0  # the last bar broadens (rubato)
    assert max(p.start_beat + p.duration_beats for p in played) <= 16.0 - BREATH_BEATS + 0.05
    assert len(played) == 15  # nothing begins in the breath
    assert min(db for _, db in env) <= -12.0 and max(db for _, db in env) > 0.0
    for a, b in itertools.pairwise(played):  # legato stays legato, never overlaps
        assert a.start_beat + a.duration_beats == pytest.approx(b.start_beat, abs=1e-9)


def test_the_mixer_plays_the_phrase_envelope_after_measuring_loudness():
    cfg = Config().replace(sound={"bed": "none", "reverb": 0.0, "breath_pacing": False})

    def render(envelope):
        mixer = Mixer(48000, cfg)
        mixer.set_controls(Controls(volume_db=0.0))
        mixer.fade_in(0.01)
        notes = tuple(NoteEvent(float(b), 1.0, 60, 0.5, "harmony") for b in range(8))
        mixer.schedule(Phrase(notes, 8.0, 60.0, 0, "major", Controls(),
                              meta={"dynamics": envelope}))
        y = np.concatenate([mixer.render(4800) for _ in range(80)])
        return y, mixer.normaliser.estimate_lufs

    flat, loud_flat = render([(0.0, 0.0), (8.0, 0.0)])
    dip, loud_dip = render([(0.0, 0.0), (3.5, 0.0), (4.0, -20.0), (8.0, -20.0)])
    level = [20 * np.log10(np.sqrt(np.mean(y[4 * 48000 + 4800:7 * 48000] ** 2)))
             for y in (flat, dip)]
    assert level[0] - level[1] == pytest.approx(20.0, abs=1.0)
    early = [np.sqrt(np.mean(y[:3 * 48000] ** 2)) for y in (flat, dip)]
    assert early[0] == pytest.approx(early[1], rel=1e-6)
    assert loud_flat == pytest.approx(loud_dip, abs=0.01)  # the normaliser does not see it


# -- across seeds: what held for one seed must hold for every one -----------------------------
SEEDS = range(1, 9)


def _melody_figures(phrases) -> tuple[float, int, float]:
    """(median span of 16-bar windows in semitones, pitch classes on ≥ 1 % of the notes, share
    of the commonest pitch in %) of the melody, as scripts/bench_music measures them."""
    mel, beat = [], 0.0
    for _, p in phrases:
        mel += [(beat + n.start_beat, n.pitch) for n in p.notes if n.voice == "melody"]
        beat += p.beats
    pitches = [q for _, q in mel]
    spans = []
    for w0 in np.arange(0.0, mel[-1][0], 64.0):
        window = [q for b, q in mel if w0 <= b < w0 + 64.0]
        if len(window) >= 4:
            spans.append(max(window) - min(window))
    counts = np.bincount(np.array(pitches) % 12, minlength=12)
    top = np.bincount(pitches).max()
    return (float(np.median(spans)), int(np.sum(counts >= 0.01 * len(pitches))),
            100.0 * top / len(pitches))


@pytest.mark.parametrize("tempo", [60.0, 66.0, 76.0, 88.0])
def test_sections_last_three_to_five_minutes_whatever_the_seed_and_tempo(tempo):
    # 2½-minute sections let four whole sections into ten minutes for some seeds (more than
    # the 2–4 wanted, once a fade is left out); at least 3 minutes each hold three or fewer
    for seed in SEEDS:
        form, t, starts = Form(seed=seed), 0.0, {}
        while t < 1200.0:
            plan = form.next(Controls(tempo_bpm=tempo))
            starts.setdefault(plan.section_index, t)
            t += 16 * 60.0 / tempo
        lengths = np.diff(sorted(starts.values()))
        assert len(lengths) >= 3 and all(180.0 <= s <= 300.0 for s in lengths), (seed, lengths)
        assert sum(1 for s in starts.values() if s < 600.0 - 60.0) <= 3


@pytest.mark.parametrize("preset", ["calm", "sleep", "uplift"])
def test_procedural_melodies_span_an_octave_and_more_with_no_pitch_taking_over(preset):
    c = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    for seed in SEEDS:
        span, pcs, top = _melody_figures(_session(ProceduralComposer(seed), c, 3))
        assert 12 <= span <= 18, (seed, span)
        assert pcs >= 7, (seed, pcs)  # every degree of the scale, the sparse line's too
        assert top <= 30, (seed, top)


def test_the_melody_climbs_pair_by_pair_to_the_section_s_high_point_and_back():
    for seed in SEEDS:
        form, plans = Form(seed=seed), []
        while not plans or plans[-1].section_index == 0:
            plans.append(form.next(Controls(tempo_bpm=66.0)))
        first = [p for p in plans if p.section_index == 0]
        centre = [p.apply(Controls(tempo_bpm=66.0)).register for p in first]
        # the two halves of a pair share the section's step; the answer sits ANSWER_LIFT higher
        for a, b, pa, pb in zip(centre[0::2], centre[1::2], first[0::2], first[1::2]):
            assert pa.pair_arch == pb.pair_arch
            assert b - a == pytest.approx(ANSWER_LIFT)
        steps = np.array(centre[0::2])  # the statements: the line up to the high point and down
        top = int(np.argmax(steps))
        assert 0 < top < len(steps) - 1, (seed, steps)
        assert np.all(np.diff(steps[: top + 1]) > 0) and np.all(np.diff(steps[top:]) < 0)
        assert steps.max() - steps.min() >= 0.6 * ARCH_REGISTER, (seed, steps)


def test_new_melody_follows_the_arch_highest_in_the_third_bar():
    heights = [[] for _ in range(4)]
    for seed in SEEDS:
        for _, p in _session(ProceduralComposer(seed), Controls(tempo_bpm=66.0), 3):
            if p.meta["role"] in ("theme", "answer"):
                for n in p.notes:
                    if n.voice == "melody":
                        heights[min(3, int(n.start_beat // 4))].append(n.pitch)
    means = [np.mean(h) for h in heights]
    assert int(np.argmax(means)) == 2 and means[2] - means[0] >= 2.0


def _envelope_lra(phrases) -> float:
    """Loudness range (95th − 10th percentile of 3 s mean power, dB) of the phrases' dynamic
    envelopes alone, at 100 Hz."""
    xs, ys = [], []
    for t, p in phrases:
        xs += [t + b * 60.0 / p.tempo_bpm for b, _ in p.meta["dynamics"]]
        ys += [db for _, db in p.meta["dynamics"]]
    grid = np.arange(0.0, xs[-1], 0.01)
    power = np.concatenate([[0.0], np.cumsum(10 ** (np.interp(grid, xs, ys) / 10))])
    short = 10 * np.log10((power[300::10] - power[:-300:10][:len(power[300::10])]) / 300)
    return float(np.percentile(short, 95) - np.percentile(short, 10))


@pytest.mark.parametrize("preset", ["calm", "sleep", "uplift"])
def test_phrase_dynamics_alone_give_every_preset_a_loudness_range(preset):
    # the music adds 1–2 LU of its own, less the sparser it is; the arch must bring the rest,
    # so the sparse sleep preset swells deepest (it measured 3.3 LU when it swelled least)
    c = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    for seed in (1, 2, 3):
        assert 3.3 <= _envelope_lra(_session(ProceduralComposer(seed), c, 3)) <= 4.2
    sleep = Controls.from_preset("sleep", DEFAULT_PRESETS["sleep"])
    busy = Controls.from_preset("uplift", DEFAULT_PRESETS["uplift"])
    assert (_envelope_lra(_session(ProceduralComposer(1), sleep, 3))
            > _envelope_lra(_session(ProceduralComposer(1), busy, 3)) + 0.2)
