"""Train small Mamba-1/2 models offline, so pruning's effect on accuracy can be measured here.

No pretrained weights can be downloaded on these machines; a small model trained on a state-hungry
task (MQAR) or on a real local corpus (bytes) gives accuracy numbers that actually depend on the
recurrent state, unlike a random model's.

`train_to_dir` is `tracekit train` end to end: data for the task, training, a held-out evaluation, the
model directory. The directory holds the weights (save_pretrained), tracekit_model.json, and
tracekit_task.json with the task's parameters and the training log, so `prune score --data mqar` and
`prune eval --tasks mqar` reuse the distribution the model was trained on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tracekit.errors import UsageError
from tracekit.model_config import ModelConfig
from tracekit.progress import ProgressEvent, ProgressFn, Stage
from tracekit.prune import evaluate
from tracekit.prune.checkpoints import TASK_META, build_model, save_model
from tracekit.prune.tasks import (
    IGNORE,
    MQAR,
    ByteTokenizer,
    SelectiveCopy,
    parse_synthetic,
    random_windows,
    read_corpus,
    task_to_dict,
)


@dataclass
class TrainConfig:
    """Optimisation settings; the defaults train the MQAR model of benchmarks/ in a few CPU minutes."""

    steps: int = 600
    batch: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup: int = 50
    seqlen: int = 256  # bytes task only; synthetic tasks fix their own length
    seed: int = 0
    eval_every: int = 100
    threads: int | None = None
    device: str = "cpu"  # "cuda" trains on the GPU machine; the model comes back on the CPU


@dataclass
class TrainLog:
    """What happened: loss/accuracy per logged step and the wall time (seconds)."""

    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"history": self.history, "seconds": self.seconds}


def _lr(step: int, tc: TrainConfig) -> float:
    if step < tc.warmup:
        return tc.lr * (step + 1) / tc.warmup
    frac = (step - tc.warmup) / max(1, tc.steps - tc.warmup)
    return tc.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def _loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    logits = model(input_ids=inputs, use_cache=False).logits
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE)
    m = labels != IGNORE
    acc = (logits.argmax(-1)[m] == labels[m]).float().mean().item()
    return loss, acc


def train(
    cfg: ModelConfig,
    task: MQAR | SelectiveCopy | torch.Tensor,
    tc: TrainConfig,
    on_progress: ProgressFn | None = None,
) -> tuple[nn.Module, TrainLog]:
    """Train a fresh model of shape `cfg` on a synthetic task or a byte stream (1-D token tensor).

    `on_progress` hears of each logged step (stage TRAIN, the logged row as result)."""
    if tc.steps < 1 or tc.batch < 1 or tc.lr <= 0:
        raise UsageError("steps, batch and lr must be positive")
    if isinstance(task, MQAR | SelectiveCopy):
        task.validate(cfg.padded_vocab)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    device = torch.device(tc.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device here")
    model = build_model(cfg, tc.seed).to(device)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": tc.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=tc.lr,
        betas=(0.9, 0.98),
    )
    g = torch.Generator().manual_seed(tc.seed + 1)
    log = TrainLog()
    t0 = time.perf_counter()
    run_loss = run_acc = 0.0
    seen = 0
    for step in range(tc.steps):
        if isinstance(task, torch.Tensor):
            w = random_windows(task, tc.seqlen, tc.batch, g)
            inputs, labels = w[:, :-1], w[:, 1:]
        else:
            inputs, labels = task.batch(tc.batch, g)
        inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        for group in opt.param_groups:
            group["lr"] = _lr(step, tc)
        loss, acc = _loss(model, inputs, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += loss.item()
        run_acc += acc
        seen += 1
        if (step + 1) % tc.eval_every == 0 or step + 1 == tc.steps:
            row = {
                "step": step + 1,
                "loss": run_loss / seen,
                "train_acc": run_acc / seen,
                "seconds": time.perf_counter() - t0,
            }
            log.history.append(row)
            run_loss = run_acc = 0.0
            seen = 0
            if on_progress:
                on_progress(ProgressEvent(Stage.TRAIN, step + 1, tc.steps, f"loss {row['loss']:.3f}", row))
    log.seconds = time.perf_counter() - t0
    # evaluation and saving run on the CPU, the same code path whatever trained the model
    return model.to("cpu").eval(), log


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
    on_progress: ProgressFn | None = None,
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
        model, log = train(cfg, tr, tc, on_progress)
        results = evaluate.perplexity(model, held.tolist(), seqlen, max_windows=64, name="held-out")
        meta = {
            "task": "bytes",
            "corpus": str(Path(arg).resolve()),
            "train_bytes": tr.numel(),
            "heldout_bytes": held.numel(),
        }
    else:
        task = parse_synthetic(task_spec)
        model, log = train(cfg, task, tc, on_progress)
        results = evaluate.synthetic_accuracy(model, task, n=eval_n, seed=seed + 10_000)
        meta = task_to_dict(task)
    meta = {**meta, "train": {**vars(tc), **log.to_dict()}, "eval": [r.to_dict() for r in results]}
    path = save_model(model, cfg, out, extra={TASK_META: meta})
    return {"out": str(path), "train_seconds": log.seconds, "eval": meta["eval"], "task": task_spec}
