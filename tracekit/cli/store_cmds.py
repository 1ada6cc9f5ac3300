"""`tracekit ingest | tables | query | export`: shells over tracekit.store."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tracekit.cli.options import db_option, format_option
from tracekit.cli.paths import check_output_dir, require_exists
from tracekit.errors import UsageError
from tracekit.reports.ingest_summary import summary_frame
from tracekit.reports.tables import DEFAULT_MAX_WIDTH, write_frame
from tracekit.store.database import Database, default_db_path, expand_paths


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@db_option
@format_option(help="Summary format.")
@click.option(
    "--wait", "wait_s", type=float, default=30.0, show_default=True, help="Seconds to wait for another writer's lock."
)
def ingest(paths: tuple[str, ...], db_path: str | None, fmt: str, wait_s: float) -> None:
    """Ingest Kineto/Chrome traces (.json, .json.gz, or folders of them) into the store.

    \b
    Each trace is one transaction; a trace whose content is already stored is skipped.
    Example:  tracekit ingest runs/ --db tracekit.duckdb
    """
    for p in paths:  # every named path first: a typo is a usage error (exit 2) before any work
        require_exists(p)
    files = expand_paths(paths)
    if not files:
        raise UsageError(f"no trace files (*.json, *.json.gz) under {', '.join(paths)}")
    single = len(files) == 1
    err = Console(stderr=True)
    with (
        Database(db_path, wait_s=wait_s) as db,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not err.is_terminal,
        ) as bar,
    ):
        task = bar.add_task("ingesting", total=len(files))

        def on_file(path: str, index: int, total: int) -> None:
            bar.update(task, completed=index, description=f"ingesting {Path(path).name}")

        results = db.ingest(files, on_file=on_file, keep_going=not single)
    summary = summary_frame(results, compact=fmt == "table")  # people: the columns that fit a terminal
    write_frame(summary, fmt, title=f"ingest → {db_path or default_db_path()}", keep=("file", "status"))
    for r in results:  # events of a paired phase without a partner (docs/schema.md, "Chrome JSON")
        if r.notes:
            kept = ", ".join(f"{n} {note}" for note, n in r.notes.items())
            click.echo(f"tracekit: {Path(r.path).name}: kept in other_events (see its note column): {kept}", err=True)
    failed = sum(1 for r in results if r.error)
    if failed:
        click.echo(f"tracekit: {failed} of {len(results)} files failed", err=True)
        sys.exit(1)


@click.command()
@db_option
@format_option()
def tables(db_path: str | None, fmt: str) -> None:
    """List the store's tables and views with their row counts (schema: docs/schema.md)."""
    with Database(db_path, read_only=True) as db:
        write_frame(db.tables(), fmt, title=db.path)


@click.command()
@click.argument("sql")
@db_option
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
def query(sql: str, db_path: str | None, fmt: str, write: bool, max_rows: int, max_width: int) -> None:
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
    with Database(db_path, read_only=not write) as db:
        write_frame(db.sql(sql), fmt, max_rows=max_rows, max_width=max_width)


@click.command()
@click.option(
    "--parquet",
    "directory",
    required=True,
    type=click.Path(path_type=str),
    help="Output folder: one sub-folder per table, Hive-partitioned by trace_id.",
)
@db_option
def export(directory: str, db_path: str | None) -> None:
    """Export every base table as Parquet partitioned by trace (for Spark, Trino, DuckDB over S3)."""
    check_output_dir(directory, "--parquet")
    with Database(db_path, read_only=True) as db:
        written = db.export_parquet(directory)
    for w in written:
        click.echo(str(w))
