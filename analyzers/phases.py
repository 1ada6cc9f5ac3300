"""Split a trace's kernel stream into forwards (prefill, decode steps) from its step structure.

A generate trace (mamba-ssm's `generate()`, HF's `generate()`, or any loop of forwards) holds one prefill
forward and N decode forwards with no scopes telling them apart. A Mamba LM forward launches, in order:
embedding, per block [block norm, in_proj, mixer kernels, out_proj], norm_f, lm_head, then sampling. So:

1. **Anchors**: the in_proj GEMM calls (role from shapes, or graph position) in launch order, grouped
   n_layer at a time; forward f is anchored at the first kernel of its layer-0 in_proj call. Needs a known
   config and an in_proj count that is a multiple of n_layer (else no split, with a reason).
2. **Boundaries**: forward f-1 ends with its last lm_head kernel (and the sampling after it), or without an
   lm_head (bare mixer stacks) with its last layer's last kernel; forward f starts at the first kernel
   after that which the embedding launched (launching op or an enclosing op is `aten::embedding`);
   without such a kernel (no CPU ops, e.g. CUDA-graph replays), at the first kernel of that range that
   has a layer (block 0's norm), else at the anchor. Forward 0 starts at the trace's first kernel; the
   last forward ends at its last kernel. Every kernel lies in exactly one forward, so the phases' kernel
   times add up to the trace's kernel total exactly. Sampling after a forward's lm_head belongs to that
   forward (it produces that forward's token).
3. **Kinds**: a forward whose layer-0 in_proj has more tokens than the batch is a prefill, else a decode
   step (batch from the manifest or the most common `[B, L, d_model]` input shape; without a batch the
   smallest in_proj token count of the trace is taken as the batch when the trace mixes two).

Definitions and field names: docs/attribute.md, "Phase split of generate traces".
"""

from __future__ import annotations

import bisect
import dataclasses
from typing import Any

import duckdb
import polars as pl
from tracekit.analyzers.attribution import GRAPH_LAUNCH, Attribution
from tracekit.analyzers.components import COMPONENTS

from tracekit.store.frames import frame

EMBEDDING_OPS = ("aten::embedding",)


@dataclasses.dataclass
class PhaseSplit:
    """Per-kernel forward index and kind, or why the trace could not be split."""

    units: pl.DataFrame | None  # units sorted by ts_ns with `forward` (0-based) and `phase` (prefill|decode)
    forwards: list[dict[str, Any]]  # one per forward: index, kind, tokens, boundary
    reason: str | None = None  # why there is no split (units None)

    @property
    def ok(self) -> bool:
        return self.units is not None


def _quantiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p10": None, "p90": None, "min": None, "max": None}
    s = pl.Series(values, dtype=pl.Float64)
    return {
        "median": float(s.median()),
        "p10": float(s.quantile(0.1, interpolation="linear")),
        "p90": float(s.quantile(0.9, interpolation="linear")),
        "min": float(s.min()),
        "max": float(s.max()),
    }


def split_forwards(att: Attribution, batch: int | None) -> PhaseSplit:
    """Assign every kernel to one forward (see the module docstring); GPU traces only.

    Without a usable config (or when the in_proj anchors do not check out), a trace that replays CUDA
    graphs is split at its graph launches: one decode step per `cudaGraphLaunch`, from the first kernel
    that launch ran (kernels linked to it by correlation); eager kernels before the first replay join the
    first step, eager kernels after a replay (sampling, copies) the step of that replay.
    """
    if att.time_source != "gpu":
        return PhaseSplit(None, [], "CPU-only trace: no kernel stream to split")
    split = _split_by_anchors(att, batch)
    if split.ok:
        return split
    u = att.units.with_row_index("_row").sort("ts_ns", "_row").with_row_index("_pos")
    firsts = (
        u.filter(pl.col("launcher") == GRAPH_LAUNCH)
        .group_by("launch_id")
        .agg(pl.col("_pos").min())
        .sort("_pos")["_pos"]
        .to_list()
    )
    if len(firsts) < 2:
        return split
    starts = [0, *firsts[1:]]
    bounds = [*starts, u.height]
    fwd_of = [f for f in range(len(starts)) for _ in range(bounds[f], bounds[f + 1])]
    u = u.with_columns(pl.Series("forward", fwd_of, dtype=pl.Int32), pl.lit("decode").alias("phase"))
    fwds = [
        {"index": f, "kind": "decode", "tokens": None, "boundary": "trace start" if f == 0 else "graph launch"}
        for f in range(len(starts))
    ]
    return PhaseSplit(u.drop("_row", "_pos"), fwds)


def _split_by_anchors(att: Attribution, batch: int | None) -> PhaseSplit:
    cfg = att.config
    if cfg is None:
        return PhaseSplit(None, [], "model config unknown: in_proj/lm_head GEMMs cannot be found")
    u = att.units.with_row_index("_row").sort("ts_ns", "_row").with_row_index("_pos")
    call = pl.coalesce("gemm_id", "event_id")
    in_proj = (
        u.filter(pl.col("role") == "in_proj")
        .with_columns(call.alias("_call"))
        .group_by("_call")
        .agg(pl.col("_pos").min(), pl.col("gemm_id").first())
        .sort("_pos")
    )
    n_in = in_proj.height
    if n_in == 0:
        return PhaseSplit(None, [], "no in_proj GEMM found (config matches none of the trace's GEMM shapes)")
    if n_in % cfg.n_layer:
        return PhaseSplit(None, [], f"{n_in} in_proj calls is not a multiple of n_layer={cfg.n_layer}")
    n_fwd = n_in // cfg.n_layer
    anchors = in_proj["_pos"].to_list()[:: cfg.n_layer]
    anchor_gemm = in_proj["gemm_id"].to_list()[:: cfg.n_layer]
    lm_pos = sorted(u.filter(pl.col("role") == "lm_head")["_pos"].to_list())
    chain_emb = pl.col("chain").list.eval(pl.element().is_in(EMBEDDING_OPS)).list.any()
    is_emb = (pl.col("op").is_in(EMBEDDING_OPS) | chain_emb).fill_null(False)
    emb_pos = u.filter(is_emb)["_pos"].to_list()
    layered = u.filter(pl.col("layer").is_not_null())["_pos"].to_list()
    last_layer = u.filter(pl.col("layer") == cfg.n_layer - 1)["_pos"].to_list()

    def first_in(xs: list[int], lo: int, hi: int) -> int | None:
        i = bisect.bisect_left(xs, lo)
        return xs[i] if i < len(xs) and xs[i] <= hi else None

    def last_in(xs: list[int], lo: int, hi: int) -> int | None:
        i = bisect.bisect_left(xs, hi) - 1
        return xs[i] if i >= 0 and xs[i] > lo else None

    starts = [0]
    how = []
    for f in range(1, n_fwd):
        prev, cur = anchors[f - 1], anchors[f]
        # the previous forward ends with its last lm_head (+ sampling), else with its last layer's kernels
        end = last_in(lm_pos, prev, cur)
        if end is None:
            end = last_in(last_layer, prev, cur)
        lo = (end if end is not None else prev) + 1
        emb, lay = first_in(emb_pos, lo, cur), first_in(layered, lo, cur)
        if emb is not None:
            starts.append(emb)
            how.append("embedding")
        elif lay is not None:
            starts.append(lay)
            how.append("first layered kernel")
        else:
            starts.append(cur)
            how.append("anchor")
    bounds = [*starts, u.height]
    fwd_of = [0] * u.height
    for f in range(n_fwd):
        for p in range(bounds[f], bounds[f + 1]):
            fwd_of[p] = f
    tokens_of = dict(att.gemms.select("gemm_id", "tokens").iter_rows()) if att.gemms.height else {}
    tokens = [tokens_of.get(g) if g is not None else None for g in anchor_gemm]
    known = sorted({t for t in tokens if t is not None})
    b = batch if batch else (known[0] if len(known) > 1 else None)
    # No shapes (CUDA-graph replays): a decode step (prefill is not graph-replayed); no batch: prefill.
    kinds = ["decode" if t is None else "prefill" if b is None or t > b else "decode" for t in tokens]
    u = u.with_columns(pl.Series("forward", fwd_of, dtype=pl.Int32))
    u = u.with_columns(
        pl.col("forward").replace_strict(list(range(n_fwd)), kinds, return_dtype=pl.String).alias("phase")
    )
    fwds = [
        {"index": f, "kind": kinds[f], "tokens": tokens[f], "boundary": "trace start" if f == 0 else how[f - 1]}
        for f in range(n_fwd)
    ]
    return PhaseSplit(u.drop("_row", "_pos"), fwds)


def _launch_times(con: duckdb.DuckDBPyConnection, trace_id: int) -> pl.DataFrame:
    return frame(
        con,
        """SELECT event_id AS launch_id, ts_ns AS launch_ts, end_ns AS launch_end FROM events
           WHERE trace_id = $tid AND event_id IN (SELECT launch_id FROM kernels WHERE trace_id = $tid)""",
        {"tid": trace_id},
    )


def _figures(sub: pl.DataFrame, not_before: int | None = None) -> dict[str, Any]:
    """Kernel time, busy, span and launches of a set of kernels.

    The span runs from the first launch call (or first kernel) to the last kernel end (or launch call end),
    but starts no earlier than `not_before` (the previous forward's last kernel end): when the host runs
    ahead of the GPU, a forward's launches are queued while the previous forward still runs.
    """
    from tracekit.analyzers.intervals import union_ns

    start = min(v for v in (sub["ts_ns"].min(), sub["launch_ts"].min()) if v is not None)
    if not_before is not None:
        start = min(max(start, not_before), int(sub["ts_ns"].min()))
    end = max(v for v in (sub["end_ns"].max(), sub["launch_end"].max()) if v is not None)
    kernel_ns = int(sub["dur_ns"].sum() or 0)
    busy = union_ns(sub)
    span = int(end - start)
    return {
        "start_ns": int(start),
        "span_ns": span,
        "kernel_ns": kernel_ns,
        "busy_ns": busy,
        "busy_fraction": busy / span if span else None,
        "kernels": sub.height,
        "launches": int(sub["launch_id"].drop_nulls().n_unique()),
    }


def _components(sub: pl.DataFrame, per: int = 1) -> list[dict[str, Any]]:
    total = int(sub["dur_ns"].sum() or 0)
    g = {c: (int(t), int(n)) for c, t, n in sub.group_by("component").agg(pl.col("dur_ns").sum(), pl.len()).iter_rows()}
    rows = []
    for comp in COMPONENTS:
        t, n = g.get(comp, (0, 0))
        row = {"component": comp, "gpu_time_ns": t, "kernels": n, "share": t / total if total else None}
        if per > 1:
            row["gpu_time_ns_per_step"] = t / per
        rows.append(row)
    return rows


def phase_summary(con: duckdb.DuckDBPyConnection, att: Attribution, split: PhaseSplit) -> dict[str, Any]:
    """The `phases` field of the attribute document (docs/attribute.md, "Phase split of generate traces")."""
    assert split.units is not None
    u = split.units.join(_launch_times(con, att.trace_id), on="launch_id", how="left")
    steps = []
    prev_end = None
    for f in split.forwards:
        sub = u.filter(pl.col("forward") == f["index"])
        fig = _figures(sub, prev_end)
        prev_end = int(sub["end_ns"].max())
        steps.append({"index": f["index"], "kind": f["kind"], "tokens": f["tokens"], "boundary": f["boundary"], **fig})
    t0 = steps[0]["start_ns"] if steps else 0
    for s in steps:
        s["start_ns"] -= t0  # relative to the first forward
    pre = u.filter(pl.col("phase") == "prefill")
    dec = u.filter(pl.col("phase") == "decode")
    n_pre = sum(1 for s in steps if s["kind"] == "prefill")
    dsteps = [s for s in steps if s["kind"] == "decode"]
    prefill = None
    if pre.height:
        prefill = {"forwards": n_pre, **_figures(pre), "components": _components(pre)}
        prefill.pop("start_ns")
        prefill["tokens"] = sum(s["tokens"] or 0 for s in steps if s["kind"] == "prefill") or None
    decode = None
    if dec.height:
        decode = {
            "steps": len(dsteps),
            "kernel_ns": int(dec["dur_ns"].sum() or 0),
            "kernels": dec.height,
            "step_span_ns": _quantiles([s["span_ns"] for s in dsteps]),
            "step_kernel_ns": _quantiles([s["kernel_ns"] for s in dsteps]),
            "step_busy_fraction": _quantiles([s["busy_fraction"] for s in dsteps if s["busy_fraction"] is not None]),
            "launches_per_step": _quantiles([s["launches"] for s in dsteps]),
            "kernels_per_step": _quantiles([s["kernels"] for s in dsteps]),
            "components": _components(dec, per=len(dsteps)),
        }
    graph = any(f["boundary"] == "graph launch" for f in split.forwards)
    return {
        "method": "graph launches" if graph else "in_proj anchors",
        "forwards": len(steps),
        "prefill": prefill,
        "decode": decode,
        "steps": steps,
    }
