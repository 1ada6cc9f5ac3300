"""Ingest many traces at once: worker processes (or Ray tasks) parse, nest and link one trace each.

Into a DuckDB file (one writer): each worker stages its trace's rows as Parquet files (`lake.stage`), and
this process inserts them, one transaction per trace, in the order the files were given — so the trace
ids, rows and types are those of a serial ingest. Into a lake: each worker commits its own trace (the
lake's commit is safe with many writers). A bad trace gives its result an `error` (or raises, without
`keep_going`); the others still land; nothing of a bad trace is written.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tracekit.errors import TraceError, UsageError
from tracekit.progress import ProgressFn
from tracekit.store import lake
from tracekit.store.database import BASE_TABLES, Database
from tracekit.store.ingest import IngestResult, ingested, write_transaction

STAGE_COMPRESSION = "snappy"  # staged files live seconds: cheap to write and read back


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


POOL_MIN_JSON = 64 << 20  # a worker process starts in about a second: the time a serial ingest needs for ~40-60 MB
COMPRESSED_RATIO = 15  # Kineto JSON compresses 15-40x: a low estimate of the JSON behind a compressed file


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


def _threads(workers: int) -> int:
    return max(1, default_workers() // max(1, workers))


def _failed(path: str | os.PathLike[str], exc: TraceError) -> IngestResult:
    return IngestResult(path=str(path), trace_id=None, skipped=False, error=exc.problem)


# ---- worker side (top-level functions: they are pickled to the workers) --------------------------
def stage_worker(path: str, dest: str, known: frozenset[str], threads: int) -> tuple[IngestResult, str | None]:
    try:
        return lake.stage(path, Path(dest), known=known, threads=threads, compression=STAGE_COMPRESSION)
    except TraceError as exc:
        return _failed(path, exc), None


def stage_bytes_worker(path: str, known: frozenset[str], threads: int) -> tuple[IngestResult, str | None, dict]:
    """As stage_worker, for a process that shares no disk with the caller (a Ray task): the files' bytes."""
    with tempfile.TemporaryDirectory(prefix="tracekit-") as tmp:
        result, sha = stage_worker(path, str(Path(tmp) / "t"), known, threads)
        files = {}
        if result.error is None and not result.skipped:
            files = {t: (Path(tmp) / "t" / f"{t}.parquet").read_bytes() for t in BASE_TABLES}
    return result, sha, files


def lake_worker(path: str, root: str, known: dict[str, int], since: int, threads: int) -> IngestResult:
    try:
        return lake.ingest_one(path, Path(root), known=known, since=since, threads=threads)
    except TraceError as exc:
        return _failed(path, exc)


# ---- the DuckDB sink ------------------------------------------------------------------------------
def insert_staged(db: Database, staged: Path, sha: str) -> tuple[int, bool]:
    """Insert one staged trace in one transaction: (new trace_id, False), or (the stored id, True) when the
    database holds its content already."""
    con = db.con
    with write_transaction(con):
        existing = db.trace_id_for(sha)
        if existing is not None:
            return existing, True
        trace_id = con.execute("SELECT nextval('trace_id_seq')").fetchall()[0][0]
        for table in BASE_TABLES:
            src = lake._sql_str(staged / f"{table}.parquet")
            con.execute(
                f"INSERT INTO {table} BY NAME SELECT CAST($tid AS INTEGER) AS trace_id, * FROM read_parquet({src})",
                {"tid": trace_id},
            )
    return int(trace_id), False


def _land(db: Database, result: IngestResult, sha: str | None, staged: Path) -> IngestResult:
    if result.error is None:
        if result.skipped:
            result.trace_id = db.trace_id_for(sha or "")
        else:
            result.trace_id, result.skipped = insert_staged(db, staged, sha or "")
            if result.skipped:
                result.events = result.kernels = 0
                result.notes = {}
    shutil.rmtree(staged, ignore_errors=True)
    return result


def ingest_db(
    db: Database,
    files: Sequence[Path],
    *,
    workers: int | None = None,
    keep_going: bool = True,
    on_progress: ProgressFn | None = None,
    ray_address: str | None = None,
) -> list[IngestResult]:
    """Ingest `files` into `db`: `workers` processes (default: the cores), or Ray tasks at `ray_address`,
    parse; this process inserts each trace in one transaction, in file order."""
    known = frozenset(r[0] for r in db.con.execute("SELECT sha256 FROM traces").fetchall())
    workers = workers or auto_workers(files)
    results: list[IngestResult] = []
    with tempfile.TemporaryDirectory(prefix="tracekit-stage-") as tmp:
        root = Path(tmp)
        dests = [root / f"{i:06d}" for i in range(len(files))]
        if ray_address is not None:
            ray = connect_ray(ray_address)
            task = ray.remote(stage_bytes_worker)
            refs = [task.remote(str(f), known, 1) for f in files]
            getters = [lambda i=i: _unpack(ray.get(refs[i]), dests[i]) for i in range(len(files))]
            pool = None
        else:
            pool = _pool(workers)
            futures = [
                pool.submit(stage_worker, str(f), str(d), known, _threads(workers))
                for f, d in zip(files, dests, strict=True)
            ]
            getters = [fut.result for fut in futures]
        try:
            for i, get in enumerate(getters):
                result, sha = get()
                if result.error is not None and not keep_going:
                    raise TraceError(result.path, result.error)
                results.append(_land(db, result, sha, dests[i]))
                if on_progress:
                    on_progress(ingested(results, len(files)))
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
    return results


def _unpack(got: tuple[IngestResult, str | None, dict], dest: Path) -> tuple[IngestResult, str | None]:
    result, sha, files = got
    if files:
        dest.mkdir(parents=True)
        for table, data in files.items():
            (dest / f"{table}.parquet").write_bytes(data)
    return result, sha


# ---- the lake sink --------------------------------------------------------------------------------
def ingest_lake(
    files: Sequence[Path],
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    keep_going: bool = True,
    on_progress: ProgressFn | None = None,
    ray_address: str | None = None,
) -> list[IngestResult]:
    """Ingest `files` into the lake `root` (created if needed): each worker process (or Ray task) parses
    and commits one trace. With one worker, in this process."""
    root = lake.init_lake(root)
    dirs = lake.trace_dirs(root)
    known = lake.shas_of(dirs.values())
    since = max(dirs, default=0)
    workers = workers or auto_workers(files)
    args = [(str(f), str(root), known, since) for f in files]
    pool = None
    if ray_address is not None:
        ray = connect_ray(ray_address)
        task = ray.remote(lake_worker)
        refs = [task.remote(*a, 1) for a in args]
        getters = [lambda r=r: ray.get(r) for r in refs]
    elif workers == 1 or len(files) == 1:
        getters = [lambda a=a: lake_worker(*a, _threads(1)) for a in args]
    else:
        pool = _pool(workers)
        futures = [pool.submit(lake_worker, *a, _threads(workers)) for a in args]
        getters = [fut.result for fut in futures]
    results: list[IngestResult] = []
    try:
        for get in getters:
            result = get()
            if result.error is not None and not keep_going:
                raise TraceError(result.path, result.error)
            results.append(result)
            if on_progress:
                on_progress(ingested(results, len(files)))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


# ---- engines --------------------------------------------------------------------------------------
def _pool(workers: int) -> cf.ProcessPoolExecutor:
    # spawn: a forked child would inherit this process's DuckDB connection and its threads
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


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
