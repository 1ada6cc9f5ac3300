"""Matplotlib figure of `tracekit attribute` results: one stacked bar of component shares per trace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekit.analyzers.components import COMPONENTS

_COLORS = {
    "rmsnorm": "#8c8c8c",
    "gated_mlp": "#4c72b0",
    "conv": "#dd8452",
    "ssm": "#c44e52",
    "final_linear": "#55a868",
    "other": "#cccccc",
}


def plot_shares(docs: list[dict[str, Any]], out: Path) -> Path:
    """Write a PNG/SVG/PDF (by suffix) of each trace's time split by component; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(d.get("trace") or d["trace_id"]) for d in docs]
    fig, ax = plt.subplots(figsize=(9, 0.6 * len(docs) + 1.6))
    left = [0.0] * len(docs)
    for comp in COMPONENTS:
        shares = []
        for d in docs:
            rows = [r for r in d["components"] if r.get("component") == comp]
            shares.append(100 * sum((r.get("share") or 0) for r in rows))
        ax.barh(labels, shares, left=left, color=_COLORS[comp], label=comp)
        for i, s in enumerate(shares):
            if s >= 6:
                ax.text(left[i] + s / 2, i, f"{s:.0f}%", ha="center", va="center", fontsize=8)
        left = [a + b for a, b in zip(left, shares, strict=True)]
    source = {d["time_source"] for d in docs}
    ax.set_xlabel("% of " + ("GPU kernel time" if source == {"gpu"} else "time (GPU kernels or CPU self time)"))
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.legend(ncols=3, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False, fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out
