"""Renderers of `tracekit diff` (analyzers/diff.py computes; these only lay out): rich tables, markdown,
CSV and the JSON document (docs/diff.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tracekit.reports.attribute_table import bare_kernel_name, short_kernel_name
from tracekit.reports.tables import records_to_csv
from tracekit.reports.units import MISSING, duration, middle_ellipsis, ms_value, ratio, si, signed_duration

if TYPE_CHECKING:
    from tracekit.analyzers.diff import TraceDiff

KERNEL_WIDTH = 40


def _mark(row: dict[str, Any]) -> str:
    return "*" if row.get("significant") else ""


def _key_cells(row: dict[str, Any], by: str, width: int = KERNEL_WIDTH) -> list[str]:
    if by == "kernel":
        name = bare_kernel_name(row["kernel"]) if width < 10_000 else short_kernel_name(row["kernel"])
        return [middle_ellipsis(name, width), row["component"] or MISSING, row["status"]]
    if by == "layer":
        return [MISSING if row["layer"] is None else str(row["layer"]), row["component"]]
    return [row["component"]]


def _headers(by: str, terminal: bool = False) -> list[str]:
    keys = {"kernel": ["kernel", "component", "status"], "layer": ["layer", "component"]}.get(by, ["component"])
    if by == "kernel":
        if terminal:  # fits 80 columns: component in csv/json/markdown
            return ["kernel", "status", "n A→B", "A", "B", "Δ", "B/A"]
        return [*keys, "n A", "n B", "A", "B", "Δ", "B/A"]
    if terminal:
        return [*keys, "A", "B", "Δ", "B/A", "sig", "ΔFLOPs", "Δpeak"]
    return [*keys, "A", "B", "Δ", "B/A", "sig", "ΔFLOPs", "Δalloc", "Δpeak"]


def _cells(row: dict[str, Any], by: str, width: int = KERNEL_WIDTH, terminal: bool = False) -> list[str]:
    keys = _key_cells(row, by, width)
    times = [
        duration(row["time_a_ns"]),
        duration(row["time_b_ns"]),
        signed_duration(row["delta_ns"]),
        ratio(row["ratio"]),
    ]
    if by == "kernel":
        if terminal:
            return [keys[0], keys[2], f"{row['count_a']}→{row['count_b']}", *times]
        return [*keys, str(row["count_a"]), str(row["count_b"]), *times]
    return [
        *keys,
        *times,
        _mark(row),
        si(row.get("delta_flops"), signed=True),
        *([] if terminal else [si(row.get("delta_bytes_allocated"), signed=True)]),
        si(row.get("delta_peak_bytes"), signed=True),
    ]


def _timing_line(t: dict[str, Any] | None) -> str | None:
    if not t:
        return None

    def side(s: str) -> str:
        med, lo, hi = t[f"median_{s}_ms"], t[f"p10_{s}_ms"], t[f"p90_{s}_ms"]
        band = f" (p10–p90 {ms_value(lo)}–{ms_value(hi)})" if lo is not None and hi is not None else ""
        return ms_value(med) + band

    verdict = {True: "within noise", False: "outside noise", None: "noise unknown"}[t["within_noise"]]
    return f"median A {side('a')} → B {side('b')}, ratio {ratio(t['ratio'])}: {verdict}"


def _peak_line(tot: dict[str, Any]) -> str | None:
    if tot.get("peak_mem_bytes_a") is None and tot.get("peak_mem_bytes_b") is None:
        return None
    return (
        f"CUDA peak allocated (manifest) A {si(tot['peak_mem_bytes_a'])}B → B {si(tot['peak_mem_bytes_b'])}B "
        f"(Δ {si(tot['delta_peak_mem_bytes'], signed=True)}B)"
    )


def render(diffs: list[TraceDiff], by: str = "component", console: Console | None = None) -> None:
    """Per pair: the two sides, the timing verdict, the table of `by`, new/gone kernels, notes."""
    console = console or Console()
    for d in diffs:
        console.print(f"[bold]A[/bold] {escape(d.a.label)}", overflow="fold")
        console.print(f"[bold]B[/bold] {escape(d.b.label)}", overflow="fold")
        line = _timing_line(d.timing)
        if line:
            console.print(escape(line))
        peak = _peak_line(d.totals)
        if peak:
            console.print(peak)
        rows = d.rows(by)
        t = Table(
            header_style="bold",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            collapse_padding=True,
            pad_edge=False,
            show_edge=False,
            caption=(
                f"Δ = B − A (exact ns) · sig (*): |B/A − 1| ≥ {d.threshold:g}"
                if by != "kernel"
                else escape(d.step_rule)
            ),
        )
        for h in _headers(by, terminal=True):
            left = h in ("kernel", "component", "status", "layer")
            t.add_column(h, justify="left" if left else "right", no_wrap=True, min_width=len(h))
        kw = max(20, console.width - 52)
        for r in rows:
            t.add_row(*_cells(r, by, kw, terminal=True))
        tot = d.totals
        if by != "kernel":
            t.add_row(
                *([""] if by == "layer" else []),
                "total",
                duration(tot["time_a_ns"]),
                duration(tot["time_b_ns"]),
                signed_duration(tot["delta_ns"]),
                ratio(tot["ratio"]),
                "",
                si(tot["delta_flops"], signed=True),
                si(tot["delta_peak_bytes"], signed=True),
                style="bold",
            )
        if rows or by != "kernel":
            console.print(t)
        if not rows and by != "component":
            console.print(f"no {by} detail: {escape('; '.join(d.notes) or 'not available')}")
        if d.kernels is not None:
            new, gone = d.new, d.gone
            console.print(f"new kernels (only in B): {len(new)} · gone (only in A): {len(gone)}")
            for name in new:
                console.print(f"  + {escape(middle_ellipsis(short_kernel_name(name), 70))}", overflow="ellipsis")
            for name in gone:
                console.print(f"  − {escape(middle_ellipsis(short_kernel_name(name), 70))}", overflow="ellipsis")
        sig = d.significant
        console.print(f"significant: {', '.join(sig) if sig else 'none'}")
        for n in d.notes:
            console.print(f"[dim]note: {escape(n)}[/dim]")
        console.print()


def markdown(diffs: list[TraceDiff], by: str = "component") -> str:
    lines: list[str] = []
    for d in diffs:
        lines += [f"## {d.a.label} → {d.b.label}", ""]
        for line in (_timing_line(d.timing), _peak_line(d.totals)):
            if line:
                lines += [line, ""]
        heads = _headers(by)
        lines += ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
        for r in d.rows(by):
            cells = _cells(r, by, width=10_000)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
        lines.append(
            f"Δ = B − A (exact ns); sig (*): |B/A − 1| ≥ {d.threshold:g}; {d.step_rule}."
            + (f" New kernels: {len(d.new)}, gone: {len(d.gone)}." if d.kernels is not None else "")
        )
        lines.append(f"Significant: {', '.join(d.significant) or 'none'}.")
        lines += [f"Note: {n}" for n in d.notes]
        lines.append("")
    return "\n".join(lines)


def csv_text(diffs: list[TraceDiff], by: str = "component") -> str:
    """One CSV line per row of `by` per pair (pair index, the two labels, then the row's fields)."""
    recs = []
    for i, d in enumerate(diffs):
        for r in d.rows(by):
            recs.append({"pair": i, "a": d.a.label, "b": d.b.label, **r})
    return records_to_csv(recs)


def json_text(diffs: list[TraceDiff]) -> str:
    from tracekit.analyzers.diff import document

    return json.dumps(document(diffs), indent=2) + "\n"
