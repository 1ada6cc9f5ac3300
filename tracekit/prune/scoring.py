"""Per-state importance scores, their file format, and top-k selection.

Scores always have shape (layers, groups, d_state); Mamba-1 has one group. The methods:

- `delta`: E[mean_heads(Δ_t) · |B_t[s]|] — the Δ-weighted drive into state s. Δ is one value per
  channel (Mamba-1) or head (Mamba-2) shared by all N states, so the paper's mean-Δ cannot rank the
  states of a head; B_t[s] is what selects how much of the Δ-gated input enters state s.
- `delta-literal`: E[mean_heads(Δ_t)], the paper's Eq. (9) as written. Every state of a group gets the
  same score, so top-k is decided by the tie-break alone (lowest index first, i.e. states 0..k-1).
- `delta-bc`: E[mean_heads(Δ_t) · |B_t[s]| · |C_t[s]|] — drive in and read-out together.
- `energy`: E[mean_{heads,headdim} (C_t[s]·h_t[s])²] — the state's contribution to the SSM output.
- `magnitude`: ‖W_B[s]‖·‖W_C[s]‖ of the weight rows producing B and C (data-free).
- `random`: uniform scores from a seeded generator (the baseline any claim about Δ needs).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tracekit.errors import TracekitError, UsageError
from tracekit.model_config import ModelConfig
from tracekit.progress import ProgressEvent, ProgressFn, Stage, total_of
from tracekit.prune.checkpoints import mixers, shape_key
from tracekit.prune.signals import StateStats, replay

METHODS = ("delta", "delta-literal", "delta-bc", "energy", "magnitude", "random")
DATA_METHODS = ("delta", "delta-literal", "delta-bc", "energy")
FORMAT = "tracekit.prune.scores/1"


@dataclass
class ScoreSet:
    """Scores of one method for one model, plus where the model came from (so `apply` can rebuild it)."""

    model: ModelConfig
    method: str
    scores: torch.Tensor  # (layers, groups, d_state), float32
    source: dict[str, Any]  # {"pretrained": path} or {"seed": int} for random weights
    calibration: dict[str, Any]  # data, sequences, tokens, seed

    def to_payload(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model.to_dict(),
            "method": self.method,
            "scores": self.scores.float().cpu(),
            "source": self.source,
            "calibration": self.calibration,
        }


def save_scores(s: ScoreSet, path: str | os.PathLike) -> Path:
    """torch.save the scores dict, atomically (temp file + rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    torch.save(s.to_payload(), tmp)
    os.replace(tmp, p)
    return p


def load_scores(path: str | os.PathLike) -> ScoreSet:
    """Load and validate a scores file; any problem is one TracekitError line."""
    p = Path(path)
    if not p.is_file():
        raise TracekitError(f"{p}: no such scores file")
    try:
        d = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt/foreign file
        raise TracekitError(f"{p}: not a readable scores file ({type(exc).__name__})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise TracekitError(f"{p}: not a tracekit scores file (expected format {FORMAT})")
    try:
        cfg = ModelConfig.from_dict(d["model"])
        cfg.validate()
        scores = d["scores"]
        method = d["method"]
    except (KeyError, TypeError, ValueError) as exc:
        raise TracekitError(f"{p}: malformed scores file ({exc})") from None
    groups = 1 if cfg.arch == "mamba1" else cfg.ngroups
    want = (cfg.n_layer, groups, cfg.d_state)
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != want:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise TracekitError(f"{p}: scores have shape {got}, the model needs {want}")
    if method not in METHODS:
        raise TracekitError(f"{p}: unknown method {method!r}")
    if not torch.isfinite(scores).all():
        raise TracekitError(f"{p}: scores contain NaN or inf")
    return ScoreSet(cfg, method, scores.float(), dict(d.get("source") or {}), dict(d.get("calibration") or {}))


def check_same_shape(
    expected: ModelConfig, cfg: ModelConfig, problem: str = "scores were computed for a different model shape"
) -> None:
    """Scores of one model shape must not be applied to another; `problem` starts the error line."""
    a, b = shape_key(expected), shape_key(cfg)
    if a != b:
        diff = ", ".join(f"{k} {a.get(k)} vs {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        raise TracekitError(f"{problem} ({diff})")


# ---- computing scores -------------------------------------------------------


def calibrate(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    want_energy: bool = True,
    on_progress: ProgressFn | None = None,
) -> list[StateStats]:
    """Run token batches through the model and collect per-layer state statistics (a CALIBRATE event per batch)."""
    layers = mixers(model)
    stats: list[StateStats | None] = [None] * len(layers)
    handles = []

    def hook(i: int) -> Callable[..., None]:
        def fn(mod: nn.Module, args: tuple, kwargs: dict, out: torch.Tensor) -> None:
            u = args[0] if args else kwargs["hidden_states"]
            s = replay(mod, u, want_energy, with_output=False).stats
            stats[i] = s if stats[i] is None else stats[i] + s

        return fn

    for i, m in enumerate(layers):
        handles.append(m.register_forward_hook(hook(i), with_kwargs=True))
    try:
        with torch.no_grad():
            for n, ids in enumerate(batches):
                model(input_ids=ids, use_cache=False)
                if on_progress:
                    on_progress(ProgressEvent(Stage.CALIBRATE, n + 1, total_of(batches)))
    finally:
        for h in handles:
            h.remove()
    if any(s is None for s in stats):
        raise TracekitError("calibration saw no data")
    return stats  # type: ignore[return-value]


def scores_from_stats(stats: list[StateStats], method: str) -> torch.Tensor:
    """(layers, groups, N) means over all calibration tokens."""
    key = {"delta": "delta", "delta-bc": "delta_bc", "delta-literal": "delta_literal", "energy": "energy"}[method]
    out = []
    for s in stats:
        v = getattr(s, key)
        if v is None:
            raise TracekitError("energy scores need h_t: calibrate with want_energy=True")
        out.append(v / s.tokens)
    return torch.stack(out).float()


def magnitude_scores(model: nn.Module, cfg: ModelConfig) -> torch.Tensor:
    """‖W_B[s]‖·‖W_C[s]‖ per state: the rows of x_proj (Mamba-1) or in_proj (Mamba-2) making B and C."""
    out = []
    N = cfg.d_state
    for m in mixers(model):
        if cfg.arch == "mamba1":
            w = m.x_proj.weight
            R = cfg.dt_rank_value
            wb, wc = w[R : R + N], w[R + N : R + 2 * N]
            out.append((wb.norm(dim=1) * wc.norm(dim=1))[None])
        else:
            G, di = cfg.ngroups, cfg.d_inner
            w = m.in_proj.weight
            wb = w[2 * di : 2 * di + G * N].reshape(G, N, -1)
            wc = w[2 * di + G * N : 2 * di + 2 * G * N].reshape(G, N, -1)
            out.append(wb.norm(dim=-1) * wc.norm(dim=-1))
    return torch.stack(out).detach().float()


def random_scores(cfg: ModelConfig, seed: int) -> torch.Tensor:
    groups = 1 if cfg.arch == "mamba1" else cfg.ngroups
    g = torch.Generator().manual_seed(seed)
    return torch.rand(cfg.n_layer, groups, cfg.d_state, generator=g)


def compute_scores(
    model: nn.Module,
    cfg: ModelConfig,
    methods: Iterable[str],
    batches: Iterable[torch.Tensor] | None,
    seed: int = 0,
    on_progress: ProgressFn | None = None,
) -> dict[str, torch.Tensor]:
    """Scores for several methods from one calibration pass (data methods share it)."""
    methods = list(methods)
    for m in methods:
        if m not in METHODS:
            raise UsageError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    out: dict[str, torch.Tensor] = {}
    data = [m for m in methods if m in DATA_METHODS]
    if data:
        if batches is None:
            raise UsageError(f"method {data[0]} needs calibration data")
        stats = calibrate(model, batches, want_energy="energy" in data, on_progress=on_progress)
        for m in data:
            out[m] = scores_from_stats(stats, m)
    if "magnitude" in methods:
        out["magnitude"] = magnitude_scores(model, cfg)
    if "random" in methods:
        out["random"] = random_scores(cfg, seed)
    return {m: out[m] for m in methods}


# ---- selection ---------------------------------------------------------------


def kept_count(n: int, ratio: float) -> int:
    """k = ⌊N·(1−r)⌋, at least 1 (a layer with no state is not a Mamba layer)."""
    if not 0.0 <= ratio < 1.0 or math.isnan(ratio):
        raise UsageError(f"ratio must be in [0, 1), not {ratio}")
    return max(1, math.floor(n * (1.0 - ratio) + 1e-9))


def legal_k(cfg: ModelConfig, k: int) -> int:
    """Round k up so Mamba-2's conv channels stay a multiple of 8 (causal-conv1d's requirement)."""
    if cfg.arch != "mamba2":
        return k
    if (cfg.d_inner + 2 * cfg.ngroups * cfg.d_state) % 8:
        return k  # the dense model already breaks the rule; nothing to preserve
    while (cfg.d_inner + 2 * cfg.ngroups * k) % 8 and k < cfg.d_state:
        k += 1
    return k


def keep_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (layers, groups, k) of the k highest scores per layer and group, sorted ascending.

    Ties go to the lower index (stable sort), so equal scores keep states 0..k-1.
    """
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise UsageError(f"cannot keep {k} of {n} states")
    order = torch.sort(-scores, dim=-1, stable=True).indices[..., :k]
    return torch.sort(order, dim=-1).values
