"""The facade: `tracekit.open(path)` returns a `TraceDB`, the one front door to the library.

    import tracekit
    db = tracekit.open("tracekit.duckdb")
    db.ingest(["run.json.gz"])                       # -> list[IngestResult]
    db.sql("select name, sum(dur_ns) from kernels group by 1")   # -> polars.DataFrame
    report = db.attribute("run.json.gz", by="layer")  # -> AttributeReport (ingested if needed)
    report.components, report.notes, report.to_dict()
    run = db.run("runs/h100-130m")                    # -> RunAttribution (every trace of a collect run)
    [d] = db.diff("a.json.gz", "b.json.gz")           # -> list[TraceDiff] (one per compared pair)

Each method is one delegation to tracekit.pipeline / tracekit.analyzers; see those for the details.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from tracekit.analyzers.components import Rule
from tracekit.analyzers.diff import TraceDiff
from tracekit.analyzers.report_types import AttributeReport, RunAttribution
from tracekit.model_config import ModelConfig
from tracekit.pipeline import ConfigFlags, TraceRef, attribute_run, attribute_traces, build_report, diff_traces
from tracekit.store.database import Database
from tracekit.store.lake import Lake


class TraceDB(Database):
    """A trace database (everything `Database` has: ingest, sql, tables, export_parquet, con, close, `with`)
    plus attribution."""

    def attribute(
        self,
        trace: TraceRef,
        *,
        by: str = "component",
        config: ModelConfig | None = None,
        flags: ConfigFlags | None = None,
        rules: Sequence[Rule] | None = None,
    ) -> AttributeReport:
        """Attribute one trace (a trace_id, or a trace file: ingested first) by component, layer, kernel,
        category or stream; the config is `config`, else `flags`, else the manifest's, else inferred."""
        return attribute_traces(self, [trace], by=by, config=config, flags=flags or ConfigFlags(), rules=rules)[0]

    def diff(self, a: TraceRef, b: TraceRef, *, threshold: float | None = None) -> list[TraceDiff]:
        """What changed from A to B (trace files, trace ids, run dirs or compare rows DIR#LABEL): one TraceDiff
        per compared pair (components, layers, kernels matched by position, timing noise; docs/diff.md)."""
        return diff_traces(self, a, b, threshold=threshold)

    def run(self, run_dir: str | os.PathLike[str], *, by: str = "component") -> RunAttribution:
        """Attribute every trace of a `tracekit collect` run directory, with the configs of its manifest."""
        return attribute_run(self, run_dir, by=by)

    def report(self, paths: Sequence[str | os.PathLike[str]], *, claims_file: str | os.PathLike[str] | None = None):
        """The data of `tracekit report` (ReportData) for collect runs, prune-compare dirs and accuracy results."""
        return build_report(self, paths, claims_file=claims_file)


class TraceLake(Lake, TraceDB):
    """A trace lake (docs/lake.md) with everything a `TraceDB` has: the same views over Parquet (SQL read-only),
    `ingest` that commits traces to the lake, and attribution, which also stores each attributed trace's
    per-kernel components in the lake (`kernel_components`)."""
