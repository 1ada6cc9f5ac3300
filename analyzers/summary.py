"""Per-component (and per-layer / per-kernel) quantities of one attributed trace.

Definitions live in docs/attribute.md; this module only computes them. The JSON shape returned by
`summarize` is the stable machine format of `tracekit attribute --format json`.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import duckdb
import polars as pl
from tracekit.analyzers import flops as F
from tracekit.analyzers.attribution import Attribution, type_bytes
from tracekit.analyzers.components import COMPONENTS
from tracekit.analyzers.devices import device_peak
from tracekit.analyzers.gemm_shapes import parse_dims
from tracekit.analyzers.io_bytes import layer_io_bytes, lm_head_io_bytes

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


@dataclasses.dataclass
class Point:
    """What the run was (from the manifest when there is one)."""

    mode: str | None = None  # prefill | decode
    batch: int | None = None
    seqlen: int | None = None
    dtype_bytes: int | None = None
    device: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    median_ms: float | None = None


def union_ns(frame: pl.DataFrame) -> int:
    """Length of the union of [ts_ns, end_ns) intervals (kernels on several streams overlap)."""
    if frame.height == 0:
        return 0
    f = frame.select("ts_ns", "end_ns").sort("ts_ns")
    f = f.with_columns(pl.col("end_ns").cum_max().shift(1).alias("prev"))
    f = f.with_columns((pl.col("prev").is_null() | (pl.col("ts_ns") > pl.col("prev"))).cum_sum().alias("g"))
    g = f.group_by("g").agg(pl.col("ts_ns").min(), pl.col("end_ns").max())
    return int((g["end_ns"] - g["ts_ns"]).sum())


def _span(con: duckdb.DuckDBPyConnection, trace_id: int) -> tuple[int, int]:
    cats = ", ".join(f"'{c}'" for c in SPAN_CATS)
    lo, hi = con.sql(
        f"SELECT min(ts_ns), max(end_ns) FROM events WHERE trace_id = $tid AND category IN ({cats})",
        params={"tid": trace_id},
    ).fetchall()[0]
    return (lo or 0), (hi or 0)


def _device_name(con: duckdb.DuckDBPyConnection, trace_id: int, point: Point) -> str | None:
    if point.device:
        return point.device
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
    for d, n in rows:
        for shape in parse_dims(d) or []:
            if len(shape) == 3 and shape[2] == cfg.d_model:
                seen[(shape[0], shape[1])] += n
    if not seen:
        return None, None
    (b, l_), _ = seen.most_common(1)[0]
    return b, l_


def _memory(con: duckdb.DuckDBPyConnection, att: Attribution) -> pl.DataFrame:
    """[memory] events of the trace's compute device with a component and layer each.

    Rule: inside a component scope -> that scope; on GPU traces otherwise the component of the next
    kernel launched from the same thread at or after the allocation (the kernel that will write the
    buffer); on CPU-only traces the component of the CPU op the event happened in; else `other`.
    """
    p = {"tid": att.trace_id}
    dev = 1 if att.time_source == "gpu" else 0
    mem = frame(
        con,
        """SELECT event_id AS mem_id, tid, ts_ns, bytes, total_allocated, parent_id FROM memory
           WHERE trace_id = $tid AND device_type = $dev ORDER BY ts_ns""",
        {**p, "dev": dev},
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
    return mem.with_columns(
        pl.coalesce("scope_comp", "component", pl.lit("other")).alias("component"),
        pl.coalesce("scope_layer", "layer").alias("layer"),
    ).select("mem_id", "ts_ns", "bytes", "total_allocated", "component", "layer")


def _analytic(att: Attribution, point: Point, by_layer: bool) -> tuple[dict, dict]:
    """Non-GEMM FLOPs and minimal I/O bytes per (layer, component), from in_proj/lm_head calls."""
    cfg = att.config
    fl: dict[tuple[Any, str], int] = {}
    io: dict[tuple[Any, str], int] = {}
    if cfg is None:
        return fl, io
    g = att.gemms
    full_model = g.filter(pl.col("role") == "lm_head").height > 0
    e = point.dtype_bytes or 2
    for tokens, layer in g.filter(pl.col("role") == "in_proj").select("tokens", "layer").iter_rows():
        if tokens is None:
            continue
        key_layer = layer if by_layer else None
        # A call with one token per sequence is a decode step (state read + written); batch unknown ->
        # treated as one sequence (the state term is then a lower bound).
        batch = point.batch or 1
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
    point: Point | None = None,
    trace_name: str | None = None,
) -> dict[str, Any]:
    """The stable JSON document of `tracekit attribute` for one trace (docs/attribute.md)."""
    point = point or Point()
    if point.dtype_bytes is None:
        types = [type_bytes(t) for t in att.gemms["types"].to_list()] if att.gemms.height else []
        types = [t for t in types if t]
        point.dtype_bytes = Counter(types).most_common(1)[0][0] if types else None
    if att.config is not None and (point.batch is None or point.seqlen is None):
        b, l_ = _infer_batch(att, con)
        point.batch = point.batch or b
        point.seqlen = point.seqlen or l_
    if point.mode is None and point.batch and config_matches(att):
        calls = att.gemms.filter(pl.col("role") == "in_proj")["tokens"].drop_nulls()
        kinds = {"decode" if t <= point.batch else "prefill" for t in calls}
        point.mode = "+".join(sorted(kinds, key=["prefill", "decode"].index)) or None
    gpu = att.time_source == "gpu"
    units = att.units
    time_col = "dur_ns" if gpu else "self_ns"
    total_ns = int(units[time_col].sum() or 0)
    lo, hi = _span(con, att.trace_id)
    span = hi - lo
    busy = union_ns(units) if gpu else None
    mem = _memory(con, att)
    device = _device_name(con, att.trace_id, point) if gpu else (point.device or "cpu")
    peak = device_peak(device) if gpu else None

    by_layer = by == "layer"
    keys = ["layer", "component"] if by_layer else ["component"]
    if by == "kernel":
        rows = _kernel_rows(units, time_col, total_ns)
    else:
        fl, io = _analytic(att, point, by_layer)
        rows = _component_rows(att, units, mem, keys, time_col, total_ns, fl, io, peak, gpu)
    state = F.state_bytes(att.config, point.dtype_bytes or 2) if att.config is not None else None
    doc: dict[str, Any] = {
        "trace": trace_name,
        "trace_id": att.trace_id,
        "device": device,
        "time_source": att.time_source,
        "span_ns": span,
        "layer_source": att.layer_source,
        "gpu_busy": (busy / span) if gpu and span else None,
        "total": {
            "time_ns": total_ns,
            "gpu_time_ns": total_ns if gpu else None,
            "busy_ns": busy,
            "kernels": units.height if gpu else 0,
            "flops": _sum_or_null(r["flops"] for r in rows) if by != "kernel" else None,
            "gemm_flops": int(att.gemms["flops"].drop_nulls().sum() or 0),
            "bytes_allocated": int(mem.filter(pl.col("bytes") > 0)["bytes"].sum() or 0),
            "peak_bytes": int(mem["total_allocated"].max()) if mem.height else None,
            "io_bytes": _sum_or_null(r.get("io_bytes") for r in rows) if by != "kernel" else None,
        },
        "components": rows,
        "model": {
            "config": att.config.to_dict() if att.config is not None else None,
            "config_source": att.config_source,
            "mode": point.mode,
            "batch": point.batch,
            "seqlen": point.seqlen,
            "dtype_bytes": point.dtype_bytes,
            **(state or {"conv_state_bytes": None, "ssm_state_bytes": None, "state_bytes": None}),
        },
        "peak": dataclasses.asdict(peak) if peak else None,
        "timing": {"ttft_ms": point.ttft_ms, "tpot_ms": point.tpot_ms, "median_ms": point.median_ms},
    }
    return doc


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
        .sort("time_ns", descending=True)
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
            pl.col("total_allocated").max().alias("peak"),
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
            sub = units.filter(pl.col("component") == comp)
            if by_layer:
                sub = sub.filter(pl.col("layer").is_null() if layer is None else pl.col("layer") == layer)
            akey = (layer if by_layer else None, comp)
            if config_matches(att):
                flops = int(proj.get(key, 0)) + int(fl.get(akey, 0))
                io_b = io.get(akey)
                if io_b is None and time_ns == 0:
                    io_b = 0
            else:
                flops = int(gemm_all.get(key, 0)) if key not in non_gemm_units else None
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
                    "busy_ns": union_ns(sub) if gpu else None,
                    "share": (time_ns / total_ns) if total_ns else None,
                    "kernels": int(g["n"]) if g and gpu else 0,
                    "flops": flops,
                    "gemm_flops": int(gemm_all.get(key, 0)),
                    "bytes_allocated": int(a["alloc"] or 0) if a else 0,
                    "peak_bytes": int(a["peak"]) if a and a["peak"] is not None else None,
                    "io_bytes": int(io_b) if io_b is not None else None,
                    "achieved_gbps": gbps,
                    "intensity": intensity,
                    "roofline_pct": roof * 100 if roof is not None else None,
                }
            )
    return rows
