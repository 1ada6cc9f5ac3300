"""The steps behind `tracekit prune score|apply|eval`: model source, calibration data, writing results.

The CLI only parses flags and calls these; tests and benchmarks call them directly.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tracekit.errors import TracekitError, UsageError
from tracekit.model_config import ModelConfig
from tracekit.progress import ProgressFn
from tracekit.prune import apply as variants
from tracekit.prune.checkpoints import (
    MODEL_META,
    PRUNE_META,
    TASK_META,
    build_model,
    default_save_format,
    load_model,
    read_meta,
    save_model,
)
from tracekit.prune.scoring import (
    ScoreSet,
    check_same_shape,
    compute_scores,
    keep_indices,
    kept_count,
    legal_k,
    load_scores,
)
from tracekit.prune.tasks import encode, parse_synthetic, read_corpus, synthetic_batches, tokenizer_for, windows

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json")


@dataclass
class Source:
    """A model plus how to get it again (`apply` rebuilds the model the scores were computed on)."""

    model: nn.Module
    cfg: ModelConfig
    info: dict[str, Any]  # {"pretrained": abs path} or {"seed": int}
    model_dir: Path | None


def open_source(cfg: ModelConfig | None, pretrained: str | None, seed: int) -> Source:
    """Load `pretrained`, or build random weights of shape `cfg` from `seed`."""
    if pretrained:
        model, loaded = load_model(pretrained)
        if cfg is not None:
            check_same_shape(cfg, loaded, "--pretrained model does not match --arch/--preset/--config")
        p = Path(pretrained).resolve()
        return Source(model, loaded, {"pretrained": str(p)}, p)
    if cfg is None:
        raise UsageError("give --arch/--preset or --pretrained")
    return Source(build_model(cfg, seed), cfg, {"seed": seed}, None)


def calibration_batches(
    data: str, src: Source, seqlen: int, samples: int, batch: int, seed: int
) -> tuple[list[torch.Tensor], dict[str, Any]]:
    """Token batches from a text file/dir, or a synthetic task (`mqar`, `selcopy[:opts]`).

    A synthetic task's defaults come from the model directory's tracekit_task.json (written by
    `tracekit train`), so a model is calibrated on the distribution it was trained on.
    """
    if samples < 1 or seqlen < 2 or batch < 1:
        raise UsageError("--samples, --batch must be ≥ 1 and --seqlen ≥ 2")
    name = data.partition(":")[0]
    if name in ("mqar", "selcopy", "selective-copy") and not Path(data).exists():
        defaults = read_meta(src.model_dir, TASK_META) if src.model_dir else None
        task = parse_synthetic(data, defaults)
        task.validate(src.cfg.padded_vocab)
        out = [x for x, _ in synthetic_batches(task, samples, batch, seed)]
        return out, {"data": data, "sequences": samples, "tokens": samples * task.seqlen, "seed": seed}
    tok = tokenizer_for(src.model_dir, src.cfg.padded_vocab)
    text = read_corpus(data)
    ids = encode(tok, text)
    if len(ids) < seqlen:
        raise TracekitError(f"{data}: calibration data too short ({len(ids)} tokens < --seqlen {seqlen})")
    w = windows(ids, seqlen, samples)
    out = list(torch.split(w, batch))
    return out, {"data": data, "sequences": int(w.shape[0]), "tokens": int(w.numel()), "seed": seed}


def score(
    src: Source,
    method: str,
    batches: list[torch.Tensor] | None,
    calibration: dict[str, Any],
    seed: int,
    on_progress: ProgressFn | None = None,
) -> ScoreSet:
    """Scores of one method for `src`."""
    s = compute_scores(src.model, src.cfg, [method], batches, seed=seed, on_progress=on_progress)[method]
    return ScoreSet(src.cfg, method, s, src.info, calibration)


@dataclass
class Pruned:
    """A pruned model in memory, with what was decided."""

    model: nn.Module
    cfg: ModelConfig
    info: dict[str, Any]


def prune_model(
    model: nn.Module,
    cfg: ModelConfig,
    scores: torch.Tensor,
    ratio: float,
    variant: str,
    align: bool = True,
    round_how: str = "none",
    round_batch: int = 64,
) -> Pruned:
    """Keep the top-k states per layer/group; k = ⌊N(1−r)⌋ rounded up to a causal-conv1d-legal value.

    round_how (down/up/nearest): then to a kernel-friendly k, one whose decode state update is cheaper than
    every larger k's (mamba-ssm's `selective_state_update`'s measured steps, tracekit.analyzers.kernel_k),
    at batch `round_batch`. tracekit's state kernel has no such steps (see `kernel_rounding`).
    """
    if variant not in variants.VARIANTS:
        raise UsageError(f"unknown variant {variant!r}; choose from {', '.join(variants.VARIANTS)}")
    k_req = kept_count(cfg.d_state, ratio)
    k = legal_k(cfg, k_req) if align else k_req
    note = None
    if k != k_req:
        note = (
            f"k rounded up from {k_req} to {k} so conv channels ({cfg.d_inner + 2 * cfg.ngroups * k}) "
            "are a multiple of 8, as causal-conv1d requires"
        )
    rounding = None
    if round_how != "none":
        rounding = kernel_rounding(cfg, k, round_how, round_batch, align)
        k = rounding["k"]
    keep = keep_indices(scores, k)
    info = {
        "variant": variant,
        "ratio": ratio,
        "d_state": cfg.d_state,
        "k_requested": k_req,
        "k": k,
        "effective_ratio": 1 - k / cfg.d_state,
        "note": note,
        "round_k": rounding,
        "keep": keep.tolist(),
    }
    if variant == "dense":
        return Pruned(model, cfg, info)
    if variant == "masked":
        return Pruned(variants.masked(model, cfg, keep), cfg, info)
    small, small_cfg = variants.physical(model, cfg, keep)
    return Pruned(small, small_cfg, info)


def kernel_rounding(cfg: ModelConfig, k: int, how: str, batch: int, align: bool = True) -> dict[str, Any]:
    """k moved to the nearest kernel-friendly value in direction `how`, and what the kernel should make of it.

    The rounding follows mamba-ssm's decode state update (`state_kernel`), whose padded blocks make most k
    useless. `tracekit_friendly` is the same frontier for tracekit's kernel (`--state-kernel tracekit`, no
    padding) among its measured k, or None where it was not measured at this d_state.
    """
    from tracekit.analyzers.kernel_k import MAMBA_SSM, friendly_ks, kernel_note, load_table, round_k

    def legal(j: int) -> bool:
        return not align or legal_k(cfg, j) == j

    friendly = friendly_ks(cfg.arch, cfg.d_state, batch, "decode", legal)
    tk = load_table().get((cfg.arch, "decode", "tracekit"))
    tk_friendly = None
    if tk and cfg.d_state in tk.buckets:
        tk_friendly = friendly_ks(cfg.arch, cfg.d_state, batch, "decode", legal, state_kernel="tracekit")
    new = round_k(k, how, friendly)
    kn = kernel_note(cfg.arch, "decode", new, cfg.d_state, batch)
    return {
        "how": how,
        "from": k,
        "k": new,
        "friendly": friendly,
        "state_kernel": MAMBA_SSM,
        "tracekit_friendly": tk_friendly,
        "batch": batch,
        "kernel_note": kn["note"] if kn else "dense: no pruning left" if new == cfg.d_state else None,
        "machine": kn["machine"] if kn else None,
    }


def apply_file(
    scores_path: str,
    ratio: float,
    variant: str,
    out: str,
    pretrained: str | None = None,
    align: bool = True,
    save_format: str = "auto",
    round_how: str = "none",
    round_batch: int = 64,
) -> tuple[Path, dict[str, Any]]:
    """`prune apply`: rebuild the scored model, prune it, write a loadable directory atomically."""
    s = load_scores(scores_path)
    k = kept_count(s.model.d_state, ratio)  # validate the ratio (and the rounding) before any work
    if round_how != "none":
        kernel_rounding(s.model, legal_k(s.model, k) if align else k, round_how, round_batch, align)
    if pretrained is None:
        pretrained = s.source.get("pretrained")
        if pretrained and not Path(pretrained).is_dir():
            raise TracekitError(f"the scored model {pretrained} is gone; pass --pretrained")
    src = open_source(None if pretrained else s.model, pretrained, int(s.source.get("seed", 0)))
    check_same_shape(s.model, src.cfg)
    pr = prune_model(src.model, src.cfg, s.scores, ratio, variant, align, round_how, round_batch)
    info = {**pr.info, "method": s.method, "scores": str(Path(scores_path).resolve()), "source": src.info}

    def copy_side_files(tmp: Path) -> None:
        if src.model_dir is None:
            return
        for name in (TASK_META, *TOKENIZER_FILES):
            f = src.model_dir / name
            if f.is_file():
                shutil.copy2(f, tmp / name)

    fmt = default_save_format() if save_format == "auto" else save_format
    info["save_format"] = fmt
    path = save_model(pr.model, pr.cfg, out, extra={PRUNE_META: info}, writer=copy_side_files, fmt=fmt)
    return path, info


def eval_model(
    model: nn.Module,
    cfg: ModelConfig,
    model_dir: Path | None,
    tasks: list[str],
    seqlen: int = 256,
    max_windows: int | None = None,
    n: int = 256,
    limit: int | None = None,
    seed: int = 1234,
) -> Iterator[Any]:
    """Yield evaluate.Result rows for `ppl:FILE`, `mc:FILE.jsonl`, `mqar[:opts]`, `selcopy[:opts]`."""
    from tracekit.prune import evaluate

    for spec in tasks:
        kind, _, arg = spec.partition(":")
        if kind == "ppl":
            if not arg:
                raise UsageError("ppl needs a file: ppl:PATH")
            tok = tokenizer_for(model_dir, cfg.padded_vocab)
            ids = encode(tok, read_corpus(arg))
            yield from evaluate.perplexity(model, ids, seqlen, max_windows=max_windows, name=f"ppl:{Path(arg).name}")
        elif kind == "mc":
            if not arg:
                raise UsageError("mc needs a JSONL file: mc:PATH")
            task_kind, items = evaluate.read_mc(arg, limit)
            tok = tokenizer_for(model_dir, cfg.padded_vocab)
            yield from evaluate.multiple_choice(model, tok, items, f"{task_kind}:{Path(arg).name}")
        elif kind in ("mqar", "selcopy", "selective-copy"):
            defaults = read_meta(model_dir, TASK_META) if model_dir else None
            task = parse_synthetic(spec, defaults)
            task.validate(cfg.padded_vocab)
            yield from evaluate.synthetic_accuracy(model, task, n=n, seed=seed)
        else:
            raise UsageError(f"unknown task {spec!r}: use ppl:FILE, mc:FILE.jsonl, mqar[:k=v,..] or selcopy[:k=v,..]")


__all__ = [
    "MODEL_META",
    "Pruned",
    "Source",
    "apply_file",
    "calibration_batches",
    "eval_model",
    "kernel_rounding",
    "open_source",
    "prune_model",
    "score",
]
