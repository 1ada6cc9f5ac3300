"""Across-run analysis for `tracekit report`: component time vs sequence length, fitted exponents, the
bottleneck per length, resources and roofline points.

Input: attribute reports (`AttributeReport`, one per trace) and collect manifests (`Manifest`). Output:
polars frames. Nothing here reads files other than what is passed in, and nothing renders.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
from tracekit.analyzers.components import COMPONENTS
from tracekit.analyzers.report_types import AttributeReport

from tracekit.artifacts.manifest import Manifest, ManifestPoint

# The Mamba components whose share and scaling the report describes ("other" is kept in the data but is no
# bottleneck candidate: it is the embedding, lm_head and sampling, not a block component).
BLOCK_COMPONENTS: tuple[str, ...] = tuple(c for c in COMPONENTS if c != "other")

POINT_KEYS = ("run", "arch", "mode", "graphs", "batch")


@dataclasses.dataclass(frozen=True)
class Fit:
    """log(time) = log(a) + exponent·log(L), least squares; `r2` on the log values (None for 2 lengths: a
    line through two points says nothing about its fit)."""

    exponent: float
    r2: float | None
    lo: int
    hi: int
    n: int


def fit_exponent(seqlens: Sequence[float], values: Sequence[float]) -> Fit | None:
    """Least-squares slope of log(value) against log(seqlen); None with fewer than 2 usable points."""
    pts = [(float(x), float(y)) for x, y in zip(seqlens, values, strict=True) if x and y and x > 0 and y > 0]
    if len({x for x, _ in pts}) < 2:
        return None
    lx = [math.log(x) for x, _ in pts]
    ly = [math.log(y) for _, y in pts]
    n = len(pts)
    mx, my = sum(lx) / n, sum(ly) / n
    sxx = sum((a - mx) ** 2 for a in lx)
    sxy = sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True))
    slope = sxy / sxx
    ss_tot = sum((b - my) ** 2 for b in ly)
    ss_res = sum((b - (my + slope * (a - mx))) ** 2 for a, b in zip(lx, ly, strict=True))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    xs = [x for x, _ in pts]
    if len(set(xs)) < 3:
        r2 = None
    return Fit(slope, r2, int(min(xs)), int(max(xs)), n)


# ---- frames ---------------------------------------------------------------------------------------------
def component_frame(docs: Iterable[tuple[str, ManifestPoint | None, AttributeReport]]) -> pl.DataFrame:
    """One row per (trace, component): docs are (run label, manifest point or None, attribute report).

    Decode traces hold `decode_steps` steps: `time_ms` is then per step (trace time / steps), as the
    manifest's tpot is. FLOPs, bytes and I/O are per trace (the whole profiled pass)."""
    rows: list[dict[str, Any]] = []
    for run, point, rep in docs:
        model = rep.model
        mode = (point.mode if point else None) or model.mode
        steps = (point.decode_steps if point else None) or 0
        per = steps if mode == "decode" and steps else 1
        peak = rep.peak or {}
        for r in rep.rows:
            comp = r.get("component")
            if comp is None or r.get("layer") is not None:
                continue
            t = r.get("gpu_time_ns") if r.get("gpu_time_ns") is not None else r.get("cpu_self_ns")
            flops = r.get("flops")
            rows.append(
                {
                    "run": run,
                    "arch": (point.arch if point else None) or (model.config.arch if model.config else None),
                    "mode": mode,
                    "graphs": bool(point.cuda_graphs) if point else False,
                    "batch": (point.batch if point else None) or model.batch,
                    "seqlen": (point.seqlen if point else None) or model.seqlen,
                    "component": comp,
                    "time_ms": (t or 0) / 1e6 / per,
                    "share": r.get("share"),
                    "kernels": r.get("kernels"),
                    "flops": flops,
                    "bytes_allocated": r.get("bytes_allocated"),
                    "peak_bytes": r.get("peak_bytes"),
                    "io_bytes": r.get("io_bytes"),
                    "achieved_gbps": r.get("achieved_gbps"),
                    "intensity": r.get("intensity"),
                    "achieved_tflops": (flops / (t / 1e9) / 1e12) if flops and t else None,
                    "roofline_pct": r.get("roofline_pct"),
                    "time_source": str(rep.time_source),
                    "gpu_busy": rep.gpu_busy,
                    "device": rep.device,
                    "peak_name": peak.get("name"),
                    "peak_gbps": peak.get("bandwidth_gbps"),
                    "peak_tflops": peak.get("tflops_bf16"),
                }
            )
    schema = {
        "run": pl.Utf8,
        "arch": pl.Utf8,
        "mode": pl.Utf8,
        "graphs": pl.Boolean,
        "batch": pl.Int64,
        "seqlen": pl.Int64,
        "component": pl.Utf8,
        "time_ms": pl.Float64,
        "share": pl.Float64,
        "kernels": pl.Int64,
        "flops": pl.Float64,
        "bytes_allocated": pl.Float64,
        "peak_bytes": pl.Float64,
        "io_bytes": pl.Float64,
        "achieved_gbps": pl.Float64,
        "intensity": pl.Float64,
        "achieved_tflops": pl.Float64,
        "roofline_pct": pl.Float64,
        "time_source": pl.Utf8,
        "gpu_busy": pl.Float64,
        "device": pl.Utf8,
        "peak_name": pl.Utf8,
        "peak_gbps": pl.Float64,
        "peak_tflops": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema)


def timing_frame(run: str, manifest: Manifest | None, traced: set[str]) -> pl.DataFrame:
    """One row per manifest point: median/p10/p90 ms (per step for decode), status, whether its trace is here."""
    rows = []
    for p in manifest.points if manifest is not None else ():
        rows.append(
            {
                "run": run,
                "arch": p.arch,
                "mode": p.mode,
                "graphs": bool(p.cuda_graphs),
                "batch": p.batch,
                "seqlen": p.seqlen,
                "status": p.status,
                "median_ms": p.timing_ms("median_ms"),
                "p10_ms": p.timing_ms("p10_ms"),
                "p90_ms": p.timing_ms("p90_ms"),
                "peak_mem_bytes": p.peak_mem_bytes,
                "has_trace": bool(p.trace) and str(p.trace) in traced,
            }
        )
    schema = {
        "run": pl.Utf8,
        "arch": pl.Utf8,
        "mode": pl.Utf8,
        "graphs": pl.Boolean,
        "batch": pl.Int64,
        "seqlen": pl.Int64,
        "status": pl.Utf8,
        "median_ms": pl.Float64,
        "p10_ms": pl.Float64,
        "p90_ms": pl.Float64,
        "peak_mem_bytes": pl.Int64,
        "has_trace": pl.Boolean,
    }
    return pl.DataFrame(rows, schema=schema)


def exponents(components: pl.DataFrame, timings: pl.DataFrame | None = None) -> pl.DataFrame:
    """Fitted log-log exponent of time vs seqlen per (run, arch, mode, graphs, batch, component), over all
    lengths and over the upper half of the lengths (the long-sequence regime, ≥ 3 points); plus one
    `total` row per series from the manifest medians (these exist where traces are absent)."""
    rows = []
    series: list[tuple[tuple, str, list[float], list[float]]] = []
    if components.height:
        for key, g in components.group_by([*POINT_KEYS, "component"], maintain_order=True):
            g = g.sort("seqlen")
            series.append((key[:-1], str(key[-1]), g["seqlen"].to_list(), g["time_ms"].to_list()))
    if timings is not None and timings.height:
        ok = timings.filter((pl.col("status") == "ok") & pl.col("median_ms").is_not_null())
        for key, g in ok.group_by(list(POINT_KEYS), maintain_order=True):
            g = g.sort("seqlen")
            series.append((key, "total (manifest)", g["seqlen"].to_list(), g["median_ms"].to_list()))
    for key, comp, xs, ys in series:
        fit = fit_exponent(xs, ys)
        if fit is None:
            continue
        half = sorted(set(xs))[len(set(xs)) // 2 :]
        tail = None
        if len(half) >= 3:
            tail = fit_exponent([x for x in xs if x in half], [y for x, y in zip(xs, ys, strict=True) if x in half])
        rows.append(
            dict(zip(POINT_KEYS, key, strict=True))
            | {
                "component": comp,
                "exponent": fit.exponent,
                "r2": fit.r2,
                "fit_from": fit.lo,
                "fit_to": fit.hi,
                "points": fit.n,
                "tail_exponent": tail.exponent if tail else None,
                "tail_r2": tail.r2 if tail else None,
                "tail_from": tail.lo if tail else None,
            }
        )
    schema = {
        "run": pl.Utf8,
        "arch": pl.Utf8,
        "mode": pl.Utf8,
        "graphs": pl.Boolean,
        "batch": pl.Int64,
        "component": pl.Utf8,
        "exponent": pl.Float64,
        "r2": pl.Float64,
        "fit_from": pl.Int64,
        "fit_to": pl.Int64,
        "points": pl.Int64,
        "tail_exponent": pl.Float64,
        "tail_r2": pl.Float64,
        "tail_from": pl.Int64,
    }
    return pl.DataFrame(rows, schema=schema)


def bottlenecks(components: pl.DataFrame, metric: str = "time_ms") -> pl.DataFrame:
    """The largest block component (not `other`) per point by `metric`, with its share of the block total."""
    if not components.height:
        return pl.DataFrame(
            schema={
                **{k: components.schema[k] for k in POINT_KEYS},
                "seqlen": pl.Int64,
                "component": pl.Utf8,
                "value": pl.Float64,
                "share": pl.Float64,
            }
        )
    blk = components.filter(pl.col("component").is_in(BLOCK_COMPONENTS) & pl.col(metric).is_not_null())
    total = blk.group_by([*POINT_KEYS, "seqlen"]).agg(pl.col(metric).sum().alias("_total"))
    top = (
        blk.sort(metric, descending=True, maintain_order=True)
        .group_by([*POINT_KEYS, "seqlen"], maintain_order=True)
        .first()
        .join(total, on=[*POINT_KEYS, "seqlen"])
        .select(
            *POINT_KEYS,
            "seqlen",
            "component",
            pl.col(metric).alias("value"),
            (pl.col(metric) / pl.col("_total")).alias("share"),
        )
    )
    return top.sort([*POINT_KEYS, "seqlen"])


def crossovers(bottleneck: pl.DataFrame) -> pl.DataFrame:
    """Where the bottleneck component changes along seqlen: (series, from_seqlen → seqlen, before → after)."""
    rows = []
    for key, g in bottleneck.group_by(list(POINT_KEYS), maintain_order=True):
        g = g.sort("seqlen")
        prev = None
        for seqlen, comp in zip(g["seqlen"].to_list(), g["component"].to_list(), strict=True):
            if prev is not None and comp != prev[1]:
                rows.append(
                    dict(zip(POINT_KEYS, key, strict=True))
                    | {"from_seqlen": prev[0], "seqlen": seqlen, "before": prev[1], "after": comp}
                )
            prev = (seqlen, comp)
    schema = {
        "run": pl.Utf8,
        "arch": pl.Utf8,
        "mode": pl.Utf8,
        "graphs": pl.Boolean,
        "batch": pl.Int64,
        "from_seqlen": pl.Int64,
        "seqlen": pl.Int64,
        "before": pl.Utf8,
        "after": pl.Utf8,
    }
    return pl.DataFrame(rows, schema=schema)


def chosen_lengths(seqlens: Iterable[int], want: Sequence[int] = (64, 512, 2048)) -> list[int]:
    """The paper's Table 1 lengths where measured; else the smallest, a middle and the largest."""
    have = sorted(set(seqlens))
    picked = [s for s in want if s in have]
    if len(picked) >= 2 or not have:
        return picked
    return sorted({have[0], have[len(have) // 2], have[-1]})


def resources(components: pl.DataFrame, lengths: Sequence[int] | None = None) -> pl.DataFrame:
    """Paper Table 1 from this run: per component at chosen lengths, FLOPs, bytes allocated, peak live bytes,
    minimal I/O, achieved GB/s, intensity and time (prefill and decode traces)."""
    if not components.height:
        return components
    lengths = list(lengths) if lengths else chosen_lengths(components["seqlen"].to_list())
    return (
        components.filter(pl.col("seqlen").is_in(lengths) & (pl.col("component") != "other"))
        .select(
            "arch",
            "mode",
            "graphs",
            "seqlen",
            "component",
            (pl.col("flops") / 1e9).alias("gflops"),
            (pl.col("bytes_allocated") / 1e9).alias("alloc_gb"),
            (pl.col("peak_bytes") / 1e9).alias("peak_gb"),
            (pl.col("io_bytes") / 1e9).alias("io_gb"),
            "achieved_gbps",
            "intensity",
            "time_ms",
        )
        .sort(["arch", "mode", "graphs", "seqlen"])
    )


def roofline_points(components: pl.DataFrame) -> pl.DataFrame:
    """(intensity FLOP/byte, achieved TFLOP/s) per component and point, where both are known."""
    if not components.height:
        return components
    return components.filter(
        pl.col("intensity").is_not_null()
        & pl.col("achieved_tflops").is_not_null()
        & (pl.col("intensity") > 0)
        & (pl.col("component") != "other")
    ).select(
        "run",
        "arch",
        "mode",
        "graphs",
        "seqlen",
        "component",
        "intensity",
        "achieved_tflops",
        "roofline_pct",
        "gpu_busy",
        "peak_name",
        "peak_gbps",
        "peak_tflops",
    )


def host_bound(components: pl.DataFrame, threshold: float = 0.5) -> pl.DataFrame:
    """Points whose GPU was busy less than `threshold` of the traced span: launch/host-bound there."""
    if not components.height:
        return components
    return (
        components.filter(pl.col("gpu_busy").is_not_null() & (pl.col("time_source") == "gpu"))
        .group_by(["run", "arch", "mode", "graphs", "batch", "seqlen"])
        .agg(pl.col("gpu_busy").first())
        .with_columns((pl.col("gpu_busy") < threshold).alias("host_bound"))
        .sort(["run", "arch", "mode", "graphs", "seqlen"])
    )
