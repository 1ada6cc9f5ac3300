"""Matplotlib figure of `tracekit attribute` results: one stacked bar of component shares per trace."""

from __future__ import annotations

from pathlib import Path

from tracekit.analyzers.components import COMPONENTS
from tracekit.analyzers.report_types import AttributeReport, row_time_ns
from tracekit.reports.palette import COMPONENT_COLORS
from tracekit.reports.units import duration


def plot_shares(reports: list[AttributeReport], out: Path, title: str | None = None) -> Path:
    """Write a PNG/SVG/PDF (by suffix) of each trace's time split by component; returns the path.

    Each segment is labelled with its share and its absolute time, each bar with its total; the title names
    the device(s) and `title` (the run: a run directory or trace files).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{rep.trace or rep.trace_id}\n{duration(rep.total.time_ns)}" for rep in reports]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(reports) + 1.6))
    left = [0.0] * len(reports)
    for comp in COMPONENTS:
        shares, times = [], []
        for rep in reports:
            rows = [r for r in rep.rows if r.get("component") == comp]
            shares.append(100 * sum((r.get("share") or 0) for r in rows))
            times.append(sum(row_time_ns(r) for r in rows))
        ax.barh(labels, shares, left=left, color=COMPONENT_COLORS[comp], label=comp)
        for i, s in enumerate(shares):
            if s < 5:
                continue
            text = f"{s:.0f}%\n{duration(times[i])}" if s >= 9 else f"{s:.0f}%"  # too narrow for two lines
            ax.text(left[i] + s / 2, i, text, ha="center", va="center", fontsize=7)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    source = {str(rep.time_source) for rep in reports}
    ax.set_xlabel("% of " + ("GPU kernel time" if source == {"gpu"} else "time (GPU kernels or CPU self time)"))
    ax.set_xlim(0, 100)
    devices = sorted({str(rep.device or "unknown device") for rep in reports})
    ax.set_title(" · ".join([", ".join(devices), *([title] if title else [])]), fontsize=9, pad=34)
    ax.invert_yaxis()
    ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out
