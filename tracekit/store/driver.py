"""The one ingest path: trace files → parsed traces → a sink, run by an engine.

A **sink** is where parsed traces land: the DuckDB file (`database.DuckDBSink`) or a lake (`lake.LakeSink`),
behind the small `Sink` protocol below. An **engine** says where traces are parsed: `SERIAL` (in this
process, one at a time: straight into the sink's own connection where it has one), `Pool(n)` (n worker
processes) or `Ray(address)` (Ray tasks). A worker parses one trace in its private in-memory store and writes
its rows as one Parquet file per base table (a *parsed folder*); this process lands each folder in the sink,
one trace at a time and in the order the files were given, so trace ids and rows are those of a serial ingest.

A trace whose content the sink holds is skipped before it is parsed (its hash is known) or, when another
trace of the same content landed meanwhile, at landing; a skipped result counts no events. A bad trace
gives its result an `error` (or raises, without `keep_going`); nothing of it is written.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb

from tracekit.errors import TraceError, UsageError
from tracekit.progress import ProgressFn
from tracekit.schema import BASE_TABLES, RESULT_TABLES, schema_files
from tracekit.store import kineto
from tracekit.store.ingest import IngestResult, ingest_prepared, ingested, memory_limit, sql_str
from tracekit.store.kineto import PreparedTrace

POOL_MIN_JSON = 64 << 20  # a worker process starts in about a second: the time a serial ingest needs for ~40-60 MB
COMPRESSED_RATIO = 15  # Kineto JSON compresses 15-40x: a low estimate of the JSON behind a compressed file


class Sink(Protocol):
    """Where parsed traces land (the DuckDB file, a lake). Every method runs in the calling process."""

    compression: str  # of the Parquet files a worker writes for `land` (a lake keeps them as they are)

    def stored(self, sha256: str) -> int | None:
        """The trace_id of this content, if the sink holds it."""

    def known(self) -> frozenset[str]:
        """The content hashes the sink holds now (workers skip those traces before parsing them)."""

    def staging(self) -> contextlib.AbstractContextManager[Path]:
        """A folder for parsed folders on their way in (removed after; a lake's own, so landing is a rename)."""

    def write(self, prepared: PreparedTrace) -> IngestResult:
        """Parse and store one trace in this process (TraceError on bad input); `skipped` when the sink got
        the same content meanwhile."""

    def land(self, folder: Path, sha256: str) -> tuple[int, bool]:
        """Store a parsed folder in one step: (new trace_id, False), or (the stored id, True) when the sink
        holds that content already."""


# ---- engines --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Serial:
    """Parse in this process, one trace at a time."""


@dataclasses.dataclass(frozen=True)
class Pool:
    """Parse in `workers` processes (spawned: a forked child would inherit this process's DuckDB connection)."""

    workers: int


@dataclasses.dataclass(frozen=True)
class Ray:
    """Parse in Ray tasks on the cluster at `address` ('auto', host:port, or 'local' for a new local one);
    the tasks return the parsed folders' bytes, so they need no disk shared with this process."""

    address: str


Engine = Serial | Pool | Ray
SERIAL = Serial()


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def auto_workers(files: Sequence[Path]) -> int:
    """Workers for `--workers` left out: one per core (at most one per file) when the files hold enough JSON
    to repay the workers' start-up (POOL_MIN_JSON, estimated from the sizes on disk), else 1 (in process)."""
    estimate = 0
    for f in files:
        with contextlib.suppress(OSError):
            size = f.stat().st_size
            estimate += size * (1 if f.name.endswith(".json") else COMPRESSED_RATIO)
    if len(files) < 2 or estimate < POOL_MIN_JSON:
        return 1
    return min(default_workers(), len(files))


def engine_for(files: Sequence[Path], workers: int | None = 1, ray_address: str | None = None) -> Engine:
    """The engine of `--workers N` (None: `auto_workers`) and `--ray ADDRESS`."""
    if ray_address is not None:
        return Ray(ray_address)
    n = workers or auto_workers(files)
    return Pool(n) if n > 1 and len(files) > 1 else SERIAL


def connect_ray(address: str) -> Any:
    """The ray module, connected to `address` ('auto', 'local' for a new local cluster, or host:port)."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'tracekit[ray]'") from None
    if not ray.is_initialized():
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


# ---- the driver -----------------------------------------------------------------------------------
def ingest(
    files: Sequence[Path],
    sink: Sink,
    *,
    engine: Engine = SERIAL,
    keep_going: bool = True,
    on_progress: ProgressFn | None = None,
) -> list[IngestResult]:
    """Ingest `files` into `sink`, parsed by `engine`; one result per file, in order. A bad file gets its
    result's `error` with `keep_going`, else raises TraceError (files before it have landed)."""
    results: list[IngestResult] = []
    with _outcomes(engine, files, sink) as outcomes:
        for path, outcome in zip(files, outcomes, strict=True):
            try:
                result = outcome()
            except TraceError as exc:
                if not keep_going:
                    raise
                result = failed(path, exc)
            if result.error is not None and not keep_going:
                raise TraceError(result.path, result.error)
            if result.skipped:  # nothing of it was written
                result.events = result.kernels = 0
                result.notes = {}
            results.append(result)
            if on_progress:  # stage INGEST, in file order, with the trace's IngestResult
                on_progress(ingested(results, len(files)))
    return results


def copy_traces(con: duckdb.DuckDBPyConnection, sink: Sink) -> list[tuple[int, bool]]:
    """Land every trace of a store (its connection: a DuckDB file, or a lake's views) in `sink`, with its
    result tables' rows where it has some: (trace_id in the sink, whether it held that content already)."""
    out = []
    with sink.staging() as staging:
        for trace_id, sha in con.execute("SELECT trace_id, sha256 FROM traces ORDER BY trace_id").fetchall():
            held = sink.stored(sha)
            if held is not None:
                out.append((held, True))
                continue
            folder = staging / str(trace_id)
            folder.mkdir()
            write_tables(con, trace_id, folder, sink.compression, results=True)
            out.append(sink.land(folder, sha))
    return out


def failed(path: str | os.PathLike[str], exc: TraceError) -> IngestResult:
    return IngestResult(path=str(path), trace_id=None, skipped=False, error=exc.problem)


Outcome = Callable[[], IngestResult]  # one file's result, in file order (it may wait for a worker)


@contextlib.contextmanager
def _outcomes(engine: Engine, files: Sequence[Path], sink: Sink) -> Iterator[list[Outcome]]:
    if isinstance(engine, Serial):
        yield [lambda f=f: _here(f, sink) for f in files]
        return
    known = sink.known()
    with sink.staging() as staging:
        folders = [staging / f"{i:06d}" for i in range(len(files))]
        if isinstance(engine, Ray):
            ray = connect_ray(engine.address)
            task = ray.remote(parse_to_bytes)
            refs = [task.remote(str(f), known, 1, sink.compression) for f in files]
            yield [lambda r=r, d=d: _land(sink, *_unpack(ray.get(r), d), d) for r, d in zip(refs, folders, strict=True)]
            return
        threads = max(1, default_workers() // engine.workers)
        pool = cf.ProcessPoolExecutor(max_workers=engine.workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            futures = [
                pool.submit(parse_to_folder, str(f), str(d), known, threads, sink.compression)
                for f, d in zip(files, folders, strict=True)
            ]
            yield [lambda fut=fut, d=d: _land(sink, *fut.result(), d) for fut, d in zip(futures, folders, strict=True)]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _here(path: Path, sink: Sink) -> IngestResult:
    """One file in this process: skipped when the sink holds its content, else parsed and stored by the sink."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
        prepared = kineto.prepare(path, tmp)
        held = sink.stored(prepared.sha256)
        if held is not None:
            result = IngestResult(str(prepared.path), held, True, json_bytes=prepared.json_bytes)
        else:
            result = sink.write(prepared)
    result.seconds = time.perf_counter() - t0
    return result


def _land(sink: Sink, result: IngestResult, sha: str | None, folder: Path) -> IngestResult:
    """Land a worker's parsed folder (a skipped or failed one: nothing to land)."""
    try:
        if result.error is None and result.skipped:
            result.trace_id = sink.stored(sha or "")
        elif result.error is None:
            result.trace_id, result.skipped = sink.land(folder, sha or "")
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # absent after a lake's rename
    return result


# ---- parsing into a folder (workers, and a lake's own writes) -----------------------------------
def parse_to_folder(
    path: str, dest: str, known: frozenset[str], threads: int, compression: str
) -> tuple[IngestResult, str | None]:
    """Worker (a top-level function: pickled to the workers): prepare and parse one trace and write its
    parsed folder `dest`; skipped (nothing parsed) when its content hash is in `known`. A bad trace gives a
    failed result and no folder."""
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
            prepared = kineto.prepare(path, tmp)
            if prepared.sha256 in known:
                result = IngestResult(str(prepared.path), None, True, json_bytes=prepared.json_bytes)
            else:
                result = write_parsed(prepared, Path(dest), threads=threads, compression=compression)
    except TraceError as exc:
        return failed(path, exc), None
    result.seconds = time.perf_counter() - t0
    return result, prepared.sha256


def parse_to_bytes(
    path: str, known: frozenset[str], threads: int, compression: str
) -> tuple[IngestResult, str | None, dict[str, bytes]]:
    """As parse_to_folder, for a process that shares no disk with the caller (a Ray task): the files' bytes."""
    with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
        folder = Path(tmp) / "t"
        result, sha = parse_to_folder(path, str(folder), known, threads, compression)
        files = {f.name: f.read_bytes() for f in folder.iterdir()} if folder.is_dir() else {}
    return result, sha, files


def _unpack(got: tuple[IngestResult, str | None, dict[str, bytes]], dest: Path) -> tuple[IngestResult, str | None]:
    result, sha, files = got
    if files:
        dest.mkdir(parents=True)
        for name, data in files.items():
            (dest / name).write_bytes(data)
    return result, sha


def write_parsed(
    prepared: PreparedTrace, dest: Path, *, threads: int | None = None, compression: str = "zstd"
) -> IngestResult:
    """Parse, nest and link one prepared trace in this process's scratch store and write its parsed folder
    `dest` (created; absent again when this raises). TraceError on bad input."""
    con = _scratch()
    with tempfile.TemporaryDirectory(prefix="tracekit-spill-") as spill:
        try:
            con.execute(f"SET threads = {int(threads)}" if threads else "RESET threads")
            con.execute(f"SET temp_directory = {sql_str(spill)}")
            con.execute(f"SET memory_limit = '{memory_limit(prepared.json_bytes) >> 20}MiB'")
            result = ingest_prepared(con, prepared)
            dest.mkdir(parents=True)
            try:
                write_tables(con, result.trace_id, dest, compression)
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
        finally:
            for table in BASE_TABLES:  # empty again for the next trace of this process
                con.execute(f"DELETE FROM {table}")
            con.execute("RESET temp_directory")
    return result


_SCRATCH: list[duckdb.DuckDBPyConnection] = []


def _scratch() -> duckdb.DuckDBPyConnection:
    """This process's private in-memory store (the schema's tables), where a trace is parsed before it is written."""
    if not _SCRATCH:
        con = duckdb.connect(":memory:")
        for _, sql in schema_files():
            con.execute(sql)
        _SCRATCH.append(con)
    return _SCRATCH[0]


def write_tables(
    con: duckdb.DuckDBPyConnection, trace_id: int, dest: Path, compression: str, *, results: bool = False
) -> None:
    """The parsed folder of trace `trace_id`: one Parquet file per base table (every column but trace_id, zero
    rows included), and with `results` one per result table that holds rows of it."""
    tables = list(BASE_TABLES)
    if results:
        tables += [
            t
            for t in RESULT_TABLES
            if con.execute(f"SELECT count(*) FROM {t} WHERE trace_id = {int(trace_id)}").fetchall()[0][0]
        ]
    for table in tables:
        con.execute(
            f"COPY (SELECT * EXCLUDE (trace_id) FROM {table} WHERE trace_id = {int(trace_id)}) "
            f"TO {sql_str(dest / f'{table}.parquet')} (FORMAT parquet, COMPRESSION {compression})"
        )
