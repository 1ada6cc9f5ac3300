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
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from tracekit.analyzers.components import Rule
from tracekit.analyzers.diff import TraceDiff
from tracekit.analyzers.report_types import AttributeReport, RunAttribution
from tracekit.model_config import ModelConfig
from tracekit.pipeline import ConfigFlags, TraceRef, attribute_run, attribute_traces, build_report, diff_traces
from tracekit.store import lake
from tracekit.store.database import ClosedByWith, Database
from tracekit.store.ingest import IngestResult


class TraceDB(ClosedByWith):
    """A trace store and what tracekit computes over it. It holds its store (`store`: a DuckDB file,
    `Database`; or a lake, `Lake`) and passes the store's API through (ingest, sql, tables, con, close, `with`),
    as HTA's TraceAnalysis holds its Trace; attribution, diff, run and report are the analyses on top."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, store: Database | None = None, **options: Any):
        """Hold `store`, else open the DuckDB file `path` (`Database` options: read_only, wait_s, on_wait)."""
        self.store = store if store is not None else Database(path, **options)

    # ---- the store ------------------------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        return self.store.con

    @property
    def path(self) -> str:
        return self.store.path

    @property
    def read_only(self) -> bool:
        return self.store.read_only

    def sql(self, query: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run SQL and return a polars DataFrame (a read-only store refuses statements that write)."""
        return self.store.sql(query, params)

    def check_reads_only(self, query: str) -> None:
        """Raise ReadOnlyError unless every statement of `query` only reads."""
        self.store.check_reads_only(query)

    def tables(self) -> pl.DataFrame:
        """Tables and views of the schema with their row counts."""
        return self.store.tables()

    def trace_id_for(self, sha256: str) -> int | None:
        """The trace_id of the stored trace of this content (sha256 of its JSON), if any."""
        return self.store.trace_id_for(sha256)

    def ingest(self, paths: Sequence[str | os.PathLike[str]], **options: Any) -> list[IngestResult]:
        """Ingest trace files or folders into the store (`Database.ingest`: keep_going, workers, ray_address, ...)."""
        return self.store.ingest(paths, **options)

    def ingest_file(self, path: str | os.PathLike[str]) -> IngestResult:
        """Ingest one trace file (no-op if its content is stored); TraceError on bad input."""
        return self.store.ingest_file(path)

    def record_attribution(self, trace_id: int, rows: pl.DataFrame) -> None:
        """Store one trace's attribution rows in the store's `kernel_components`, replacing earlier ones."""
        self.store.record_attribution(trace_id, rows)

    def export_parquet(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Copy every trace (with its stored attribution) into the lake `directory` (docs/lake.md; created if
        needed, traces it holds already are skipped). Returns the trace folders written."""
        return lake.export(self.store.con, directory)

    def close(self) -> None:
        self.store.close()

    # ---- analyses -------------------------------------------------------------------------------------
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


class TraceLake(TraceDB):
    """A TraceDB holding a trace lake (docs/lake.md): the same views over Parquet (SQL read-only), `ingest`
    that commits traces to the lake, and attribution, whose per-kernel components land in the lake too."""

    store: lake.Lake

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False):
        super().__init__(store=lake.Lake(path, create=create))

    def refresh(self) -> None:
        """Point the views at the traces committed now (`Lake.refresh`)."""
        self.store.refresh()
