"""`tracekit ingest | tables | query | export`: shells over tracekit.store."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.console import Console

from tracekit.cli.options import db_option, format_option
from tracekit.cli.paths import check_output_dir, require_exists
from tracekit.cli.progress import ProgressView
from tracekit.errors import UsageError
from tracekit.progress import ProgressEvent
from tracekit.reports.ingest_summary import summary_records
from tracekit.reports.tables import DEFAULT_MAX_WIDTH, write_frame, write_records
from tracekit.store import driver
from tracekit.store.database import Database, default_db_path, expand_paths

lake_option = click.option(
    "--lake",
    "lake_path",
    default=None,
    metavar="DIR",
    help="A trace lake (Parquet, one folder per trace; docs/lake.md) instead of the DuckDB file.",
)


def open_store(db_path: str | None, lake_path: str | None, *, read_only: bool) -> Database:
    """The DuckDB store, or with --lake the lake (always read-only SQL)."""
    if lake_path is not None:
        if db_path is not None:
            raise UsageError("give --db or --lake, not both")
        from tracekit.store.lake import Lake

        return Lake(lake_path)
    return Database(db_path, read_only=read_only)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@db_option
@lake_option
@format_option(help="Summary format.")
@click.option(
    "--wait", "wait_s", type=float, default=30.0, show_default=True, help="Seconds to wait for another writer's lock."
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Traces parsed at once, in worker processes (default: one per core when the files hold more than "
    "~64 MB of JSON, else 1: in this process).",
)
@click.option(
    "--ray",
    "ray_address",
    default=None,
    metavar="ADDRESS",
    help="Parse each trace as a Ray task on this cluster ('auto', host:port, or 'local'); needs tracekit[ray].",
)
def ingest(
    paths: tuple[str, ...],
    db_path: str | None,
    lake_path: str | None,
    fmt: str,
    wait_s: float,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """Ingest Kineto/Chrome traces (.json, .json.gz, or folders of them) into the store or a lake.

    \b
    Each trace is one transaction; a trace whose content is already stored is skipped; a bad trace
    is reported and the others still land. Several traces are parsed at once (--workers).
    Example:  tracekit ingest runs/ --db tracekit.duckdb
              tracekit ingest runs/ --lake lake/
    """
    for p in paths:  # every named path first: a typo is a usage error (exit 2) before any work
        require_exists(p)
    files = expand_paths(paths)
    if not files:
        raise UsageError(f"no trace files (*.json, *.json.gz) under {', '.join(paths)}")
    if lake_path is not None:
        if db_path is not None:
            raise UsageError("give --db or --lake, not both")
        check_output_dir(lake_path, "--lake")
    if ray_address is not None:
        driver.connect_ray(ray_address)  # a missing ray or a wrong address: one line before any work
    single = len(files) == 1
    total_bytes = sum(f.stat().st_size for f in files)
    t0 = time.perf_counter()
    done = {"json": 0}

    def rate(e: ProgressEvent) -> str:
        done["json"] += e.result.json_bytes
        dt = max(time.perf_counter() - t0, 1e-9)
        return f"{done['json'] / 1e6 / dt:.1f} MB/s {e.done / dt:.1f} traces/s"

    options = {"engine": driver.engine_for(files, workers, ray_address), "keep_going": not single}
    with ProgressView(transient=True, detail=rate, disable=not Console(stderr=True).is_terminal) as view:
        if lake_path is not None:
            from tracekit.store.lake import LakeSink

            results = driver.ingest(files, LakeSink(lake_path), on_progress=view, **options)
            where = lake_path
        else:
            with Database(db_path, wait_s=wait_s) as db:
                results = driver.ingest(files, db.sink(), on_progress=view, **options)
            where = db_path or default_db_path()
    seconds = time.perf_counter() - t0
    summary = summary_records(results, compact=fmt == "table")  # people: the columns that fit a terminal
    write_records(summary, fmt, title=f"ingest → {where}", keep=("file", "status"))
    for r in results:  # events of a paired phase without a partner (docs/schema.md, "Chrome JSON")
        if r.notes:
            kept = ", ".join(f"{n} {note}" for note, n in r.notes.items())
            click.echo(f"tracekit: {Path(r.path).name}: kept in other_events (see its note column): {kept}", err=True)
    if not single:
        json_mb = sum(r.json_bytes for r in results) / 1e6
        click.echo(
            f"tracekit: {len(results)} traces, {json_mb:.1f} MB of JSON ({total_bytes / 1e6:.1f} MB on disk) in "
            f"{seconds:.2f} s: {json_mb / seconds:.1f} MB/s, {len(results) / seconds:.1f} traces/s",
            err=True,
        )
    failed = sum(1 for r in results if r.error)
    if failed:
        click.echo(f"tracekit: {failed} of {len(results)} files failed", err=True)
        sys.exit(1)


@click.command()
@db_option
@lake_option
@format_option()
def tables(db_path: str | None, lake_path: str | None, fmt: str) -> None:
    """List the store's tables and views with their row counts (schema: docs/schema.md)."""
    with open_store(db_path, lake_path, read_only=True) as db:
        write_frame(db.tables(), fmt, title=db.path)


@click.command()
@click.argument("sql")
@db_option
@lake_option
@format_option()
@click.option("--write", is_flag=True, help="Allow statements that write (the database or files); default: read only.")
@click.option("--max-rows", type=int, default=200, show_default=True, help="Rows shown in table format.")
@click.option(
    "--max-width",
    type=click.IntRange(min=4),
    default=DEFAULT_MAX_WIDTH,
    show_default=True,
    metavar="N",
    help="Characters per cell in table format (longer cells are cut in the middle; columns that do not fit "
    "the terminal are named under the table).",
)
def query(
    sql: str, db_path: str | None, lake_path: str | None, fmt: str, write: bool, max_rows: int, max_width: int
) -> None:
    """Run SQL over the trace tables.

    \b
    Example:
      tracekit query "select name, sum(dur_ns)/1e3 us from kernels group by 1 order by 2 desc limit 10"

    Without --write nothing is written, to the database or to any file: only SELECT (with WITH, FROM-first,
    VALUES, DESCRIBE, SHOW, SUMMARIZE, PIVOT), EXPLAIN [ANALYZE] of those, PRAGMA and CALL run, on a
    read-only connection with DuckDB's settings locked and no extension auto-install. Any other statement
    (INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, COPY, EXPORT/IMPORT DATABASE, ATTACH, DETACH, USE,
    INSTALL, LOAD, SET, RESET, VACUUM, BEGIN/COMMIT) is refused before anything runs (exit 2).
    Repeated output names get DuckDB's suffixes: name, name_1, name_2.
    """
    if write and lake_path is not None:
        raise UsageError("--write: a lake is read-only to SQL (add traces with `tracekit ingest ... --lake`)")
    with open_store(db_path, lake_path, read_only=not write) as db:
        write_frame(db.sql(sql), fmt, max_rows=max_rows, max_width=max_width)


@click.command()
@click.option(
    "--parquet",
    "directory",
    required=True,
    type=click.Path(path_type=str),
    help="A trace lake (docs/lake.md): one folder per trace (trace_id=N) with one Parquet file per table.",
)
@db_option
def export(directory: str, db_path: str | None) -> None:
    """Copy every trace into a lake: Parquet, Hive-partitioned by trace (for Spark, Trino, DuckDB over S3)."""
    from tracekit.store import lake

    check_output_dir(directory, "--parquet")
    with Database(db_path, read_only=True) as db:
        written = lake.export(db.con, directory)
    for w in written:
        click.echo(str(w))
