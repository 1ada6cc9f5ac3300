"""`prune compare`: dense / masked / physical × ratios through the same collect → ingest → attribute pipeline.

Each variant is built in memory from one dense model (same weights, same scores), handed to
`tracekit.collectors.sweep.run_collect` (so timing, warm-up, CUDA graphs and traces are exactly those of
`tracekit collect`), and every trace is ingested and attributed by `tracekit.pipeline.attribute_run`, so the
component breakdown shows *where* the time went. The result is the paper's Table 2 equivalent: speedup
and memory reduction vs dense per (mode, seqlen, ratio), plus latency-vs-ratio plots (its Fig. 5).
"""

from __future__ import annotations

import dataclasses
import platform
from pathlib import Path
from typing import Any

from torch import nn

from tracekit.artifacts.compare import CompareResult, read_plan, write_plan
from tracekit.errors import UsageError
from tracekit.model_config import ModelConfig
from tracekit.progress import ProgressEvent, ProgressFn, Stage
from tracekit.prune.checkpoints import build_model
from tracekit.prune.scoring import check_same_shape, compute_scores, load_scores
from tracekit.prune.steps import prune_model

DATA_FREE = ("magnitude", "random")


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"{flag}: expected a comma list of numbers, not {text!r}") from None
    if not vals:
        raise UsageError(f"{flag}: empty list")
    return vals


def to_backend(model: nn.Module, cfg: ModelConfig, backend: str, device: str, dtype: str, seed: int) -> nn.Module:
    """The hf model as the collect backend wants it (mamba-ssm: rebuilt and loaded, only names differ)."""
    from tracekit.collectors.backends import DTYPES
    from tracekit.collectors.backends import build_model as build_backend

    if backend == "hf":
        return model.to(device=device, dtype=DTYPES[dtype]).eval()
    target = build_backend(cfg, backend, device, DTYPES[dtype], seed)
    sd = {
        ("backbone.embedding." + k[len("backbone.embeddings.") :] if k.startswith("backbone.embeddings.") else k): v
        for k, v in model.state_dict().items()
    }
    own = target.state_dict()
    sd = {k: v for k, v in sd.items() if k in own}
    missing = [k for k in own if k not in sd]
    if missing:
        raise UsageError(f"cannot map weights to {backend}: missing {missing[:3]}")
    target.load_state_dict(sd, strict=True)
    return target.eval()


def _variants(variants: list[str], ratios: list[float]) -> list[tuple[str, float]]:
    bad = [v for v in variants if v not in ("masked", "physical")]
    if bad:
        raise UsageError(f"--variants: unknown {bad[0]!r}; choose from masked, physical")
    for r in ratios:
        if not 0 <= r < 1:
            raise UsageError(f"--ratios: {r} is outside [0, 1)")
    return [("dense", 0.0)] + [(v, r) for v in variants for r in ratios]


def run_compare(
    *,
    arch: str,
    cfg: ModelConfig,
    method: str,
    ratios: list[float],
    variants: list[str],
    seqlens: list[int],
    modes: list[str],
    batch: int,
    decode_steps: int,
    repeats: int,
    warmup: int,
    backend: str,
    device: str,
    dtype: str,
    cuda_graphs: str,
    seed: int,
    out: Path,
    on_progress: ProgressFn | None = None,
    scores_path: str | None = None,
    phase: str = "all",
    state_kernel: str = "tracekit",
) -> CompareResult | None:
    """Collect every variant, then ingest and attribute it; write compare.json / compare.md / plots.

    `phase="collect"` stops after the collects (it needs no duckdb/polars, so it runs on the GPU
    machine) and leaves `compare_plan.json`; `analyze_compare(out)` finishes elsewhere. Returns None
    for the collect phase. `on_progress` hears of each variant (stage PRUNE_COMPARE) and of its sweep.
    """
    from tracekit.collectors.spec import CollectSpec
    from tracekit.collectors.sweep import run_collect
    from tracekit.kernels.state_update import KINDS

    if state_kernel not in KINDS:
        raise UsageError(f"--state-kernel: unknown {state_kernel!r}; choose from {', '.join(KINDS)}")

    plan = _variants(variants, ratios)
    spec = CollectSpec(
        archs=(arch,),
        seqlens=tuple(seqlens),
        batch=batch,
        modes=tuple(modes),
        decode_steps=decode_steps,
        cuda_graphs=cuda_graphs,
        warmup=warmup,
        repeats=repeats,
        backend=None if backend == "auto" else backend,
        device=None if device == "auto" else device,
        dtype=None if dtype == "auto" else dtype,
        seed=seed,
        out_dir=str(out),
    )
    rs = spec.resolve()
    if rs.backend == "mamba-ssm":  # the decode state update is a choice of that backend only
        spec = dataclasses.replace(spec, state_kernel=state_kernel)
    dense = build_model(cfg, seed)
    if scores_path:
        ss = load_scores(scores_path)
        check_same_shape(ss.model, cfg)
        scores, method = ss.scores, ss.method
    else:
        if method not in DATA_FREE:
            raise UsageError(f"--method {method} needs calibration: run `prune score` and pass --scores")
        scores = compute_scores(dense, cfg, [method], None, seed=seed)[method]
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for variant, ratio in plan:
        label = "dense" if variant == "dense" else f"{variant}_r{ratio:g}"
        if on_progress:
            on_progress(ProgressEvent(Stage.PRUNE_COMPARE, len(entries), len(plan), label))
        pr = prune_model(dense, cfg, scores, ratio, variant)
        model = to_backend(
            pr.model if variant != "dense" else build_model(cfg, seed), pr.cfg, rs.backend, rs.device, rs.dtype, seed
        )
        run_collect(
            dataclasses.replace(spec, out_dir=str(out / "runs" / label)), models={arch: model}, on_progress=on_progress
        )
        del model
        entries.append(
            {"label": label, "variant": variant, "ratio": ratio, "d_state": pr.cfg.d_state, "k": pr.info["k"]}
        )
    if on_progress:
        on_progress(ProgressEvent(Stage.PRUNE_COMPARE, len(entries), len(plan)))
    head = {
        "arch": arch,
        "model": cfg.to_dict(),
        "method": method,
        "backend": rs.backend,
        "device": rs.device,
        "dtype": rs.dtype,
        "batch": batch,
        "state_kernel": state_kernel,
        "variants": entries,
    }
    write_plan(out, head)
    if phase == "collect":
        return None
    return analyze_compare(out)


def analyze_compare(out: Path) -> CompareResult:
    """Ingest and attribute the runs a (collect-phase) compare left in `out`; write its outputs."""
    import tracekit
    from tracekit.analyzers.components import load_rules
    from tracekit.pipeline import attribute_run

    head = read_plan(out)
    db = tracekit.open(str(out / "compare.duckdb"))
    rules = load_rules()
    rows: list[dict[str, Any]] = []
    try:
        for e in head["variants"]:
            run_dir = out / "runs" / e["label"]
            run = attribute_run(db, run_dir, rules=rules, require_traces=False)
            reports = {r.trace: r for r in run.reports}
            for p in run.manifest.points:
                trace = (run_dir / p.trace).resolve() if p.trace else None
                att = reports.get(trace.name) if trace else None
                rows.append(
                    {
                        "variant": e["variant"],
                        "ratio": e["ratio"],
                        "d_state": e["d_state"],
                        "k": e["k"],
                        "mode": p.mode,
                        "seqlen": p.seqlen,
                        "batch": p.batch,
                        "cuda_graphs": p.cuda_graphs,
                        "status": p.status,
                        "error": p.error,
                        "median_ms": p.timing_ms("median_ms"),
                        "peak_mem_bytes": p.peak_mem_bytes,
                        "memory": p.raw.get("memory"),
                        "state_bytes": att.model.state_bytes if att else None,
                        "component_ns": att.component_ns() if att else {},
                        "trace": str(trace) if trace else None,
                    }
                )
    finally:
        db.close()
    _add_ratios(rows)
    add_kernel_notes(rows, head["arch"], head["model"]["d_state"], head.get("state_kernel"))
    result = CompareResult(
        head["arch"],
        head["model"],
        head["method"],
        head["backend"],
        head["device"],
        head["dtype"],
        head["batch"],
        rows,
        str(out),
        component_diff(rows),
        state_kernel=head.get("state_kernel"),
    )
    write_outputs(result, out)
    return result


def component_diff(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each variant row against the dense row of its (mode, batch, seqlen, graphs), through `tracekit diff`."""
    from tracekit.analyzers.diff import diff, side_from_compare_row

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r["mode"], r["batch"], r["seqlen"], r["cuda_graphs"])

    dense = {key(r): r for r in rows if r["variant"] == "dense" and r.get("component_ns")}
    out = []
    for r in rows:
        d = dense.get(key(r))
        if r["variant"] == "dense" or d is None or not r.get("component_ns"):
            continue
        td = diff(side_from_compare_row(d, "dense"), side_from_compare_row(r, r["variant"]))
        head = {k: r[k] for k in ("variant", "ratio", "mode", "batch", "seqlen", "cuda_graphs")}
        out.append({**head, "threshold": td.threshold, "significant": td.significant, "components": td.components})
    return out


def _add_ratios(rows: list[dict[str, Any]]) -> None:
    """speedup = dense time / variant time; reductions = 1 − variant / dense, per (mode, seqlen, graphs)."""
    base = {(r["mode"], r["seqlen"], r["cuda_graphs"]): r for r in rows if r["variant"] == "dense"}
    for r in rows:
        d = base.get((r["mode"], r["seqlen"], r["cuda_graphs"]))
        r["speedup"] = r["mem_reduction"] = r["state_reduction"] = None
        if d is None:
            continue
        if d["median_ms"] and r["median_ms"]:
            r["speedup"] = d["median_ms"] / r["median_ms"]
        if d["peak_mem_bytes"] and r["peak_mem_bytes"]:
            r["mem_reduction"] = 1 - r["peak_mem_bytes"] / d["peak_mem_bytes"]
        if d["state_bytes"] and r["state_bytes"]:
            r["state_reduction"] = 1 - r["state_bytes"] / d["state_bytes"]


def add_kernel_notes(
    rows: list[dict[str, Any]], arch: str, dense_n: int, state_kernel: str | None = "mamba-ssm"
) -> None:
    """`kernel_note` per physical row: whether its k can lower the SSM kernel's time, and why not.

    From the measured step structure (analyzers/rules/ssm_kernel_k.toml, one machine), for the decode
    state kernel the run used (`state_kernel`; None, from runs before it, = mamba-ssm): e.g. k = 96 of 128
    runs mamba-ssm's `selective_state_update` in the same 128-wide block as dense, so r = 0.25 cannot pay
    in decode, while tracekit's kernel pads nothing (×0.78 at batch 64). Prefill notes ignore it.
    Masked rows keep every state in the kernels; dense rows are the reference: both get None.
    """
    from tracekit.analyzers.kernel_k import kernel_note

    for r in rows:
        r["kernel_note"] = None
        if r["variant"] == "physical" and r.get("k") is not None:
            r["kernel_note"] = kernel_note(arch, r["mode"], int(r["k"]), dense_n, int(r["batch"]), state_kernel)


def write_outputs(result: CompareResult, out: Path) -> None:
    """compare.json (the data), and compare.md / latency_vs_ratio.png rendered from it by tracekit.reports."""
    from tracekit.reports import compare as report

    result.write(out)
    (out / "compare.md").write_text(report.markdown(result, host=platform.node()))
    report.plot(result, out / "latency_vs_ratio.png")


__all__ = [
    "CompareResult",
    "add_kernel_notes",
    "analyze_compare",
    "component_diff",
    "parse_floats",
    "run_compare",
    "to_backend",
    "write_outputs",
]
