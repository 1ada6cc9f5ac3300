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
import uuid
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from tracekit.errors import MissingPathError, TracekitError, UsageError
from tracekit.schema import BASE_TABLES, RESULT_TABLES, SCHEMA_VERSION, schema_files
from tracekit.store import driver
from tracekit.store.database import Database
from tracekit.store.ingest import IngestResult, sql_str
from tracekit.store.kineto import PreparedTrace

if TYPE_CHECKING:
    import polars as pl

LAKE_FILE = "tracekit_lake.json"
STAGING = ".staging"
PREFIX = "trace_id="
COMPRESSION = "zstd"
# Lakes this tracekit reads: v3 only added kernel_components' time_ns, forward and phase (NULL in a v2 lake's files).
READABLE_VERSIONS = (2, SCHEMA_VERSION)


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
    if version not in READABLE_VERSIONS:
        newer = "newer" if version > SCHEMA_VERSION else "older"
        raise TracekitError(f"{root}: lake schema v{version} is {newer} than this tracekit (v{SCHEMA_VERSION})")


def shas_of(dirs: Iterable[Path]) -> dict[str, int]:
    """sha256 -> trace_id of committed trace directories."""
    files = [d / "traces.parquet" for d in dirs]
    if not files:
        return {}
    con = duckdb.connect()
    try:
        rows = con.execute(
            f"SELECT sha256, trace_id FROM read_parquet([{', '.join(sql_str(f) for f in files)}], "
            "hive_partitioning = true, hive_types = {'trace_id': 'INTEGER'})"
        ).fetchall()
    finally:
        con.close()
    return {sha: int(tid) for sha, tid in rows}


# ---- writing ---------------------------------------------------------------------------------------
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


class LakeSink:
    """A lake as a sink of `driver.ingest`: each parsed folder is committed by one rename (module docstring),
    so many processes may write one lake at once."""

    compression = COMPRESSION  # the parsed folder is what the lake keeps

    def __init__(self, root: str | os.PathLike[str]):
        self.root = init_lake(root)
        dirs = trace_dirs(self.root)
        self._known, self._since = shas_of(dirs.values()), max(dirs, default=0)  # the listing `commit` needs

    def stored(self, sha256: str) -> int | None:
        return self._known.get(sha256)

    def known(self) -> frozenset[str]:
        return frozenset(self._known)

    @contextlib.contextmanager
    def staging(self) -> Iterator[Path]:
        folder = self.root / STAGING / uuid.uuid4().hex
        folder.mkdir(parents=True)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def write(self, prepared: PreparedTrace) -> IngestResult:
        with self.staging() as staging:
            result = driver.write_parsed(prepared, staging / "t", threads=driver.default_workers())
            result.trace_id, result.skipped = self.land(staging / "t", prepared.sha256)
        return result

    def land(self, folder: Path, sha256: str) -> tuple[int, bool]:
        trace_id, skipped = commit(self.root, folder, sha256, self._known, self._since)
        self._known[sha256] = trace_id
        return trace_id, skipped


def export(con: duckdb.DuckDBPyConnection, root: str | os.PathLike[str]) -> list[Path]:
    """Copy every trace of a store (its connection) into the lake `root` (created if needed), with its
    attribution where stored; traces the lake holds already (same content) are skipped. Returns the trace
    folders written."""
    sink = LakeSink(root)
    return [sink.root / f"{PREFIX}{n}" for n, held in driver.copy_traces(con, sink) if not held]


def write_kernel_components(root: Path, trace_id: int, rows: pl.DataFrame) -> Path:
    """Store one trace's attribution (`kernel_components`' rows but trace_id) as
    `trace_id=N/kernel_components.parquet`, replacing an earlier one atomically."""
    target_dir = root / f"{PREFIX}{int(trace_id)}"
    if not target_dir.is_dir():
        raise UsageError(f"{root}: no trace with trace_id {trace_id}")
    tmp = root / STAGING / f"kc-{uuid.uuid4().hex}.parquet"
    (root / STAGING).mkdir(exist_ok=True)
    columns = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in _table_ddl()["kernel_components"][1] if c != "trace_id")
    con = duckdb.connect()
    try:
        con.register("rows_df", rows)
        con.execute(
            f"COPY (SELECT {columns} FROM rows_df ORDER BY event_id) "
            f"TO {sql_str(tmp)} (FORMAT parquet, COMPRESSION {COMPRESSION})"
        )
    finally:
        con.close()
    os.replace(tmp, target_dir / "kernel_components.parquet")
    return target_dir / "kernel_components.parquet"


# ---- reading --------------------------------------------------------------------------------------
@cache
def _table_ddl() -> dict[str, tuple[str, list[tuple[str, str]]]]:
    """Base and result table -> (CREATE TABLE statement, (column, type) in order), from the schema files."""
    scratch = duckdb.connect()
    try:
        for _, sql in schema_files():
            scratch.execute(sql)
        out = {}
        for table in (*BASE_TABLES, *RESULT_TABLES):
            ddl = scratch.execute("SELECT sql FROM duckdb_tables() WHERE table_name = ?", [table]).fetchall()[0][0]
            cols = [(r[0], r[1]) for r in scratch.execute(f"DESCRIBE {table}").fetchall()]
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
    or last `refresh`ed (one consistent snapshot); `ingest` adds traces (through `LakeSink`) and refreshes."""

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
        kinds = dict(self.con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        for table, (ddl, cols) in _table_ddl().items():
            if table in kinds:
                self.con.execute(f"DROP {'VIEW' if kinds[table] == 'VIEW' else 'TABLE'} {table}")
            # a base table has a file in every trace folder; a result table only in the traces analysed
            name = f"{table}.parquet"
            if not (dirs if table in BASE_TABLES else any((d / name).is_file() for d in dirs.values())):
                self.con.execute(ddl)  # an empty table of the right types
                continue
            source = (
                f"read_parquet({sql_str(self.root / f'{PREFIX}*' / name)}, hive_partitioning = true, "
                f"hive_types = {{'trace_id': 'INTEGER'}}{', union_by_name = true' if table in RESULT_TABLES else ''})"
            )
            if table in RESULT_TABLES:  # a v2 lake's files lack columns: NULL there
                typed = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in cols)
                source = f"(SELECT {typed} WHERE false UNION ALL BY NAME FROM {source})"
            self.con.execute(
                f"CREATE VIEW {table} AS SELECT {', '.join(c for c, _ in cols)} FROM {source} WHERE trace_id <= {last}"
            )
        for sql in _views_sql():
            self.con.execute(sql)

    def tables(self) -> Any:
        """Tables and views with their row counts; the base tables (views over Parquet here) say `table`."""
        import polars as pl

        df = super().tables()
        base = (*BASE_TABLES, *RESULT_TABLES)
        return df.with_columns(
            pl.when(pl.col("name").is_in(base)).then(pl.lit("table")).otherwise(pl.col("kind")).alias("kind")
        ).sort("kind", "name")

    def trace_id_for(self, sha256: str) -> int | None:
        return shas_of(trace_dirs(self.root).values()).get(sha256)

    def sink(self) -> driver.Sink:
        return LakeSink(self.root)

    def ingest(self, paths: Iterable[str | os.PathLike[str]], **options: Any) -> list[IngestResult]:
        """`Database.ingest` into the lake (each trace committed whole or not at all), then refresh the views."""
        try:
            return super().ingest(paths, **options)
        finally:
            self.refresh()

    def record_attribution(self, trace_id: int, rows: pl.DataFrame) -> None:
        """Keep what `attribute` computed: the trace's `kernel_components` file (docs/lake.md)."""
        write_kernel_components(self.root, trace_id, rows)
        self.refresh()


def open_lake(path: str | os.PathLike[str]) -> Lake:
    return Lake(path)
