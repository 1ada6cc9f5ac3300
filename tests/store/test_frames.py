"""Output column names of the store's SQL: duplicates renamed exactly as DuckDB's own client does."""

from __future__ import annotations

from pathlib import Path

import duckdb

import tracekit


def test_dedupe_names_matches_duckdbs_own_client() -> None:
    from tracekit.store.frames import dedupe_names

    names = ["a", "A", "a_1", "a", "name", "Name_1", "name"]
    sel = ", ".join(f'{i} AS "{n}"' for i, n in enumerate(names))
    expected = list(duckdb.connect().sql(f"SELECT {sel}").df().columns)  # DuckDB's DeduplicateColumns
    assert dedupe_names(names) == expected == ["a", "A_1", "a_1_1", "a_2", "name", "Name_1", "name_2"]


JOIN = "select k.name, t.name, k.name from kernels k join traces t using (trace_id)"


def test_duplicate_names_in_database_sql(one_kernel_store: Path) -> None:
    db = tracekit.open(one_kernel_store / "t.duckdb", read_only=True)
    try:
        df = db.sql(JOIN)
    finally:
        db.close()
    assert df.columns == ["name", "name_1", "name_2"]
    assert df.row(0) == ("k", "t.json", "k")
