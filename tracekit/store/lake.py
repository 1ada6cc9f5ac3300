"""The trace lake: the store's base tables as Parquet, one directory per trace (docs/lake.md).

Layout: `DIR/tracekit_lake.json` (the schema version) and `DIR/trace_id=N/<table>.parquet` for every base
table — Hive partitioning by trace: the files hold every column but `trace_id`, which is the directory's.
A trace is written to `DIR/.staging/<random>/` and committed by one `rename` to `DIR/trace_id=N`, so a reader
or another writer sees all of a trace or none of it, and a crash leaves only a staging folder.

Trace ids are claimed by that rename (it fails when `trace_id=N` exists and is not empty). A writer reads the
hashes of the committed traces, then tries max+1, max+2, ...: each slot it finds taken is read, and a slot
holding the same content means the trace is already there (skipped). Since a slot is only claimed after the
one below it is taken, every trace committed after the writer's listing lies above its starting point, so
two writers of the same content meet at one slot: idempotent per content hash, without a lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from tracekit.errors import MissingPathError, TracekitError, UsageError
from tracekit.progress import ProgressFn
from tracekit.schema import SCHEMA_VERSION, schema_files
from tracekit.store import kineto
from tracekit.store.database import BASE_TABLES, Database, expand_paths
from tracekit.store.ingest import IngestResult, ingest_prepared

LAKE_FILE = "tracekit_lake.json"
STAGING = ".staging"
PREFIX = "trace_id="
LAKE_ONLY_TABLES = ("kernel_components",)  # written by `tracekit attribute --lake` (docs/lake.md)
KERNEL_COMPONENTS_DDL = """CREATE TABLE IF NOT EXISTS kernel_components (
    trace_id   INTEGER NOT NULL,
    event_id   BIGINT NOT NULL,
    component  VARCHAR NOT NULL,
    layer      INTEGER,
    reason     VARCHAR
)"""
COMPRESSION = "zstd"


# ---- layout ---------------------------------------------------------------------------------------
def trace_dirs(root: Path) -> dict[int, Path]:
    """trace_id -> its committed directory."""
    out = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(root):
            if entry.name.startswith(PREFIX) and entry.is_dir():
                with contextlib.suppress(ValueError):
                    out[int(entry.name[len(PREFIX) :])] = Path(entry.path)
    return out


def init_lake(root: str | os.PathLike[str]) -> Path:
    """Create the lake folder and its version file if missing; refuse a folder that is something else."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: is a file, not a lake folder")
    marker = root / LAKE_FILE
    if marker.exists():
        check_lake(root)
        return root
    if root.is_dir() and any(p for p in root.iterdir() if p.name != STAGING):
        raise UsageError(f"{root}: not empty and not a tracekit lake (no {LAKE_FILE})")
    try:
        (root / STAGING).mkdir(parents=True, exist_ok=True)
        tmp = root / STAGING / f"{LAKE_FILE}.{uuid.uuid4().hex}"
        tmp.write_text(json.dumps({"schema_version": SCHEMA_VERSION, "layout": "trace_id=N/<table>.parquet"}) + "\n")
        os.replace(tmp, marker)  # two writers creating the lake at once write the same content
    except OSError as exc:
        raise TracekitError(f"{root}: cannot create the lake ({exc.strerror or exc})") from None
    return root


def check_lake(root: Path) -> None:
    marker = root / LAKE_FILE
    if not root.is_dir():
        raise MissingPathError(f"{root}: no such lake (create one with `tracekit ingest ... --lake {root}`)")
    try:
        version = int(json.loads(marker.read_text())["schema_version"])
    except FileNotFoundError:
        raise TracekitError(f"{root}: not a tracekit lake (no {LAKE_FILE})") from None
    except (ValueError, KeyError, TypeError):
        raise TracekitError(f"{root}: {LAKE_FILE} is unreadable") from None
    if version != SCHEMA_VERSION:
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise TracekitError(f"{root}: lake schema v{version} is {newer} than this tracekit (v{SCHEMA_VERSION})")


def _sql_str(p: Path | str) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def shas_of(dirs: Iterable[Path]) -> dict[str, int]:
    """sha256 -> trace_id of committed trace directories."""
    files = [d / "traces.parquet" for d in dirs]
    if not files:
        return {}
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT sha256, trace_id FROM read_parquet([{', '.join(_sql_str(f) for f in files)}], "
            "hive_partitioning = true, hive_types = {'trace_id': 'INTEGER'})"
        ).fetchall()
    finally:
        con.close()
    return {sha: int(tid) for sha, tid in rows}


# ---- writing one trace ----------------------------------------------------------------------------
def write_tables(con: duckdb.DuckDBPyConnection, trace_id: int, dest: Path, compression: str = COMPRESSION) -> None:
    """One Parquet file per base table holding trace `trace_id`'s rows (without the trace_id column)."""
    for table in BASE_TABLES:
        con.execute(
            f"COPY (SELECT * EXCLUDE (trace_id) FROM {table} WHERE trace_id = {int(trace_id)}) "
            f"TO {_sql_str(dest / f'{table}.parquet')} (FORMAT parquet, COMPRESSION {compression})"
        )


def stage(
    path: str | os.PathLike[str],
    dest: Path,
    *,
    known: frozenset[str] = frozenset(),
    threads: int | None = None,
    compression: str = COMPRESSION,
) -> tuple[IngestResult, str | None]:
    """Ingest one trace into a private in-memory store and write its rows as Parquet files under `dest`
    (created). Returns the result and the content hash; a hash in `known` is not parsed (result.skipped,
    nothing written). A bad trace raises TraceError and leaves `dest` absent."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
        prepared = kineto.prepare(path, tmp)
        if prepared.sha256 in known:
            return IngestResult(str(prepared.path), None, True, json_bytes=prepared.json_bytes), prepared.sha256
        mem = _staging_db()
        try:
            mem.con.execute(f"SET threads = {int(threads)}" if threads else "RESET threads")
            mem.con.execute(f"SET temp_directory = {_sql_str(tmp)}")
            mem.con.execute(f"SET memory_limit = '{max(512 << 20, prepared.json_bytes) >> 20}MiB'")
            result = ingest_prepared(mem.con, prepared)
            dest.mkdir(parents=True)
            try:
                write_tables(mem.con, result.trace_id, dest, compression)
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
        finally:
            for table in BASE_TABLES:  # empty again for the next trace of this process
                mem.con.execute(f"DELETE FROM {table}")
            mem.con.execute("RESET temp_directory")
    result.seconds = time.perf_counter() - t0
    return result, prepared.sha256


_STAGING: list[Database] = []


def _staging_db() -> Database:
    """This process's private in-memory store, where a trace is parsed, nested and linked before it is written."""
    if not _STAGING:
        _STAGING.append(Database(":memory:"))
    return _STAGING[0]


def commit(root: Path, staged: Path, sha: str, known: dict[str, int], since: int) -> tuple[int, bool]:
    """Move a staged trace into the lake under a fresh trace_id: (trace_id, False); or, when the lake
    already holds its content, remove it: (that trace_id, True). `known`: the hashes of the traces
    committed when the writer listed the lake, whose largest trace_id was `since` (module docstring)."""
    dirs = trace_dirs(root)
    if sha not in known:
        known = {**known, **shas_of(d for i, d in dirs.items() if i > since)}
    if sha in known:
        shutil.rmtree(staged, ignore_errors=True)
        return known[sha], True
    n = max(dirs, default=0) + 1
    while True:
        target = root / f"{PREFIX}{n}"
        try:
            os.rename(staged, target)
            return n, False
        except OSError as exc:
            if not target.exists():
                raise TracekitError(f"{root}: cannot commit a trace ({exc.strerror or exc})") from None
        if sha in shas_of([target]):  # another writer committed the same content first
            shutil.rmtree(staged, ignore_errors=True)
            return n, True
        n += 1


def ingest_one(
    path: str | os.PathLike[str],
    root: Path,
    *,
    known: dict[str, int] | None = None,
    since: int | None = None,
    threads: int | None = None,
) -> IngestResult:
    """Ingest one trace file into the lake `root` (which exists): parse, write, commit. TraceError on bad
    input. `known`/`since`: the lake's hashes and largest trace_id when the caller listed it (else listed here)."""
    t0 = time.perf_counter()
    if known is None or since is None:
        dirs = trace_dirs(root)
        known, since = shas_of(dirs.values()), max(dirs, default=0)
    staged = root / STAGING / uuid.uuid4().hex
    try:
        result, sha = stage(path, staged, known=frozenset(known), threads=threads)
        if result.skipped:
            result.trace_id = known[sha or ""]
        else:
            result.trace_id, result.skipped = commit(root, staged, sha or "", known, since)
            if result.skipped:
                result.events = result.kernels = 0
                result.notes = {}
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # absent after a commit
    result.seconds = time.perf_counter() - t0
    return result


def export_db(con: duckdb.DuckDBPyConnection, root: str | os.PathLike[str]) -> list[Path]:
    """Write every trace of a DuckDB store into the lake `root` (created if needed); traces it holds already
    (same content) are skipped. Returns the trace directories written."""
    root = init_lake(root)
    dirs = trace_dirs(root)
    known, since = shas_of(dirs.values()), max(dirs, default=0)
    written = []
    for trace_id, sha in con.execute("SELECT trace_id, sha256 FROM traces ORDER BY trace_id").fetchall():
        staged = root / STAGING / uuid.uuid4().hex
        staged.mkdir(parents=True)
        try:
            write_tables(con, trace_id, staged)
            n, skipped = commit(root, staged, sha, known, since)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if not skipped:
            written.append(root / f"{PREFIX}{n}")
    return written


def write_kernel_components(root: Path, trace_id: int, units: duckdb.DuckDBPyRelation | object) -> Path:
    """Store one trace's attribution (one row per kernel, or per CPU event on CPU-only traces: event_id,
    component, layer, reason) as `trace_id=N/kernel_components.parquet`, replacing an earlier one atomically."""
    target_dir = root / f"{PREFIX}{int(trace_id)}"
    if not target_dir.is_dir():
        raise UsageError(f"{root}: no trace with trace_id {trace_id}")
    tmp = root / STAGING / f"kc-{uuid.uuid4().hex}.parquet"
    (root / STAGING).mkdir(exist_ok=True)
    con = duckdb.connect()
    try:
        con.register("units_df", units)
        con.execute(
            "COPY (SELECT CAST(event_id AS BIGINT) AS event_id, CAST(component AS VARCHAR) AS component, "
            "CAST(layer AS INTEGER) AS layer, CAST(reason AS VARCHAR) AS reason FROM units_df ORDER BY event_id) "
            f"TO {_sql_str(tmp)} (FORMAT parquet, COMPRESSION {COMPRESSION})"
        )
    finally:
        con.close()
    os.replace(tmp, target_dir / "kernel_components.parquet")
    return target_dir / "kernel_components.parquet"


# ---- reading --------------------------------------------------------------------------------------
@cache
def _table_ddl() -> dict[str, tuple[str, list[str]]]:
    """Base table -> (CREATE TABLE statement, column names in order), from the schema files."""
    scratch = duckdb.connect()
    try:
        for _, sql in schema_files():
            scratch.execute(sql)
        scratch.execute(KERNEL_COMPONENTS_DDL)
        out = {}
        for table in (*BASE_TABLES, *LAKE_ONLY_TABLES):
            ddl = scratch.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()[0][0]
            cols = [r[0] for r in scratch.execute(f"DESCRIBE {table}").fetchall()]
            out[table] = (ddl, cols)
        return out
    finally:
        scratch.close()


def _views_sql() -> list[str]:
    """The schema's views and macros, and the category alias table (tables of the schema come from Parquet)."""
    return [sql for name, sql in schema_files() if name.startswith(("002_", "004_"))]


class Lake(Database):
    """A trace lake opened for reading: an in-memory DuckDB whose base tables are views over the Parquet
    files (`trace_id` from the folder names), with the schema's views and macros on top. SQL runs read-only
    (the same rule as a read-only `Database`). The views see the traces committed when the lake was opened
    or last `refresh`ed (one consistent snapshot); `ingest` adds traces and refreshes."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False):
        self.path = str(path)
        self.read_only = True
        self.root = Path(path)
        if create:
            init_lake(self.root)
        check_lake(self.root)
        self.con = duckdb.connect(":memory:")
        try:
            self.con.execute("SET autoinstall_known_extensions = false")
            self.con.execute("CREATE TABLE tracekit_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
            self.con.execute("INSERT INTO tracekit_meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
            self.refresh()
            self.con.execute("SET lock_configuration = true")
        except BaseException:
            self.con.close()
            raise

    def refresh(self) -> None:
        """Point the views at the traces committed now."""
        dirs = trace_dirs(self.root)
        last = max(dirs, default=0)
        have_kc = any((d / "kernel_components.parquet").is_file() for d in dirs.values())
        kinds = dict(self.con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        for table, (ddl, cols) in _table_ddl().items():
            if table in kinds:
                self.con.execute(f"DROP {'VIEW' if kinds[table] == 'VIEW' else 'TABLE'} {table}")
            if not dirs or (table in LAKE_ONLY_TABLES and not have_kc):
                self.con.execute(ddl)  # an empty table of the right types
                continue
            glob = _sql_str(self.root / f"{PREFIX}*" / f"{table}.parquet")
            self.con.execute(
                f"CREATE VIEW {table} AS SELECT {', '.join(cols)} FROM read_parquet({glob}, "
                f"hive_partitioning = true, hive_types = {{'trace_id': 'INTEGER'}}) WHERE trace_id <= {last}"
            )
        for sql in _views_sql():
            self.con.execute(sql)

    def tables(self) -> Any:
        """Tables and views with their row counts; the base tables (views over Parquet here) say `table`."""
        import polars as pl

        df = super().tables()
        base = (*BASE_TABLES, *LAKE_ONLY_TABLES)
        return df.with_columns(
            pl.when(pl.col("name").is_in(base)).then(pl.lit("table")).otherwise(pl.col("kind")).alias("kind")
        ).sort("kind", "name")

    def trace_id_for(self, sha256: str) -> int | None:
        return shas_of(trace_dirs(self.root).values()).get(sha256)

    def ingest(
        self,
        paths: Iterable[str | os.PathLike[str]],
        *,
        keep_going: bool = True,
        workers: int | None = 1,
        on_progress: ProgressFn | None = None,
        ray_address: str | None = None,
    ) -> list[IngestResult]:
        """Add trace files to the lake (each committed whole or not at all), then refresh the views."""
        from tracekit.store import parallel

        try:
            return parallel.ingest_lake(
                expand_paths(paths),
                self.root,
                workers=workers,
                keep_going=keep_going,
                on_progress=on_progress,
                ray_address=ray_address,
            )
        finally:
            self.refresh()

    def ingest_file(self, path: str | os.PathLike[str]) -> IngestResult:
        return self.ingest([path], keep_going=False)[0]

    def record_attribution(self, trace_id: int, units: Any) -> None:
        """Keep what `attribute` computed: the trace's `kernel_components` rows (docs/lake.md)."""
        write_kernel_components(self.root, trace_id, units)
        self.refresh()

    def export_parquet(self, directory: str | os.PathLike[str]) -> list[Path]:
        raise UsageError(f"{self.path} is a lake already (Parquet); copy the folder instead")


def open_lake(path: str | os.PathLike[str]) -> Lake:
    return Lake(path)
