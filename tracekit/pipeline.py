"""The one collect → ingest → attribute pipeline.

`tracekit demo`, `tracekit attribute --run/--trace`, `tracekit prune compare` (its analyze phase) and the
facade (`tracekit.open(...).attribute/run`) all go through these functions:

* `attribute_traces(db, items)`: ingest each trace (content-hash cached) and attribute it, with the model
  config of its collect manifest, of the flags, or inferred from its shapes.
* `attribute_run(db, run_dir)`: every trace a collect run's manifest lists.
* `collect_and_attribute(spec, db_path)`: run a collect sweep, then `attribute_run` on its output.
* `diff_traces(db, a, b)`: `tracekit diff` of two traces, trace ids, collect runs or prune-compare rows.
* `build_report(db, paths)`: attribute the collect runs among `paths` and compute every frame of
  `tracekit report` (ReportData) with the prune-compare and accuracy results found there.

`db` is any `Store` (the facade's TraceDB or TraceLake). What the inputs are is told by
tracekit/artifacts/inputs.py; the files are read through their types in tracekit/artifacts/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tracekit.analyzers.attribution import Attribution, attribute
from tracekit.analyzers.breakdown import config_matches, summarize
from tracekit.analyzers.components import Rule, load_rules
from tracekit.analyzers.kernel_components import kernel_components
from tracekit.analyzers.report_types import AttributeReport, ConfigSource, LayerSource, RunAttribution, TimeSource
from tracekit.artifacts.compare import CompareResult
from tracekit.artifacts.inputs import diff_input_kind, find_report_inputs, read_accuracy
from tracekit.artifacts.manifest import Manifest, RunTrace, find_for_trace, run_traces
from tracekit.errors import TraceError, UsageError
from tracekit.model_config import ModelConfig, config_from_flags
from tracekit.progress import ProgressEvent, ProgressFn, Stage

if TYPE_CHECKING:
    import duckdb
    import polars as pl

    from tracekit.analyzers.diff import DiffSide, TraceDiff
    from tracekit.analyzers.run_report import ReportData

TraceRef = RunTrace | int | str | os.PathLike[str]  # a manifest entry, an ingested trace_id, or a trace file


class Store(Protocol):
    """What the pipeline needs of a store (the facade's TraceDB or TraceLake): its connection, ingest, and a
    place for each trace's per-kernel components."""

    path: Any

    @property
    def con(self) -> duckdb.DuckDBPyConnection: ...

    def ingest(self, paths: Sequence[Path], *, keep_going: bool = ...) -> Sequence[Any]: ...

    def record_attribution(self, trace_id: int, units: pl.DataFrame) -> None: ...


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
    return found if found is not None else RunTrace.bare(t.resolve(), t.name)


def run_items(run_dir: Path, manifest: Manifest | None = None) -> tuple[list[RunTrace], list[RunTrace]]:
    """(present, missing): the traces a collect run's manifest lists, split by whether the file exists."""
    listed = run_traces(run_dir, manifest)
    return [i for i in listed if i.trace.is_file()], [i for i in listed if not i.trace.is_file()]


def attribute_traces(
    db: Store,
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
            trace_id = _ingest(db, item)
        tell(f"attribute {item.trace.name}")
        reports.append(_attribute_one(db, item, trace_id, rules, by, flags, config, with_hta))
    tell("")
    return reports


def attribute_run(
    db: Store,
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
    manifest = Manifest.read(run_dir)
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
    from tracekit.collectors.sweep import run_collect
    from tracekit.store.database import Database

    with collect_context or contextlib.nullcontext():
        manifest = run_collect(spec, on_progress=on_progress)
    if on_collected is not None:
        on_collected(manifest)
    with Database(db_path) as db:
        run = attribute_run(db, Path(spec.out_dir), by=by, on_progress=on_progress, require_traces=False)
    return manifest, run.reports


# ---- one trace ------------------------------------------------------------------------------------
def _resolve(db: Store, ref: TraceRef) -> tuple[RunTrace, int | None]:
    """(manifest entry or bare item, trace_id if already known) for any accepted trace reference."""
    if isinstance(ref, RunTrace):
        return ref, None
    if isinstance(ref, int) and not isinstance(ref, bool):
        rows = db.con.sql("SELECT path, name FROM traces WHERE trace_id = $tid", params={"tid": ref}).fetchall()
        if not rows:
            raise UsageError(f"no trace with trace_id {ref} in {db.path}")
        path, name = rows[0]
        found = find_for_trace(Path(path)) if Path(path).is_file() else None
        return (found if found is not None else RunTrace.bare(Path(path), name)), ref
    return trace_item(ref), None


def _ingest(db: Store, item: RunTrace) -> int:
    """Ingest the item's trace (a no-op when its content is stored) and return its trace_id."""
    res = db.ingest([item.trace], keep_going=False)[0]
    if res.error or res.trace_id is None:
        raise TraceError(item.trace, res.error or "not ingested")
    return res.trace_id


def _attribute_one(
    db: Store,
    item: RunTrace,
    trace_id: int,
    rules: Sequence[Rule],
    by: str,
    flags: ConfigFlags,
    config: ModelConfig | None,
    with_hta: bool,
) -> AttributeReport:
    att, notes = _attribution(db, item, trace_id, rules, by, flags, config)
    report = summarize(db.con, att, by=by, context=item.point, trace_name=item.trace.name)
    db.record_attribution(trace_id, kernel_components(att, report.phases))  # the store's kernel_components
    if with_hta:
        from tracekit.analyzers.hta_check import temporal_breakdown

        if att.time_source == TimeSource.GPU:
            report = report.with_(hta=temporal_breakdown(item.trace))
        else:
            report = report.with_(
                hta={"note": "HTA's temporal breakdown needs GPU kernels (none here; HTA raises on CPU-only traces)"}
            )
    return report.with_(notes=(*notes, *report.notes))


def _attribution(
    db: Store,
    item: RunTrace,
    trace_id: int,
    rules: Sequence[Rule],
    by: str,
    flags: ConfigFlags,
    config: ModelConfig | None,
) -> tuple[Attribution, list[str]]:
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
    db: Store,
    a: str | os.PathLike[str] | int,
    b: str | os.PathLike[str] | int,
    *,
    threshold: float | None = None,
    flags: ConfigFlags = ConfigFlags(),
    rules: Sequence[Rule] | None = None,
) -> list[TraceDiff]:
    """`tracekit diff A B`: one TraceDiff per compared pair (analyzers/diff.py, docs/diff.md).

    A and B are both trace files, both trace ids of `db` (ints or digit strings), both collect run
    directories (points matched by arch/mode/batch/seqlen/cuda_graphs), or both `prune compare` rows
    `DIR_OR_compare.json#LABEL` (LABEL `dense` or `VARIANT_rRATIO`, rows matched by mode/batch/seqlen/graphs;
    with component times only when the traces are gone).
    """
    from tracekit.analyzers.diff import DEFAULT_THRESHOLD, diff

    th = DEFAULT_THRESHOLD if threshold is None else threshold
    rules = load_rules() if rules is None else rules
    ka, kb = diff_input_kind(a), diff_input_kind(b)
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
            diff(_trace_side(db, pa[k], rules, flags), _trace_side(db, pb[k], rules, flags), threshold=th)
            for k in common
        ]
    ref_a: TraceRef = int(a) if ka == "trace id" else a
    ref_b: TraceRef = int(b) if kb == "trace id" else b
    return [diff(_trace_side(db, ref_a, rules, flags), _trace_side(db, ref_b, rules, flags), threshold=th)]


def _run_points(run_dir: Path) -> dict[tuple[Any, ...], RunTrace]:
    """The run's traces that are present, by point key (the first point of each key)."""
    present, _ = run_items(run_dir)
    out: dict[tuple[Any, ...], RunTrace] = {}
    for item in present:
        if item.manifest_point is not None:
            out.setdefault(item.manifest_point.key, item)
    return out


def _trace_side(db: Store, ref: TraceRef, rules: Sequence[Rule], flags: ConfigFlags) -> DiffSide:
    """Ingest (if needed) and attribute one trace into a DiffSide: by component, by layer, kernel instances."""
    from tracekit.analyzers.diff import POINT_KEYS, DiffSide, count_steps, kernel_instances

    item, trace_id = _resolve(db, ref)
    if trace_id is None:
        trace_id = _ingest(db, item)
    att, _ = _attribution(db, item, trace_id, rules, "component", flags, None)
    rep = summarize(db.con, att, by="component", context=item.point, trace_name=item.trace.name)
    lay = summarize(db.con, att, by="layer", context=item.point, trace_name=item.trace.name)
    point = item.manifest_point
    # a bare trace: its point as far as the attribution found it (arch and graphs unknown)
    found = {"mode": rep.model.mode, "batch": rep.model.batch, "seqlen": rep.model.seqlen}
    return DiffSide(
        label=item.label,
        components=rep.rows,
        layers=lay.rows,
        kernels=kernel_instances(db.con, trace_id, att.units, att.time_source == TimeSource.GPU),
        totals=dataclasses.asdict(rep.total),
        timing=dict(point.timing) if point is not None and point.timing is not None else None,
        peak_mem_bytes=point.peak_mem_bytes if point is not None else None,
        point={k: getattr(point, k) if point is not None else found.get(k) for k in POINT_KEYS},
        trace=str(item.trace),
        device=rep.device,
        steps=count_steps(db.con, trace_id),
        time_source=str(att.time_source),
    )


def _compare_rows(ref: str) -> tuple[str, list[dict[str, Any]]]:
    """(label, rows) of a `DIR_OR_compare.json#LABEL` reference; UsageError when no row has the label."""
    where, _, label = ref.rpartition("#")
    result = CompareResult.read(where)
    rows = result.labelled(label)
    if not rows:
        raise UsageError(f"{ref}: no rows labelled {label!r} (labels: {', '.join(result.labels)})")
    return label, rows


def _compare_pairs(
    db: Store, a: str, b: str, rules: Sequence[Rule], flags: ConfigFlags
) -> list[tuple[DiffSide, DiffSide]]:
    la, rows_a = _compare_rows(a)
    lb, rows_b = _compare_rows(b)

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
            pairs.append((_compare_side(la, ra), _compare_side(lb, rb)))
    if not pairs:
        raise UsageError(f"diff: no row of {a} matches one of {b} (by mode/batch/seqlen/cuda_graphs)")
    return pairs


def _compare_side(label: str, row: dict[str, Any]) -> DiffSide:
    """A compare row whose traces are gone, as a diff side (component times only)."""
    from tracekit.analyzers.diff import side_from_compare_row

    return side_from_compare_row(row, f"{label} {row['mode']} b{row['batch']} l{row['seqlen']} cg={row['cuda_graphs']}")


# ---- tracekit report ---------------------------------------------------------------------------------
def build_report(
    db: Store,
    paths: Sequence[str | os.PathLike[str]],
    *,
    claims_file: str | os.PathLike[str] | None = None,
    on_progress: ProgressFn | None = None,
) -> ReportData:
    """The data of `tracekit report` (analyzers.run_report.ReportData) for the inputs among `paths`:
    collect runs (attributed, cached), prune-compare dirs, prune accuracy results and prune score files
    (tracekit.artifacts.inputs.find_report_inputs)."""
    from tracekit.analyzers.claims import load_claims
    from tracekit.analyzers.run_report import RunInput, analyze

    found = find_report_inputs(paths, load_scores=_load_scores)
    lines: list[str] = []
    runs = []
    for d in found.runs:
        run = attribute_run(db, d, on_progress=on_progress, require_traces=False)
        lines.append(
            f"collect run {d} ({run.manifest.device}): {len(run.manifest.points)} points, "
            f"{len(run.reports)} traces attributed"
            + (f", {len(run.missing)} absent (manifest timings used)" if run.missing else "")
        )
        runs.append(RunInput(_label(d), d, run.manifest, run.reports, run.missing))
    compares = []
    for d in found.compares:
        result = CompareResult.read(d)
        mans = {}
        for m in sorted(d.glob("runs/*/manifest.json")):
            try:
                mans[m.parent.name] = Manifest.read(m.parent)
            except UsageError:
                continue
        lines.append(
            f"prune compare {d}: {len(result.rows)} rows"
            + (f", p10–p90 from {len(mans)} variant manifests" if mans else ", no variant manifests (no p10–p90)")
        )
        compares.append((_label(d), result, mans))
    accs = []
    for f in found.accuracies:
        doc = read_accuracy(f)
        lines.append(f"prune accuracy {f}: methods {', '.join(doc['curves'])}")
        accs.append((f.stem.removeprefix("prune_accuracy_"), doc))
    score_sets = []
    for f, ss in found.scores:
        lines.append(
            f"prune scores {f}: method {ss.method}, {ss.model.arch} {tuple(ss.scores.shape)} (layers, groups, N)"
        )
        score_sets.append((f.stem, ss))
    return analyze(runs, compares, accs, load_claims(claims_file), inputs=lines, scores=score_sets)


def _load_scores(path: Path) -> Any:
    """A `tracekit prune score` file (torch is imported only when the report meets a .pt file)."""
    from tracekit.prune.scoring import load_scores

    return load_scores(path)


def _label(d: Path) -> str:
    """A short name for an input folder: its name, with the parent's when the name alone is generic."""
    d = d.resolve()
    return (
        f"{d.parent.name}/{d.name}"
        if d.name in ("run", "runs", "out", "results") or d.parent.name.endswith("compare")
        else d.name
    )
