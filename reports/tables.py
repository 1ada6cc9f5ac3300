"""Render a polars frame (or a few dict rows, without importing polars) to stdout as a rich table, CSV or JSON
(the stable machine formats).

CSV, one rule for every command: a missing value (None) is an empty cell, an empty string is `""`, a nested
value (dict, list, tuple; a polars struct, list or object) is its JSON text, anything else its `str`; a cell
is quoted when it holds a comma, quote or line break. Frames are written by polars (`write_frame`), dict rows
by `records_to_csv`, with the same quoting.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.table import Table
from tracekit.reports.units import middle_ellipsis

from tracekit.store.frames import integral_decimals

if TYPE_CHECKING:  # imported where a frame is rendered: `tracekit ingest` prints dict rows without polars
    import polars as pl

DEFAULT_MAX_WIDTH = 40  # characters per cell in table format (--max-width)


def frame_to_rich(
    df: pl.DataFrame,
    title: str | None = None,
    max_rows: int | None = None,
    *,
    width: int | None = None,
    max_width: int = DEFAULT_MAX_WIDTH,
    keep: tuple[str, ...] = (),
) -> tuple[Table, list[str]]:
    """A rich Table of `df` for a terminal `width` wide, and the footer lines to print under it.

    Numbers are right-aligned; headers stay on one line; cells longer than `max_width` are cut in the
    middle (`…`), numbers and the columns in `keep` never are; columns that do not fit `width` are left out
    (named in the footer), never those in `keep`; `max_rows` truncates, with the count of the rest in the footer.
    """
    rows = df.rows() if max_rows is None else df.head(max_rows).rows()
    numeric = {n for n, t in df.schema.items() if t.is_numeric()}
    return rows_to_rich(list(df.columns), rows, numeric, df.height, title, max_rows, width, max_width, keep)


def rows_to_rich(
    names: list[str],
    rows: list[tuple[Any, ...]],
    numeric: set[str],
    height: int,
    title: str | None,
    max_rows: int | None,
    width: int | None,
    max_width: int,
    keep: tuple[str, ...],
) -> tuple[Table, list[str]]:
    """frame_to_rich's table from `rows` (at most max_rows of `height`) of columns `names`; `numeric`: the
    number columns (right-aligned, never cut)."""
    cells = [["" if v is None else _fmt(v) for v in row] for row in rows]
    whole = set(keep) | numeric  # never cut: kept names, numbers
    widths = [max((len(r[i]) for r in cells), default=0) for i in range(len(names))]
    cols: list[int] = []
    dropped: list[str] = []
    used = sum(max(len(n), widths[i]) + 2 for i, n in enumerate(names) if n in keep)  # kept columns first
    for i, name in enumerate(names):
        if name in keep:
            cols.append(i)
            continue
        w = max(len(name), widths[i] if name in whole else min(widths[i], max_width))
        if width is not None and cols and used + w + 2 > width:
            dropped.append(name)
            continue
        cols.append(i)
        used += w + 2  # the cell, its right padding and the column gap
    table = Table(title=title, show_lines=False, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False)
    table.padding = (0, 1, 0, 0)
    for i in cols:
        name = names[i]
        table.add_column(name, justify="right" if name in numeric else "left", no_wrap=True, min_width=len(name))
    for r in cells:
        table.add_row(*(r[i] if names[i] in whole else middle_ellipsis(r[i], max_width) for i in cols))
    footer = []
    if dropped:
        footer.append(
            f"{len(dropped)} more column{'s' if len(dropped) > 1 else ''}: {', '.join(dropped)} "
            "(--max-width, --format csv|json)"
        )
    if max_rows is not None and height > max_rows:
        footer.append(f"{height - max_rows} more rows (--max-rows, --format csv|json)")
    return table, footer


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) < 1e6 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def nested_json(v: object) -> str:
    """The CSV text of a nested value: JSON (what json cannot write, as its str)."""
    return json.dumps(v, default=str)


def _flat(df: pl.DataFrame) -> pl.DataFrame:
    """CSV cannot hold nested values (structs, lists, maps): write those cells as JSON text."""
    import polars as pl

    nested = [name for name, dtype in df.schema.items() if dtype.is_nested() or dtype == pl.Object]
    if not nested:
        return df
    return df.with_columns(
        pl.Series(name, [None if v is None else nested_json(v) for v in df[name].to_list()], pl.String)
        for name in nested
    )


def _json_value(v: object) -> object:
    """Exact JSON for what json cannot write: integral decimals (DuckDB's sum() of BIGINT) as integers."""
    if isinstance(v, Decimal) and v.is_finite() and v.as_tuple().exponent >= 0:
        return int(v)
    return str(v)


def write_frame(
    df: pl.DataFrame,
    fmt: str,
    *,
    title: str | None = None,
    max_rows: int | None = 200,
    max_width: int = DEFAULT_MAX_WIDTH,
    keep: tuple[str, ...] = (),
    console: Console | None = None,
) -> None:
    """Render `df` in `fmt` ('table' for people; 'csv' / 'json' are exact and stable for machines)."""
    df = integral_decimals(df)
    if fmt == "csv":
        sys.stdout.write(_flat(df).write_csv())
    elif fmt == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=_json_value) + "\n")
    else:
        console = console or Console()
        table, footer = frame_to_rich(
            df, title=title, max_rows=max_rows, width=console.width, max_width=max_width, keep=keep
        )
        _print_table(console, table, footer)


def write_records(
    records: list[dict[str, Any]],
    fmt: str,
    *,
    title: str | None = None,
    max_width: int = DEFAULT_MAX_WIDTH,
    keep: tuple[str, ...] = (),
    console: Console | None = None,
) -> None:
    """write_frame for a few dict rows of plain values (str, int, float, None; columns: the first row's keys),
    without polars (its import is a tenth of a second of `tracekit ingest`). Same output as write_frame of
    the frame polars makes of them: number columns are those whose values are all int/float or None."""
    if fmt == "csv":
        sys.stdout.write(records_to_csv(records))
    elif fmt == "json":
        sys.stdout.write(json.dumps(records, default=_json_value) + "\n")
    else:
        console = console or Console()
        names = list(records[0]) if records else []
        numeric = {
            n
            for n in names
            if any(r[n] is not None for r in records)
            and all(r[n] is None or (isinstance(r[n], int | float) and not isinstance(r[n], bool)) for r in records)
        }
        rows = [tuple(r[n] for n in names) for r in records]
        table, footer = rows_to_rich(names, rows, numeric, len(rows), title, None, console.width, max_width, keep)
        _print_table(console, table, footer)


def _csv_cell(v: object) -> str:
    """A CSV cell by the module's rule, quoted as polars quotes: when it holds a comma, quote or line break, or
    is an empty string (a missing value, None, is an empty cell)."""
    if v is None:
        return ""
    text = nested_json(v) if isinstance(v, dict | list | tuple) else str(v)
    if text == "" or any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _print_table(console: Console, table: Table, footer: list[str]) -> None:
    console.print(table)
    for line in footer:  # one line each, cut at the terminal's edge rather than wrapped
        console.print(line, no_wrap=True, overflow="ellipsis", markup=False, highlight=False)


def records_to_csv(records: list[dict[str, Any]]) -> str:
    """The CSV of dict rows (columns: the first row's keys; a key a row lacks is an empty cell), by the
    module's rule; nothing for no rows."""
    if not records:
        return ""
    names = list(records[0])
    lines = [",".join(_csv_cell(n) for n in names)]
    lines += [",".join(_csv_cell(r.get(n)) for n in names) for r in records]
    return "\n".join(lines) + "\n"
