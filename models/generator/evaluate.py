"""Held-out negative log-likelihood per token, for the torch model and for ONNX step models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.generator.data import Sequence
from models.generator.vocab import PAD


def _padded(seqs: list[Sequence], max_len: int | None):
    T = max(len(s.tokens) for s in seqs)
    if max_len:
        T = min(T, max_len)
    C = seqs[0].controls.shape[1]
    toks = np.full((len(seqs), T), PAD, dtype=np.int64)
    ctls = np.zeros((len(seqs), T, C), dtype=np.float32)
    for i, s in enumerate(seqs):
        t, c = s.transposed(0)
        n = min(len(t), T)
        toks[i, :n], ctls[i, :n] = t[:n], c[:n]
    return toks, ctls


def torch_nll(model, seqs: list[Sequence], batch: int = 32, max_len: int | None = None) -> float:
    """Mean NLL per predicted token (nats), whole pieces from BOS, no transposition."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            toks, ctls = _padded(seqs[i:i + batch], max_len)
            t, c = torch.from_numpy(toks), torch.from_numpy(ctls)
            logits, _ = model(t[:, :-1], c[:, :-1])
            target = t[:, 1:]
            lp = torch.log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
            m = target != PAD
            total -= float(lp[m].sum())
            count += int(m.sum())
    return total / max(count, 1)


def onnx_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_nll(path: Path, seqs: list[Sequence], state_shape: tuple[int, int], batch: int = 64,
             max_len: int | None = None, threads: int = 1) -> float:
    """The same NLL, computed one step at a time through the exported step model."""
    sess = onnx_session(path, threads)
    L, H = state_shape
    total, count = 0.0, 0
    for i in range(0, len(seqs), batch):
        toks, ctls = _padded(seqs[i:i + batch], max_len)
        B, T = toks.shape
        state = np.zeros((L, B, H), dtype=np.float32)
        for t in range(T - 1):
            live = toks[:, t + 1] != PAD
            if not live.any():
                break
            logits, state = sess.run(None, {"token": toks[:, t], "controls": ctls[:, t],
                                            "state": state})
            z = logits - logits.max(-1, keepdims=True)
            lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            total -= float(lp[np.arange(B), toks[:, t + 1]][live].sum())
            count += int(live.sum())
    return total / max(count, 1)
