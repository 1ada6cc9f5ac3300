"""The one collect → ingest → attribute pipeline.

`tracekit demo`, `tracekit attribute --run/--trace`, `tracekit prune compare` (its analyze phase) and the
facade (`tracekit.open(...).attribute/run`) all go through these functions:

* `attribute_traces(db, items)`: ingest each trace (content-hash cached) and attribute it, with the model
  config of its collect manifest, of the flags, or inferred from its shapes.
* `attribute_run(db, run_dir)`: every trace a collect run's manifest lists.
* `collect_and_attribute(spec, db_path)`: run a collect sweep, then `attribute_run` on its output.
* `build_report(db, paths)`: detect collect runs, prune-compare dirs and prune accuracy results among
  `paths`, attribute the runs' traces and compute every frame of `tracekit report` (ReportData).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.breakdown import RunContext, config_matches, summarize
from tracekit.analyzers.components import Rule, load_rules
from tracekit.analyzers.report_types import AttributeReport, ConfigSource, LayerSource, RunAttribution, TimeSource
from tracekit.analyzers.run_manifest import RunTrace, find_for_trace, read_manifest, run_traces
from tracekit.errors import TraceError, UsageError
from tracekit.model_config import ModelConfig, config_from_flags

TraceRef = RunTrace | int | str | os.PathLike[str]  # a manifest entry, an ingested trace_id, or a trace file


@dataclasses.dataclass(frozen=True)
class ConfigFlags:
    """--arch/--preset/--config as given (nothing set: the manifest's or the inferred config is used)."""

    arch: str | None = None
    preset_name: str | None = None
    overrides: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.arch or self.preset_name or self.overrides)


def trace_item(path: str | os.PathLike[str]) -> RunTrace:
    """A trace file with its manifest entry when it sits in a collect run; UsageError if it is missing."""
    t = Path(path)
    if not t.exists():
        raise UsageError(f"{t}: no such file")
    found = find_for_trace(t)
    return found if found is not None else RunTrace(t.resolve(), None, RunContext(), t.name)


def run_items(run_dir: Path, manifest: dict[str, Any] | None = None) -> tuple[list[RunTrace], list[RunTrace]]:
    """(present, missing): the traces a collect run's manifest lists, split by whether the file exists."""
    listed = run_traces(run_dir, manifest)
    return [i for i in listed if i.trace.is_file()], [i for i in listed if not i.trace.is_file()]


def attribute_traces(
    db: Any,
    items: Sequence[TraceRef],
    *,
    by: str = "component",
    flags: ConfigFlags = ConfigFlags(),
    config: ModelConfig | None = None,
    rules: Sequence[Rule] | None = None,
    with_hta: bool = False,
    progress: bool = False,
) -> list[AttributeReport]:
    """Ingest (content-hash cached) and attribute each trace, in order; one report per trace.

    `config` fixes the model config (source "flags"); otherwise `flags`, else the manifest's config,
    else the one inferred from the trace's shapes.
    """
    from rich.progress import Progress

    rules = load_rules() if rules is None else rules
    reports: list[AttributeReport] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("attributing", total=len(items))
        for ref in items:
            item, trace_id = _resolve(db, ref)
            if trace_id is None:
                bar.update(task, description=f"ingest {item.trace.name}")
                res = db.ingest([item.trace], keep_going=False)[0]
                if res.error or res.trace_id is None:
                    raise TraceError(item.trace, res.error or "not ingested")
                trace_id = res.trace_id
            bar.update(task, description=f"attribute {item.trace.name}")
            reports.append(_attribute_one(db, item, trace_id, rules, by, flags, config, with_hta))
            bar.advance(task)
    return reports


def attribute_run(
    db: Any,
    run_dir: str | os.PathLike[str],
    *,
    by: str = "component",
    flags: ConfigFlags = ConfigFlags(),
    rules: Sequence[Rule] | None = None,
    progress: bool = False,
    require_traces: bool = True,
) -> RunAttribution:
    """Attribute every trace of a collect run that is on disk; `missing` names the others.

    UsageError when none is present, unless `require_traces` is False (prune compare: a variant whose
    points all failed has no traces).
    """
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    present, missing = run_items(run_dir, manifest)
    if require_traces and not present:
        raise UsageError(f"{run_dir}: no trace files of the manifest's {len(missing)} points are present")
    reports = attribute_traces(db, present, by=by, flags=flags, rules=rules, progress=progress)
    return RunAttribution(run_dir, manifest, reports, [str(i.trace) for i in missing])


def collect_and_attribute(
    spec: Any,
    db_path: str | os.PathLike[str],
    *,
    by: str = "component",
    reporter: Any = None,
    progress: bool = False,
    on_collected: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], list[AttributeReport]]:
    """Run the collect sweep `spec` (a CollectSpec), then ingest and attribute its traces into `db_path`.

    `reporter` follows the sweep (collectors.progress.RichReporter); `on_collected(manifest)` runs between
    the two phases. Returns the run's manifest and one report per trace.
    """
    import tracekit
    from tracekit.collectors.sweep import run_collect

    manifest = run_collect(spec, reporter=reporter)
    if on_collected is not None:
        on_collected(manifest)
    with tracekit.open(db_path) as db:
        run = attribute_run(db, Path(spec.out_dir), by=by, progress=progress, require_traces=False)
    return manifest, run.reports


# ---- one trace ------------------------------------------------------------------------------------
def _resolve(db: Any, ref: TraceRef) -> tuple[RunTrace, int | None]:
    """(manifest entry or bare item, trace_id if already known) for any accepted trace reference."""
    if isinstance(ref, RunTrace):
        return ref, None
    if isinstance(ref, int) and not isinstance(ref, bool):
        rows = db.con.sql("SELECT path, name FROM traces WHERE trace_id = $tid", params={"tid": ref}).fetchall()
        if not rows:
            raise UsageError(f"no trace with trace_id {ref} in {db.path}")
        path, name = rows[0]
        found = find_for_trace(Path(path)) if Path(path).is_file() else None
        return (found if found is not None else RunTrace(Path(path), None, RunContext(), name)), ref
    return trace_item(ref), None


def _attribute_one(
    db: Any,
    item: RunTrace,
    trace_id: int,
    rules: Sequence[Rule],
    by: str,
    flags: ConfigFlags,
    config: ModelConfig | None,
    with_hta: bool,
) -> AttributeReport:
    notes: list[str] = []
    if config is not None:
        att = attribute(db.con, trace_id, rules, config=config, config_source=ConfigSource.FLAGS, infer=False)
    elif item.config is not None and not flags:
        att = attribute(db.con, trace_id, rules, config=item.config, config_source=ConfigSource.MANIFEST, infer=False)
    else:
        base = attribute(
            db.con,
            trace_id,
            rules,
            config=item.config,
            config_source=ConfigSource.MANIFEST if item.config else ConfigSource.NONE,
            infer=item.config is None,
        )
        if flags:
            cfg = config_from_flags(flags.arch, flags.preset_name, flags.overrides, inferred=base.config)
            att = attribute(db.con, trace_id, rules, config=cfg, config_source=ConfigSource.FLAGS, infer=False)
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
    elif att.config_source == ConfigSource.INFERRED:
        notes.append("model config inferred from recorded GEMM/conv shapes (ngroups=1 assumed for Mamba-2)")
    if att.layer_source == LayerSource.INFERRED:
        notes.append(
            "no layer.{i} scopes: layers inferred from the launch order of in_proj GEMMs "
            "(norm_f, embedding, lm_head and sampling have layer null)"
        )
    elif by == "layer" and att.layer_source is None:
        notes.append("no layer.{i} scopes in this trace: rows are per run (layer null)")
    doc = summarize(db.con, att, by=by, context=dataclasses.replace(item.point), trace_name=item.trace.name)
    if with_hta:
        from tracekit.analyzers.hta_check import temporal_breakdown

        if att.time_source == TimeSource.GPU:
            doc["hta"] = temporal_breakdown(item.trace)
        else:
            doc["hta"] = {
                "note": "HTA's temporal breakdown needs GPU kernels (none here; HTA raises on CPU-only traces)"
            }
    doc["notes"] = notes + doc.get("notes", [])
    return AttributeReport(doc)


# ---- tracekit report ---------------------------------------------------------------------------------
def find_report_inputs(paths: Sequence[str | os.PathLike[str]]) -> tuple[list[Path], list[Path], list[Path]]:
    """(collect run dirs, prune-compare dirs, prune accuracy files) among `paths`, detected by their files:
    `manifest.json` → collect run, `compare.json` → prune compare, a JSON file with `curves` → accuracy.
    A folder with neither marker is searched two levels down. UsageError when nothing is found."""
    import json

    runs: list[Path] = []
    compares: list[Path] = []
    accs: list[Path] = []

    def visit(p: Path, depth: int) -> None:
        if p.is_file():
            if p.name == "manifest.json":
                runs.append(p.parent)
            elif p.name == "compare.json":
                compares.append(p.parent)
            elif p.suffix == ".json":
                try:
                    doc = json.loads(p.read_text())
                except (OSError, ValueError):
                    return
                if isinstance(doc, dict) and isinstance(doc.get("curves"), dict):
                    accs.append(p)
            return
        if (p / "compare.json").is_file():
            compares.append(p)
        elif (p / "manifest.json").is_file():
            runs.append(p)
        elif depth > 0:
            for child in sorted(p.iterdir()):
                if child.is_dir() or child.suffix == ".json":
                    visit(child, depth - 1)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        visit(p, 2)
    if not (runs or compares or accs):
        raise UsageError(
            "no collect run (manifest.json), prune-compare dir (compare.json) or prune accuracy result (JSON with "
            f"`curves`) in {', '.join(map(str, paths))}"
        )
    return runs, compares, accs


def build_report(
    db: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    claims_file: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> Any:
    """The data of `tracekit report` (analyzers.run_report.ReportData) for the inputs among `paths`."""
    import json

    from tracekit.analyzers.claims import load_claims
    from tracekit.analyzers.run_report import RunInput, analyze

    run_dirs, cmp_dirs, acc_files = find_report_inputs(paths)
    lines: list[str] = []
    runs = []
    for d in run_dirs:
        run = attribute_run(db, d, progress=progress, require_traces=False)
        label = _label(d)
        n = len(run.manifest.get("points", []))
        lines.append(
            f"collect run {d} ({run.manifest.get('device')}): {n} points, {len(run.reports)} traces attributed"
            + (f", {len(run.missing)} absent (manifest timings used)" if run.missing else "")
        )
        runs.append(RunInput(label, d, run.manifest, [r.to_dict() for r in run.reports], run.missing))
    compares = []
    for d in cmp_dirs:
        try:
            doc = json.loads((d / "compare.json").read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{d / 'compare.json'}: cannot read: {exc}") from None
        mans = {}
        for m in sorted(d.glob("runs/*/manifest.json")):
            try:
                mans[m.parent.name] = json.loads(m.read_text())
            except (OSError, ValueError):
                continue
        lines.append(
            f"prune compare {d}: {len(doc.get('rows', []))} rows"
            + (f", p10–p90 from {len(mans)} variant manifests" if mans else ", no variant manifests (no p10–p90)")
        )
        compares.append((_label(d), doc, mans))
    accs = []
    for f in acc_files:
        doc = json.loads(f.read_text())
        lines.append(f"prune accuracy {f}: methods {', '.join(doc['curves'])}")
        accs.append((f.stem.removeprefix("prune_accuracy_"), doc))
    return analyze(runs, compares, accs, load_claims(claims_file), inputs=lines)


def _label(d: Path) -> str:
    """A short name for an input folder: its name, with the parent's when the name alone is generic."""
    d = d.resolve()
    return (
        f"{d.parent.name}/{d.name}"
        if d.name in ("run", "runs", "out", "results") or d.parent.name.endswith("compare")
        else d.name
    )
