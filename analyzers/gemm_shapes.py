"""GEMM shapes from recorded `Input Dims`, their FLOPs, and their role in a Mamba block.

cuBLAS kernel names (nvjet_*, sm90_xmma_*) say nothing about which layer they serve; the launching
aten op's shapes do. mamba-ssm calls `weight @ x` in some places (Mamba-1 in_proj, dt_proj) and `x @ weight.T`
in others, so for `aten::mm` either operand can be the weight: we try both against the model config.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence

from tracekit.model_config import ModelConfig

GEMM_OPS: tuple[str, ...] = (
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::linear",
    "aten::matmul",
    "aten::_scaled_mm",
)
# batched GEMMs: their shapes name no weight (torch also runs some linears as one, `attribution._gemm_shapes`)
BATCHED_GEMM_OPS: tuple[str, ...] = ("aten::bmm", "aten::baddbmm")


@dataclasses.dataclass(frozen=True)
class Gemm:
    """One GEMM op: FLOPs = 2·batch·m·k·n; `weights` are the (in_features, out_features) readings."""

    m: int
    k: int
    n: int
    batch: int
    weights: tuple[tuple[int, int], ...]  # plausible (in, out) pairs, most likely first

    @property
    def flops(self) -> int:
        return 2 * self.batch * self.m * self.k * self.n


def parse_dims(raw: object) -> list[list[int]] | None:
    """`Input Dims` as stored (JSON text or already decoded) -> list of shapes (non-tensors = [])."""
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, list):
        return None
    return [list(d) if isinstance(d, list) and all(type(x) is int for x in d) else [] for d in raw]


def parse_gemm(op: str, dims: Sequence[Sequence[int]] | None) -> Gemm | None:
    """Shapes of a GEMM op from its recorded input dims; None when they are missing or not a GEMM."""
    if not dims:
        return None
    tensors = [list(d) for d in dims]
    if op == "aten::linear":
        if len(tensors) < 2 or len(tensors[0]) < 1 or len(tensors[1]) != 2:
            return None
        x, w = tensors[0], tensors[1]
        m = math.prod(x[:-1]) if len(x) > 1 else 1
        return Gemm(m=m, k=w[1], n=w[0], batch=1, weights=((w[1], w[0]),))
    if op in ("aten::addmm", "aten::baddbmm"):
        tensors = tensors[1:]
    if len(tensors) < 2:
        return None
    a, b = tensors[0], tensors[1]
    if op in ("aten::mm", "aten::addmm", "aten::_scaled_mm"):
        if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
            return None
        # weight = b (x @ W.T): (in=k, out=n); weight = a (W @ x): (in=k, out=m)
        return Gemm(m=a[0], k=a[1], n=b[1], batch=1, weights=((a[1], b[1]), (a[1], a[0])))
    if op in ("aten::bmm", "aten::baddbmm"):
        if len(a) != 3 or len(b) != 3 or a[2] != b[1]:
            return None
        return Gemm(m=a[1], k=a[2], n=b[2], batch=a[0], weights=())
    if op == "aten::matmul":
        if len(a) >= 2 and len(b) == 2 and a[-1] == b[0]:
            m = math.prod(a[:-1])
            weights = ((b[0], b[1]),) + (((a[1], a[0]),) if len(a) == 2 else ())
            return Gemm(m=m, k=b[0], n=b[1], batch=1, weights=weights)
        if len(a) == 2 and len(b) >= 3 and a[1] == b[-2]:
            # W @ x over a batch (transformers' Mamba-1 dt_proj: weight (d_inner, dt_rank) @ (B, dt_rank, L))
            return Gemm(m=a[0], k=a[1], n=b[-1], batch=math.prod(b[:-2]), weights=((a[1], a[0]),))
        if len(a) >= 3 and len(b) >= 3 and a[-1] == b[-2]:
            batch = math.prod(a[:-2])
            return Gemm(m=a[-2], k=a[-1], n=b[-1], batch=batch, weights=())
        return None
    return None


# the block component each projection role belongs to
ROLE_COMPONENT = {
    "lm_head": "other",
    "dt_proj": "ssm",
    "x_proj": "ssm",
    "out_proj": "final_linear",
    "in_proj": "gated_mlp",
}


def projection_shapes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each projection role (lm_head: mamba-ssm's padded vocabulary), in the
    order GemmRoles adds them (the last added is tried first where shapes coincide)."""
    pairs = {"lm_head": (cfg.d_model, cfg.padded_vocab)}
    if cfg.arch == "mamba1":
        r, n = cfg.dt_rank_value, cfg.d_state
        pairs |= {"dt_proj": (r, cfg.d_inner), "x_proj": (cfg.d_inner, r + 2 * n)}
    pairs |= {"out_proj": (cfg.d_inner, cfg.d_model), "in_proj": (cfg.d_model, cfg.in_proj_out)}
    return pairs


@dataclasses.dataclass(frozen=True)
class GemmRoles:
    """(in_features, out_features) of each block projection -> [(component, role), ...].

    Several roles can share a shape (the tiny Mamba-1 preset: vocab 256 = in_proj width 256); the
    enclosing component scope, when there is one, picks among them, else the block projection wins.
    """

    table: dict[tuple[int, int], list[tuple[str, str]]]

    @classmethod
    def from_config(cls, cfg: ModelConfig) -> GemmRoles:
        t: dict[tuple[int, int], list[tuple[str, str]]] = {}

        def add(pair: tuple[int, int], comp: str, role: str) -> None:
            roles = t.setdefault(pair, [])
            if (comp, role) not in roles:
                roles.insert(0, (comp, role))  # later = more specific = tried first

        add((cfg.d_model, cfg.vocab_size), "other", "lm_head")
        for role, pair in projection_shapes(cfg).items():
            add(pair, ROLE_COMPONENT[role], role)
        return cls(t)

    def classify(self, gemm: Gemm, prefer: str | None = None) -> tuple[str, str, tuple[int, int]] | None:
        """(component, role, matched (in, out) pair) of a GEMM, preferring the `prefer` component."""
        hits = [(c, r, pair) for pair in gemm.weights for c, r in self.table.get(pair, [])]
        if not hits:
            return None
        for hit in hits:
            if hit[0] == prefer:
                return hit
        return hits[0]
