"""Read a collect run's manifest.json: which traces it holds, with their model config and point."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from tracekit.analyzers.breakdown import RunContext

from tracekit.errors import UsageError
from tracekit.model_config import ModelConfig, dtype_bytes


@dataclasses.dataclass
class RunTrace:
    trace: Path
    config: ModelConfig | None
    point: RunContext  # what the run was (mode, batch, seqlen, dtype, timing)
    label: str


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "manifest.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no manifest.json (is this a `tracekit collect` run directory?)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read manifest: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
        raise UsageError(f"{path}: not a tracekit manifest (no `points` list)")
    return doc


def run_traces(run_dir: Path, doc: dict[str, Any] | None = None) -> list[RunTrace]:
    """Every point of the run that has a trace file, with its config and point description."""
    doc = doc if doc is not None else read_manifest(run_dir)
    models = doc.get("models") or {}
    # ms per decode step of each (arch, mode, batch, seqlen) with and without CUDA graphs (unprofiled)
    tpot: dict[tuple[Any, ...], float] = {}
    for p in doc["points"]:
        if isinstance(p, dict) and p.get("mode") == "decode" and isinstance(p.get("tpot_ms"), int | float):
            key = (p.get("arch"), p.get("batch"), p.get("seqlen"), bool(p.get("cuda_graphs")))
            tpot[key] = float(p["tpot_ms"])
    out: list[RunTrace] = []
    for p in doc["points"]:
        if not isinstance(p, dict) or not p.get("trace"):
            continue
        arch = p.get("arch")
        cfg_d = models.get(arch) if isinstance(models, dict) else None
        cfg = ModelConfig.from_dict(cfg_d) if isinstance(cfg_d, dict) else None
        timing = p.get("timing") or {}
        decode = p.get("mode") == "decode"
        point = RunContext(
            mode=p.get("mode"),
            batch=p.get("batch"),
            seqlen=p.get("seqlen"),
            dtype_bytes=dtype_bytes(str(doc.get("dtype", ""))),
            device=doc.get("device"),
            ttft_ms=p.get("ttft_ms"),
            tpot_ms=p.get("tpot_ms"),
            median_ms=timing.get("median_ms") if isinstance(timing, dict) else None,
            graph_ms_per_step=tpot.get((arch, p.get("batch"), p.get("seqlen"), True)) if decode else None,
            eager_ms_per_step=tpot.get((arch, p.get("batch"), p.get("seqlen"), False)) if decode else None,
        )
        label = f"{arch} {p.get('mode')} b{p.get('batch')} l{p.get('seqlen')}"
        out.append(RunTrace((run_dir / p["trace"]).resolve(), cfg, point, label))
    return out


def find_for_trace(trace: Path) -> RunTrace | None:
    """The manifest entry describing `trace`, if the trace sits in (a sub-folder of) a collect run."""
    trace = trace.resolve()
    for d in (trace.parent, trace.parent.parent):
        if (d / "manifest.json").is_file():
            try:
                entries = run_traces(d)
            except UsageError:
                return None
            for e in entries:
                if e.trace == trace:
                    return e
    return None
