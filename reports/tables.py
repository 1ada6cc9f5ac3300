"""Render a polars frame to stdout as a rich table, CSV or JSON (the stable machine formats)."""

from __future__ import annotations

import csv
import io
import json
import sys
from decimal import Decimal
from typing import Any

import polars as pl
from rich.console import Console
from rich.table import Table


def frame_to_rich(df: pl.DataFrame, title: str | None = None, max_rows: int | None = None) -> Table:
    """A rich Table of `df` (numbers right-aligned); `max_rows` truncates with a note row."""
    table = Table(title=title, show_lines=False, header_style="bold")
    for name, dtype in df.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left", overflow="fold")
    rows = df.rows() if max_rows is None else df.head(max_rows).rows()
    for row in rows:
        table.add_row(*("" if v is None else _fmt(v) for v in row))
    if max_rows is not None and df.height > max_rows:
        table.caption = f"{df.height - max_rows} more rows not shown (use --format csv|json for all)"
    return table


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """CSV cannot hold nested values (structs, lists, maps): write those cells as JSON text."""
    nested = [name for name, dtype in df.schema.items() if dtype.is_nested() or dtype == pl.Object]
    if not nested:
        return df
    return df.with_columns(
        pl.Series(name, [None if v is None else json.dumps(v, default=str) for v in df[name].to_list()], pl.String)
        for name in nested
    )


def _json_value(v: object) -> object:
    """Exact JSON for what json cannot write: integral decimals (DuckDB's sum() of BIGINT) as integers."""
    if isinstance(v, Decimal) and v.is_finite() and v.as_tuple().exponent >= 0:
        return int(v)
    return str(v)


def write_frame(df: pl.DataFrame, fmt: str, *, title: str | None = None, max_rows: int | None = 200) -> None:
    """Render `df` in `fmt` ('table' for people; 'csv' / 'json' are exact and stable for machines)."""
    if fmt == "csv":
        sys.stdout.write(_flat(df).write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=_json_value) + "\n")
    else:
        Console().print(frame_to_rich(df, title=title, max_rows=max_rows))


def records_to_csv(records: list[dict[str, Any]]) -> str:
    """CSV of dict rows (columns: the first row's keys): None as an empty cell, nested values as JSON text."""
    buf = io.StringIO()
    if records:
        writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
        writer.writeheader()
        for r in records:
            writer.writerow(
                {k: "" if v is None else json.dumps(v) if isinstance(v, dict | list) else v for k, v in r.items()}
            )
    return buf.getvalue()
