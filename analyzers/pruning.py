"""Pruning results as frames for `tracekit report`: `prune compare` rows (speedup, memory per length × ratio)
and `prune_accuracy_*.json` curves (accuracy or perplexity vs ratio per scoring method)."""

from __future__ import annotations

from typing import Any

import polars as pl

from tracekit.artifacts.compare import CompareResult, compare_label
from tracekit.artifacts.manifest import Manifest

COMPARE_SCHEMA = {
    "source": pl.Utf8,
    "arch": pl.Utf8,
    "device": pl.Utf8,
    "method": pl.Utf8,
    "variant": pl.Utf8,
    "ratio": pl.Float64,
    "d_state": pl.Int64,
    "k": pl.Int64,
    "mode": pl.Utf8,
    "graphs": pl.Boolean,
    "batch": pl.Int64,
    "seqlen": pl.Int64,
    "status": pl.Utf8,
    "median_ms": pl.Float64,
    "p10_ms": pl.Float64,
    "p90_ms": pl.Float64,
    "speedup": pl.Float64,
    "mem_reduction": pl.Float64,
    "state_reduction": pl.Float64,
    "peak_mem_bytes": pl.Int64,
    "ssm_ms": pl.Float64,
}

ACCURACY_SCHEMA = {
    "source": pl.Utf8,
    "arch": pl.Utf8,
    "task": pl.Utf8,
    "metric": pl.Utf8,
    "method": pl.Utf8,
    "ratio": pl.Float64,
    "k": pl.Int64,
    "value": pl.Float64,
    "baseline": pl.Float64,
    "higher_is_better": pl.Boolean,
    "machine": pl.Utf8,
}


def compare_frame(source: str, result: CompareResult, manifests: dict[str, Manifest] | None = None) -> pl.DataFrame:
    """One row per compare.json row; p10/p90 from the variant's collect manifest when it is at hand
    (`manifests`: variant label such as `physical_r0.5` → manifest)."""
    manifests = manifests or {}
    rows = []
    for r in result.rows:
        p10 = p90 = None
        manifest = manifests.get(compare_label(r))
        for p in manifest.points if manifest is not None else ():
            if (p.mode, p.seqlen, bool(p.cuda_graphs)) == (r.get("mode"), r.get("seqlen"), bool(r.get("cuda_graphs"))):
                p10, p90 = p.timing_ms("p10_ms"), p.timing_ms("p90_ms")
        comp = r.get("component_ns") or {}
        rows.append(
            {
                "source": source,
                "arch": result.arch,
                "device": result.device,
                "method": result.method,
                "variant": r.get("variant"),
                "ratio": r.get("ratio"),
                "d_state": r.get("d_state"),
                "k": r.get("k"),
                "mode": r.get("mode"),
                "graphs": bool(r.get("cuda_graphs")),
                "batch": r.get("batch"),
                "seqlen": r.get("seqlen"),
                "status": r.get("status"),
                "median_ms": r.get("median_ms"),
                "p10_ms": p10,
                "p90_ms": p90,
                "speedup": r.get("speedup"),
                "mem_reduction": r.get("mem_reduction"),
                "state_reduction": r.get("state_reduction"),
                "peak_mem_bytes": r.get("peak_mem_bytes"),
                "ssm_ms": comp["ssm"] / 1e6 if comp.get("ssm") is not None else None,
            }
        )
    return pl.DataFrame(rows, schema=COMPARE_SCHEMA)


def accuracy_frame(source: str, doc: dict[str, Any]) -> pl.DataFrame:
    """One row per (method, ratio) of a prune_accuracy result; `baseline` is the method's ratio-0 value."""
    task = doc.get("task")
    task_name = task.get("task") if isinstance(task, dict) else (task or ("bytes-lm" if "corpus" in doc else None))
    arch = (doc.get("model_config") or {}).get("arch")
    rows = []
    for method, curve in (doc.get("curves") or {}).items():
        if not isinstance(curve, list) or not curve:
            continue
        metric = "acc" if "acc" in curve[0] else "ppl" if "ppl" in curve[0] else None
        if metric is None:
            continue
        base = next((c[metric] for c in curve if c.get("ratio") == 0.0), None)
        for c in curve:
            rows.append(
                {
                    "source": source,
                    "arch": arch,
                    "task": task_name,
                    "metric": metric,
                    "method": method,
                    "ratio": c.get("ratio"),
                    "k": c.get("k"),
                    "value": c.get(metric),
                    "baseline": base,
                    "higher_is_better": metric == "acc",
                    "machine": doc.get("machine"),
                }
            )
    return pl.DataFrame(rows, schema=ACCURACY_SCHEMA)


def speedup_table(compare: pl.DataFrame) -> pl.DataFrame:
    """Paper Table 2 from this run: speedup and memory reduction per (source, mode, graphs, seqlen, variant,
    ratio), pruned rows only."""
    if not compare.height:
        return compare
    return (
        compare.filter((pl.col("variant") != "dense") & (pl.col("status") == "ok"))
        .select(
            "source",
            "mode",
            "graphs",
            "batch",
            "seqlen",
            "variant",
            "ratio",
            "median_ms",
            "speedup",
            "mem_reduction",
            "state_reduction",
        )
        .sort(["source", "mode", "graphs", "seqlen", "variant", "ratio"])
    )


TRADEOFF_SCHEMA = {
    "source": pl.Utf8,
    "task": pl.Utf8,
    "metric": pl.Utf8,
    "method": pl.Utf8,
    "ratio": pl.Float64,
    "value": pl.Float64,
    "speedup": pl.Float64,
}


def tradeoff(compare: pl.DataFrame, accuracy: pl.DataFrame) -> tuple[pl.DataFrame, str, list[float], str]:
    """The accuracy–latency trade-off (paper Fig. 6): accuracy joined to speedup by pruning ratio alone.

    The speedups come from one compare point: decode with the largest batch (CUDA graphs preferred, then the
    largest length), else the prefill row with the largest length. Returns (one row per accuracy result ×
    method × common ratio, the point's description, the common ratios, why nothing was joined or "")."""
    empty = pl.DataFrame(schema=TRADEOFF_SCHEMA)
    if not compare.height or not accuracy.height:
        return empty, "", [], "needs both prune-compare and prune accuracy results"
    ok = compare.filter((pl.col("status") == "ok") & pl.col("variant").is_in(["dense", "physical"]))
    pruned = ok.filter((pl.col("variant") == "physical") & pl.col("speedup").is_not_null())
    if not pruned.height:
        return empty, "", [], "no physical-variant compare row with a speedup"
    dec = pruned.filter(pl.col("mode") == "decode")
    if dec.height:
        best = dec.sort(["graphs", "batch", "seqlen"], descending=True, nulls_last=True).row(0, named=True)
    else:
        best = pruned.sort(["seqlen", "batch"], descending=True, nulls_last=True).row(0, named=True)
    key = ("source", "mode", "graphs", "batch", "seqlen")
    pt = pruned.filter(pl.all_horizontal([pl.col(k).eq_missing(best[k]) for k in key]))
    point = (
        f"{best['source']} ({best['arch']}): {best['mode']}"
        + (" with CUDA graphs" if best["graphs"] else "")
        + f", batch {best['batch']}, L = {best['seqlen']}"
    )
    speed = {0.0: 1.0} | {round(r, 6): s for r, s in zip(pt["ratio"], pt["speedup"], strict=True)}
    acc_ratios = {round(r, 6) for r in accuracy["ratio"].to_list() if r is not None}
    common = sorted(r for r in speed if r in acc_ratios)
    if not any(r > 0 for r in common):
        got = ", ".join(f"{r:g}" for r in sorted(speed) if r > 0)
        return (
            empty,
            point,
            [],
            f"no pruning ratio in common: the compare point has r = {got}, the accuracy results do not",
        )
    rows = [
        {
            **{k: r[k] for k in ("source", "task", "metric", "method", "ratio", "value")},
            "speedup": speed[round(r["ratio"], 6)],
        }
        for r in accuracy.iter_rows(named=True)
        if r["ratio"] is not None and round(r["ratio"], 6) in common
    ]
    return pl.DataFrame(rows, schema=TRADEOFF_SCHEMA).sort(["source", "method", "ratio"]), point, common, ""
