"""DuckDB results as polars frames, through the Arrow PyCapsule stream.

Going through `__arrow_c_stream__` avoids importing pyarrow and numpy (a third of a second on a small
machine). The thin wrapper matters: polars probing the relation object itself makes duckdb's bindings
report leaked instances at exit.

Duplicate output names (`select k.name, t.name ...`) are made unique exactly as DuckDB's own Python
client does for pandas/polars results (`QueryResult::DeduplicateColumns`, src/main/query_result.cpp):
a repeated name, compared case-insensitively, gets `_1`, `_2`, ... appended, skipping names already in
use, so `name, name` becomes `name, name_1`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

from tracekit.errors import TracekitError

if TYPE_CHECKING:  # polars is imported when a frame is made: ingest alone does not pay for it
    import polars as pl


class _ArrowStream:
    """Exposes only `__arrow_c_stream__` of a duckdb relation to polars."""

    def __init__(self, rel: object):
        self._rel = rel

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._rel.__arrow_c_stream__(requested_schema)  # type: ignore[attr-defined]


def dedupe_names(names: Sequence[str]) -> list[str]:
    """Unique column names, DuckDB-style: the second `name` becomes `name_1`, then `name_2`, ..."""
    seen: dict[str, int] = {}  # lower-cased name -> repetitions so far
    out: list[str] = []
    for name in names:
        low = name.lower()
        if low not in seen:
            seen[low] = 1
            out.append(name)
            continue
        new = f"{name}_{seen[low]}"
        while new.lower() in seen:  # taken by an earlier column: count on
            seen[low] += 1
            new = f"{name}_{seen[low]}"
        seen[new.lower()] = 1
        out.append(new)
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """Run `sql` and return its result as a polars DataFrame (empty for statements without a result)."""
    import polars as pl

    rel = con.sql(sql, params=params)
    if rel is None:  # DDL / DML
        return pl.DataFrame()
    names = list(rel.columns)
    unique = dedupe_names(names)
    if unique != names:  # Arrow/polars need unique names: rename by position (#i), keeping every column
        rel = rel.project(", ".join(f"#{i} AS {_quote(n)}" for i, n in enumerate(unique, 1)))
    try:
        return pl.DataFrame(_ArrowStream(rel))
    except (duckdb.Error, pl.exceptions.PolarsError) as exc:
        # DuckDB runs the query while polars pulls the stream: an error past the first batch (a failing cast in
        # a later row group) reaches us wrapped by polars, as its ComputeError
        raise QueryError(f"query failed: {_first_line(exc)}") from None


class QueryError(TracekitError):
    """A query DuckDB refused while its result streamed into polars: one line for the user."""


def _first_line(exc: BaseException) -> str:
    """DuckDB's own message, without polars' wrapper ('got external error: ') and without its context lines."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("got external error: ")


def integral_decimals(df: Any) -> Any:
    """Integral decimal columns (DuckDB's sum() of BIGINT is HUGEINT → DECIMAL(38,0)) as Int64 where every value
    fits; others unchanged."""
    import polars as pl

    casts = []
    for name, dtype in df.schema.items():
        if isinstance(dtype, pl.Decimal) and (dtype.scale or 0) == 0:
            col = df[name]
            lo, hi = col.min(), col.max()
            if lo is None or (int(lo) >= -(2**63) and int(hi) < 2**63):
                casts.append(pl.col(name).cast(pl.Int64))
    return df.with_columns(casts) if casts else df
