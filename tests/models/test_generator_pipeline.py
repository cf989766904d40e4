"""The generator's training pipeline end to end on a handful of chorales, and its parts."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "device"))

pytest.importorskip("torch")
pytest.importorskip("music21")

from models.generator import attributes, data, export, vocab  # noqa: E402
from models.generator.corpus import Piece, chords_from_voices  # noqa: E402
from models.generator.ngram import NGram  # noqa: E402


def test_tokens_round_trip_and_transpose():
    notes = [vocab.Note(0, 4, 60), vocab.Note(4, 2, 62), vocab.Note(6, 10, 64),
             vocab.Note(20, 4, 67)]
    chords = [vocab.ChordMark(0, 0, "maj"), vocab.ChordMark(16, 7, "dom7")]
    toks = vocab.encode(notes, chords)
    assert [vocab.TOKENS[i] for i in toks[:6]] == ["BOS", "BAR", "POS_0", "CHORD_0_maj",
                                                   "PITCH_60", "DUR_4"]
    back, back_chords, bars = vocab.decode(toks)
    assert back == notes and back_chords == chords and bars == 2
    up = data.SHIFT_TABLES[2][np.array(toks)]
    moved, moved_chords, _ = vocab.decode(list(up))
    assert [n.pitch for n in moved] == [62, 64, 66, 69]
    assert [(c.root, c.quality) for c in moved_chords] == [(2, "maj"), (9, "dom7")]


def test_attributes_measure_what_they_say():
    quarters = [vocab.Note(4 * i, 4, 72) for i in range(8)]  # one note a beat, C5
    a = attributes.measure(quarters, [vocab.ChordMark(0, 0, "maj")], beats=8)
    assert a["density"] == pytest.approx(0.5)
    assert a["register"] == pytest.approx((72 - 53) / 28)
    assert a["rhythm"] == 0.0 and a["harmony"] == pytest.approx(1 / 8)
    offbeat = [vocab.Note(4 * i + 2, 2, 60) for i in range(4)]
    assert attributes.measure(offbeat, [], beats=4)["rhythm"] == 1.0
    c_major = np.array([3, 0, 2, 0, 2, 1, 0, 2, 0, 1, 0, 1.0])
    assert attributes.estimate_key(c_major) == (0, "major")
    assert attributes.estimate_key(np.roll(c_major, 9))[0] == 9


def test_chords_read_from_four_voices():
    voices = [[vocab.Note(0, 4, 72)], [vocab.Note(0, 4, 67)], [vocab.Note(0, 4, 64)],
              [vocab.Note(0, 4, 48)], ]
    assert chords_from_voices(voices) == [vocab.ChordMark(0, 0, "maj")]
    voices[2] = [vocab.Note(0, 4, 63)]
    assert chords_from_voices(voices)[0].quality == "min"


def test_split_is_by_piece_and_stable():
    ids = [f"x/{i}" for i in range(400)]
    splits = [Piece(i, "x", 0, "major", [], []).split for i in ids]
    assert 0.05 < splits.count("test") / len(ids) < 0.15
    assert splits == [Piece(i, "x", 0, "major", [], []).split for i in ids]


def test_ngram_prefers_what_it_has_seen():
    seq = [vocab.BOS] + [vocab.BAR, vocab.INDEX["POS_0"], vocab.INDEX["PITCH_60"],
                         vocab.INDEX["DUR_16"]] * 20
    ng = NGram(3).fit([seq])
    assert ng.nll([seq]) < 0.5
    other = [vocab.BOS] + [vocab.BAR, vocab.INDEX["POS_3"], vocab.INDEX["PITCH_70"],
                           vocab.INDEX["DUR_1"]] * 20
    assert ng.nll([other]) > 2.0


@pytest.mark.slow
def test_tiny_training_run_end_to_end(tmp_path, monkeypatch):
    from models.generator import train

    from calmtunes.music.controls import Controls
    from calmtunes.music.events import VOICES
    from calmtunes.music.generator import NeuralComposer

    metrics = train.main(["--tiny", "--out", str(tmp_path), "--work", str(tmp_path / "work")])
    model = tmp_path / "calmtunes-generator.onnx"
    assert model.is_file() and (tmp_path / "calmtunes-generator.metrics.json").is_file()
    manifest = export.manifest_path(model)
    assert hashlib.sha256(model.read_bytes()).hexdigest() in manifest.read_text()
    nll = metrics["heldout_nll_per_token"]
    assert np.isfinite(nll["onnx_int8"]) and nll["onnx_int8"] < np.log(len(vocab.TOKENS))
    # the exported step graph computes what the trained network computes
    assert nll["onnx_float"] == pytest.approx(nll["torch"], rel=1e-3)
    ops = export.op_counts(model)
    # one integer product for the recurrence, one for the output; the token table is int8
    assert ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"] >= 2
    assert ops["DequantizeLinear"] >= 1
    assert ops["MatMul"] == 0 and ops["GRU"] == 0
    # A fresh model is not pinned (trust "any"), and a pipeline check's barely trained model
    # has not learnt the token grammar the load probe asks for: the runtime is checked without it.
    monkeypatch.setattr(NeuralComposer, "_probe", lambda self: {})
    composer = NeuralComposer(model, seed=3, trust="any")
    phrase = composer.next_phrase(Controls())
    assert phrase.source == "onnx" and phrase.beats == 16
    assert all(n.voice in VOICES and n.duration_beats > 0 for n in phrase.notes)


@pytest.mark.parametrize("layers", [1, 2])
def test_step_model_computes_what_the_gru_computes(layers):
    import torch
    from models.generator.model import Generator, StepModel

    torch.manual_seed(0)
    g = Generator(len(vocab.TOKENS), attributes.N_CONTROLS, embed=12, hidden=20, layers=layers)
    step = StepModel(g)
    tokens = torch.randint(0, len(vocab.TOKENS), (3, 9))
    controls = torch.rand(3, 9, attributes.N_CONTROLS)
    with torch.no_grad():
        want, want_state = g(tokens, controls)
        state = torch.zeros(layers, 3, 20)
        for t in range(9):
            got, state = step(tokens[:, t], controls[:, t], state)
            torch.testing.assert_close(got, want[:, t], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(state, want_state, rtol=1e-4, atol=1e-5)
