"""Per-component (and per-layer / per-kernel) quantities of one attributed trace.

Definitions live in docs/attribute.md; this module only computes them. `summarize` returns an
`AttributeReport` (analyzers/report_types.py), whose `to_json()` is the stable machine format of
`tracekit attribute --format json`; it changes none of its inputs.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import duckdb
import polars as pl
from tracekit.analyzers import flops as F
from tracekit.analyzers.attribution import GRAPH_LAUNCH, Attribution, type_bytes, with_graph_gemms
from tracekit.analyzers.components import COMPONENTS
from tracekit.analyzers.devices import device_peak
from tracekit.analyzers.gemm_shapes import parse_dims
from tracekit.analyzers.host import host_diagnosis
from tracekit.analyzers.intervals import union_ns, union_ns_by
from tracekit.analyzers.io_bytes import layer_io_bytes, lm_head_io_bytes
from tracekit.analyzers.memory_peak import memory_peak
from tracekit.analyzers.phases import phase_summary, split_forwards
from tracekit.analyzers.report_types import AttributeReport, ModelInfo, Timing, Totals
from tracekit.analyzers.structure import REASON as STRUCTURE_REASON

from tracekit.artifacts.manifest import RunContext
from tracekit.store.frames import frame

SPAN_CATS = (  # canonical categories (events.category)
    "cpu_op",
    "user_annotation",
    "python_function",
    "cuda_runtime",
    "cuda_driver",
    "kernel",
    "gpu_memcpy",
    "gpu_memset",
    "gpu_user_annotation",
)
_PROJECTIONS = {"in_proj", "out_proj", "lm_head", "x_proj", "dt_proj"}


def _since(att: Attribution) -> int:
    """Where the analysed part of the trace starts: after a CUDA-graph trace's template step (its CPU range and
    its kernels, which a synchronisation separates from the replays), else at the beginning."""
    if att.template_window is None:
        return -(2**62)
    ends = [att.template_window[1]]
    if att.template is not None and att.template.height:
        ends.append(int(att.template["end_ns"].max()))
    return max(ends)


def _span(con: duckdb.DuckDBPyConnection, trace_id: int, since: int) -> tuple[int | None, int | None]:
    cats = ", ".join(f"'{c}'" for c in SPAN_CATS)
    lo, hi = con.sql(
        f"SELECT min(ts_ns), max(end_ns) FROM events WHERE trace_id = $tid AND category IN ({cats}) AND ts_ns >= $s",
        params={"tid": trace_id, "s": since},
    ).fetchall()[0]
    return lo, hi


def _device_name(con: duckdb.DuckDBPyConnection, trace_id: int, ctx: RunContext) -> str | None:
    if ctx.device:
        return ctx.device
    raw = con.sql(
        "SELECT CAST(device_properties AS VARCHAR) FROM traces WHERE trace_id = $tid", params={"tid": trace_id}
    ).fetchall()
    try:
        props = json.loads(raw[0][0]) if raw and raw[0][0] else None
    except ValueError:
        props = None
    if isinstance(props, list) and props and isinstance(props[0], dict):
        return props[0].get("name")
    return None


def _infer_batch(att: Attribution, con: duckdb.DuckDBPyConnection) -> tuple[int | None, int | None]:
    """(batch, seqlen) from the most common 3-D input shape [B, L, d_model] of any CPU op."""
    cfg = att.config
    if cfg is None:
        return None, None
    rows = con.sql(
        """SELECT CAST(input_dims AS VARCHAR) d, count(*) n FROM cpu_ops
                      WHERE trace_id = $tid AND input_dims IS NOT NULL GROUP BY 1""",
        params={"tid": att.trace_id},
    ).fetchall()
    seen: Counter[tuple[int, int]] = Counter()
    logits: Counter[int] = Counter()
    for d, n in rows:
        for shape in parse_dims(d) or []:
            if len(shape) == 3 and shape[2] == cfg.d_model:
                seen[(shape[0], shape[1])] += n
            elif len(shape) in (2, 3) and shape[-1] in (cfg.vocab_size, cfg.padded_vocab) and cfg.vocab_size > 1:
                logits[shape[0]] += n
    if not seen:
        # CUDA-graph decode traces: the model runs inside the replays, only the sampling ops outside record
        # shapes; their logits [B, (1,) vocab] give the batch (the prompt length is not in the trace)
        return (logits.most_common(1)[0][0], None) if logits else (None, None)
    (b, l_), _ = seen.most_common(1)[0]
    return b, l_


def _memory(con: duckdb.DuckDBPyConnection, att: Attribution) -> tuple[pl.DataFrame, str | None]:
    """[memory] events of the trace's compute device with a component and layer each, and the peak source.

    Rule: inside a component scope -> that scope; on GPU traces otherwise the component of the next
    kernel launched from the same thread at or after the allocation (the kernel that will write the
    buffer); on CPU-only traces the component of the CPU op the event happened in; else `other`.

    `live` is the allocator's `Total Allocated` after each event when every counted event carries it
    (peak source "total_allocated"); otherwise the running sum of `Bytes` per device in trace order, i.e.
    live bytes relative to the trace start (peak source "running_sum"); None when there are no events.
    """
    p = {"tid": att.trace_id}
    dev_filter = "device_type <> 0" if att.time_source == "gpu" else "device_type = 0"
    mem = frame(
        con,
        f"""SELECT event_id AS mem_id, tid, ts_ns, bytes, total_allocated, parent_id,
                  CAST(sum(bytes) OVER (PARTITION BY device_type, device_id ORDER BY ts_ns, event_id
                                        ROWS UNBOUNDED PRECEDING) AS BIGINT) AS running
           FROM memory WHERE trace_id = $tid AND {dev_filter} ORDER BY ts_ns, event_id""",
        p,
    )
    if mem.height == 0:
        source = None
    elif mem["total_allocated"].null_count() == 0:
        source = "total_allocated"
    else:
        source = "running_sum"
    mem = mem.with_columns(
        (pl.col("total_allocated") if source == "total_allocated" else pl.col("running")).alias("live")
    )
    scope = att.walk.select(
        pl.col("event_id").alias("parent_id"), pl.col("comp").alias("scope_comp"), pl.col("layer").alias("scope_layer")
    )
    mem = mem.join(scope, on="parent_id", how="left")
    if att.time_source == "gpu":
        launches = frame(
            con,
            """SELECT r.tid, r.ts_ns AS launch_ts, k.event_id FROM kernels k
               JOIN events r ON r.trace_id = k.trace_id AND r.event_id = k.launch_id
               WHERE k.trace_id = $tid ORDER BY r.ts_ns""",
            p,
        )
        launches = launches.join(att.units.select("event_id", "component", "layer"), on="event_id")
        mem = mem.sort("ts_ns").join_asof(
            launches.sort("launch_ts"),
            left_on="ts_ns",
            right_on="launch_ts",
            by="tid",
            strategy="forward",
            check_sortedness=False,
        )
    else:
        mem = mem.join(
            att.units.select(pl.col("event_id").alias("parent_id"), "component", "layer"), on="parent_id", how="left"
        )
    mem = mem.with_columns(
        pl.coalesce("scope_comp", "component", pl.lit("other")).alias("component"),
        pl.coalesce("scope_layer", "layer").alias("layer"),
    ).select("mem_id", "ts_ns", "bytes", "live", "component", "layer")
    return mem, source


def _analytic(att: Attribution, ctx: RunContext, by_layer: bool) -> tuple[dict, dict]:
    """Non-GEMM FLOPs and minimal I/O bytes per (layer, component), from in_proj/lm_head calls."""
    cfg = att.config
    fl: dict[tuple[Any, str], int] = {}
    io: dict[tuple[Any, str], int] = {}
    if cfg is None:
        return fl, io
    g = att.gemms
    full_model = g.filter(pl.col("role") == "lm_head").height > 0
    e = ctx.dtype_bytes or 2
    for tokens, layer in g.filter(pl.col("role") == "in_proj").select("tokens", "layer").iter_rows():
        if tokens is None:
            continue
        key_layer = layer if by_layer else None
        # A call with one token per sequence is a decode step (state read + written); batch unknown ->
        # treated as one sequence (the state term is then a lower bound).
        batch = ctx.batch or 1
        decode = tokens <= batch
        nongemm = {
            "conv": F.conv_flops(cfg, tokens),
            "ssm": F.scan_flops(cfg, tokens),
            "rmsnorm": F.gated_norm_flops(cfg, tokens) + (F.block_norm_flops(cfg, tokens) if full_model else 0),
        }
        for comp, v in nongemm.items():
            fl[(key_layer, comp)] = fl.get((key_layer, comp), 0) + v
        for comp, v in layer_io_bytes(cfg, tokens, batch, e, decode=decode, block_norm=full_model).items():
            io[(key_layer, comp)] = io.get((key_layer, comp), 0) + v
    for tokens, _layer in g.filter(pl.col("role") == "lm_head").select("tokens", "layer").iter_rows():
        if tokens is None:
            continue
        fl[(None, "rmsnorm")] = fl.get((None, "rmsnorm"), 0) + F.block_norm_flops(cfg, tokens)
        io[(None, "other")] = io.get((None, "other"), 0) + lm_head_io_bytes(cfg, tokens, e)
        d = cfg.d_model
        io[(None, "rmsnorm")] = io.get((None, "rmsnorm"), 0) + e * 2 * tokens * d + 4 * tokens * d + e * d
    return fl, io


def summarize(
    con: duckdb.DuckDBPyConnection,
    att: Attribution,
    *,
    by: str = "component",
    context: RunContext | None = None,
    trace_name: str | None = None,
) -> AttributeReport:
    """The attribute document of one trace (docs/attribute.md), with its `MemoryPeak` (timeline for the plot).

    `context`: what the run's manifest says (batch, seqlen, dtype, mode, timing); what it leaves unknown is
    inferred from the trace. `notes` lists, one line each, what could not be computed and why (fields then
    hold null).
    """
    given = context or RunContext()
    ctx = _context(con, att, given)
    att = with_graph_gemms(att, ctx.batch)
    ctx = dataclasses.replace(ctx, mode=ctx.mode or _mode(att, ctx))
    phases, phase_note, ctx = _phases(con, att, ctx, given)
    gpu = att.time_source == "gpu"
    units = att.units
    time_col = "dur_ns" if gpu else "self_ns"
    total_ns = int(units[time_col].sum() or 0)
    since = _since(att)
    lo, hi = _span(con, att.trace_id, since)
    span = (hi - lo) if lo is not None and hi is not None else None
    busy = union_ns(units) if gpu else None
    gw = _gpu_work(con, att.trace_id, since)
    mem, peak_source = _memory(con, att)
    mpeak, mpeak_note = memory_peak(con, att, mem, lo)
    device = _device_name(con, att.trace_id, ctx) if gpu or gw["events"] else (ctx.device or "cpu")
    peak = device_peak(device) if gpu else None

    by_layer = by == "layer"
    keys = ["layer", "component"] if by_layer else ["component"]
    comp_rows: list[dict[str, Any]] | None = None
    if by != "kernel":
        fl, io = _analytic(att, ctx, by_layer)
        comp_rows = _component_rows(att, units, mem, keys, time_col, total_ns, fl, io, peak, gpu)
    by_category = gw["by_category"] if gw["events"] else _cpu_categories(units)
    by_stream = gw["by_stream"] if gw["events"] else None
    if by == "kernel":
        rows = _kernel_rows(units, time_col, total_ns)
    elif by == "category":
        rows = by_category
    elif by == "stream":
        rows = by_stream or []
    else:
        rows = comp_rows or []
    state = F.state_bytes(att.config, ctx.dtype_bytes or 2) if att.config is not None else None
    has_cpu_ops = _count(con, "SELECT count(*) FROM cpu_ops WHERE trace_id = $tid", att.trace_id) > 0
    gemm_flops, gemm_notes = _gemm_flops(att, has_cpu_ops)
    report = AttributeReport(
        trace=trace_name,
        trace_id=att.trace_id,
        device=device,
        time_source=att.time_source,
        span_ns=span,
        layer_source=att.layer_source,
        gpu_busy=(busy / span) if gpu and span else None,
        gpu_busy_all=(gw["busy_ns"] / span) if gw["events"] and span else None,
        mamba_found=bool(units.height) and bool((units["component"] != "other").any()),
        total=_totals(att, total_ns, busy, comp_rows, gemm_flops, mem, peak_source, gw),
        rows=rows,
        by_category=by_category,
        by_stream=by_stream,
        model=ModelInfo(
            config=att.config,
            config_source=att.config_source,
            mode=ctx.mode,
            batch=ctx.batch,
            seqlen=ctx.seqlen,
            dtype_bytes=ctx.dtype_bytes,
            **(state or {"conv_state_bytes": None, "ssm_state_bytes": None, "state_bytes": None}),
        ),
        peak=dataclasses.asdict(peak) if peak else None,
        memory_peak=mpeak.to_dict() if mpeak is not None else None,
        timing=Timing(ttft_ms=ctx.ttft_ms, tpot_ms=ctx.tpot_ms, median_ms=ctx.median_ms),
        phases=phases,
        graph=att.graph.to_dict() if att.graph is not None else None,
        host=host_diagnosis(
            con,
            att,
            phases,
            graph_ms_per_step=ctx.graph_ms_per_step,
            eager_ms_per_step=ctx.eager_ms_per_step,
            unprofiled_ms=ctx.median_ms,
            mode=ctx.mode,
        ),
        notes=(),
        memory=mpeak,
    )
    notes = [
        *_notes(con, att, report, gw, mem, peak_source, has_cpu_ops, by),
        *([mpeak_note] if mpeak_note is not None else []),
        *gemm_notes,
        *_context_notes(att, given, ctx),
        *([phase_note] if phase_note is not None else []),
    ]
    return report.with_(notes=tuple(notes))


def _totals(
    att: Attribution,
    total_ns: int,
    busy: int | None,
    comp_rows: list[dict[str, Any]] | None,
    gemm_flops: int | None,
    mem: pl.DataFrame,
    peak_source: str | None,
    gw: dict[str, Any],
) -> Totals:
    """Whole-trace sums: time, FLOPs and I/O of the component rows (null when any is), memory, copies."""
    gpu = att.time_source == "gpu"
    units = att.units
    return Totals(
        time_ns=total_ns,
        gpu_time_ns=total_ns if gpu else None,
        busy_ns=busy,
        kernels=units.height if gpu else 0,
        flops=_sum_or_null(r["flops"] for r in comp_rows) if comp_rows is not None and units.height else None,
        gemm_flops=gemm_flops,
        bytes_allocated=int(mem.filter(pl.col("bytes") > 0)["bytes"].sum() or 0) if mem.height else None,
        peak_bytes=max(0, int(mem["live"].max())) if peak_source == "running_sum" else _int(mem["live"].max()),
        peak_source=peak_source,
        io_bytes=_sum_or_null(r.get("io_bytes") for r in comp_rows) if comp_rows is not None else None,
        memcpy_ns=gw["memcpy_ns"] if gw["events"] else None,
        memcpy_count=gw["memcpy"] if gw["events"] else None,
        memset_ns=gw["memset_ns"] if gw["events"] else None,
        memset_count=gw["memset"] if gw["events"] else None,
        gpu_events_busy_ns=gw["busy_ns"] if gw["events"] else None,
        cpu_units=0 if gpu else units.height,
    )


def _context(con: duckdb.DuckDBPyConnection, att: Attribution, given: RunContext) -> RunContext:
    """`given` with the element size (the GEMMs' recorded input types) and batch/seqlen (the most common
    [B, L, d_model] input shape) filled in where it leaves them unknown."""
    ctx = given
    if ctx.dtype_bytes is None:
        types = [type_bytes(t) for t in att.gemms["types"].to_list()] if att.gemms.height else []
        types = [t for t in types if t]
        ctx = dataclasses.replace(ctx, dtype_bytes=Counter(types).most_common(1)[0][0] if types else None)
    if att.config is not None and (ctx.batch is None or ctx.seqlen is None):
        b, l_ = _infer_batch(att, con)
        ctx = dataclasses.replace(ctx, batch=ctx.batch or b, seqlen=ctx.seqlen or l_)
    return ctx


def _mode(att: Attribution, ctx: RunContext) -> str | None:
    """prefill, decode or prefill+decode from the in_proj calls' tokens against the batch (None if unknown)."""
    if not ctx.batch or not config_matches(att):
        return None
    calls = att.gemms.filter(pl.col("role") == "in_proj")["tokens"].drop_nulls()
    kinds = {"decode" if t <= ctx.batch else "prefill" for t in calls}
    return "+".join(sorted(kinds, key=["prefill", "decode"].index)) or None


def _context_notes(att: Attribution, given: RunContext, ctx: RunContext) -> list[str]:
    """How the element size and batch were found when the manifest did not give them."""
    if att.config is None:
        return []
    out: list[str] = []
    if given.dtype_bytes is None and ctx.dtype_bytes is None:
        out.append("element size unknown (no manifest dtype, no recorded input types): 2 bytes assumed")
    elif given.dtype_bytes is None:
        out.append(f"element size {ctx.dtype_bytes} bytes from the GEMMs' recorded input types")
    if config_matches(att) and ctx.batch is None:
        out.append(
            "batch unknown (no manifest, no [B, L, d_model] input shape): I/O counts one sequence, "
            "so decode-state bytes are a lower bound"
        )
    elif given.batch is None and ctx.batch is not None and ctx.mode != "generate":
        out.append(
            f"batch {ctx.batch} and seqlen {ctx.seqlen} inferred from the most common [B, L, d_model] input shape"
            if ctx.seqlen is not None
            else f"batch {ctx.batch} inferred from the logits shape [B, vocab] of the sampling ops (seqlen unknown)"
        )
    return out


def _phases(
    con: duckdb.DuckDBPyConnection, att: Attribution, ctx: RunContext, given: RunContext
) -> tuple[dict[str, Any] | None, str | None, RunContext]:
    """The phase split (analyzers/phases.py) of a trace with several forwards, a note, and `ctx` with what
    the split fixed.

    A trace holding a prefill and decode steps (a generate trace) gets mode "generate", seqlen = the prompt
    length (prefill tokens / batch) and batch = the decode steps' in_proj tokens, unless the manifest or
    the caller (`given`) gave them.
    """
    if att.time_source != "gpu":
        return None, None, ctx
    split = split_forwards(att, ctx.batch if config_matches(att) else None)
    if not split.ok:
        return None, None, ctx
    kinds = [f["kind"] for f in split.forwards]
    if len(kinds) < 2:
        return None, None, ctx
    phases = phase_summary(con, att, split)
    n_pre, n_dec = kinds.count("prefill"), kinds.count("decode")
    if not (n_pre and n_dec):
        return phases, f"{len(kinds)} {kinds[0]} forwards split from the kernel stream (phases)", ctx
    dec_tokens = {f["tokens"] for f in split.forwards if f["kind"] == "decode" and f["tokens"] is not None}
    batch = next(iter(dec_tokens)) if len(dec_tokens) == 1 else None
    if given.batch is None and batch is not None:
        ctx = dataclasses.replace(ctx, batch=batch)
    pre = phases["prefill"]
    if given.seqlen is None and ctx.batch and pre and pre["tokens"] and pre["tokens"] % ctx.batch == 0:
        ctx = dataclasses.replace(ctx, seqlen=pre["tokens"] // ctx.batch // max(pre["forwards"], 1))
    if given.mode is None:
        ctx = dataclasses.replace(ctx, mode="generate")
    return (
        phases,
        f"generate trace: {n_pre} prefill forward{'s' if n_pre > 1 else ''} and {n_dec} decode steps split from "
        f"the kernel stream (phases); batch {ctx.batch}, seqlen {ctx.seqlen} = the prompt length",
        ctx,
    )


GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


def time_col_of(att: Attribution) -> str:
    return "dur_ns" if att.time_source == "gpu" else "self_ns"


def _count(con: duckdb.DuckDBPyConnection, sql: str, trace_id: int) -> int:
    return int(con.sql(sql, params={"tid": trace_id}).fetchall()[0][0] or 0)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.3f} ms"


def _gpu_work(con: duckdb.DuckDBPyConnection, trace_id: int, since: int) -> dict[str, Any]:
    """Kernels, memcpy and memset of the trace (from `since`: after a template step): exact sums per category
    and per (device, stream)."""
    cats = ", ".join(f"'{c}'" for c in GPU_CATS)
    ev = frame(
        con,
        f"""SELECT category AS cat, device, stream, ts_ns, dur_ns, end_ns FROM events
            WHERE trace_id = $tid AND category IN ({cats}) AND ts_ns >= $s""",
        {"tid": trace_id, "s": since},
    )
    out: dict[str, Any] = {"events": ev.height, "busy_ns": union_ns(ev), "by_category": [], "by_stream": []}
    busy_cat, busy_stream = union_ns_by(ev, ["cat"]), union_ns_by(ev, ["device", "stream"])
    total = int(ev["dur_ns"].sum() or 0)
    for cat in GPU_CATS:
        sub = ev.filter(pl.col("cat") == cat)
        t = int(sub["dur_ns"].sum() or 0)
        short = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset"}[cat]
        out[f"{short}_ns"], out[short] = t, sub.height
        if sub.height:
            out["by_category"].append(
                {
                    "category": cat,
                    "count": sub.height,
                    "gpu_time_ns": t,
                    "cpu_self_ns": None,
                    "busy_ns": busy_cat[(cat,)],
                    "share": t / total if total else None,
                }
            )
    streams = ev.select("device", "stream").unique().sort("device", "stream", nulls_last=True)
    for device, stream in streams.iter_rows():
        sub = ev.filter(
            (pl.col("device").is_null() if device is None else pl.col("device") == device)
            & (pl.col("stream").is_null() if stream is None else pl.col("stream") == stream)
        )
        row: dict[str, Any] = {"device": device, "stream": stream}
        for cat, short in zip(GPU_CATS, ("kernel", "memcpy", "memset"), strict=True):
            c = sub.filter(pl.col("cat") == cat)
            row[f"{short}s" if short == "kernel" else short] = c.height
            row[f"{short}_ns"] = int(c["dur_ns"].sum() or 0)
        t = int(sub["dur_ns"].sum() or 0)
        row.update({"gpu_time_ns": t, "busy_ns": busy_stream[(device, stream)], "share": t / total if total else None})
        out["by_stream"].append(row)
    return out


def _cpu_categories(units: pl.DataFrame) -> list[dict[str, Any]]:
    """CPU-only traces: self time per category of the attributed CPU events."""
    if units.height == 0 or "cat" not in units.columns:
        return []
    total = int(units["self_ns"].sum() or 0)
    g = (
        units.group_by("cat")
        .agg(pl.len().alias("n"), pl.col("self_ns").sum().alias("t"))
        .sort(["t", "cat"], descending=[True, False], nulls_last=True)
    )
    return [
        {
            "category": cat,
            "count": int(n),
            "gpu_time_ns": None,
            "cpu_self_ns": int(t),
            "busy_ns": None,
            "share": int(t) / total if total else None,
        }
        for cat, n, t in g.iter_rows()
    ]


def _gemm_flops(att: Attribution, has_cpu_ops: bool) -> tuple[int | None, list[str]]:
    """FLOPs of every GEMM op from recorded shapes (null when none could be computed but GEMMs may exist), and
    a note when some or all are unknown."""
    if not has_cpu_ops:
        return None, ["no CPU ops in the trace: GEMM FLOPs unknown (gemm_flops null)"]
    g = att.gemms
    known = g["flops"].drop_nulls()
    missing = g.height - known.len()
    if g.height and known.len() == 0:
        return None, [f"none of the {g.height} GEMM ops has usable `Input Dims` (record_shapes off?): gemm_flops null"]
    notes = [f"{missing} of {g.height} GEMM ops have no usable `Input Dims`: gemm_flops counts the others"]
    return int(known.sum() or 0), notes if missing else []


def _unfinished_note(con: duckdb.DuckDBPyConnection, trace_id: int) -> list[str]:
    """Complete events without 'dur' (running when recording stopped) have no end: no total counts them, as 0
    or otherwise; say how many there are, and how many are kernels (docs/schema.md, "Unfinished slices")."""
    n, kernels = con.sql(
        """SELECT count(*), count(*) FILTER (WHERE coalesce(a.category, lower(o.cat)) = 'kernel')
           FROM other_events o LEFT JOIN category_aliases a ON a.alias = lower(o.cat)
           WHERE o.trace_id = $tid AND o.note = 'unfinished X'""",
        params={"tid": trace_id},
    ).fetchall()[0]
    if not n:
        return []
    what = "all kernels" if kernels == n else f"{kernels} of them kernels" if kernels else "no kernel"
    events = "1 complete event has" if n == 1 else f"{n} complete events have"
    return [
        f"{events} no 'dur' (still running when recording stopped; {what}): left out of every total and "
        "breakdown, kept in other_events with note 'unfinished X'"
    ]


def _notes(
    con: duckdb.DuckDBPyConnection,
    att: Attribution,
    report: AttributeReport,
    gw: dict[str, Any],
    mem: pl.DataFrame,
    peak_source: str | None,
    has_cpu_ops: bool,
    by: str,
) -> list[str]:
    """What the document could not compute, or computed in a weaker way than usual, one line each."""
    out: list[str] = []
    tid = att.trace_id
    units = att.units
    gpu = att.time_source == "gpu"
    total_ns = report.total.time_ns
    if not gpu:
        if units.height == 0:
            cats = con.sql(
                """SELECT coalesce(cat, '(none)'), count(*) FROM events WHERE trace_id = $tid
                   GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5""",
                params={"tid": tid},
            ).fetchall()
            seen = ", ".join(f"{c}×{n}" for c, n in cats) or "none"
            line = (
                "nothing to attribute: no GPU kernels and no CPU ops, annotations or python functions "
                f"(complete events by category: {seen}); component times are 0"
            )
            if gw["events"]:
                line += (
                    f"; the trace's {gw['events']} GPU memcpy/memset events "
                    f"({_ms(gw['memcpy_ns'] + gw['memset_ns'])}) are in total.memcpy_ns/memset_ns and by_category"
                )
            out.append(line)
        elif gw["events"]:
            out.append(
                f"no GPU kernels: component times are CPU self time; the trace's {gw['events']} GPU memcpy/memset "
                f"events ({_ms(gw['memcpy_ns'] + gw['memset_ns'])}) are in total.memcpy_ns/memset_ns and "
                "by_category/by_stream"
            )
        else:
            line = "CPU-only trace: times are CPU self time of the ops in each component"
            n_rt = _count(
                con,
                "SELECT count(*) FROM events WHERE trace_id = $tid AND category IN ('cuda_runtime', 'cuda_driver')",
                tid,
            )
            if n_rt:
                line += f" (the trace has {n_rt} CUDA runtime/driver calls but no GPU activity records)"
            out.append(line)
    out.extend(_unfinished_note(con, tid))
    if units.height and not report.mamba_found:
        what = f"{units.height} kernels" if gpu else f"{units.height} CPU events"
        kind = "" if gpu else " CPU self time"
        out.append(
            f"no Mamba components found: all {what} ({_ms(total_ns)}{kind}) are `other`; "
            "see --by kernel, --by category" + (", --by stream" if gw["events"] else "")
        )
    elif (
        units.height
        and att.config is None
        and not (units["reason"] == "scope").any()
        and not units["component"].is_in(["ssm", "conv"]).any()
    ):
        found = (
            units.filter(pl.col("component") != "other")
            .group_by("component")
            .agg(pl.len().alias("n"), pl.col(time_col_of(att)).sum().alias("t"))
            .sort(["t", "component"], descending=[True, False])
        )
        parts = ", ".join(f"{c} {n} {'kernels' if gpu else 'events'} {_ms(int(t))}" for c, n, t in found.iter_rows())
        out.append(
            "no Mamba model recognised (no config, no component.* scopes, no SSM or conv kernels): "
            "only kernel/op name rules matched "
            f"({parts}); everything else is `other`; check --by kernel"
        )
    if gpu:
        n_zero = units.filter(pl.col("dur_ns") == 0).height
        if n_zero:
            out.append(f"{n_zero} of {units.height} kernels have zero duration (counted, 0 ns each)")
        n_unlinked = units.filter(pl.col("op_id").is_null()).height
        if n_unlinked:
            why = "the trace has no CPU ops" if not has_cpu_ops else "no correlation/External id link"
            out.append(
                f"{n_unlinked} of {units.height} kernels have no launching CPU op ({why}): "
                "they were classified by kernel name and GPU annotations only"
            )
        out.extend(_graph_notes(att, total_ns))
        out.extend(_structure_notes(att, total_ns, "dur_ns"))
        if report.device is None:
            out.append(
                "no deviceProperties (or no device name in them) in the trace: device unknown, roofline_pct null"
            )
        elif report.peak is None:
            out.append(f"device {report.device!r} is not in tracekit's peak table: roofline_pct null")
    elif units.height:
        out.extend(_structure_notes(att, total_ns, "self_ns"))
        n_zero = units.filter(pl.col("dur_ns") == 0).height
        if n_zero:
            out.append(f"{n_zero} of {units.height} CPU events have zero duration")
        n_neg = units.filter(pl.col("self_ns") < 0).height
        if n_neg:
            out.append(
                f"{n_neg} CPU events have negative self time (children overlapping their end: events that do "
                "not nest, `nested` false in the store); self times still add up to the top-level events' durations"
            )
    if report.span_ns is None:
        out.append("no CPU or GPU events of known categories: span_ns and GPU busy are null")
    out.extend(_memory_notes(con, att, mem, peak_source))
    if by == "stream" and not gw["events"]:
        out.append("--by stream: the trace has no GPU events, so no streams")
    return out


def _structure_notes(att: Attribution, total_ns: int, time_col: str) -> list[str]:
    """What the layer structure decided (analyzers/structure.py), and what `other` holds."""
    st = att.structure
    if st is None or not st.units:  # scopes, rules and shapes decided everything: nothing to say
        return []
    pct = f"{100 * st.time_ns / total_ns:.1f}%" if total_ns else "–"
    unit = "kernels" if att.time_source == "gpu" else "CPU events"
    layer = " / ".join(f"{n} units" for n in st.template_units)
    calls = " / ".join(str(c) for c in st.gemm_calls)
    out = [
        f"layer structure: {st.layers} layers in {st.forwards} forward{'s' if st.forwards != 1 else ''} found in "
        f"the stream (layer of {layer}, "
        f"{calls} GEMM calls); {st.units} {unit} ({_ms(st.time_ns)}, {pct}) took their component from their "
        "position in the layer (reason `layer structure`)"
    ]
    evidence = (
        att.units.with_columns(
            pl.col("reason")
            .str.replace(r"^rule .*", "name rules")
            .str.replace(r"^gemm .*", "GEMM shapes")
            .replace("default", "nothing (other)")
        )
        .group_by("reason")
        .agg(pl.col(time_col).sum().alias("t"))
        .sort(["t", "reason"], descending=[True, False], nulls_last=True)
    )
    if total_ns:
        parts = ", ".join(f"{r} {100 * t / total_ns:.1f}%" for r, t in evidence.iter_rows())
        out.append(f"evidence that decided each unit's component (share of {unit}' time): {parts}")
    name = "kernel" if att.time_source == "gpu" else "op"
    other = att.units.filter(pl.col("component") == "other")
    if other.height:
        top = (
            other.group_by(name)
            .agg(pl.col(time_col).sum().alias("t"))
            .sort(["t", name], descending=[True, False], nulls_last=True)
            .head(3)
        )
        inside = other.filter(pl.col("layer").is_not_null()).height
        parts = ", ".join(f"{_short(n)} {_ms(int(t))}" for n, t in top.iter_rows())
        where = "all outside the layers" if not inside else f"{inside} of {other.height} inside a layer"
        out.append(
            f"`other`: {other.height} {unit} ({where}; embedding, final norm, lm_head, sampling, copies): {parts}"
        )
    return out


def _short(name: str | None, width: int = 48) -> str:
    name = name or "?"
    return name if len(name) <= width else name[: width - 1] + "…"


def _graph_notes(att: Attribution, total_ns: int) -> list[str]:
    """How the kernels of CUDA-graph replays were attributed: by the template step, or inferred (with how much)."""
    ga = att.graph
    if ga is None:
        return []
    out: list[str] = []
    pct = (lambda ns: f"{100 * ns / total_ns:.1f}%") if total_ns else (lambda ns: "–")
    if ga.template:
        out.append(
            f"CUDA-graph replays attributed by the template step: {ga.aligned} of {ga.replayed} replayed kernels "
            f"({ga.replays} replays) aligned with the eager step recorded before them (reason `graph template`); "
            f"the template step itself ({ga.template_kernels} kernels, {_ms(ga.template_ns)}) is not counted"
        )
    if ga.inferred:
        n_pos = att.units.filter(pl.col("reason") == "graph position").height
        replayed = att.units.filter(pl.col("launcher") == GRAPH_LAUNCH)
        n_struct = replayed.filter(pl.col("reason") == STRUCTURE_REASON).height
        why = "not aligned with the template step" if ga.template else "no template step in the trace"
        out.append(
            f"{ga.inferred} of {ga.replayed} kernels of CUDA-graph replays ({ga.inferred_ns} ns, {pct(ga.inferred_ns)} "
            f"of kernel time) are inferred ({why}): {n_pos} GEMMs by their position in each graph launch, "
            f"{n_struct} kernels by their position in the layer, the rest by kernel-name rules; "
            f"{ga.inferred_other_ns} ns ({pct(ga.inferred_other_ns)}) of them fell to `other`"
        )
    return out


def _memory_notes(
    con: duckdb.DuckDBPyConnection, att: Attribution, mem: pl.DataFrame, peak_source: str | None
) -> list[str]:
    gpu = att.time_source == "gpu"
    dev = "GPU" if gpu else "CPU"
    n_all, n_untyped = con.sql(
        """SELECT count(*), count(*) FILTER (WHERE device_type IS NULL)
           FROM memory WHERE trace_id = $tid""",
        params={"tid": att.trace_id},
    ).fetchall()[0]
    out: list[str] = []
    if n_all == 0:
        out.append("no [memory] events (profile_memory off?): bytes_allocated and peak_bytes are null")
        return out
    if mem.height == 0:
        out.append(
            f"no [memory] events for the {dev} ({n_all} for other devices not counted): "
            "bytes_allocated and peak_bytes are null"
        )
    elif peak_source == "running_sum":
        out.append(
            "[memory] events carry no `Total Allocated`: peak_bytes is the peak of the running sum of `Bytes` "
            "(live bytes relative to the trace start; memory allocated before it is not seen)"
        )
    if n_untyped:
        out.append(f"{n_untyped} [memory] events carry no `Device Type`: not counted (CPU or GPU unknown)")
    return out


def config_matches(att: Attribution) -> bool:
    """A config is usable for analytic FLOPs/I/O only if some GEMM of the trace has its in_proj shape."""
    return att.config is not None and att.gemms.filter(pl.col("role") == "in_proj").height > 0


def _sum_or_null(values: Any) -> int | None:
    vals = list(values)
    if not vals or any(v is None for v in vals):
        return None
    return int(sum(vals))


def _kernel_rows(units: pl.DataFrame, time_col: str, total_ns: int) -> list[dict[str, Any]]:
    name = pl.coalesce("kernel", "op") if "op" in units.columns else pl.col("kernel")
    g = (
        units.with_columns(name.alias("name"))
        .group_by("name", "component")
        .agg(pl.col(time_col).sum().alias("time_ns"), pl.len().alias("count"), pl.col("reason").first())
        .sort(["time_ns", "name", "component"], descending=[True, False, False], nulls_last=True)
    )
    return [
        {
            "kernel": r["name"],
            "component": r["component"],
            "time_ns": int(r["time_ns"]),
            "share": (r["time_ns"] / total_ns) if total_ns else None,
            "count": int(r["count"]),
            "reason": r["reason"],
        }
        for r in g.iter_rows(named=True)
    ]


def _component_rows(
    att: Attribution,
    units: pl.DataFrame,
    mem: pl.DataFrame,
    keys: list[str],
    time_col: str,
    total_ns: int,
    fl: dict,
    io: dict,
    peak: Any,
    gpu: bool,
) -> list[dict[str, Any]]:
    by_layer = "layer" in keys
    t = units.group_by(keys).agg(pl.col(time_col).sum().alias("time_ns"), pl.len().alias("n"))
    groups = {tuple(r[k] for k in keys): r for r in t.iter_rows(named=True)}
    busy = union_ns_by(units, keys) if gpu else {}
    gm = att.gemms.filter(pl.col("flops").is_not_null())
    gemm_all = {
        tuple(r[k] for k in keys): r["f"]
        for r in gm.group_by(keys).agg(pl.col("flops").sum().alias("f")).iter_rows(named=True)
    }
    proj = {
        tuple(r[k] for k in keys): r["f"]
        for r in gm.filter(pl.col("role").is_in(list(_PROJECTIONS)))
        .group_by(keys)
        .agg(pl.col("flops").sum().alias("f"))
        .iter_rows(named=True)
    }
    non_gemm_units = (
        {
            tuple(r[k] for k in keys)
            for r in units.filter(pl.col("gemm_id").is_null()).select(keys).unique().iter_rows(named=True)
        }
        if "gemm_id" in units.columns
        else set()
    )
    allocs = {
        tuple(r[k] for k in keys): r
        for r in mem.group_by(keys)
        .agg(
            pl.col("bytes").filter(pl.col("bytes") > 0).sum().alias("alloc"),
            pl.col("live").max().alias("peak"),
        )
        .iter_rows(named=True)
    }
    layers = (
        sorted({k[0] for k in groups} | {k[0] for k in gemm_all}, key=lambda x: (x is None, x)) if by_layer else [None]
    )
    rows = []
    for layer in layers:
        for comp in COMPONENTS:
            key = (layer, comp) if by_layer else (comp,)
            g = groups.get(key)
            if by_layer and g is None and key not in gemm_all:
                continue
            time_ns = int(g["time_ns"]) if g else 0
            akey = (layer if by_layer else None, comp)
            if config_matches(att) and (gm.height or fl):
                flops = int(proj.get(key, 0)) + int(fl.get(akey, 0))
                io_b = io.get(akey)
                if io_b is None and time_ns == 0:
                    io_b = 0
            else:  # no config, or no GEMM call with known FLOPs (no shapes, batch unknown): not counted, not 0
                flops = int(gemm_all.get(key, 0)) if key not in non_gemm_units and gm.height else None
                io_b = None
            a = allocs.get(key)
            secs = time_ns / 1e9
            gbps = (io_b / secs / 1e9) if io_b is not None and secs > 0 and gpu else None
            intensity = (flops / io_b) if flops is not None and io_b else None
            roof = None
            if peak is not None and flops is not None and io_b and secs > 0:
                attainable = min(peak.tflops_bf16 * 1e12, (flops / io_b) * peak.bandwidth_gbps * 1e9)
                roof = (flops / secs) / attainable if attainable else None
            rows.append(
                {
                    "component": comp,
                    "layer": layer,
                    "gpu_time_ns": time_ns if gpu else None,
                    "cpu_self_ns": None if gpu else time_ns,
                    "busy_ns": busy.get(key, 0) if gpu else None,
                    "share": (time_ns / total_ns) if total_ns else None,
                    "kernels": int(g["n"]) if g and gpu else 0,
                    "flops": flops,
                    "gemm_flops": int(gemm_all.get(key, 0)) if gm.height else None,
                    "bytes_allocated": (int(a["alloc"] or 0) if a else 0) if mem.height else None,
                    "peak_bytes": int(a["peak"]) if a and a["peak"] is not None else None,
                    "io_bytes": int(io_b) if io_b is not None else None,
                    "achieved_gbps": gbps,
                    "intensity": intensity,
                    "roofline_pct": roof * 100 if roof is not None else None,
                }
            )
    return rows
