"""ONNX export of the step model, int8 dynamic quantization, and the manifest.

The manifest (``<model>.json`` beside ``<model>.onnx``) carries what the runtime needs to use
the model without the training code: the SHA-256 of the ONNX file, the token list, the layout of
the conditioning vector and the state shape.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import torch

from calmtunes.music.generator import file_sha256
from models.generator.attributes import CONTROL_LAYOUT, REGISTER_LO, REGISTER_SPAN
from models.generator.model import Generator, StepModel
from models.generator.vocab import STEPS_PER_BAR, TOKENS

INPUTS = ("token", "controls", "state")
OUTPUTS = ("logits", "state_out")
FLOAT_OPS = ("MatMul", "Gemm", "GRU", "LSTM", "RNN")
INTEGER_OPS = ("MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
               "QLinearMatMul")


def export_float(g: Generator, path: Path) -> None:
    step = StepModel(g).eval()
    token = torch.zeros(1, dtype=torch.int64)
    controls = torch.zeros(1, g.n_controls)
    state = torch.zeros(g.layers, 1, g.hidden)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            step, (token, controls, state), str(path), input_names=list(INPUTS),
            output_names=list(OUTPUTS), opset_version=17, dynamo=False,
            dynamic_axes={"token": {0: "batch"}, "controls": {0: "batch"},
                          "state": {1: "batch"}, "logits": {0: "batch"},
                          "state_out": {1: "batch"}},
        )


def quantize(float_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantization of every MatMul weight (and the embedding table)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    int8_path.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gather"], per_channel=False)


def op_counts(path: Path) -> Counter:
    import onnx

    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def manifest_path(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


def write_manifest(model_path: Path, g: Generator, extra: dict | None = None) -> dict:
    m = {
        "format": "calmtunes-generator/1",
        "file": model_path.name,
        "sha256": file_sha256(model_path),  # what the runtime checks at every load
        "inputs": list(INPUTS),
        "outputs": list(OUTPUTS),
        "state_shape": [g.layers, g.hidden],
        "tokens": list(TOKENS),
        "controls": list(CONTROL_LAYOUT),
        "steps_per_bar": STEPS_PER_BAR,
        "register_pitch": [REGISTER_LO, REGISTER_SPAN],
        **(extra or {}),
    }
    manifest_path(model_path).write_text(json.dumps(m, indent=1) + "\n")
    return m
