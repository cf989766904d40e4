"""Train the calmtunes generator from scratch and ship it, reproducibly.

    python -m models.generator.train                 # the shipped model (see below for time)
    python -m models.generator.train --tiny --out /tmp/g   # a pipeline check in seconds

Steps: extract the corpus (cached in ``models/generator/cache/``), split by piece, train with a
fixed seed on randomly transposed windows, measure held-out NLL (torch, float ONNX, int8 ONNX)
against an n-gram baseline, export, quantize, and write ``calmtunes-generator.onnx`` with its
manifest (``.json``, SHA-256 included) and metrics (``.metrics.json``) into ``--out``.

Time on 2 cores: parsing the corpus once (5–17 min, depending on load; cached afterwards),
training about 9 min, evaluation and export about 15 s. The result is deterministic for a
given seed, torch thread count and library versions.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np

from models.generator import corpus, data, evaluate, export
from models.generator.attributes import N_CONTROLS
from models.generator.ngram import NGram
from models.generator.vocab import PAD, TOKENS

log = logging.getLogger("models.generator.train")
MODELS = Path(__file__).resolve().parent.parent
NAME = "calmtunes-generator"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=MODELS, help="where the model files go")
    p.add_argument("--work", type=Path, default=corpus.WORK, help="cache and float model")
    p.add_argument("--sources", nargs="+", default=list(corpus.COMMERCIAL_SOURCES),
                   choices=list(corpus.SOURCES),
                   help="corpus collections to train on; the default is the shipped model's, "
                   "whose terms allow commercial use (see models/MODEL_CARD.md on licences)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--length", type=int, default=128, help="tokens per training window")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--hidden", type=int, default=320)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--export-only", action="store_true",
                   help="skip training: export and evaluate the checkpoint in --work")
    p.add_argument("--tiny", action="store_true",
                   help="a handful of pieces, a small model, a few steps: a pipeline check")
    a = p.parse_args(argv)
    if a.tiny:
        a.steps, a.batch, a.length = min(a.steps, 40), 8, 96
        a.hidden, a.layers, a.embed = 48, 1, 16
    return a


def main(argv=None) -> dict:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    from models.generator.model import Generator

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    t0 = time.monotonic()

    if args.tiny:
        pieces = corpus.extract(("bach",), max_files=8, workers=1, cache=None)
    else:
        pieces = corpus.extract(cache=args.work / "corpus.json.gz")  # all sources, cached
        pieces = [p for p in pieces if p.source in args.sources]
        if set(args.sources) - set(corpus.COMMERCIAL_SOURCES):
            log.warning("training on %s: their terms forbid commercial use; do not ship this "
                        "model in a product", ", ".join(sorted(set(args.sources)
                                                              - set(corpus.COMMERCIAL_SOURCES))))
    train_p = [p for p in pieces if p.split == "train"]
    test_p = [p for p in pieces if p.split == "test"] or train_p[-1:]
    train_s, test_s = data.sequences(train_p), data.sequences(test_p)
    log.info("pieces: %d train, %d test (%.0f s)", len(train_s), len(test_s),
             time.monotonic() - t0)

    model = Generator(len(TOKENS), N_CONTROLS, args.embed, args.hidden, args.layers)
    checkpoint = args.work / f"{NAME}.pt"
    if args.export_only:
        saved = torch.load(checkpoint)
        model = Generator(**saved["config"])
        model.load_state_dict(saved["state"])
        seconds = saved.get("train_seconds")
        metrics_path = args.out / f"{NAME}.metrics.json"
        if seconds is None and metrics_path.exists():  # a checkpoint from an earlier export
            seconds = json.loads(metrics_path.read_text()).get("train_seconds")
        return finish(args, model, pieces, train_s, test_s, t0, seconds)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * s / args.steps)))
    rng = np.random.default_rng(args.seed)
    t_train = time.monotonic()
    for step in range(args.steps):
        model.train()
        toks, ctls, mask = data.batch(train_s, rng, args.batch, args.length)
        t, c, m = torch.from_numpy(toks), torch.from_numpy(ctls), torch.from_numpy(mask)
        logits, _ = model(t[:, :-1], c[:, :-1])
        target = t[:, 1:]
        loss_t = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
        mt = m[:, 1:].reshape(-1) * (target.reshape(-1) != PAD)
        loss = (loss_t * mt).sum() / mt.sum()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            log.info("step %d/%d loss %.3f (%.0f s)", step, args.steps, float(loss),
                     time.monotonic() - t_train)
    train_seconds = time.monotonic() - t_train
    args.work.mkdir(parents=True, exist_ok=True)
    torch.save({"config": model.config(), "state": model.state_dict(),
                "train_seconds": round(train_seconds, 1)}, checkpoint)
    return finish(args, model, pieces, train_s, test_s, t0, train_seconds)


def finish(args, model, pieces, train_s, test_s, t0: float, train_seconds) -> dict:
    """Evaluate, export, quantize, and write the model, its manifest and its metrics."""
    from models.generator.model import count_params

    nll_torch = evaluate.torch_nll(model, test_s)
    ngram = NGram(5).fit([list(s.tokens) for s in train_s])
    nll_ngram = ngram.nll([list(s.tokens) for s in test_s])

    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    float_path = args.work / f"{NAME}.float.onnx"
    int8_path = args.out / f"{NAME}.onnx"
    export.export_float(model, float_path)
    export.quantize(float_path, int8_path)
    shape = (model.layers, model.hidden)
    nll_float = evaluate.onnx_nll(float_path, test_s, shape)
    nll_int8 = evaluate.onnx_nll(int8_path, test_s, shape)
    ops = export.op_counts(int8_path)
    metrics = {
        "seed": args.seed,
        "params": count_params(model),
        "config": model.config(),
        "steps": args.steps, "batch": args.batch, "length": args.length, "lr": args.lr,
        "sources": sorted(args.sources),
        "pieces": {"train": len(train_s), "test": len(test_s)},
        "tokens": {"train": int(sum(len(s.tokens) for s in train_s)),
                   "test": int(sum(len(s.tokens) for s in test_s))},
        "split": corpus.stats(pieces),
        "heldout_nll_per_token": {"torch": nll_torch, "onnx_float": nll_float,
                                  "onnx_int8": nll_int8, "ngram5": nll_ngram},
        "int8_vs_float_pct": 100.0 * (nll_int8 - nll_float) / nll_float,
        "int8_ops": dict(ops),
        "file_bytes": int8_path.stat().st_size,
        "train_seconds": train_seconds and round(train_seconds, 1),
        "total_seconds": round(time.monotonic() - t0, 1),
    }
    export.write_manifest(int8_path, model, {"params": metrics["params"],
                                             "heldout_nll_int8": nll_int8})
    (args.out / f"{NAME}.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log.info("held-out NLL/token: torch %.3f float %.3f int8 %.3f n-gram %.3f",
             nll_torch, nll_float, nll_int8, nll_ngram)
    log.info("wrote %s (%d bytes) in %.0f s", int8_path, metrics["file_bytes"],
             metrics["total_seconds"])
    log.info("the daemon loads only a pinned manifest: for the shipped model run "
             "`python -m models.generator.pin` and commit it with the model")
    return metrics


if __name__ == "__main__":
    main()
