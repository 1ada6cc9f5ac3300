"""Ingest (content-hash cached) and attribute a list of traces: the work behind `tracekit attribute`."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from rich.progress import Progress
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.components import Rule
from tracekit.analyzers.model_config import config_from_flags
from tracekit.analyzers.run_manifest import RunTrace
from tracekit.analyzers.summary import config_matches, summarize

from tracekit.errors import TraceError


def attribute_documents(
    db: Any,
    items: Sequence[RunTrace],
    rules: Sequence[Rule],
    *,
    by: str = "component",
    arch: str | None = None,
    preset_name: str | None = None,
    overrides: Sequence[str] = (),
    with_hta: bool = False,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """One JSON document (summary.summarize) per trace, in order."""
    docs: list[dict[str, Any]] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("attributing", total=len(items))
        for item in items:
            bar.update(task, description=f"ingest {item.trace.name}")
            res = db.ingest([item.trace], keep_going=False)[0]
            if res.error or res.trace_id is None:
                raise TraceError(item.trace, res.error or "not ingested")
            bar.update(task, description=f"attribute {item.trace.name}")
            docs.append(_one(db, item, res.trace_id, rules, by, arch, preset_name, overrides, with_hta))
            bar.advance(task)
    return docs


def _one(
    db: Any,
    item: RunTrace,
    trace_id: int,
    rules: Sequence[Rule],
    by: str,
    arch: str | None,
    preset_name: str | None,
    overrides: Sequence[str],
    with_hta: bool,
) -> dict[str, Any]:
    notes: list[str] = []
    flags = bool(arch or preset_name or overrides)
    if item.config is not None and not flags:
        att = attribute(db.con, trace_id, rules, config=item.config, config_source="manifest", infer=False)
    else:
        base = attribute(
            db.con,
            trace_id,
            rules,
            config=item.config,
            config_source="manifest" if item.config else "none",
            infer=item.config is None,
        )
        if flags:
            cfg = config_from_flags(arch, preset_name, overrides, base.config)
            att = attribute(db.con, trace_id, rules, config=cfg, config_source="flags", infer=False)
        else:
            att = base
    if att.config is None:
        notes.append(
            "model config unknown (no manifest, no --arch/--preset, not inferable from shapes): "
            "FLOPs of non-GEMM components and I/O bytes are null"
        )
    elif not config_matches(att):
        notes.append(
            "the model config matches none of the trace's GEMM shapes (no in_proj found): analytic FLOPs and "
            "I/O are null; check --arch/--preset/--config"
        )
    elif att.config_source == "inferred":
        notes.append("model config inferred from recorded GEMM/conv shapes (ngroups=1 assumed for Mamba-2)")
    if att.layer_source == "inferred":
        notes.append(
            "no layer.{i} scopes: layers inferred from the launch order of in_proj GEMMs "
            "(norm_f, embedding, lm_head and sampling have layer null)"
        )
    elif by == "layer" and att.layer_source is None:
        notes.append("no layer.{i} scopes in this trace: rows are per run (layer null)")
    point = dataclasses.replace(item.point)
    doc = summarize(db.con, att, by=by, point=point, trace_name=item.trace.name)
    if with_hta:
        from tracekit.analyzers.hta_check import temporal_breakdown

        if att.time_source == "gpu":
            doc["hta"] = temporal_breakdown(item.trace)
        else:
            doc["hta"] = {
                "note": "HTA's temporal breakdown needs GPU kernels (none here; HTA raises on CPU-only traces)"
            }
    doc["notes"] = notes + doc.get("notes", [])
    return doc
