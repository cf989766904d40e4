"""The shipped generator: it loads, its hash matches, it writes valid phrases for every preset,
and a damaged model gives way to the procedural composer without a gap in the music."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from calmtunes.config import DEFAULT_PRESETS, Config
from calmtunes.errors import ModelError
from calmtunes.hub import Hub
from calmtunes.music import theory
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent
from calmtunes.music.events import VOICES

pytest.importorskip("onnxruntime")

from calmtunes.music.generator import (
    NeuralComposer,
    default_model_path,
    file_sha256,
    load_manifest,
)

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "calmtunes-generator.onnx"


def _config(model_path: Path | str) -> Config:
    return Config().replace(music={"model_path": str(model_path), "seed": 7})


def _copy(tmp_path: Path) -> Path:
    dst = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, dst)
    shutil.copy(SHIPPED.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_shipped_model_is_found_and_its_hash_matches(monkeypatch):
    monkeypatch.delenv("CALMTUNES_MODEL", raising=False)
    if not Path("/usr/share/calmtunes/calmtunes-generator.onnx").exists():
        assert default_model_path() == SHIPPED
    manifest = load_manifest(SHIPPED)
    assert manifest["sha256"] == file_sha256(SHIPPED)
    assert SHIPPED.stat().st_size <= 8 * 1024 * 1024


def test_env_variable_names_the_model(monkeypatch, tmp_path):
    copy = _copy(tmp_path)
    monkeypatch.setenv("CALMTUNES_MODEL", str(copy))
    assert default_model_path() == copy


def test_a_release_finds_its_own_model_beside_its_environment(monkeypatch, tmp_path):
    """A technician's `sudo -u calmtunes /opt/calmtunes/current/venv/bin/calmtunes selftest`
    (without the unit's CALMTUNES_MODEL) checked /usr/share/calmtunes: PASS on a file the
    daemon does not load. The release's model/ beside the running venv comes first now."""
    import sys

    release = tmp_path / "current"
    (release / "model").mkdir(parents=True)
    copy = _copy(release / "model")
    monkeypatch.delenv("CALMTUNES_MODEL", raising=False)
    monkeypatch.setattr(sys, "prefix", str(release / "venv"))
    assert default_model_path() == copy


@pytest.mark.parametrize("preset", sorted(DEFAULT_PRESETS))
def test_valid_phrases_under_every_preset(preset):
    composer = NeuralComposer.from_config(_config(SHIPPED), seed=11)
    controls = Controls.from_preset(preset, DEFAULT_PRESETS[preset])
    melody_total = 0
    for _ in range(3):  # the stream continues across phrases
        phrase = composer.next_phrase(controls)
        assert phrase.source == "onnx" and phrase.beats == 16.0
        assert phrase.tempo_bpm == controls.tempo_bpm and phrase.mode == controls.mode
        assert phrase.chords and phrase.chords[0].start_beat == 0.0
        for n in phrase.notes:
            assert n.voice in VOICES
            assert 0.0 <= n.start_beat < phrase.beats and n.duration_beats > 0
            assert n.start_beat + n.duration_beats <= phrase.beats + 1e-9
            assert 0.0 < n.velocity <= 1.0 and 24 <= n.pitch <= 96
        melody = [n for n in phrase.notes if n.voice == "melody"]
        melody_total += len(melody)
        assert all(theory.in_key(n.pitch, phrase.key_pc, phrase.mode) for n in melody)
        onsets = [n.start_beat for n in melody]
        assert onsets == sorted(set(onsets))  # one melody line
        for c in phrase.chords:
            assert c.quality in theory.CHORD_INTERVALS
    assert melody_total > 0


def test_controls_change_at_the_phrase_boundary():
    composer = NeuralComposer(SHIPPED, seed=5)
    high = [composer.next_phrase(Controls(register=0.9, mode="major")) for _ in range(3)]
    low = [composer.next_phrase(Controls(register=0.1, mode="minor")) for _ in range(3)]

    def mean_pitch(ps):
        return np.mean([n.pitch for p in ps for n in p.notes if n.voice == "melody"])

    assert mean_pitch(high) > mean_pitch(low) + 6
    assert {p.mode for p in low} == {"minor"}


def test_same_seed_same_music():
    a = NeuralComposer(SHIPPED, seed=9).next_phrase(Controls())
    b = NeuralComposer(SHIPPED, seed=9).next_phrase(Controls())
    assert a.notes == b.notes and a.chords == b.chords


def test_truncated_model_raises_model_error(tmp_path):
    copy = _copy(tmp_path)
    copy.write_bytes(copy.read_bytes()[: copy.stat().st_size // 2])
    with pytest.raises(ModelError, match="corrupt"):
        NeuralComposer(copy)


def test_altered_model_raises_model_error(tmp_path):
    copy = _copy(tmp_path)
    raw = bytearray(copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    copy.write_bytes(bytes(raw))
    with pytest.raises(ModelError, match="SHA-256"):
        NeuralComposer(copy)


def test_missing_model_or_manifest_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        NeuralComposer(tmp_path / "nothing.onnx")
    copy = _copy(tmp_path)
    copy.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="manifest"):
        NeuralComposer(copy)


def _drain(component: ComposerComponent, n: int) -> list:
    phrases = []
    for _ in range(n):
        component.step(0.0)
        phrase = component.take_phrase()
        assert phrase is not None  # never silence for want of a phrase
        phrases.append(phrase)
    return phrases


def test_corrupt_model_falls_back_to_procedural_without_silence(tmp_path):
    copy = _copy(tmp_path)
    copy.write_bytes(copy.read_bytes()[:1000])
    component = ComposerComponent(_config(copy), Hub(), lambda: Controls())
    component.open()
    component._loader_thread.join(10.0)
    assert component.composer is component.fallback and component.fallbacks == 1
    assert {p.source for p in _drain(component, 3)} == {"procedural"}


def test_inference_failure_mid_stream_hands_over_to_procedural():
    component = ComposerComponent(_config(SHIPPED), Hub(), lambda: Controls())
    component.open()
    component._loader_thread.join(10.0)
    assert component.composer.name == "onnx"
    first = _drain(component, 1)[0]
    assert first.source == "onnx"
    # a state of the wrong shape makes onnxruntime itself fail, as a broken model would
    component.composer.state = np.zeros((1, 1, 3), dtype=np.float32)
    after = _drain(component, 2)
    assert [p.source for p in after] == ["procedural", "procedural"]
    assert component.fallbacks == 1


def test_loading_in_a_thread_does_not_block_the_music():
    loaded = threading.Event()

    def slow_loader(config, seed):
        composer = NeuralComposer.from_config(config, seed)
        loaded.set()
        return composer

    component = ComposerComponent(_config(SHIPPED), Hub(), lambda: Controls(), slow_loader)
    component.open()
    assert _drain(component, 1)[0].source in ("procedural", "onnx")
    assert loaded.wait(10.0)
    component._loader_thread.join(10.0)
    assert _drain(component, 1)[0].source == "onnx"


def test_shipped_graph_is_really_int8():
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    graph = onnx.load(str(SHIPPED)).graph
    ops = [n.op_type for n in graph.node]
    assert ops.count("MatMulInteger") + ops.count("DynamicQuantizeMatMul") >= 2
    assert not {"MatMul", "Gemm", "GRU", "LSTM"} & set(ops)  # no float products left
    big = [numpy_helper.to_array(i) for i in graph.initializer]
    big = [a for a in big if a.size > 4096]
    assert big and all(a.dtype.itemsize == 1 for a in big)  # every weight matrix is 8-bit
