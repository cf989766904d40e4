"""Model integrity: the manifest is pinned by the package, and a model whose load probe comes
out degenerate is refused. Either way the procedural composer plays, and the music is heard."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from calmtunes.config import Config
from calmtunes.errors import ModelError
from calmtunes.hub import Hub
from calmtunes.music.controls import Controls
from calmtunes.music.engine import ComposerComponent
from calmtunes.music.model_pin import PINNED_MANIFESTS
from calmtunes.render import render_offline

pytest.importorskip("onnxruntime")

from calmtunes.music.generator import NeuralComposer, load_manifest

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "calmtunes-generator.onnx"
MANIFEST = SHIPPED.with_suffix(".json")


def _config(model: Path, trust: str = "pinned") -> Config:
    return Config().replace(music={"model_path": str(model), "seed": 7, "model_trust": trust})


def _install(tmp_path: Path, model_bytes: bytes) -> Path:
    """``model_bytes`` as a model beside the shipped manifest rewritten to match its hash (what
    a model hash alone cannot catch)."""
    model = tmp_path / SHIPPED.name
    model.write_bytes(model_bytes)
    manifest = json.loads(MANIFEST.read_text())
    manifest["sha256"] = hashlib.sha256(model_bytes).hexdigest()
    model.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
    return model


def _edited(tmp_path: Path, **edits) -> Path:
    """The shipped model with initializers replaced (name → function of the old array), and a
    manifest that matches it."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    m = onnx.load(str(SHIPPED))
    inits = {i.name: i for i in m.graph.initializer}
    for name, edit in edits.items():
        old = numpy_helper.to_array(inits[name])
        new = np.asarray(edit(old.copy()), dtype=old.dtype)
        inits[name].CopyFrom(numpy_helper.from_array(new, name))
    return _install(tmp_path, m.SerializeToString())


def _scalar_offset(name: str) -> int:
    """Where the bytes of a float32 scalar initializer lie in the shipped file."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    raw = SHIPPED.read_bytes()
    init = next(i for i in onnx.load(str(SHIPPED)).graph.initializer if i.name == name)
    record = init.SerializeToString()
    assert raw.count(record) == 1
    value = np.float32(numpy_helper.to_array(init)).tobytes()  # little-endian in the file too
    assert record.count(value) == 1
    return raw.find(record) + record.find(value)


def _plays_procedural(config: Config, tmp_path: Path) -> None:
    """The daemon's composer falls back at once, and a render with that config is heard."""
    component = ComposerComponent(config, Hub(), lambda: Controls())
    component.open()
    component._loader_thread.join(10.0)
    assert component.composer is component.fallback and component.fallbacks == 1
    for _ in range(2):
        component.step(0.0)
        assert component.take_phrase().source == "procedural"
    out = tmp_path / "heard.wav"
    summary = render_offline(config, 0.1, out)
    assert summary["composer"] == "procedural"
    with wave.open(str(out)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2") / 32768.0
    assert len(pcm) and float(np.sqrt(np.mean(pcm ** 2))) > 1e-3  # about −60 dBFS: not silence


# -- the pin ---------------------------------------------------------------------------------
def test_pin_matches_the_shipped_manifest():
    digest = hashlib.sha256(MANIFEST.read_bytes()).hexdigest()
    assert digest in PINNED_MANIFESTS, (
        f"models/{MANIFEST.name} (SHA-256 {digest}) is not pinned in "
        f"device/calmtunes/music/model_pin.py: after retraining run "
        f"`python -m models.generator.pin` and commit both files")


def test_pin_tool_writes_the_pin(tmp_path):
    from models.generator.pin import PIN_MODULE, pinned_text

    text = PIN_MODULE.read_text()
    assert pinned_text(text, "ab" * 32) != text and '"' + "ab" * 32 + '"' in \
        pinned_text(text, "ab" * 32)
    digest = hashlib.sha256(MANIFEST.read_bytes()).hexdigest()
    assert pinned_text(text, digest) == text  # already pinned: nothing to write


def test_unpinned_manifest_is_refused_unless_trust_is_any(tmp_path, caplog):
    model = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, model)
    manifest = json.loads(MANIFEST.read_text())
    manifest["note"] = "a model of my own"
    model.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=r"not one this calmtunes release trusts.*model_trust"):
        load_manifest(model)
    with caplog.at_level(logging.WARNING):
        composer = NeuralComposer(model, seed=1, trust="any")
    assert composer.next_phrase(Controls()).source == "onnx"
    assert "model_trust is 'any'" in caplog.text



@pytest.mark.parametrize("edit, words", [
    (lambda m: [1, 2], "a JSON object expected, not list"),
    (lambda m: {**m, "state_shape": [1]}, "'state_shape' is [1], not [layers, hidden]"),
    (lambda m: {**m, "state_shape": "1x320"}, "'state_shape'"),
    (lambda m: {**m, "tokens": 5}, "'tokens' is not a list of names"),
    (lambda m: {**m, "controls": [1, 2]}, "'controls' is not a list of names"),
    (lambda m: {k: v for k, v in m.items() if k != "sha256"}, "no 'sha256'"),
    (lambda m: {**m, "sha256": None}, "'sha256' is not text"),
])
def test_a_malformed_manifest_is_named_with_what_is_wrong(tmp_path, edit, words):
    """With model_trust: any (developing a model) a manifest of the wrong shape is refused
    naming the file and the field, not with a bare TypeError from deep inside."""
    model = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, model)
    model.with_suffix(".json").write_text(json.dumps(edit(json.loads(MANIFEST.read_text()))))
    with pytest.raises(ModelError) as got:
        load_manifest(model, trust="any")
    assert str(model.with_suffix(".json")) in str(got.value)
    assert words in str(got.value) and "reinstall the model" in str(got.value)

def test_pinned_manifest_loads_quietly(tmp_path, caplog):
    model = tmp_path / SHIPPED.name
    shutil.copy(SHIPPED, model)
    shutil.copy(MANIFEST, model.with_suffix(".json"))
    with caplog.at_level(logging.WARNING):
        NeuralComposer(model, seed=1)
    assert "model_trust" not in caplog.text


def test_one_flipped_bit_with_a_matching_manifest_plays_the_procedural_composer(tmp_path):
    raw = bytearray(SHIPPED.read_bytes())
    # the exponent's top bit of the output layer's quantization scale: one bit, ×2^128
    at = _scalar_offset("w_out_scale")
    raw[at + 3] ^= 0x40
    model = _install(tmp_path, bytes(raw))
    with pytest.raises(ModelError, match="not pinned"):
        NeuralComposer(model)
    _plays_procedural(_config(model), tmp_path)
    # with the pin relaxed the probe (or onnxruntime) still refuses it
    with pytest.raises(ModelError, match=r"load probe|non-finite|does not load"):
        NeuralComposer(model, trust="any")
    _plays_procedural(_config(model, trust="any"), tmp_path)


# -- the probe -------------------------------------------------------------------------------
def test_shipped_model_passes_the_probe():
    report = NeuralComposer(SHIPPED, seed=1).probe_report
    assert report["grammar_mass"] > 0.9 and report["notes"] > 4 and report["pitches"] > 2


def test_zeroed_output_layer_is_refused_and_the_procedural_composer_plays(tmp_path):
    model = _edited(tmp_path, w_out_quantized=np.zeros_like)
    with pytest.raises(ModelError, match="load probe: its logits do not change"):
        NeuralComposer(model, trust="any")
    _plays_procedural(_config(model, trust="any"), tmp_path)


def test_all_weights_zeroed_is_refused(tmp_path):
    zero = {name: np.zeros_like for name in ("table_quantized", "joint_quantized",
                                             "w_out_quantized", "joint_bias", "b_out")}
    model = _edited(tmp_path, **zero)
    with pytest.raises(ModelError, match="load probe"):
        NeuralComposer(model, trust="any")


def test_scrambled_output_layer_is_refused_as_ill_formed(tmp_path):
    rng = np.random.default_rng(0)
    model = _edited(tmp_path, w_out_quantized=lambda a: rng.integers(-127, 128, a.shape))
    with pytest.raises(ModelError, match="well-formed"):
        NeuralComposer(model, trust="any")


def test_a_model_that_only_rests_is_refused(tmp_path):
    tokens = json.loads(MANIFEST.read_text())["tokens"]
    bar = tokens.index("BAR")  # always close the bar at once: bars of silence

    def only_bars(b):
        b[bar] += 60.0
        return b

    model = _edited(tmp_path, b_out=only_bars)
    with pytest.raises(ModelError, match="without a melody note"):
        NeuralComposer(model, trust="any")
    _plays_procedural(_config(model, trust="any"), tmp_path)


def test_a_model_stuck_on_one_pitch_is_refused(tmp_path):
    tokens = json.loads(MANIFEST.read_text())["tokens"]
    others = [i for i, name in enumerate(tokens)
              if name.startswith("PITCH_") and name != "PITCH_72"]  # C5 is in the probe's key

    def one_pitch(b):
        b[others] -= 60.0
        return b

    model = _edited(tmp_path, b_out=one_pitch)
    with pytest.raises(ModelError, match="one pitch"):
        NeuralComposer(model, trust="any")


def test_the_probe_leaves_no_trace_in_the_music(monkeypatch):
    probed = NeuralComposer(SHIPPED, seed=9)
    monkeypatch.setattr(NeuralComposer, "_probe", lambda self: {})
    plain = NeuralComposer(SHIPPED, seed=9)
    for controls in (Controls(), Controls(density=0.2, mode="minor")):
        a, b = probed.next_phrase(controls), plain.next_phrase(controls)
        assert a.notes == b.notes and a.chords == b.chords
