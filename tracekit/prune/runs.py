"""`tracekit train` end to end: data for the task, training, a held-out evaluation, the model directory.

The directory holds the weights (save_pretrained), tracekit_model.json, and tracekit_task.json with the
task's parameters and the training log, so `prune score --data mqar` and `prune eval --tasks mqar`
reuse the distribution the model was trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tracekit.collectors.presets import ModelConfig
from tracekit.errors import UsageError
from tracekit.prune import evaluate
from tracekit.prune.models import TASK_META, save_model
from tracekit.prune.tasks import ByteTokenizer, parse_synthetic, read_corpus, task_to_dict
from tracekit.prune.train import TrainConfig, train


def byte_corpus(path: str, max_bytes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) byte streams: the last 10% of the corpus is held out."""
    ids = torch.tensor(ByteTokenizer().encode(read_corpus(path, max_bytes)), dtype=torch.long)
    cut = int(ids.numel() * 0.9)
    return ids[:cut], ids[cut:]


def train_to_dir(
    cfg: ModelConfig,
    task_spec: str,
    steps: int,
    batch: int,
    lr: float,
    seqlen: int,
    max_bytes: int,
    seed: int,
    eval_n: int,
    out: str,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train (on `device`), evaluate on held-out data on the CPU, write `out`; returns a JSON-able summary."""
    tc = TrainConfig(
        steps=steps,
        batch=batch,
        lr=lr,
        seqlen=seqlen,
        seed=seed,
        eval_every=max(1, min(50, steps // 10)),
        device=device,
    )
    kind, _, arg = task_spec.partition(":")
    if Path(out).exists() and any(Path(out).iterdir()):
        raise UsageError(f"{out}: already exists and is not empty")
    if kind == "bytes":
        if not arg:
            raise UsageError("bytes needs a corpus: bytes:FILE_OR_DIR")
        if cfg.padded_vocab < 256:
            raise UsageError(f"a byte-level LM needs vocab_size ≥ 256, the config has {cfg.padded_vocab}")
        tr, held = byte_corpus(arg, max_bytes)
        model, log = train(cfg, tr, tc, progress)
        results = evaluate.perplexity(model, held.tolist(), seqlen, max_windows=64, name="held-out")
        meta = {
            "task": "bytes",
            "corpus": str(Path(arg).resolve()),
            "train_bytes": tr.numel(),
            "heldout_bytes": held.numel(),
        }
    else:
        task = parse_synthetic(task_spec)
        model, log = train(cfg, task, tc, progress)
        results = evaluate.synthetic_accuracy(model, task, n=eval_n, seed=seed + 10_000)
        meta = task_to_dict(task)
    meta = {**meta, "train": {**vars(tc), **log.to_dict()}, "eval": [r.to_dict() for r in results]}
    path = save_model(model, cfg, out, extra={TASK_META: meta})
    return {"out": str(path), "train_seconds": log.seconds, "eval": meta["eval"], "task": task_spec}
