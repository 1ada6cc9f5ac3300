"""Rich rendering of `tracekit attribute` results (reports only render; numbers come from analyzers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tracekit.reports.units import MISSING, duration, middle_ellipsis, pct, si

if TYPE_CHECKING:
    from tracekit.analyzers.report_types import AttributeReport


def _table(caption: str) -> Table:
    """The compact table style shared by every view (fits an 80-column terminal)."""
    return Table(
        header_style="bold",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        collapse_padding=True,
        pad_edge=False,
        show_edge=False,
        caption=caption,
    )


def _ms(ns: float | None) -> str:
    """A duration in the unit its size asks for (reports/units.py): `85.0 µs`, `3.62 ms`."""
    return duration(ns)


def short_kernel_name(name: str | None) -> str:
    """`void ns::kern<...>(args)` -> `ns::kern<…>`: the part of a C++ kernel name a person reads."""
    if not name:
        return MISSING
    out = name.removeprefix("void ")
    depth, kept = 0, []
    for ch in out:
        if ch == "<":
            if depth == 0:
                kept.append("<…>")
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif ch == "(" and depth == 0:
            break
        elif depth == 0:
            kept.append(ch)
    return "".join(kept).strip()


def bare_kernel_name(name: str | None) -> str:
    """`short_kernel_name` without its leading namespaces: `at::native::foo<…>` -> `foo<…>`."""
    short = short_kernel_name(name)
    return short.rsplit("::", 1)[-1] if "::" in short else short


def render(rep: AttributeReport, by: str, console: Console | None = None) -> None:
    """Print one trace's attribution: a header line, the table, totals and notes."""
    console = console or Console()
    gpu = rep.time_source == "gpu"
    m = rep.model
    cfg = m.config
    arch = f"{cfg.arch} d_model={cfg.d_model} N={cfg.d_state}" if cfg else "unknown model"
    console.print(
        f"[bold]{escape(str(rep.trace or rep.trace_id))}[/bold]  {escape(rep.device or '')}  "
        f"({arch}, config {m.config_source})"
    )
    if by == "category":
        _render_categories(rep.by_category, console)
    elif by == "stream":
        _render_streams(rep.by_stream or [], console)
    elif by == "kernel":
        t = _table(
            caption="kernel names shortened (namespaces, templates and arguments elided, long ones cut in the "
            "middle); --format csv|json for full names",
        )
        kw = max(20, console.width - 54)
        t.add_column("kernel", no_wrap=True, max_width=kw)
        t.add_column("component", no_wrap=True, min_width=13)
        for col, width in (("time", 9), ("share", 7), ("count", 6)):
            t.add_column(col, justify="right", no_wrap=True, min_width=width)
        t.add_column(" decided by", overflow="ellipsis", no_wrap=True, min_width=12)
        for r in rep.rows:
            t.add_row(
                middle_ellipsis(bare_kernel_name(r["kernel"]), kw),
                r["component"],
                _ms(r["time_ns"]),
                pct(r["share"]),
                str(r["count"]),
                " " + r["reason"].replace("rule components.toml#", "rule #"),
            )
        console.print(t)
    else:
        t = _table(
            caption=(
                "time: " + ("summed kernel time" if gpu else "CPU self time") + " · alloc: bytes allocated · "
                "peak: peak live bytes · I/O: minimal bytes moved · F/B: FLOPs per byte · roof: % of roofline"
            ),
        )
        cols = (["L"] if by == "layer" else []) + [
            "component",
            "time",
            "share",
            "kern",
            "FLOPs",
            "alloc",
            "peak",
            "I/O",
            "GB/s",
            "F/B",
            "roof",
        ]
        for c in cols:
            t.add_column(c, justify="left" if c in ("component", "L") else "right", no_wrap=True, min_width=len(c) + 1)
        for r in rep.rows:
            time_ns = r["gpu_time_ns"] if gpu else r["cpu_self_ns"]
            row = ([(MISSING if r["layer"] is None else str(r["layer"]))] if by == "layer" else []) + [
                r["component"],
                _ms(time_ns),
                pct(r["share"]),
                str(r["kernels"]),
                si(r["flops"]),
                si(r["bytes_allocated"]),
                si(r["peak_bytes"]),
                si(r["io_bytes"]),
                MISSING if r["achieved_gbps"] is None else f"{r['achieved_gbps']:.0f}",
                MISSING if r["intensity"] is None else f"{r['intensity']:.1f}",
                MISSING if r["roofline_pct"] is None else f"{r['roofline_pct']:.0f}%",
            ]
            t.add_row(*row)
        tot = rep.total
        t.add_section()
        t.add_row(
            *([""] if by == "layer" else []),
            "total",
            _ms(tot.time_ns),
            "100%",
            str(tot.kernels),
            si(tot.flops),
            si(tot.bytes_allocated),
            si(tot.peak_bytes),
            si(tot.io_bytes),
            "",
            "",
            "",
        )
        console.print(t)
        _render_phase_table(rep.phases, console)
    tot = rep.total
    line = f"span {_ms(rep.span_ns)}"
    if gpu:
        line += f" · kernel time {_ms(tot.time_ns)} · busy (union) {_ms(tot.busy_ns)}"
        line += f" · GPU busy {pct(rep.gpu_busy)}"
    else:
        line += f" · CPU self time {_ms(tot.time_ns)}"
    if tot.memcpy_count or tot.memset_count:
        line += (
            f" · memcpy {_ms(tot.memcpy_ns)} ({tot.memcpy_count}) · memset {_ms(tot.memset_ns)} "
            f"({tot.memset_count}), not in the component times"
        )
    if tot.peak_source == "running_sum":
        line += " · peak: running sum of \\[memory] bytes"
    if m.state_bytes is not None:
        line += f" · inference state {si(m.state_bytes)}/sequence"
    if rep.timing.ttft_ms is not None:
        line += f" · TTFT {duration(rep.timing.ttft_ms * 1e6)} (unprofiled)"
    if rep.timing.tpot_ms is not None:
        line += f" · TPOT {duration(rep.timing.tpot_ms * 1e6)} (unprofiled)"
    console.print(line)
    for extra in (phase_line(rep.phases), host_line(rep.host), memory_line(rep.memory_peak)):
        if extra:
            console.print(escape(extra))
    hta = rep.hta
    if hta:
        if hta.get("note"):
            console.print(f"HTA: {escape(hta['note'])}")
        else:
            console.print(
                f"HTA temporal breakdown: idle {hta['idle_pct']:.1f}% · compute {hta['compute_pct']:.1f}% "
                f"· non-compute {hta['non_compute_pct']:.1f}%"
            )
    for note in rep.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")


def _render_categories(rows: list[dict[str, Any]], console: Console) -> None:
    gpu_rows = any(r["gpu_time_ns"] is not None for r in rows)
    t = _table(
        caption=(
            "time: summed durations of the category's GPU events · busy: union of their intervals"
            if gpu_rows
            else "time: CPU self time of the category's events"
        )
    )
    t.add_column("category", no_wrap=True)
    for col in ("time", "share", "count") + (("busy",) if gpu_rows else ()):
        t.add_column(col, justify="right", no_wrap=True, min_width=len(col) + 1)
    for r in rows:
        ns = r["gpu_time_ns"] if gpu_rows else r["cpu_self_ns"]
        t.add_row(
            r["category"] or MISSING,
            _ms(ns),
            pct(r["share"]),
            str(r["count"]),
            *((_ms(r["busy_ns"]),) if gpu_rows else ()),
        )
    console.print(t)


def _render_streams(rows: list[dict[str, Any]], console: Console) -> None:
    t = _table(caption="time: summed durations on the stream (kernels + memcpy + memset) · busy: union of intervals")
    for col in ("device", "stream", "time", "share", "kernels", "kernel", "memcpy", "memset", "busy"):
        t.add_column(col, justify="left" if col in ("device", "stream") else "right", no_wrap=True)
    for r in rows:
        t.add_row(
            MISSING if r["device"] is None else str(r["device"]),
            MISSING if r["stream"] is None else str(r["stream"]),
            _ms(r["gpu_time_ns"]),
            pct(r["share"]),
            str(r["kernels"]),
            _ms(r["kernel_ns"]),
            _ms(r["memcpy_ns"]),
            _ms(r["memset_ns"]),
            _ms(r["busy_ns"]),
        )
    console.print(t)


def phase_line(phases: dict[str, Any] | None) -> str | None:
    """One line for the phase split of a trace with several forwards (docs/attribute.md)."""
    if not phases:
        return None
    parts = []
    pre, dec = phases.get("prefill"), phases.get("decode")
    if pre:
        parts.append(
            f"prefill (TTFT phase): span {_ms(pre['span_ns'])}, kernels {_ms(pre['kernel_ns'])}, "
            f"{pre['launches']} launches"
        )
    if dec:
        sp, kt = dec["step_span_ns"], dec["step_kernel_ns"]
        parts.append(
            f"decode: {dec['steps']} steps, span/step {_ms(sp['median'])} (p10 {_ms(sp['p10'])}, p90 "
            f"{_ms(sp['p90'])}), kernels/step {_ms(kt['median'])}, {dec['launches_per_step']['median']:.0f} "
            "launches/step"
        )
    return "phases: " + " · ".join(parts) if parts else None


def host_line(host: dict[str, Any] | None) -> str | None:
    """The host-bound verdict line (docs/attribute.md, "Host-bound verdict")."""
    if not host or not host.get("verdict"):
        return None
    return f"host: {host['verdict']}"


def _bytes(v: int | None) -> str:
    if v is None:
        return MISSING
    s = si(v)
    return f"{s[:-1]} {s[-1]}B" if s[-1].isalpha() else f"{s} B"


def memory_line(mp: dict[str, Any] | None, top: int = 4) -> str | None:
    """The memory-peak line (docs/attribute.md, "Memory peak"): what is live at the peak, by component."""
    if not mp:
        return None
    at = f" at {duration(mp['peak_at_ns'])}" if mp.get("peak_at_ns") is not None else ""
    comps = mp.get("by_component") or []
    parts = [f"{c['component']} {_bytes(c['bytes'])} ({c['top_op']})" for c in comps[:top]]
    if len(comps) > top:
        parts.append(f"{len(comps) - top} more {_bytes(sum(c['bytes'] for c in comps[top:]))}")
    line = f"memory peak {_bytes(mp['peak_bytes'])}{at}: " + (", ".join(parts) or "no allocation of the trace live")
    if mp.get("before_trace_live_bytes") is not None:
        line += f"; {_bytes(mp['before_trace_live_bytes'])} allocated before the trace"
    return line


def _render_phase_table(phases: dict[str, Any] | None, console: Console) -> None:
    """Per-phase component times of a trace split into prefill and decode steps (doc["phases"])."""
    if not phases:
        return
    pre, dec = phases.get("prefill"), phases.get("decode")
    t = _table(caption="per phase: summed kernel time (prefill: all prefill forwards; decode: mean per step)")
    t.add_column("component", no_wrap=True, min_width=13)
    if pre:
        for c in ("prefill ms", "share"):
            t.add_column(c, justify="right", no_wrap=True, min_width=len(c) + 1)
    if dec:
        for c in ("decode ms/step", "share "):
            t.add_column(c, justify="right", no_wrap=True, min_width=len(c) + 1)
    rows = {}
    for part in (pre, dec):
        for r in (part or {}).get("components", []):
            rows.setdefault(r["component"], []).append(r)
    for comp, rs in rows.items():
        cells = [comp]
        i = 0
        if pre:
            cells += [_ms(rs[i]["gpu_time_ns"]), pct(rs[i]["share"])]
            i += 1
        if dec:
            cells += [_ms(rs[i].get("gpu_time_ns_per_step", rs[i]["gpu_time_ns"])), pct(rs[i]["share"])]
        t.add_row(*cells)
    console.print(t)
