"""Render `tracekit report`: figures (PNG files), one self-contained offline HTML page (figures inline as
base64 PNG, tables as HTML, no scripts from anywhere), a Markdown version and a rich terminal summary.

Takes an `analyzers.run_report.ReportData`; computes nothing but layout.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import math
from pathlib import Path
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table
from tracekit.analyzers.components import COMPONENTS
from tracekit.reports.palette import COMPONENT_COLORS, VERDICT_COLORS
from tracekit.reports.units import MISSING, pct, ratio


@dataclasses.dataclass
class Figure:
    id: str
    title: str
    caption: str
    path: Path


@dataclasses.dataclass
class Section:
    id: str
    title: str
    intro: str  # one sentence: what it shows and how it was measured
    figures: list[Figure]
    tables: list[tuple[str, pl.DataFrame]]
    notes: list[str]


@dataclasses.dataclass
class Written:
    html: Path
    markdown: Path
    figures: list[Path]


# ---- figures ---------------------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight", facecolor="white")
    _plt().close(fig)
    return path


def _exp_label(exps: pl.DataFrame, run: str, arch: str, mode: str, graphs: bool, comp: str) -> str:
    if not exps.height:
        return comp
    r = exps.filter(
        (pl.col("run") == run)
        & (pl.col("arch") == arch)
        & (pl.col("mode") == mode)
        & (pl.col("graphs") == graphs)
        & (pl.col("component") == comp)
    )
    if not r.height:
        return comp
    row = r.row(0, named=True)
    e = row["tail_exponent"] if row["tail_exponent"] is not None else row["exponent"]
    return f"{comp} ∝ L^{e:.2f}"


def fig_scaling(data: Any, path: Path) -> Figure | None:
    """Per-component time vs seqlen (log-log), one panel per (run, mode, arch); manifest totals with p10–p90."""
    comps, tim, exps = data.components, data.timings, data.exponents
    keys = sorted(
        {(r["run"], r["mode"], r["arch"]) for r in tim.filter(pl.col("status") == "ok").iter_rows(named=True)}
        | {(r["run"], r["mode"], r["arch"]) for r in comps.iter_rows(named=True)},
        key=lambda k: (k[0], 0 if k[1] == "prefill" else 1, k[2]),
    )
    if not keys:
        return None
    plt = _plt()
    archs = sorted({k[2] for k in keys})
    rows = sorted({(k[0], k[1]) for k in keys}, key=lambda k: (k[0], 0 if k[1] == "prefill" else 1))
    fig, axes = plt.subplots(len(rows), len(archs), figsize=(5.2 * len(archs), 3.6 * len(rows)), squeeze=False)
    for i, (run, mode) in enumerate(rows):
        for j, arch in enumerate(archs):
            ax = axes[i][j]
            c = comps.filter((pl.col("run") == run) & (pl.col("mode") == mode) & (pl.col("arch") == arch))
            for graphs in sorted(set(c["graphs"].to_list())):
                for comp in COMPONENTS:
                    g = c.filter((pl.col("component") == comp) & (pl.col("graphs") == graphs)).sort("seqlen")
                    if g.height:
                        ax.plot(
                            g["seqlen"],
                            g["time_ms"],
                            marker="o",
                            ms=3,
                            color=COMPONENT_COLORS[comp],
                            ls="--" if graphs else "-",
                            label=_exp_label(exps, run, arch, mode, graphs, comp),
                        )
            t = tim.filter(
                (pl.col("run") == run)
                & (pl.col("mode") == mode)
                & (pl.col("arch") == arch)
                & (pl.col("status") == "ok")
            )
            for graphs in sorted(set(t["graphs"].to_list())):
                g = t.filter(pl.col("graphs") == graphs).sort("seqlen")
                if not g.height:
                    continue
                lbl = "total (manifest median" + (", CUDA graphs)" if graphs else ")")
                ax.plot(
                    g["seqlen"],
                    g["median_ms"],
                    color="black",
                    ls=":" if graphs else "-",
                    lw=1.2,
                    marker="x",
                    ms=4,
                    label=lbl,
                )
                if g["p10_ms"].null_count() == 0:
                    ax.fill_between(g["seqlen"], g["p10_ms"], g["p90_ms"], color="black", alpha=0.12, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            unit = "ms per step" if mode == "decode" else "ms"
            ax.set_title(f"{arch} {mode} — {run}", fontsize=9)
            ax.set_xlabel("sequence length L")
            ax.set_ylabel(unit)
            ax.grid(True, which="both", alpha=0.25)
            if ax.lines:
                ax.legend(fontsize=6.5, loc="upper left", frameon=False)
            if not c.height and t.height:
                ax.text(
                    0.98,
                    0.03,
                    "no traces: manifest timings only",
                    transform=ax.transAxes,
                    ha="right",
                    fontsize=7,
                    color="#555",
                )
    fig.tight_layout()
    _save(fig, path)
    return Figure(
        "fig-scaling",
        "Component time vs sequence length",
        "Lines per component from the attributed traces (exponent: least squares on log time vs log L over the "
        "upper half of the lengths); black: the manifest's median over the timed repeats, band p10–p90.",
        path,
    )


def fig_roofline(data: Any, path: Path) -> Figure | None:
    pts = data.roofline
    if not pts.height:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    markers = {"mamba1": "o", "mamba2": "s"}
    for comp in COMPONENTS:
        for arch, mk in markers.items():
            g = pts.filter((pl.col("component") == comp) & (pl.col("arch") == arch))
            if g.height:
                sizes = [12 + 10 * math.log2(max(s, 64) / 64) for s in g["seqlen"].to_list()]
                ax.scatter(
                    g["intensity"],
                    g["achieved_tflops"],
                    s=sizes,
                    marker=mk,
                    color=COMPONENT_COLORS[comp],
                    alpha=0.75,
                    edgecolor="black",
                    linewidth=0.3,
                    label=f"{comp} ({arch})",
                )
    peaks = pts.filter(pl.col("peak_gbps").is_not_null()).select("peak_name", "peak_gbps", "peak_tflops").unique()
    lo, hi = max(pts["intensity"].min() / 3, 1e-3), pts["intensity"].max() * 3
    for name, bw, tf in peaks.iter_rows():
        hi = max(hi, tf * 1e3 / bw * 3)
        xs = [lo * (hi / lo) ** (k / 200) for k in range(201)]
        ax.plot(xs, [min(tf, x * bw / 1e3) for x in xs], color="black", lw=1.2)
        ax.text(hi, tf, f"{name}: {tf:g} TFLOP/s, {bw:g} GB/s", ha="right", va="bottom", fontsize=7)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / minimal byte moved)")
    ax.set_ylabel("achieved TFLOP/s")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=6.5, ncols=2, frameon=False, loc="lower right")
    if not peaks.height:
        ax.set_title("device peak unknown (CPU run): points only", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return Figure(
        "fig-roofline",
        "Roofline",
        "Each component at each length (marker size grows with L): analytic FLOPs / kernel time against "
        "FLOPs / minimal bytes moved, under the device's spec-sheet roofline.",
        path,
    )


def fig_pruning(data: Any, path: Path) -> Figure | None:
    cmp = data.compare.filter(pl.col("status") == "ok") if data.compare.height else data.compare
    if not cmp.height:
        return None
    plt = _plt()
    panels = sorted({(r["source"], r["mode"]) for r in cmp.iter_rows(named=True)})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.6), squeeze=False)
    for ax, (src, mode) in zip(axes[0], panels, strict=True):
        g = cmp.filter((pl.col("source") == src) & (pl.col("mode") == mode))
        for (seqlen, graphs, variant), s in g.group_by(["seqlen", "graphs", "variant"], maintain_order=True):
            if variant == "dense":
                continue
            dense = g.filter(
                (pl.col("variant") == "dense") & (pl.col("seqlen") == seqlen) & (pl.col("graphs") == graphs)
            )
            s = pl.concat([dense, s]).sort("ratio")
            lbl = f"{variant} L={seqlen}" + (" graphs" if graphs else "")
            (line,) = ax.plot(
                s["ratio"], s["median_ms"], marker="o", ls="-" if variant == "physical" else "--", label=lbl
            )
            if s["p10_ms"].null_count() == 0:
                ax.fill_between(s["ratio"], s["p10_ms"], s["p90_ms"], color=line.get_color(), alpha=0.15, lw=0)
            for r, ms, sp in zip(s["ratio"], s["median_ms"], s["speedup"], strict=True):
                if r > 0 and sp is not None:
                    ax.annotate(ratio(sp), (r, ms), fontsize=7, xytext=(4, 2), textcoords="offset points")
        ax.set_yscale("log")
        ax.set_title(f"{src} — {mode}", fontsize=9)
        ax.set_xlabel("pruning ratio r")
        ax.set_ylabel("median latency (ms)")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    _save(fig, path)
    bands = (
        "p10–p90 bands from the variants' manifests"
        if cmp["p10_ms"].null_count() < cmp.height
        else ("no p10–p90 bands: the compare results hold medians only")
    )
    return Figure(
        "fig-pruning",
        "Latency vs pruning ratio",
        f"Median latency of the dense model (r = 0) and each pruned variant, speedup annotated; {bands}.",
        path,
    )


def _panels(plt: Any, frame: pl.DataFrame) -> tuple[Any, list[tuple[Any, str]]]:
    """A grid of up to 3 panels a row, one per `source` of `frame` (in order): (figure, [(axes, source)])."""
    sources = list(dict.fromkeys(frame["source"].to_list()))
    ncol = min(3, len(sources))
    nrow = math.ceil(len(sources) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.3 * nrow), squeeze=False)
    for k in range(len(sources), nrow * ncol):  # the grid's unused panels
        axes[k // ncol][k % ncol].axis("off")
    return fig, [(axes[k // ncol][k % ncol], src) for k, src in enumerate(sources)]


def fig_accuracy(data: Any, path: Path) -> Figure | None:
    acc = data.accuracy
    if not acc.height:
        return None
    plt = _plt()
    fig, panels = _panels(plt, acc)
    for ax, src in panels:
        g = acc.filter(pl.col("source") == src)
        for (method,), s in g.group_by(["method"], maintain_order=True):
            s = s.sort("ratio")
            ax.plot(s["ratio"], s["value"], marker="o", ms=3, label=method, lw=2 if method == "delta" else 1)
        metric = g["metric"][0]
        ax.set_title(f"{src} ({g['arch'][0]}, {g['task'][0]})", fontsize=9)
        ax.set_xlabel("pruning ratio r")
        ax.set_ylabel("accuracy" if metric == "acc" else "perplexity (lower is better)")
        if metric == "ppl":
            ax.set_yscale("log")
        ax.axvspan(0, 0.3, color="#1a7f37", alpha=0.06)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    _save(fig, path)
    return Figure(
        "fig-accuracy",
        "Accuracy vs pruning ratio per scoring method",
        "Each scoring method's curve from the prune accuracy results (physical pruning of the trained model, "
        "no fine-tuning); shaded: the paper's 'safe' region r ≤ 0.3.",
        path,
    )


def _calibration(cal: dict[str, Any]) -> str:
    if not cal:
        return "no calibration data: a data-free method"
    return "calibration " + ", ".join(f"{k} {v}" for k, v in cal.items())


def fig_heatmaps(data: Any, fig_dir: Path) -> list[Figure]:
    """One state-importance heatmap (paper Fig. 3) per prune score file."""
    from tracekit.reports.heatmap import save_heatmap

    figs = []
    for k, (label, ss) in enumerate(data.scores):
        m = ss.model
        n_layer, groups, n = tuple(ss.scores.shape)
        path = save_heatmap(ss.scores, fig_dir / f"heatmap_{k}.png", f"{label}: {ss.method} scores ({m.arch})")
        src = ss.source.get("pretrained") or (
            f"random weights, seed {ss.source['seed']}" if "seed" in ss.source else ""
        )
        figs.append(
            Figure(
                f"fig-heatmap-{k}",
                f"State importance: {label}",
                f"The `{ss.method}` score of every SSM state from `tracekit prune score` "
                f"({_calibration(ss.calibration)}) "
                f"for a {m.arch} model of {n_layer} layers × {groups} group{'s' if groups > 1 else ''} × "
                f"d_state {n}, d_model {m.d_model}" + (f", {src}" if src else "") + "; each layer's row is divided "
                "by its maximum (top-k pruning keeps the highest-scored states within a layer).",
                path,
            )
        )
    return figs


def fig_tradeoff(data: Any, path: Path) -> Figure | None:
    """Accuracy vs speedup joined by pruning ratio (paper Fig. 6), one panel per accuracy result."""
    t = data.tradeoff
    if not t.height:
        return None
    plt = _plt()
    fig, panels = _panels(plt, t)
    for ax, src in panels:
        g = t.filter(pl.col("source") == src)
        for (method,), s in g.group_by(["method"], maintain_order=True):
            s = s.sort("ratio")
            ax.plot(s["speedup"], s["value"], marker="o", ms=3, label=method, lw=2 if method == "delta" else 1)
        for r, sp in sorted(set(zip(g["ratio"], g["speedup"], strict=True))):
            ax.axvline(sp, color="#999999", lw=0.6, ls=":")
            ax.annotate(
                f"r = {r:g}",
                (sp, 0.03),
                xycoords=ax.get_xaxis_transform(),
                fontsize=7,
                xytext=(3, 0),
                textcoords="offset points",
            )
        metric = g["metric"][0]
        ax.set_title(f"{src} ({g['task'][0]})", fontsize=9)
        ax.set_xlabel("speedup over dense (×)")
        ax.set_ylabel("accuracy" if metric == "acc" else "perplexity (lower is better)")
        lo, hi = g["speedup"].min(), g["speedup"].max()
        pad = max(0.05, 0.15 * (hi - lo))
        ax.set_xlim(lo - pad, hi + pad)
        ax.grid(True, alpha=0.25)
        ax.legend(fontsize=6.5, frameon=False)
    fig.tight_layout()
    _save(fig, path)
    ratios = ", ".join(f"{r:g}" for r in data.tradeoff_ratios)
    return Figure(
        "fig-tradeoff",
        "Accuracy–latency trade-off",
        f"Accuracy (y) against speedup over the dense model (x), one line per accuracy result × scoring method, "
        f"points labelled with their pruning ratio; speedups from {data.tradeoff_point}. Accuracy and latency come "
        "from different models — the accuracy from small trained models, the latency from the prune-compare runs "
        f"(130m shapes, random weights) — joined only by the pruning ratio, at the ratios both measured: r = {ratios}.",
        path,
    )


# ---- sections ----------------------------------------------------------------------------------------------
def _fmt_df(df: pl.DataFrame, digits: int = 3) -> pl.DataFrame:
    out = []
    for name, dt in df.schema.items():
        col = df[name]
        if dt.is_float():
            out.append(pl.Series(name, [_num(v, digits) for v in col.to_list()], dtype=pl.Utf8))
        else:
            out.append(pl.Series(name, ["" if v is None else str(v) for v in col.to_list()], dtype=pl.Utf8))
    return pl.DataFrame(out)


def _num(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    return f"{v:.{digits}g}"


def sections(data: Any, fig_dir: Path) -> list[Section]:
    fig_dir.mkdir(parents=True, exist_ok=True)
    dev = ", ".join(data.devices) or "unknown device"
    out: list[Section] = []

    f = fig_scaling(data, fig_dir / "scaling.png")
    exps = data.exponents.select(
        "run",
        "arch",
        "mode",
        "graphs",
        "component",
        "exponent",
        "r2",
        "fit_from",
        "fit_to",
        "tail_exponent",
        "tail_r2",
        "tail_from",
    )
    xo = data.crossovers
    notes = list(data.notes)
    if data.exponents.height and data.exponents["points"].max() < 3:
        notes.append("each series has only 2 lengths: an exponent is the slope between two points (no R²)")
    if data.bottlenecks.height:
        if xo.height:
            for r in xo.iter_rows(named=True):
                notes.append(
                    f"{r['arch']} {r['mode']}{' (graphs)' if r['graphs'] else ''}: the largest component changes "
                    f"from {r['before']} to {r['after']} between L = {r['from_seqlen']} and L = {r['seqlen']}"
                )
        else:
            for (arch, mode), g in data.bottlenecks.group_by(["arch", "mode"], maintain_order=True):
                notes.append(f"{arch} {mode}: {g['component'][0]} is the largest component at every measured length")
    out.append(
        Section(
            "scaling",
            "Scaling with sequence length (paper Fig. 2)",
            f"Per-component latency vs sequence length on {dev}: the time of each profiled pass attributed to the "
            "Mamba block components (GPU kernel time; CPU self time on CPU runs; decode: per step), with the fitted "
            "log-log exponent per component.",
            [f] if f else [],
            [("Fitted exponents (all lengths; tail = upper half of the lengths)", exps)] if exps.height else [],
            notes if exps.height else [*notes, "one length per series: no exponent to fit"],
        )
    )
    res = data.resources
    out.append(
        Section(
            "resources",
            "Resources per component (paper Table 1)",
            f"FLOPs (analytic, whole model), bytes allocated (sum of allocations), peak live bytes, minimal I/O "
            f"(bytes each kernel must read and write), achieved GB/s (I/O / kernel time) and intensity "
            f"(FLOPs / I/O) per component at chosen lengths, from the attributed traces on {dev}.",
            [],
            [("Per component", res)] if res.height else [],
            [] if res.height else ["no attributed traces among the inputs"],
        )
    )
    f = fig_roofline(data, fig_dir / "roofline.png")
    hb = data.host_bound
    hb_notes = []
    if hb.height:
        bound = hb.filter(pl.col("host_bound"))
        if bound.height:
            hb_notes.append(
                "host-bound (GPU busy < 50% of the traced span): "
                + ", ".join(
                    f"{r['arch']} {r['mode']} L={r['seqlen']} ({100 * r['gpu_busy']:.0f}%)"
                    for r in bound.iter_rows(named=True)
                )
            )
        else:
            hb_notes.append("no point is host-bound: the GPU was busy ≥ 50% of every traced span")
    out.append(
        Section(
            "roofline",
            "Roofline",
            f"Each component as a point (arithmetic intensity, achieved FLOP/s) on {dev}, under the device's "
            "roofline where its peak is known (spec-sheet bandwidth and dense 16-bit tensor peak; none for CPUs); "
            "a point far below its roof is launch- or latency-bound.",
            [f] if f else [],
            [],
            hb_notes if f else ["no component with both FLOPs and I/O among the inputs"],
        )
    )
    f = fig_pruning(data, fig_dir / "pruning.png")
    heat = fig_heatmaps(data, fig_dir)
    prune_notes = [] if f else ["no prune-compare results among the inputs"]
    if not heat:
        prune_notes.append(
            "no prune score files (`tracekit prune score` .pt) among the inputs: no state-importance heatmap"
        )
    out.append(
        Section(
            "pruning",
            "Pruning: speedup, memory and state importance (paper Table 2, Fig. 3, 5)",
            "Speedup (dense median / pruned median) and peak-memory and inference-state reduction per length × "
            f"ratio on {_compare_devices(data, dev)}, from `tracekit prune compare` runs (each variant collected "
            "and timed through the same pipeline).",
            ([f] if f else []) + heat,
            [("Speedup and memory per length × ratio", data.speedups)] if data.speedups.height else [],
            prune_notes,
        )
    )
    f = fig_accuracy(data, fig_dir / "accuracy.png")
    acc_notes = []
    ft = fig_tradeoff(data, fig_dir / "tradeoff.png")
    if data.accuracy.height and not ft:
        acc_notes.append(f"accuracy–latency trade-off (paper Fig. 6) not drawn: {data.tradeoff_reason}")
    out.append(
        Section(
            "accuracy",
            "Accuracy vs pruning ratio and vs speedup (paper Fig. 4, 6)",
            "Task accuracy (or perplexity) of the physically pruned model per ratio and scoring method, from "
            "`prune_accuracy_*.json` results" + (f" (measured on {_machines(data)})." if data.accuracy.height else "."),
            [x for x in (f, ft) if x],
            [],
            acc_notes if f else ["no prune accuracy results among the inputs"],
        )
    )
    out.append(
        Section(
            "claims",
            "Paper vs measured",
            "The PerfMamba paper's checkable claims (analyzers/rules/paper_claims.toml) evaluated against these runs: "
            "holds, does not hold, or not measured here with the reason.",
            [],
            [("Claims", data.claims_frame)],
            [],
        )
    )
    return out


def _compare_devices(data: Any, dev: str) -> str:
    if not data.compare.height:
        return dev
    names = sorted({d for d in data.compare["device"].to_list() if d})
    if names == ["cuda"]:
        gpus = [d for d in data.devices if "nvidia" in d.lower() or "cuda" in d.lower()]
        return ", ".join(gpus) if gpus else "a CUDA GPU (name not recorded in compare.json)"
    return ", ".join(names) or dev


def _machines(data: Any) -> str:
    if not data.accuracy.height:
        return MISSING
    return "; ".join(sorted({m for m in data.accuracy["machine"].to_list() if m})) or "an unrecorded machine"


# ---- HTML / Markdown -------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#1f2328;
padding:0 1em}h1{font-size:1.6em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
p.intro{color:#444}table{border-collapse:collapse;font-size:12px;margin:.6em 0 1.2em}th,td{border:1px solid #d0d7de;
padding:3px 6px;text-align:left;vertical-align:top}th{background:#f6f8fa}td.num{text-align:right;
font-variant-numeric:tabular-nums}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#555}.verdict{font-weight:600}ul.notes li{font-size:13px;color:#444}
code{background:#f6f8fa;padding:0 3px}
"""


def _html_table(df: pl.DataFrame, section: str) -> str:
    nums = {n for n, dt in df.schema.items() if dt.is_numeric()}
    f = _fmt_df(df)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in f.columns)
    body = []
    for row in f.iter_rows(named=True):
        cells = []
        for c, v in row.items():
            style = ""
            if section == "claims" and c == "verdict":
                style = f' class="verdict" style="color:{VERDICT_COLORS.get(v, "#000")}"'
            elif c in nums:
                style = ' class="num"'
            cells.append(f"<td{style}>{html.escape(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: Any, secs: list[Section], title: str) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><b>Device:</b> {html.escape(', '.join(data.devices) or 'unknown')}</p>",
        '<ul class="notes">' + "".join(f"<li>{html.escape(x)}</li>" for x in data.inputs) + "</ul>",
        "<nav><p>" + " · ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in secs) + "</p></nav>",
    ]
    for s in secs:
        parts.append(f'<section id="{s.id}"><h2>{html.escape(s.title)}</h2><p class="intro">{html.escape(s.intro)}</p>')
        for f in s.figures:
            b64 = base64.b64encode(f.path.read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img id="{f.id}" class="report-figure" alt="{html.escape(f.title)}" '
                f'src="data:image/png;base64,{b64}"><figcaption><b>{html.escape(f.title)}.</b> '
                f"{html.escape(f.caption)}</figcaption></figure>"
            )
        if s.notes:
            parts.append('<ul class="notes">' + "".join(f"<li>{html.escape(n)}</li>" for n in s.notes) + "</ul>")
        for cap, df in s.tables:
            parts.append(f"<h3>{html.escape(cap)}</h3>" + _html_table(df, s.id))
        parts.append("</section>")
    parts.append(
        "<footer><p style='font-size:11px;color:#777'>Written by <code>tracekit report</code>; offline, "
        "no external resources.</p></footer></body></html>"
    )
    return "\n".join(parts)


def _md_table(df: pl.DataFrame) -> str:
    f = _fmt_df(df)
    lines = ["| " + " | ".join(f.columns) + " |", "|" + "---|" * len(f.columns)]
    for row in f.iter_rows():
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def render_markdown(data: Any, secs: list[Section], title: str, out_dir: Path) -> str:
    lines = [f"# {title}", "", f"Device: {', '.join(data.devices) or 'unknown'}", ""]
    lines += [f"- {x}" for x in data.inputs] + [""]
    for s in secs:
        lines += [f"## {s.title}", "", s.intro, ""]
        for f in s.figures:
            lines += [f"![{f.title}]({f.path.relative_to(out_dir).as_posix()})", "", f"*{f.title}.* {f.caption}", ""]
        lines += [f"- {n}" for n in s.notes] + ([""] if s.notes else [])
        for cap, df in s.tables:
            lines += [f"### {cap}", "", _md_table(df), ""]
    return "\n".join(lines)


def write_report(data: Any, out_dir: Path, title: str = "tracekit report") -> Written:
    """Write report.html, report.md and figures/*.png under `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    secs = sections(data, out_dir / "figures")
    page = out_dir / "report.html"
    page.write_text(render_html(data, secs, title), encoding="utf-8")
    md = out_dir / "report.md"
    md.write_text(render_markdown(data, secs, title, out_dir), encoding="utf-8")
    return Written(page, md, [f.path for s in secs for f in s.figures])


# ---- terminal --------------------------------------------------------------------------------------------
def print_summary(data: Any, written: Written, console: Console | None = None) -> None:
    """A short terminal summary: devices, scaling exponents, bottleneck changes, pruning, claims, paths."""
    console = console or Console()
    console.rule("[bold]tracekit report")
    console.print(f"device: {', '.join(data.devices) or 'unknown'}")
    for line in data.inputs:
        console.print(f"  {line}", highlight=False)
    for n in data.notes:
        console.print(f"[yellow]note:[/] {n}", highlight=False)
    ex = data.exponents.filter(pl.col("component") != "other") if data.exponents.height else data.exponents
    if ex.height:
        t = Table(title="time ∝ L^k (tail fit: upper half of the lengths)", header_style="bold")
        for c in ("arch", "mode", "component", "k", "R²", "fit range"):
            t.add_column(c, justify="right" if c in ("k", "R²") else "left")
        for r in ex.iter_rows(named=True):
            tail = r["tail_exponent"] is not None
            k = r["tail_exponent"] if tail else r["exponent"]
            r2 = r["tail_r2"] if tail else r["r2"]
            lo = r["tail_from"] if tail else r["fit_from"]
            mode = r["mode"] + (" graphs" if r["graphs"] else "")
            r2s = MISSING if r2 is None else f"{r2:.2f}"
            t.add_row(r["arch"], mode, r["component"], f"{k:.2f}", r2s, f"{lo}…{r['fit_to']}")
        console.print(t)
    for r in data.crossovers.iter_rows(named=True):
        console.print(f"bottleneck change: {r['arch']} {r['mode']}: {r['before']} → {r['after']} at L = {r['seqlen']}")
    if data.speedups.height:
        t = Table(title="pruning", header_style="bold")
        for c in ("source", "mode", "L", "variant", "r", "speedup", "mem −"):
            t.add_column(c)
        for r in data.speedups.iter_rows(named=True):
            t.add_row(
                r["source"],
                r["mode"] + (" graphs" if r["graphs"] else ""),
                str(r["seqlen"]),
                r["variant"],
                f"{r['ratio']:g}",
                ratio(r["speedup"]),
                pct(r["mem_reduction"]),
            )
        console.print(t)
    t = Table(title="paper vs measured", header_style="bold")
    for c in ("claim", "verdict", "measured"):
        t.add_column(c, overflow="fold")
    for c in data.claims:
        color = {"holds": "green", "does not hold": "red"}.get(c.verdict, "dim")
        measured = c.measured + (f" ({c.reason})" if c.reason and c.verdict != "holds" else "")
        t.add_row(c.id, f"[{color}]{c.verdict}[/]", measured)
    console.print(t)
    console.print(f"html:     {written.html}", highlight=False, soft_wrap=True)
    console.print(f"markdown: {written.markdown}", highlight=False, soft_wrap=True)
    console.print(f"figures:  {', '.join(str(p) for p in written.figures)}", highlight=False, soft_wrap=True)
