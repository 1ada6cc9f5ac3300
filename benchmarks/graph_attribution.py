"""Graph vs eager decode: component shares of the same point, attributed by tracekit (issue 11).

The traces come from `benchmarks/h200_graph_collect.sh` (`tracekit collect --mode decode --cuda-graphs both`,
the graph traces with their template step). For each point (arch, batch, seqlen) this prints and writes the
share of every component in the eager and in the graph trace, the largest difference in points, how the
graph replays were attributed (template-aligned vs inferred kernels), what `other` holds, and FLOPs/GB/s.

    python benchmarks/graph_attribution.py RUN_DIR [RUN_DIR ...] --device "NVIDIA H200 (device tool, single GPU)" \
        --out benchmarks/results/h200_graph_attribution
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path
from typing import Any

import polars as pl
from tracekit.analyzers import attribution
from tracekit.analyzers.components import COMPONENTS

import tracekit


def _other_kernels(db: Any, report: Any) -> list[dict[str, Any]]:
    rep = db.attribute(report.trace_id, by="kernel")
    return [
        {"kernel": r["kernel"], "count": r["count"], "time_ns": r["time_ns"], "reason": r["reason"]}
        for r in rep.to_dict()["components"]
        if r["component"] == "other"
    ]


@contextlib.contextmanager
def _template_ignored():
    """Attribute graph traces as if they had no template step (what tracekit did before: graph position and
    kernel-name rules), to show what the template changes on the same trace."""
    align = attribution._align_graph
    attribution._align_graph = lambda units, template: align(units, None)
    try:
        yield
    finally:
        attribution._align_graph = align


def points(db: Any, run_dir: Path) -> list[dict[str, Any]]:
    """One row per (arch, batch, seqlen) with an eager and a graph decode trace in the run."""
    run = db.run(run_dir)
    by_trace = {r.trace: r for r in run.reports}
    pairs: dict[tuple, dict[bool, Any]] = {}
    for e in run.manifest.points:
        if e.mode != "decode" or e.trace not in by_trace:
            continue
        pairs.setdefault((e.arch, e.batch, e.seqlen, e.decode_steps), {})[e.cuda_graphs] = (by_trace[e.trace], e)
    out = []
    for (arch, batch, seqlen, steps), d in sorted(pairs.items()):
        if set(d) != {False, True}:
            continue
        (eager, e_entry), (graph, g_entry) = d[False], d[True]
        es = {r["component"]: r["share"] for r in eager.to_dict()["components"]}
        gs = {r["component"]: r["share"] for r in graph.to_dict()["components"]}
        diff = {c: 100 * (gs[c] - es[c]) for c in COMPONENTS}
        gdoc = graph.to_dict()
        with _template_ignored():
            fb = db.attribute(graph.trace_id).to_dict()
        grows = {r["component"]: r for r in gdoc["components"]}
        out.append(
            {
                "arch": arch,
                "batch": batch,
                "seqlen": seqlen,
                "decode_steps": steps,
                "eager_trace": eager.trace,
                "graph_trace": graph.trace,
                "eager_share": es,
                "graph_share": gs,
                "graph_share_without_template": {r["component"]: r["share"] for r in fb["components"]},
                "diff_points": diff,
                "max_abs_diff_points": max(abs(v) for v in diff.values()),
                "graph": gdoc["graph"],
                "eager_ms_per_step": e_entry.timing_ms("median_ms"),
                "graph_ms_per_step": g_entry.timing_ms("median_ms"),
                "graph_flops": {c: grows[c]["flops"] for c in COMPONENTS},
                "graph_gbps": {c: grows[c]["achieved_gbps"] for c in COMPONENTS},
                "graph_roofline_pct": {c: grows[c]["roofline_pct"] for c in COMPONENTS},
                "eager_flops": {r["component"]: r["flops"] for r in eager.to_dict()["components"]},
                "graph_other_kernels": _other_kernels(db, graph),
                "graph_notes": gdoc["notes"],
            }
        )
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def markdown(rows: list[dict[str, Any]], device: str) -> str:
    lines = [
        "# Graph vs eager decode attribution",
        "",
        f"Machine: {device}. Traces: `tracekit collect --mode decode --cuda-graphs both` (mamba-ssm, bf16, 130m",
        "shapes, random weights); the graph traces hold one scoped eager step (`tracekit.template`) before the",
        "replays, and every replayed kernel gets the component of the template kernel it aligns with. Shares are",
        "of summed kernel time (the template step is not counted). Produced by `benchmarks/graph_attribution.py`.",
        "`graph, template ignored`: the same graph trace attributed as if it had no template step (graph position",
        "for GEMMs, kernel-name rules for the rest), i.e. what tracekit reported before.",
        "",
        "| point | max abs share difference graph vs eager (points) | replayed kernels aligned |",
        "| --- | --- | --- |",
        *(
            f"| {r['arch']} B{r['batch']} L{r['seqlen']} ({r['decode_steps']} steps) | "
            f"{r['max_abs_diff_points']:.2f} | {r['graph']['aligned']}/{r['graph']['replayed']} |"
            for r in rows
        ),
        "",
    ]
    for r in rows:
        g = r["graph"]
        lines += [
            f"## {r['arch']}, batch {r['batch']}, prompt {r['seqlen']}, {r['decode_steps']} steps",
            "",
            f"Unprofiled: {r['eager_ms_per_step']:.3f} ms/step eager, {r['graph_ms_per_step']:.3f} ms/step graph. "
            f"Replays: {g['replays']}, {g['aligned']} of {g['replayed']} kernels aligned with the template "
            f"({g['template_kernels']} kernels); largest share difference {r['max_abs_diff_points']:.2f} points.",
            "",
            "| component | eager decode | graph decode | difference (points) | graph, template ignored "
            "| graph GFLOP | graph GB/s | graph roofline |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for c in COMPONENTS:
            fl = r["graph_flops"][c]
            gb = r["graph_gbps"][c]
            rf = r["graph_roofline_pct"][c]
            lines.append(
                f"| {c} | {_pct(r['eager_share'][c])} | {_pct(r['graph_share'][c])} | {r['diff_points'][c]:+.2f} | "
                f"{_pct(r['graph_share_without_template'][c])} | "
                f"{'–' if fl is None else f'{fl / 1e9:.2f}'} | {'–' if gb is None else f'{gb:.0f}'} | "
                f"{'–' if rf is None else f'{rf:.1f}%'} |"
            )
        other = ", ".join(f"`{k['kernel'][:100]}` ×{k['count']}" for k in r["graph_other_kernels"])
        lines += ["", f"`other` in the graph trace: {other}.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--device", required=True)
    ap.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    a = ap.parse_args()
    db = tracekit.open(":memory:")
    rows = [row for run in a.runs for row in points(db, run)]
    md = markdown(rows, a.device)
    print(md)
    if a.out:
        a.out.with_suffix(".md").write_text(md)
        a.out.with_suffix(".json").write_text(json.dumps({"device": a.device, "points": rows}, indent=2) + "\n")
    print(pl.DataFrame([{k: r[k] for k in ("arch", "batch", "seqlen", "max_abs_diff_points")} for r in rows]))


if __name__ == "__main__":
    main()
