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

import contextlib
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
from tracekit.errors import TraceError, TracekitError, UsageError
from tracekit.model_config import ModelConfig, config_from_flags
from tracekit.progress import ProgressEvent, ProgressFn, Stage

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
    on_progress: ProgressFn | None = None,
) -> list[AttributeReport]:
    """Ingest (content-hash cached) and attribute each trace, in order; one report per trace.

    `config` fixes the model config (source "flags"); otherwise `flags`, else the manifest's config,
    else the one inferred from the trace's shapes. `on_progress` hears of each step (stage ATTRIBUTE).
    """
    rules = load_rules() if rules is None else rules
    reports: list[AttributeReport] = []

    def tell(label: str) -> None:
        if on_progress:
            on_progress(ProgressEvent(Stage.ATTRIBUTE, len(reports), len(items), label))

    for ref in items:
        item, trace_id = _resolve(db, ref)
        if trace_id is None:
            tell(f"ingest {item.trace.name}")
            res = db.ingest([item.trace], keep_going=False)[0]
            if res.error or res.trace_id is None:
                raise TraceError(item.trace, res.error or "not ingested")
            trace_id = res.trace_id
        tell(f"attribute {item.trace.name}")
        reports.append(_attribute_one(db, item, trace_id, rules, by, flags, config, with_hta))
    tell("")
    return reports


def attribute_run(
    db: Any,
    run_dir: str | os.PathLike[str],
    *,
    by: str = "component",
    flags: ConfigFlags = ConfigFlags(),
    rules: Sequence[Rule] | None = None,
    on_progress: ProgressFn | None = None,
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
    reports = attribute_traces(db, present, by=by, flags=flags, rules=rules, on_progress=on_progress)
    return RunAttribution(run_dir, manifest, reports, [str(i.trace) for i in missing])


def collect_and_attribute(
    spec: Any,
    db_path: str | os.PathLike[str],
    *,
    by: str = "component",
    on_progress: ProgressFn | None = None,
    on_collected: Callable[[dict[str, Any]], None] | None = None,
    collect_context: contextlib.AbstractContextManager[Any] | None = None,
) -> tuple[dict[str, Any], list[AttributeReport]]:
    """Run the collect sweep `spec` (a CollectSpec), then ingest and attribute its traces into `db_path`.

    `on_progress` follows both phases (stages COLLECT and ATTRIBUTE); the sweep runs inside
    `collect_context` (the CLI's `collectors.quiet.library_output`); `on_collected(manifest)` runs between
    the two phases. Returns the run's manifest and one report per trace.
    """
    import tracekit
    from tracekit.collectors.sweep import run_collect

    with collect_context or contextlib.nullcontext():
        manifest = run_collect(spec, on_progress=on_progress)
    if on_collected is not None:
        on_collected(manifest)
    with tracekit.open(db_path) as db:
        run = attribute_run(db, Path(spec.out_dir), by=by, on_progress=on_progress, require_traces=False)
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
    att, notes = _attribution(db, item, trace_id, rules, by, flags, config)
    db.record_attribution(trace_id, att.units)
    memory: list[Any] = []
    doc = summarize(
        db.con, att, by=by, context=dataclasses.replace(item.point), trace_name=item.trace.name, memory_out=memory
    )
    if with_hta:
        from tracekit.analyzers.hta_check import temporal_breakdown

        if att.time_source == TimeSource.GPU:
            doc["hta"] = temporal_breakdown(item.trace)
        else:
            doc["hta"] = {
                "note": "HTA's temporal breakdown needs GPU kernels (none here; HTA raises on CPU-only traces)"
            }
    doc["notes"] = notes + doc.get("notes", [])
    return AttributeReport(doc, memory=memory[0] if memory else None)


def _attribution(
    db: Any,
    item: RunTrace,
    trace_id: int,
    rules: Sequence[Rule],
    by: str,
    flags: ConfigFlags,
    config: ModelConfig | None,
) -> tuple[Any, list[str]]:
    """The unit-level attribution of one ingested trace, and the notes on how its config was found."""
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
        notes.append(
            "model config inferred from recorded GEMM/conv shapes"
            + (" (ngroups=1 assumed for Mamba-2)" if att.config.arch == "mamba2" else "")
        )
    if att.layer_source == LayerSource.INFERRED:
        notes.append(
            "no layer.{i} scopes: layers inferred from the launch order of in_proj GEMMs "
            "(norm_f, embedding, lm_head and sampling have layer null)"
        )
    elif by == "layer" and att.layer_source is None:
        notes.append("no layer.{i} scopes in this trace: rows are per run (layer null)")
    return att, notes


# ---- diff -----------------------------------------------------------------------------------------
def diff_traces(
    db: Any,
    a: str | os.PathLike[str] | int,
    b: str | os.PathLike[str] | int,
    *,
    threshold: float | None = None,
    flags: ConfigFlags = ConfigFlags(),
    rules: Sequence[Rule] | None = None,
) -> list[Any]:
    """`tracekit diff A B`: one TraceDiff per compared pair (analyzers/diff.py, docs/diff.md).

    A and B are both trace files, both trace ids of `db` (ints or digit strings), both collect run
    directories (points matched by arch/mode/batch/seqlen/cuda_graphs), or both `prune compare` rows
    `DIR_OR_compare.json#LABEL` (LABEL `dense` or `VARIANT_rRATIO`, rows matched by mode/batch/seqlen/graphs;
    with component times only when the traces are gone).
    """
    from tracekit.analyzers.diff import DEFAULT_THRESHOLD, diff

    th = DEFAULT_THRESHOLD if threshold is None else threshold
    rules = load_rules() if rules is None else rules
    ka, kb = _diff_kind(a), _diff_kind(b)
    if ka != kb:
        raise UsageError(f"diff: A is a {ka} and B a {kb}; give two of the same kind")
    if ka == "compare row":
        return [diff(sa, sb, threshold=th) for sa, sb in _compare_pairs(db, str(a), str(b), rules, flags)]
    if ka == "run directory":
        pa, pb = _run_points(Path(a)), _run_points(Path(b))
        common = [k for k in pa if k in pb]
        if not common:
            raise UsageError(f"diff: no point of {a} matches one of {b} (by arch/mode/batch/seqlen/cuda_graphs)")
        return [
            diff(
                _trace_side(db, pa[k][0], rules, flags, pa[k][1]),
                _trace_side(db, pb[k][0], rules, flags, pb[k][1]),
                threshold=th,
            )
            for k in common
        ]
    ref_a: TraceRef = int(a) if ka == "trace id" else a
    ref_b: TraceRef = int(b) if kb == "trace id" else b
    return [diff(_trace_side(db, ref_a, rules, flags), _trace_side(db, ref_b, rules, flags), threshold=th)]


def _diff_kind(ref: str | os.PathLike[str] | int) -> str:
    if isinstance(ref, int):
        return "trace id"
    s = str(ref)
    if "#" in s and not Path(s).exists():
        return "compare row"
    p = Path(s)
    if p.is_dir():
        if (p / "manifest.json").is_file():
            return "run directory"
        raise UsageError(f"{p}: a directory without manifest.json (not a `tracekit collect` run)")
    if p.is_file():
        return "trace file"
    if s.isdigit():
        return "trace id"
    raise UsageError(f"{s}: no such file, run directory, trace id or compare row (DIR#LABEL)")


def _manifest_point(trace: Path) -> dict[str, Any] | None:
    """The raw manifest point (timing with p10/p90, cuda_graphs, peak) of a trace inside a collect run."""
    import json

    trace = trace.resolve()
    for d in (trace.parent, trace.parent.parent):
        m = d / "manifest.json"
        if m.is_file():
            try:
                doc = json.loads(m.read_text())
            except (OSError, ValueError):
                return None
            for p in doc.get("points") or []:
                if isinstance(p, dict) and p.get("trace") and (d / p["trace"]).resolve() == trace:
                    return p
    return None


def _run_points(run_dir: Path) -> dict[tuple[Any, ...], tuple[RunTrace, dict[str, Any]]]:
    from tracekit.analyzers.diff import point_key

    manifest = read_manifest(run_dir)
    present, _ = run_items(run_dir, manifest)
    by_path = {i.trace: i for i in present}
    out: dict[tuple[Any, ...], tuple[RunTrace, dict[str, Any]]] = {}
    for p in manifest["points"]:
        if isinstance(p, dict) and p.get("trace"):
            item = by_path.get((run_dir / p["trace"]).resolve())
            if item is not None:
                out.setdefault(point_key(p), (item, p))
    return out


def _trace_side(
    db: Any, ref: TraceRef, rules: Sequence[Rule], flags: ConfigFlags, point: dict[str, Any] | None = None
) -> Any:
    """Ingest (if needed) and attribute one trace into a DiffSide: by component, by layer, kernel instances."""
    from tracekit.analyzers.diff import POINT_KEYS, DiffSide, count_steps, kernel_instances

    item, trace_id = _resolve(db, ref)
    if trace_id is None:
        res = db.ingest([item.trace], keep_going=False)[0]
        if res.error or res.trace_id is None:
            raise TraceError(item.trace, res.error or "not ingested")
        trace_id = res.trace_id
    att, _ = _attribution(db, item, trace_id, rules, "component", flags, None)
    ctx = dataclasses.replace(item.point)
    doc = summarize(db.con, att, by="component", context=ctx, trace_name=item.trace.name)
    lay = summarize(db.con, att, by="layer", context=dataclasses.replace(item.point), trace_name=item.trace.name)
    if point is None and item.trace.is_file():
        point = _manifest_point(item.trace)
    gpu = att.time_source == TimeSource.GPU
    timing = (point or {}).get("timing") if point else None
    model = doc["model"]
    return DiffSide(
        label=item.label,
        components=doc["components"],
        layers=lay["components"],
        kernels=kernel_instances(db.con, trace_id, att.units, gpu),
        totals=doc["total"],
        timing=timing if isinstance(timing, dict) else None,
        peak_mem_bytes=(point or {}).get("peak_mem_bytes"),
        point={k: (point or {}).get(k, model.get(k)) for k in POINT_KEYS},
        trace=str(item.trace),
        device=doc.get("device"),
        steps=count_steps(db.con, trace_id),
        time_source=str(att.time_source),
    )


def _compare_rows(ref: str) -> tuple[Path, str, list[dict[str, Any]]]:
    import json

    where, _, label = ref.rpartition("#")
    path = Path(where)
    if path.is_dir():
        path = path / "compare.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a prune-compare result ({exc})") from None
    rows = [r for r in doc.get("rows") or [] if compare_label(r) == label]
    if not rows:
        labels = sorted({compare_label(r) for r in doc.get("rows") or []})
        raise UsageError(f"{ref}: no rows labelled {label!r} (labels: {', '.join(labels)})")
    return path, label, rows


def compare_label(row: dict[str, Any]) -> str:
    """`dense`, or `VARIANT_rRATIO` (the run folder `prune compare` writes): how a compare row is named."""
    return "dense" if row["variant"] == "dense" else f"{row['variant']}_r{row['ratio']:g}"


def _compare_pairs(db: Any, a: str, b: str, rules: Sequence[Rule], flags: ConfigFlags) -> list[tuple[Any, Any]]:
    from tracekit.analyzers.diff import side_from_compare_row

    _, la, rows_a = _compare_rows(a)
    _, lb, rows_b = _compare_rows(b)

    def key(r: dict[str, Any]) -> tuple[Any, ...]:
        return (r.get("mode"), r.get("batch"), r.get("seqlen"), r.get("cuda_graphs"))

    ib = {key(r): r for r in rows_b}
    pairs = []
    for ra in rows_a:
        rb = ib.get(key(ra))
        if rb is None:
            continue
        ta, tb = ra.get("trace"), rb.get("trace")
        if ta and tb and Path(ta).is_file() and Path(tb).is_file():
            pairs.append((_trace_side(db, ta, rules, flags), _trace_side(db, tb, rules, flags)))
        else:
            pa = side_from_compare_row(ra, f"{la} {ra['mode']} b{ra['batch']} l{ra['seqlen']} cg={ra['cuda_graphs']}")
            pb = side_from_compare_row(rb, f"{lb} {rb['mode']} b{rb['batch']} l{rb['seqlen']} cg={rb['cuda_graphs']}")
            pairs.append((pa, pb))
    if not pairs:
        raise UsageError(f"diff: no row of {a} matches one of {b} (by mode/batch/seqlen/cuda_graphs)")
    return pairs


# ---- tracekit report ---------------------------------------------------------------------------------
def find_report_inputs(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[list[Path], list[Path], list[Path], list[tuple[Path, Any]]]:
    """(collect run dirs, prune-compare dirs, prune accuracy files, (prune score file, ScoreSet)) among `paths`,
    detected by their files: `manifest.json` → collect run, `compare.json` → prune compare, a JSON file with
    `curves` → accuracy, a `.pt` file that loads as a `tracekit prune score` file → scores (torch is imported
    only then). A folder with none of these is searched two levels down. UsageError when nothing is found."""
    import json

    runs: list[Path] = []
    compares: list[Path] = []
    accs: list[Path] = []
    scores: list[tuple[Path, Any]] = []

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
            elif p.suffix == ".pt":
                from tracekit.prune.scoring import load_scores

                try:
                    scores.append((p, load_scores(p)))
                except TracekitError:
                    return
            return
        if (p / "compare.json").is_file():
            compares.append(p)
        elif (p / "manifest.json").is_file():
            runs.append(p)
        elif depth > 0:
            for child in sorted(p.iterdir()):
                if child.is_dir() or child.suffix in (".json", ".pt"):
                    visit(child, depth - 1)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        visit(p, 2)
    if not (runs or compares or accs or scores):
        raise UsageError(
            "no collect run (manifest.json), prune-compare dir (compare.json), prune accuracy result (JSON with "
            f"`curves`) or prune score file (.pt) in {', '.join(map(str, paths))}"
        )
    return runs, compares, accs, scores


def build_report(
    db: Any,
    paths: Sequence[str | os.PathLike[str]],
    *,
    claims_file: str | os.PathLike[str] | None = None,
    on_progress: ProgressFn | None = None,
) -> Any:
    """The data of `tracekit report` (analyzers.run_report.ReportData) for the inputs among `paths`."""
    import json

    from tracekit.analyzers.claims import load_claims
    from tracekit.analyzers.run_report import RunInput, analyze

    run_dirs, cmp_dirs, acc_files, score_files = find_report_inputs(paths)
    lines: list[str] = []
    runs = []
    for d in run_dirs:
        run = attribute_run(db, d, on_progress=on_progress, require_traces=False)
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
    score_sets = []
    for f, ss in score_files:
        lines.append(
            f"prune scores {f}: method {ss.method}, {ss.model.arch} {tuple(ss.scores.shape)} (layers, groups, N)"
        )
        score_sets.append((f.stem, ss))
    return analyze(runs, compares, accs, load_claims(claims_file), inputs=lines, scores=score_sets)


def _label(d: Path) -> str:
    """A short name for an input folder: its name, with the parent's when the name alone is generic."""
    d = d.resolve()
    return (
        f"{d.parent.name}/{d.name}"
        if d.name in ("run", "runs", "out", "results") or d.parent.name.endswith("compare")
        else d.name
    )
