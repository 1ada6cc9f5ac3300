"""The trace store: an embedded DuckDB file with tracekit's schema, and the Python API over it."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tracekit.errors import MissingPathError, TraceError, TracekitError, UsageError
from tracekit.schema import SCHEMA_VERSION, schema_digest, schema_files
from tracekit.schema.migrate import migrate
from tracekit.store import kineto
from tracekit.store.frames import frame, integral_decimals
from tracekit.store.ingest import IngestResult, ingest_prepared, memory_limit

if TYPE_CHECKING:  # imported where frames are made, so an ingest-only process never loads polars
    import polars as pl

DEFAULT_DB = "tracekit.duckdb"
TRACE_SUFFIXES = (".json", ".json.gz", ".json.xz", ".json.bz2", ".json.zst")
RUN_FILES = ("manifest.json",)  # written by `tracekit collect` beside its traces
BASE_TABLES = (
    "traces",
    "events",
    "instants",
    "memory",
    "flows",
    "tracks",
    "other_events",
    "counters",
    "async_slices",
    "async_instants",
)
_LOCK_RE = re.compile(r"lock", re.IGNORECASE)

ProgressFn = Callable[[str, int, int], None]  # (path, index, total)
WaitFn = Callable[[str], None]  # told once, with a message, when opening waits for another process's lock

# Statements a read-only store runs (DuckDB's StatementType of each parsed statement). Everything else --
# INSERT/UPDATE/DELETE, CREATE/DROP/ALTER, COPY (to or from files), EXPORT/IMPORT DATABASE, ATTACH/DETACH/
# USE, INSTALL/LOAD, SET/RESET, VACUUM, transactions -- is refused before anything runs; so is IMPORT
# DATABASE, which DuckDB parses as a PRAGMA. SELECT covers WITH, FROM-first, VALUES, DESCRIBE, SHOW,
# SUMMARIZE; MULTI is PIVOT (a temporary enum + SELECT). The connection is read-only (DuckDB refuses any
# write to the database; CHECKPOINT, a CALL, does nothing) with its settings locked (so no SET/PRAGMA/CALL
# can turn on profile or log output files) and no automatic extension install (a download into ~/.duckdb).
READ_STATEMENTS = frozenset({"SELECT", "EXPLAIN", "PRAGMA", "CALL", "MULTI"})
_IMPORT_RE = re.compile(r"^\s*import\s+database\b", re.IGNORECASE)
_EXPLAIN_RE = re.compile(r"^\s*explain\b\s*(?:\([^)]*\)\s*)?(?:analy[sz]e\b)?", re.IGNORECASE)


def default_db_path() -> str:
    """`$TRACEKIT_DB`, else tracekit.duckdb in the working directory."""
    return os.environ.get("TRACEKIT_DB", DEFAULT_DB)


class Database:
    """A tracekit store. Writers hold DuckDB's file lock; a second writer waits up to `wait_s`.

    While it waits, `on_wait` is called once with a message saying so (default: printed on stderr).
    A read-only store runs only statements that read (see READ_STATEMENTS): no write to the database
    or to any file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        read_only: bool = False,
        wait_s: float = 30.0,
        on_wait: WaitFn | None = None,
    ):
        self.path = str(path) if path is not None else default_db_path()
        self.read_only = read_only
        self._on_wait = on_wait if on_wait is not None else _tell_stderr
        if self.path != ":memory:":
            p = Path(self.path)
            if read_only and not p.exists():
                raise MissingPathError(f"{self.path}: no such database (create one with `tracekit ingest`)")
            if p.is_dir():
                raise UsageError(f"{self.path}: is a directory, not a database file")
            if not read_only and not p.exists() and not p.parent.is_dir():
                raise MissingPathError(f"{self.path}: no such directory {str(p.parent)!r} for the database")
        self.con = self._connect(wait_s)
        try:
            if not read_only:
                self._apply_schema()
            else:
                self._check_version()
        except BaseException:
            self.con.close()  # a refused database is not left open (and locked) in this process
            raise

    # ---- connection ---------------------------------------------------------
    def _connect(self, wait_s: float) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + wait_s
        delay = 0.05
        told = False
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self.read_only)
                break
            except duckdb.IOException as exc:
                msg = str(exc)
                if _LOCK_RE.search(msg) and not told and time.monotonic() < deadline:
                    holder = re.search(r"PID (\d+)", msg)
                    by = f"process {holder.group(1)}" if holder else "another process"
                    self._on_wait(f"{self.path} is locked by {by}; waiting up to {wait_s:g} s (--wait)...")
                    told = True
                if not _LOCK_RE.search(msg) or time.monotonic() >= deadline:
                    holder = re.search(r"PID (\d+)", msg)
                    who = f" (held by process {holder.group(1)})" if holder else ""
                    if _LOCK_RE.search(msg):
                        raise TracekitError(
                            f"{self.path}: database is locked by another tracekit/DuckDB process{who}; "
                            f"waited {wait_s:g}s"
                        ) from None
                    raise TracekitError(f"{self.path}: cannot open database ({msg.splitlines()[0]})") from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
            except duckdb.Error as exc:
                raise TracekitError(f"{self.path}: not a DuckDB database ({str(exc).splitlines()[0]})") from None
        if self.read_only:  # see READ_STATEMENTS
            con.execute("SET autoinstall_known_extensions = false")
            con.execute("SET lock_configuration = true")
        return con

    def _stored_version(self) -> int | None:
        try:
            rows = self.con.execute("SELECT value FROM tracekit_meta WHERE key = 'schema_version'").fetchall()
        except duckdb.CatalogException:
            return None
        return int(rows[0][0]) if rows else None

    def _stored_digest(self) -> str | None:
        rows = self.con.execute("SELECT value FROM tracekit_meta WHERE key = 'schema_sha256'").fetchall()
        return rows[0][0] if rows else None

    def _check_version(self) -> None:
        v = self._stored_version()
        if v is None:
            raise TracekitError(f"{self.path}: not a tracekit database (no tracekit_meta table)")
        if v > SCHEMA_VERSION:
            raise TracekitError(f"{self.path}: schema v{v} is newer than this tracekit (v{SCHEMA_VERSION})")
        if v < SCHEMA_VERSION:
            raise TracekitError(
                f"{self.path}: schema v{v} is older than this tracekit (v{SCHEMA_VERSION}); open it for writing once "
                f'to upgrade it in place, e.g. `tracekit query --write --db {self.path} "select 1"`'
            )

    def _apply_schema(self) -> None:
        v = self._stored_version()
        if v is not None and v > SCHEMA_VERSION:
            raise TracekitError(f"{self.path}: schema v{v} is newer than this tracekit (v{SCHEMA_VERSION})")
        digest = schema_digest()
        if v == SCHEMA_VERSION and self._stored_digest() == digest:
            return
        self.con.execute("BEGIN TRANSACTION")
        try:
            if v is not None and v < SCHEMA_VERSION:
                migrate(self.con, v)  # docs/schema.md#migration
            else:  # a new database, or one whose views/macros an earlier tracekit of this version wrote: the
                # schema files only create what is missing and replace views, macros and the alias table
                for _, sql in schema_files():
                    self.con.execute(sql)
            self.con.execute("INSERT OR REPLACE INTO tracekit_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            self.con.execute("INSERT OR REPLACE INTO tracekit_meta VALUES ('schema_sha256', ?)", [digest])
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- queries --------------------------------------------------------------
    def sql(self, query: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run SQL and return a polars DataFrame (duplicate column names get DuckDB's `_1`, `_2` suffixes).

        On a read-only store, a statement that would write (the database or a file) is refused first.
        """
        if self.read_only:
            self.check_reads_only(query)
        try:
            return integral_decimals(frame(self.con, query, params))
        except duckdb.Error as exc:
            raise TracekitError(f"query failed: {str(exc).splitlines()[0]}") from None

    def check_reads_only(self, query: str) -> None:
        """Raise ReadOnlyError unless every statement of `query` is one that only reads."""
        try:
            statements = self.con.extract_statements(query)
        except duckdb.Error as exc:
            raise TracekitError(f"query failed: {str(exc).splitlines()[0]}") from None
        for st in statements:
            kind = st.type.name
            if kind == "EXPLAIN":  # EXPLAIN ANALYZE runs its statement: check that one
                inner = _EXPLAIN_RE.sub("", st.query, count=1)
                if inner.strip().rstrip(";").strip():
                    self.check_reads_only(inner)
                continue
            if kind == "PRAGMA" and _IMPORT_RE.match(st.query):
                kind = "IMPORT DATABASE"
            if kind not in READ_STATEMENTS:
                raise ReadOnlyError(
                    f"{self.path} is opened read-only and {kind} statements may write (the database or files); "
                    "`tracekit query` runs them only with --write"
                )

    def tables(self) -> pl.DataFrame:
        """Tables and views of the schema with their row counts."""
        rows = self.con.execute(
            """SELECT table_name, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END
               FROM information_schema.tables
               WHERE table_schema = 'main' AND table_catalog = current_database()
               ORDER BY table_type, table_name"""
        ).fetchall()
        import polars as pl

        out = []
        for name, kind in rows:
            n = self.con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
            out.append({"name": name, "kind": kind, "rows": n})
        return pl.DataFrame(out, schema={"name": pl.String, "kind": pl.String, "rows": pl.Int64})

    def trace_id_for(self, sha256: str) -> int | None:
        rows = self.con.execute("SELECT trace_id FROM traces WHERE sha256 = ?", [sha256]).fetchall()
        return int(rows[0][0]) if rows else None

    # ---- ingest ---------------------------------------------------------------
    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        on_file: ProgressFn | None = None,
        keep_going: bool = True,
        workers: int | None = 1,
        on_result: Callable[[IngestResult], None] | None = None,
        ray_address: str | None = None,
    ) -> list[IngestResult]:
        """Ingest trace files (folders are searched for *.json, *.json.gz, .xz, .bz2, .zst).

        Each trace is one transaction: a failure leaves the database as it was. With `keep_going`, a
        bad file is recorded in its result's `error` and the rest continue; otherwise it raises.
        `workers` > 1 (None: one per core for folders big enough, `parallel.auto_workers`) parses several
        traces at once in worker processes, or
        `ray_address` in Ray tasks (tracekit/store/parallel.py); the stored rows are the same.
        """
        if self.read_only:
            raise TracekitError(f"{self.path}: opened read-only")
        files = expand_paths(paths)
        from tracekit.store import parallel  # imported here: it imports this module

        if ray_address is not None or (len(files) > 1 and (workers or parallel.auto_workers(files)) > 1):
            return parallel.ingest_db(
                self, files, workers=workers, keep_going=keep_going, on_result=on_result, ray_address=ray_address
            )
        results: list[IngestResult] = []
        for i, f in enumerate(files):
            if on_file:
                on_file(str(f), i, len(files))
            try:
                results.append(self.ingest_file(f))
            except TraceError as exc:
                if not keep_going:
                    raise
                results.append(IngestResult(path=str(f), trace_id=None, skipped=False, error=exc.problem))
            if on_result:
                on_result(results[-1])
        return results

    def ingest_file(self, path: str | os.PathLike[str]) -> IngestResult:
        """Ingest one trace file in one transaction (no-op if its content is already stored)."""
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
            prepared = kineto.prepare(path, tmp)
            existing = self.trace_id_for(prepared.sha256)
            if existing is not None:
                return IngestResult(
                    path=str(prepared.path),
                    trace_id=existing,
                    skipped=True,
                    json_bytes=prepared.json_bytes,
                    seconds=time.perf_counter() - t0,
                )
            # Cap DuckDB's memory below the trace's JSON size (it spills to <db>.tmp beyond that), so
            # peak RSS stays under 1.5x the JSON rather than several times it (ingest.memory_limit).
            capped = self.path != ":memory:"
            if capped:
                limit = memory_limit(prepared.json_bytes)
                self.con.execute(f"SET memory_limit = '{limit // (1 << 20)}MiB'")
            try:
                result = ingest_prepared(self.con, prepared)
            finally:
                if capped:
                    self.con.execute("RESET memory_limit")
        result.seconds = time.perf_counter() - t0
        return result

    def record_attribution(self, trace_id: int, units: Any) -> None:
        """Called by attribution with its per-unit result; a DuckDB store recomputes it, a lake keeps it."""

    # ---- export ---------------------------------------------------------------
    def export_parquet(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write every trace to the lake `directory` (docs/lake.md; created if needed, traces it holds
        already are skipped). Returns the trace folders written."""
        from tracekit.store import lake

        return lake.export_db(self.con, directory)


class ReadOnlyError(UsageError):
    """A statement that writes, on a store opened read-only."""


def _tell_stderr(message: str) -> None:
    print(f"tracekit: {message}", file=sys.stderr, flush=True)


def expand_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files as given, plus the trace files found (recursively, sorted) under each folder.

    In folders, `tracekit collect`'s own `manifest.json` files are not traces and are left out.
    """
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(
                f for f in p.rglob("*") if f.is_file() and f.name.endswith(TRACE_SUFFIXES) and f.name not in RUN_FILES
            )
            files.extend(found)
        else:
            files.append(p)
    return files
