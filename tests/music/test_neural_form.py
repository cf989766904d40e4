"""The neural composer in the form: the preset's harmonic rhythm, returning themes fed to the
model note by note while it chooses the chords, one form shared with the procedural composer."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from calmtunes.config import DEFAULT_PRESETS, Config
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent

pytest.importorskip("onnxruntime")

from calmtunes.music.generator import NeuralComposer

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "calmtunes-generator.onnx"


@pytest.mark.parametrize("preset,limit", [("calm", 0.5), ("sleep", 0.25)])
def test_chords_change_no_faster_than_the_preset_allows(preset, limit):
    composer = NeuralComposer(SHIPPED, seed=3, candidates=2)
    controls = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    phrases = [composer.next_phrase(controls) for _ in range(12)]
    chords = [(c.root_pc, c.quality) for p in phrases for c in p.chords]
    changes = sum(a != b for a, b in itertools.pairwise(chords))
    assert changes / (4 * len(phrases)) <= limit


def test_a_forced_line_is_played_as_given_and_the_model_harmonises_it():
    composer = NeuralComposer(SHIPPED, seed=8, candidates=1)
    controls = Controls()
    composer.next_phrase(controls)  # a stream in progress
    line = [(0.0, 2.0, 67, 0.5), (2.0, 1.0, 69, 0.5), (3.0, 1.0, 71, 0.5), (4.0, 4.0, 72, 0.5),
            (8.0, 2.0, 71, 0.5), (10.0, 2.0, 69, 0.5), (12.0, 4.0, 67, 0.5)]
    forced = composer.forced_line(line)
    key = composer.key_for("major")
    notes, chords, got_key, _ = composer.generate_bars(controls, 4, key=key, chord_bars={0, 2},
                                                       forced=forced)
    assert [(s / 4, d / 4, p) for s, d, p in notes] == [(s, d, p) for s, d, p, _ in line]
    assert got_key == key
    assert chords and all(start // 16 in (0, 2) for start, _, _ in chords)
    assert len({start // 16 for start, _, _ in chords}) == len(chords)  # one change a bar


def test_a_loaded_generator_continues_the_procedural_composer_s_form(tmp_path):
    cfg = Config().replace(music={"seed": 2, "model_path": str(SHIPPED)})
    engine = ComposerComponent(cfg, Hub(), lambda: Controls())
    for _ in range(3):
        engine.compose_now()
    engine.open()
    engine._loader_thread.join(10)
    assert isinstance(engine.composer, NeuralComposer)
    assert engine.composer.form is engine.fallback.form
    assert engine.composer.motifs is engine.fallback.motifs
    before = engine.fallback.form.phrase_index
    engine.compose_now()
    assert engine.fallback.form.phrase_index == before + 1  # the same piece goes on


@pytest.mark.parametrize("preset", ["calm", "sleep", "uplift"])
def test_melodies_span_an_octave_and_more_for_every_seed(preset):
    # measured as scripts/bench_music does: the median span of 16-bar windows, pitch classes on
    # at least 1 % of the notes, the commonest pitch's share; three minutes a seed
    controls = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    for seed in range(1, 6):
        composer = NeuralComposer(SHIPPED, seed=seed)
        melody, beat, t = [], 0.0, 0.0
        while t < 180.0:
            phrase = composer.next_phrase(controls)
            melody += [(beat + n.start_beat, n.pitch) for n in phrase.notes
                       if n.voice == "melody"]
            beat, t = beat + phrase.beats, t + phrase.seconds
        spans = [max(w) - min(w) for w0 in range(0, int(beat), 64)
                 if len(w := [p for b, p in melody if w0 <= b < w0 + 64]) >= 4]
        pitches = np.array([p for _, p in melody])
        assert 12 <= np.median(spans) <= 18, (seed, spans)
        assert np.sum(np.bincount(pitches % 12) >= 0.01 * len(pitches)) >= 7, seed
        assert np.bincount(pitches).max() <= 0.3 * len(pitches), seed
