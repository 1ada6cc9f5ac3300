"""Layer index of each kernel from the order of in_proj GEMMs, for traces without `layer.{i}` scopes.

A Mamba LM launches, per forward: embedding, then per block [block norm, in_proj, the mixer's kernels,
out_proj], then norm_f and lm_head. So in launch order a kernel belongs to the layer of the most recent
in_proj, except a block norm (and anything launched between it and the next in_proj), which belongs to the
layer of the in_proj that follows it. Kernels after the
last layer's out_proj of a forward (norm_f, lm_head, sampling) and before the first block norm of the next
(embedding) get no layer. This is only applied when it can be checked: every forward must hold exactly
n_layer in_proj calls, each followed by its out_proj before the next in_proj.
"""

from __future__ import annotations

import re

import polars as pl

# Functions that run a whole mixer (its norm is the gated norm, not a block norm).
_FUSED_MIXER = re.compile(r"^(MambaInnerFn|MambaSplitConv1dScanCombinedFn|MambaChunkScanCombinedFn)$")


def infer_layers(units: pl.DataFrame, n_layer: int) -> pl.Series | None:
    """Per-unit layer (aligned with `units` rows) or None when the launch order is not a clean Mamba LM."""
    if n_layer <= 0 or "role" not in units.columns:
        return None
    order = units.with_row_index("_row").sort("ts_ns", "_row")
    rows = order.select("_row", "component", "role", "chain").iter_rows()
    seq = [(r, comp, role, any(_FUSED_MIXER.match(n) for n in (chain or ()))) for r, comp, role, chain in rows]
    n_in = sum(1 for _, _, role, _ in seq if role == "in_proj")
    if n_in == 0 or n_in % n_layer:
        return None
    layer_of: dict[int, int | None] = {}
    calls = -1  # in_proj calls seen so far
    open_layer = False  # between a block's in_proj and the last layer's out_proj of a forward
    in_block = False  # after an in_proj, before its out_proj
    pending_norms: list[int] = []  # a block norm (or norm_f) and what follows it, waiting for an in_proj
    for row, comp, role, in_fused in seq:
        if role == "in_proj":
            if in_block:
                return None  # two in_proj without an out_proj between them
            calls += 1
            open_layer = True
            for n in pending_norms:
                layer_of[n] = calls % n_layer
            pending_norms = []
            layer_of[row] = calls % n_layer
            in_block = True
            continue
        if comp == "rmsnorm" and role is None and not in_fused and not in_block:
            pending_norms.append(row)  # a norm between blocks: the next in_proj's layer (none if norm_f)
            continue
        if pending_norms and role is None:
            pending_norms.append(row)  # between a block norm and its in_proj (e.g. cache zeroing)
            continue
        if pending_norms:
            for n in pending_norms:
                layer_of[n] = None  # it was norm_f (followed by lm_head, not in_proj)
            pending_norms = []
        layer_of[row] = calls % n_layer if open_layer else None
        if role == "out_proj":
            if not in_block:
                return None
            in_block = False
            if calls % n_layer == n_layer - 1:
                open_layer = False
    for n in pending_norms:
        layer_of[n] = None
    return pl.Series("layer", [layer_of.get(i) for i in range(units.height)], dtype=pl.Int32)
