"""DuckDB results as polars frames, through the Arrow PyCapsule stream.

Going through `__arrow_c_stream__` avoids importing pyarrow and numpy (a third of a second on a small
machine). The thin wrapper matters: polars probing the relation object itself makes duckdb's bindings
report leaked instances at exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import duckdb

if TYPE_CHECKING:  # polars is imported when a frame is made: ingest alone does not pay for it
    import polars as pl


class _ArrowStream:
    """Exposes only `__arrow_c_stream__` of a duckdb relation to polars."""

    def __init__(self, rel: object):
        self._rel = rel

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._rel.__arrow_c_stream__(requested_schema)  # type: ignore[attr-defined]


def frame(
    con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None
) -> pl.DataFrame:
    """Run `sql` and return its result as a polars DataFrame (empty for statements without a result)."""
    import polars as pl

    rel = con.sql(sql, params=params)
    if rel is None:  # DDL / DML
        return pl.DataFrame()
    return pl.DataFrame(_ArrowStream(rel))
