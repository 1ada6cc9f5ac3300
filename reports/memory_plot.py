"""Matplotlib figure of the memory over a trace: live bytes stacked by component, the peak marked.

Numbers come from analyzers/memory_peak.py (`MemoryPeak.timeline`); this module only draws them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracekit.analyzers.components import COMPONENTS
from tracekit.analyzers.memory_peak import BEFORE
from tracekit.reports.palette import COMPONENT_COLORS, NOT_A_COMPONENT


def stacks(mp: Any) -> tuple[list[float], dict[str, list[int]]]:
    """(times in ms from the first event, live bytes per layer after each event): the layers are
    "before trace" (memory allocated before the trace still live, when Total Allocated is recorded)
    and each component (its in-trace allocations still live). The layers add up to the peak's curve."""
    tl = mp.timeline
    t0 = tl["ts_ns"][0] if mp.peak_at_ns is None else mp.peak_ts_ns - mp.peak_at_ns
    xs = [(t - t0) / 1e6 for t in tl["ts_ns"]]
    layers: dict[str, list[int]] = {}
    if tl["before_live"].null_count() == 0:
        layers[BEFORE] = tl["before_live"].to_list()
    running = dict.fromkeys(COMPONENTS, 0)
    per = {c: [] for c in COMPONENTS}
    for b, who in zip(tl["bytes"], tl["owner"], strict=True):
        if who in running:
            running[who] += b
        for c in COMPONENTS:
            per[c].append(running[c])
    layers.update({c: v for c, v in per.items() if any(v)})
    return xs, layers


def plot_memory(items: list[tuple[str, Any]], out: Path, title: str | None = None) -> Path:
    """Write a PNG/SVG/PDF (by suffix): one panel per (trace name, MemoryPeak), live GB over time (ms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(items), 1, figsize=(9, 3.2 * len(items)), squeeze=False)
    for ax, (name, mp) in zip(axes[:, 0], items, strict=True):
        xs, layers = stacks(mp)
        colors = [COMPONENT_COLORS.get(k, NOT_A_COMPONENT) for k in layers]
        ys = [[v / 1e9 for v in layer] for layer in layers.values()]
        ax.stackplot(xs, *ys, labels=list(layers), colors=colors, step="post", linewidth=0)
        tot = [sum(col) for col in zip(*ys, strict=True)] if ys else []
        ax.step(xs, tot, where="post", color="black", linewidth=0.6)
        px = xs[0] + (mp.peak_ts_ns - mp.timeline["ts_ns"][0]) / 1e6
        ax.axvline(px, color="#c44e52", linestyle="--", linewidth=0.8)
        right = px > xs[0] + 0.6 * (xs[-1] - xs[0])  # label on the side with room
        ax.annotate(
            f"peak {mp.peak_bytes / 1e9:.3g} GB at {px:.3g} ms",
            (px, 0.97),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if right else 4, 0),
            textcoords="offset points",
            ha="right" if right else "left",
            va="top",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
            fontsize=8,
            color="#c44e52",
        )
        ax.set_ylim(0, max([*tot, mp.peak_bytes / 1e9]) * 1.1 or 1)
        ax.set_xlabel("ms from trace start")
        src = "allocator Total Allocated" if mp.source == "total_allocated" else "rebuilt live sum"
        ax.set_ylabel("live GB")
        ax.set_title(f"{name} · device {mp.device_id} · {src}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out
