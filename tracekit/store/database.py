"""The trace store: an embedded DuckDB file with tracekit's schema, and the Python API over it."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import duckdb

from tracekit.errors import MissingPathError, TracekitError, UsageError
from tracekit.progress import ProgressFn
from tracekit.schema import BASE_TABLES, SCHEMA_VERSION, schema_digest, schema_files
from tracekit.schema.migrate import migrate
from tracekit.store import driver
from tracekit.store.frames import frame, integral_decimals
from tracekit.store.ingest import IngestResult, ingest_prepared, memory_limit, sql_str, write_transaction
from tracekit.store.kineto import PreparedTrace

if TYPE_CHECKING:  # imported where frames are made, so an ingest-only process never loads polars
    import polars as pl

DEFAULT_DB = "tracekit.duckdb"
TRACE_SUFFIXES = (".json", ".json.gz", ".json.xz", ".json.bz2", ".json.zst")
RUN_FILES = ("manifest.json",)  # written by `tracekit collect` beside its traces
__all__ = ["BASE_TABLES", "Database", "DuckDBSink", "ReadOnlyError", "default_db_path", "expand_paths"]
_LOCK_RE = re.compile(r"lock", re.IGNORECASE)

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


class ClosedByWith:
    """`with x:` closes `x` at the end (x defines `close`)."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Database(ClosedByWith):
    """A tracekit store. Writers hold DuckDB's file lock; a second writer waits up to `wait_s`.

    While it waits, `on_wait` is called once with a message saying so (default: a warning on the `tracekit` logger).
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
        self._on_wait = on_wait if on_wait is not None else _log_wait
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
    def sink(self) -> driver.Sink:
        """Where `driver.ingest` lands traces in this store."""
        if self.read_only:
            raise TracekitError(f"{self.path}: opened read-only")
        return DuckDBSink(self)

    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        keep_going: bool = True,
        workers: int | None = 1,
        on_progress: ProgressFn | None = None,
        ray_address: str | None = None,
    ) -> list[IngestResult]:
        """Ingest trace files (folders are searched for *.json, *.json.gz, .xz, .bz2, .zst) through the one
        ingest path (`driver.ingest`).

        Each trace is one transaction: a failure leaves the store as it was. With `keep_going`, a bad file is
        recorded in its result's `error` and the rest continue; otherwise it raises. `workers` > 1 (None: one
        per core for folders big enough, `driver.auto_workers`) parses several traces at once in worker
        processes, or `ray_address` in Ray tasks; the stored rows are the same. `on_progress` hears
        of each trace as it lands, in file order (stage INGEST, its IngestResult).
        """
        sink = self.sink()
        files = expand_paths(paths)
        engine = driver.engine_for(files, workers, ray_address)
        return driver.ingest(files, sink, engine=engine, keep_going=keep_going, on_progress=on_progress)

    def ingest_file(self, path: str | os.PathLike[str]) -> IngestResult:
        """Ingest one trace file (no-op if its content is already stored); TraceError on bad input."""
        return self.ingest([path], keep_going=False)[0]

    def record_attribution(self, trace_id: int, rows: pl.DataFrame) -> None:
        """Store one trace's attribution (`analyzers.kernel_components.kernel_components`: one row per unit) in
        `kernel_components`, replacing the trace's earlier rows, in one transaction. A read-only store keeps
        nothing (it writes nothing)."""
        if self.read_only:
            return
        self.con.register("_kernel_components", rows)
        try:
            with write_transaction(self.con):
                self.con.execute("DELETE FROM kernel_components WHERE trace_id = ?", [trace_id])
                self.con.execute(
                    "INSERT INTO kernel_components BY NAME SELECT CAST($tid AS INTEGER) AS trace_id, * "
                    "FROM _kernel_components",
                    {"tid": trace_id},
                )
        finally:
            self.con.unregister("_kernel_components")


class DuckDBSink:
    """The DuckDB file as a sink of `driver.ingest`: this process is its one writer; each trace lands in one
    transaction."""

    compression = "snappy"  # parsed folders live seconds here: cheap to write and read back

    def __init__(self, db: Database):
        self.db = db

    def stored(self, sha256: str) -> int | None:
        return self.db.trace_id_for(sha256)

    def known(self) -> frozenset[str]:
        return frozenset(r[0] for r in self.db.con.execute("SELECT sha256 FROM traces").fetchall())

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="tracekit-stage-") as tmp:
            yield Path(tmp)

    def write(self, prepared: PreparedTrace) -> IngestResult:
        """Parse and insert straight into the database's own connection (no Parquet round trip)."""
        # Cap DuckDB's memory at the trace's JSON size (it spills to <db>.tmp beyond that), so peak RSS stays
        # under 1.5x the JSON rather than several times it (ingest.memory_limit).
        con, capped = self.db.con, self.db.path != ":memory:"
        if capped:
            limit = memory_limit(prepared.json_bytes)
            con.execute(f"SET memory_limit = '{limit // (1 << 20)}MiB'")
        try:
            return ingest_prepared(con, prepared)
        finally:
            if capped:
                con.execute("RESET memory_limit")

    def land(self, folder: Path, sha256: str) -> tuple[int, bool]:
        con = self.db.con
        with write_transaction(con):
            existing = self.db.trace_id_for(sha256)
            if existing is not None:
                return existing, True
            trace_id = con.execute("SELECT nextval('trace_id_seq')").fetchall()[0][0]
            for table in BASE_TABLES:
                con.execute(
                    f"INSERT INTO {table} BY NAME SELECT CAST($tid AS INTEGER) AS trace_id, * "
                    f"FROM read_parquet({sql_str(folder / f'{table}.parquet')})",
                    {"tid": trace_id},
                )
        return int(trace_id), False


class ReadOnlyError(UsageError):
    """A statement that writes, on a store opened read-only."""


def _log_wait(message: str) -> None:
    """The default `on_wait`: a warning on the `tracekit` logger (with no logging set up, Python's last-resort
    handler shows it on stderr, which is what the CLI wants; a program that embeds tracekit routes it)."""
    logging.getLogger("tracekit").warning("tracekit: %s", message)


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
