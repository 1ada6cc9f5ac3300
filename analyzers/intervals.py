"""Busy time (length of a union of intervals) of polars frames, computed by the SQL of
tracekit/schema/queries/intervals.sql on a private in-memory DuckDB (the frame is read through its Arrow
stream: no copy into a database, no pyarrow)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import duckdb
import polars as pl

from tracekit import schema

_lock = threading.Lock()
_con: duckdb.DuckDBPyConnection | None = None


class _Stream:
    """Exposes only `__arrow_c_stream__` of a polars frame to DuckDB."""

    def __init__(self, df: pl.DataFrame):
        self._df = df

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        return self._df.__arrow_c_stream__(requested_schema)


def _busy(intervals: pl.DataFrame) -> dict[Any, int]:
    """grp -> busy_ns of a frame (grp, ts_ns, end_ns), on the private connection (one query at a time)."""
    global _con
    with _lock:
        if _con is None:
            _con = duckdb.connect(":memory:")
        _con.register("intervals", _Stream(intervals))
        try:
            return dict(_con.execute(schema.query("intervals", "union_by_group")).fetchall())
        finally:
            _con.unregister("intervals")


def union_ns_by(frame: pl.DataFrame, keys: Sequence[str]) -> dict[tuple[Any, ...], int]:
    """Busy time of each group of `keys` (a tuple of their values; None is a value): the length of the union
    of its [ts_ns, end_ns) intervals (queries/intervals.sql, union_by_group). Groups with no rows are absent."""
    if frame.height == 0:
        return {}
    groups = frame.select(keys).unique(maintain_order=True).with_row_index("grp")
    tagged = frame.select(*keys, "ts_ns", "end_ns").join(groups, on=list(keys), how="left", nulls_equal=True)
    busy = _busy(tagged.select("grp", "ts_ns", "end_ns"))
    return {tuple(row[1:]): busy[row[0]] for row in groups.iter_rows()}


def union_ns(frame: pl.DataFrame) -> int:
    """Length of the union of the [ts_ns, end_ns) intervals of `frame` (kernels on several streams overlap)."""
    if frame.height == 0:
        return 0
    return _busy(frame.select(pl.lit(0).alias("grp"), "ts_ns", "end_ns"))[0]
