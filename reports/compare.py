"""Renderers of a `prune compare` result: Table 2 as markdown and as rich tables, and the latency plot (Fig. 5a).

The numbers (speedup, memory and state reductions) are computed by `tracekit.prune.compare`; these
functions only lay out a `CompareResult`, so committed results re-render byte-identical from compare.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from tracekit.reports.units import MISSING, pct, ratio, signed_duration

if TYPE_CHECKING:
    from tracekit.artifacts.compare import CompareResult

COMPONENT_COLUMNS = ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other")


def table_rows(result: CompareResult, variant: str = "physical") -> list[tuple[str, str, int, str, list[str]]]:
    """Table 2 layout: one row per (mode, graphs, seqlen, metric), one column per ratio."""
    ratios = sorted({r["ratio"] for r in result.rows if r["variant"] == variant})
    keys = sorted({(r["mode"], str(r["cuda_graphs"]), r["seqlen"]) for r in result.rows})
    out = []
    for mode, graphs, seqlen in keys:
        cells = {
            r["ratio"]: r
            for r in result.rows
            if r["variant"] == variant and (r["mode"], str(r["cuda_graphs"]), r["seqlen"]) == (mode, graphs, seqlen)
        }
        for metric, key, fmt in (
            ("speedup", "speedup", ratio),
            ("mem. red.", "mem_reduction", pct),
            ("state red.", "state_reduction", pct),
        ):
            out.append((mode, graphs, seqlen, metric, [fmt(cells[r][key]) if r in cells else MISSING for r in ratios]))
        if any("kernel_note" in c for c in cells.values()):  # results written before the notes existed: none
            out.append((mode, graphs, seqlen, "SSM kernel", [_kernel_cell(cells.get(r)) for r in ratios]))
    return out


def _kernel_cell(row: dict[str, Any] | None) -> str:
    """Expected SSM kernel time vs dense from the measured k steps; ✗ where the ratio cannot pay."""
    note = (row or {}).get("kernel_note")
    if not note:
        return MISSING
    if note["expected_ratio"] is None:
        return "not measured"
    return f"×{note['expected_ratio']:.2f}" + ("" if note["pays"] else " ✗")


def _gb(v: int | None) -> str:
    return MISSING if v is None else f"{v / 1e9:.3f}"


def memory_explained(result: CompareResult) -> list[str]:
    """One line per row: peak = allocated when the window opened (weights, state, rest) + what the window added."""
    out = []
    for r in result.rows:
        m = r.get("memory")
        if not m:
            continue
        rest = m["at_window_start_bytes"] - m["weights_bytes"] - (m["state_bytes"] or 0)
        out.append(
            f"{r['variant']} r={r['ratio']:g} {r['mode']} L={r['seqlen']}{' graphs' if r['cuda_graphs'] else ''}: "
            f"peak {_gb(m['peak_bytes'])} GB = {_gb(m['at_window_start_bytes'])} allocated when the window opened "
            f"(weights {_gb(m['weights_bytes'])}, inference state {_gb(m['state_bytes'])}, other {_gb(rest)}) "
            f"+ {_gb(m['peak_bytes'] - m['at_window_start_bytes'])} within it"
        )
    return out


def kernel_notes(result: CompareResult) -> list[str]:
    """The kernel note of every physical row (why a ratio can or cannot pay), with its k."""
    return [
        f"r={r['ratio']:g} {r['mode']} (k={r['k']}): {r['kernel_note']['note']}"
        for r in result.rows
        if r.get("kernel_note")
    ]


def markdown(result: CompareResult, host: str) -> str:
    """compare.md: Table 2 per variant, then component times; `host` is the machine named in the header."""
    lines = [
        f"# prune compare: {result.arch}, scores `{result.method}`",
        "",
        f"Backend {result.backend}, device {result.device} ({host}), dtype {result.dtype}, "
        f"batch {result.batch}. Speedup = dense median / variant median; mem. red. = 1 − peak / dense peak "
        "(CUDA peak allocated; not measured on CPU); state red. = 1 − inference-state bytes / dense.",
        "",
    ]
    for variant in sorted({r["variant"] for r in result.rows} - {"dense"}):
        ratios = sorted({r["ratio"] for r in result.rows if r["variant"] == variant})
        lines += [
            f"## {variant}",
            "",
            "| mode | graphs | seqlen | metric | " + " | ".join(f"r={r:g}" for r in ratios) + " |",
            "|" + " --- |" * (4 + len(ratios)),
        ]
        for mode, graphs, seqlen, metric, cells in table_rows(result, variant):
            lines.append(f"| {mode} | {graphs} | {seqlen} | {metric} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += [
        "## Component time (ms), dense vs variants",
        "",
        "| variant | ratio | mode | graphs | seqlen | median ms | " + " | ".join(COMPONENT_COLUMNS) + " |",
        "|" + " --- |" * (6 + len(COMPONENT_COLUMNS)),
    ]
    for r in result.rows:
        c = r["component_ns"]
        lines.append(
            f"| {r['variant']} | {r['ratio']:g} | {r['mode']} | {r['cuda_graphs']} | {r['seqlen']} | "
            + (f"{r['median_ms']:.3f}" if r["median_ms"] else MISSING)
            + " | "
            + " | ".join(f"{c.get(k, 0) / 1e6:.3f}" for k in COMPONENT_COLUMNS)
            + " |"
        )
    if result.component_diff:
        lines += _diff_section(result.component_diff)
    notes = kernel_notes(result)
    if notes:
        machine = next(
            (r["kernel_note"]["machine"] for r in result.rows if (r.get("kernel_note") or {}).get("machine")), None
        )
        lines += [
            "",
            "## SSM kernel per kept k (measured steps, analyzers/rules/ssm_kernel_k.toml)",
            "",
            "Expected SSM kernel time vs dense from the kernels' measured k steps"
            + (f" on {machine}" if machine else "")
            + f"; decode with the {result.state_kernel or 'mamba-ssm'} state kernel (✗: cannot pay):",
            "",
        ]
        lines += [f"- {n}" for n in notes]
    mem = memory_explained(result)
    if mem:
        window = next(r["memory"]["window"] for r in result.rows if r.get("memory"))
        lines += [
            "",
            "## Peak memory explained",
            "",
            f"Peak = CUDA max allocated over the window: {window}"
            " (garbage collected before it opens); other = CUDA-graph pool outputs, cuBLAS workspaces, the "
            "prompt's last logits. GB = 10^9 bytes.",
            "",
        ]
        lines += [f"- {m}" for m in mem]
    return "\n".join(lines) + "\n"


def _diff_section(diffs: list[dict[str, Any]]) -> list[str]:
    """`tracekit diff` of each variant against dense: Δ per component, * where |B/A − 1| ≥ the threshold."""

    th = diffs[0]["threshold"]
    lines = [
        "",
        f"## Component change vs dense (`tracekit diff`; * significant: |variant/dense − 1| ≥ {th:g})",
        "",
        "| variant | ratio | mode | graphs | seqlen | " + " | ".join(COMPONENT_COLUMNS) + " | significant |",
        "|" + " --- |" * (6 + len(COMPONENT_COLUMNS)),
    ]
    for d in diffs:
        comps = {c["component"]: c for c in d["components"]}
        cells = []
        for k in COMPONENT_COLUMNS:
            c = comps.get(k)
            cells.append(
                MISSING
                if c is None
                else f"{signed_duration(c['delta_ns'])} ({ratio(c['ratio'] or 0)}){'*' if c['significant'] else ''}"
            )
        lines.append(
            f"| {d['variant']} | {d['ratio']:g} | {d['mode']} | {d['cuda_graphs']} | {d['seqlen']} | "
            + " | ".join(cells)
            + f" | {', '.join(d['significant']) or 'none'} |"
        )
    return lines


def plot(result: CompareResult, path: Path) -> Path:
    """Latency vs ratio per seqlen (one panel per mode), like the paper's Fig. 5a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = sorted({r["mode"] for r in result.rows})
    fig, axes = plt.subplots(1, len(modes), figsize=(6 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        for variant, style in (("physical", "-o"), ("masked", "--x")):
            for seqlen in sorted({r["seqlen"] for r in result.rows if r["mode"] == mode}):
                pts = sorted(
                    (r["ratio"], r["median_ms"])
                    for r in result.rows
                    if r["mode"] == mode
                    and r["seqlen"] == seqlen
                    and r["median_ms"]
                    and r["variant"] in (variant, "dense")
                )
                if len(pts) > 1:
                    ax.plot(*zip(*pts, strict=True), style, label=f"{variant} L={seqlen}")
        ax.set_xlabel("pruning ratio")
        ax.set_ylabel("median latency (ms)" + (" per decode run" if mode == "decode" else ""))
        ax.set_title(f"{result.arch} {mode}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def print_table(result: CompareResult, console: Console | None = None) -> None:
    """Table 2 per variant as rich tables, then where the outputs were written."""
    console = console or Console()
    for variant in sorted({r["variant"] for r in result.rows} - {"dense"}):
        ratios = sorted({r["ratio"] for r in result.rows if r["variant"] == variant})
        t = Table(title=f"{result.arch} {variant} vs dense ({result.backend}, {result.device}, {result.dtype})")
        for col in ("mode", "graphs", "seqlen", "metric", *[f"r={r:g}" for r in ratios]):
            t.add_column(col, justify="right" if col.startswith("r=") or col == "seqlen" else "left")
        for mode, graphs, seqlen, metric, cells in table_rows(result, variant):
            t.add_row(mode, graphs, str(seqlen), metric, *cells)
        console.print(t)
    for line in kernel_notes(result):
        console.print(f"kernel: {line}")
    for line in memory_explained(result):
        console.print(f"memory: {line}")
    console.print(f"wrote {result.out}/compare.json, compare.md, latency_vs_ratio.png")
