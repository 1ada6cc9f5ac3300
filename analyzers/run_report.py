"""The data of `tracekit report`: every frame the renderers draw, computed from attributed collect runs,
prune-compare results and prune accuracy results (tracekit.pipeline.build_report loads and attributes them)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import polars as pl
from tracekit.analyzers import claims as claims_mod
from tracekit.analyzers import pruning, scaling
from tracekit.analyzers.report_types import AttributeReport

from tracekit.artifacts.compare import CompareResult
from tracekit.artifacts.manifest import Manifest


@dataclasses.dataclass
class RunInput:
    """One collect run: its manifest and the attribute reports of the traces present."""

    label: str
    path: Path
    manifest: Manifest
    reports: list[AttributeReport]
    missing: list[str]


@dataclasses.dataclass
class ReportData:
    inputs: list[str]  # one line per input: what it is and what was used
    devices: list[str]
    components: pl.DataFrame
    timings: pl.DataFrame
    exponents: pl.DataFrame
    bottlenecks: pl.DataFrame
    flops_bottlenecks: pl.DataFrame
    crossovers: pl.DataFrame
    resources: pl.DataFrame
    roofline: pl.DataFrame
    host_bound: pl.DataFrame
    compare: pl.DataFrame
    speedups: pl.DataFrame
    accuracy: pl.DataFrame
    claims: list[claims_mod.ClaimResult]
    notes: list[str]
    # prune score files (tracekit prune score): (label, tracekit.prune.scoring.ScoreSet)
    scores: list[tuple[str, Any]] = dataclasses.field(default_factory=list)
    # accuracy joined to speedup by pruning ratio (paper Fig. 6): rows, compare point, common ratios, why empty
    tradeoff: pl.DataFrame = dataclasses.field(default_factory=lambda: pl.DataFrame(schema=pruning.TRADEOFF_SCHEMA))
    tradeoff_point: str = ""
    tradeoff_ratios: list[float] = dataclasses.field(default_factory=list)
    tradeoff_reason: str = ""

    @property
    def claims_frame(self) -> pl.DataFrame:
        return claims_mod.results_frame(self.claims)


def analyze(
    runs: list[RunInput],
    compares: list[tuple[str, CompareResult, dict[str, Manifest]]],
    accuracies: list[tuple[str, dict[str, Any]]],
    claims: list[claims_mod.Claim],
    inputs: list[str] | None = None,
    scores: list[tuple[str, Any]] | None = None,
) -> ReportData:
    """All frames of the report from loaded inputs (compares: (label, compare.json, variant manifests);
    scores: (label, ScoreSet) from prune score files)."""
    notes: list[str] = []
    comp_parts, timing_parts, devices = [], [], []
    for run in runs:
        by_trace = {p.trace: p for p in run.manifest.points}
        triples = [(run.label, by_trace.get(r.trace), r) for r in run.reports]
        comp_parts.append(scaling.component_frame(triples))
        timing_parts.append(scaling.timing_frame(run.label, run.manifest, {r.trace for r in run.reports}))
        dev = run.manifest.device or "unknown device"
        if dev not in devices:
            devices.append(dev)
        if run.missing:
            modes = sorted({p.mode for p in run.manifest.points if p.trace and not (run.path / p.trace).is_file()})
            notes.append(
                f"{run.label}: {len(run.missing)} of the manifest's traces are absent ({', '.join(map(str, modes))}): "
                "those points appear with the manifest's timings (median, p10–p90) only, no component split"
            )
    for label, result, _ in compares:
        dev = result.device
        if dev and dev not in devices and dev != "cuda":
            devices.append(dev)
        elif dev == "cuda" and not any("cuda" in d.lower() or "nvidia" in d.lower() for d in devices):
            devices.append(f"CUDA GPU (compare {label}: device name not recorded)")
    components = pl.concat(comp_parts) if comp_parts else scaling.component_frame([])
    timings = pl.concat(timing_parts) if timing_parts else scaling.timing_frame("", None, set())
    exps = scaling.exponents(components, timings)
    tops = scaling.bottlenecks(components)
    compare = (
        pl.concat([pruning.compare_frame(lbl, result, mans) for lbl, result, mans in compares])
        if compares
        else pl.DataFrame(schema=pruning.COMPARE_SCHEMA)
    )
    accuracy = (
        pl.concat([pruning.accuracy_frame(lbl, doc) for lbl, doc in accuracies])
        if accuracies
        else pl.DataFrame(schema=pruning.ACCURACY_SCHEMA)
    )
    measured = claims_mod.Measured(components, exps, compare, accuracy)
    trade, point, common, reason = pruning.tradeoff(compare, accuracy)
    return ReportData(
        inputs=inputs or [],
        devices=devices,
        components=components,
        timings=timings,
        exponents=exps,
        bottlenecks=tops,
        flops_bottlenecks=scaling.bottlenecks(components, "flops"),
        crossovers=scaling.crossovers(tops),
        resources=scaling.resources(components),
        roofline=scaling.roofline_points(components),
        host_bound=scaling.host_bound(components),
        compare=compare,
        speedups=pruning.speedup_table(compare),
        accuracy=accuracy,
        claims=claims_mod.evaluate(claims, measured),
        notes=notes,
        scores=list(scores or []),
        tradeoff=trade,
        tradeoff_point=point,
        tradeoff_ratios=common,
        tradeoff_reason=reason,
    )
