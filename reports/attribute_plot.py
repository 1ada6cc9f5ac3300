"""Matplotlib figure of `tracekit attribute` results: one stacked bar of component shares per trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekit.analyzers.components import COMPONENTS
from tracekit.reports.palette import COMPONENT_COLORS
from tracekit.reports.units import duration


def plot_shares(docs: list[dict[str, Any]], out: Path, title: str | None = None) -> Path:
    """Write a PNG/SVG/PDF (by suffix) of each trace's time split by component; returns the path.

    Each segment is labelled with its share and its absolute time, each bar with its total; the title names
    the device(s) and `title` (the run: a run directory or trace files).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{d.get('trace') or d['trace_id']}\n{duration(_total_ns(d))}" for d in docs]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(docs) + 1.6))
    left = [0.0] * len(docs)
    for comp in COMPONENTS:
        shares, times = [], []
        for d in docs:
            rows = [r for r in d["components"] if r.get("component") == comp]
            shares.append(100 * sum((r.get("share") or 0) for r in rows))
            times.append(sum(_row_ns(r) for r in rows))
        ax.barh(labels, shares, left=left, color=COMPONENT_COLORS[comp], label=comp)
        for i, s in enumerate(shares):
            if s < 5:
                continue
            text = f"{s:.0f}%\n{duration(times[i])}" if s >= 9 else f"{s:.0f}%"  # too narrow for two lines
            ax.text(left[i] + s / 2, i, text, ha="center", va="center", fontsize=7)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    source = {d["time_source"] for d in docs}
    ax.set_xlabel("% of " + ("GPU kernel time" if source == {"gpu"} else "time (GPU kernels or CPU self time)"))
    ax.set_xlim(0, 100)
    devices = sorted({str(d.get("device") or "unknown device") for d in docs})
    ax.set_title(" · ".join([", ".join(devices), *([title] if title else [])]), fontsize=9, pad=34)
    ax.invert_yaxis()
    ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def _row_ns(r: dict[str, Any]) -> int:
    v = r.get("gpu_time_ns")
    return int(v if v is not None else r.get("cpu_self_ns") or 0)


def _total_ns(d: dict[str, Any]) -> int:
    return int((d.get("total") or {}).get("time_ns") or 0)
