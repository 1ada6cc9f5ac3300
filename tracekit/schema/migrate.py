"""Upgrade an older tracekit database in place (docs/schema.md#migration), inside the caller's transaction.

A base table whose columns changed is set aside (renamed), the current schema files create it anew, and its
rows are copied back by column name; a new column gets its value from `FILLS` (else NULL). Then what v1
computed from raw categories is recomputed from `events.category`: External ids written as "external id"
(PyTorch 1.8-1.10), correlations written only as launch-flow ids (older ROCm), the launch/op links, `tracks.kind`
and `traces.device_properties`.
"""

from __future__ import annotations

import duckdb

from tracekit import schema
from tracekit.schema import schema_files

# Values of columns that a table gains, per table: SQL over the old table `o` and the alias table `a`.
FILLS = {
    "events": {
        "category": "coalesce(a.category, lower(o.cat))",
        "ph": "'X'",  # v1 stored only complete ('X') events in `events`
    },
}
_JOINS = {"events": "LEFT JOIN category_aliases a ON a.alias = lower(cat_key(o.cat, o.pid))"}


def _columns(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    rows = con.execute(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = 'main' AND table_catalog = current_database()
             AND table_name IN (SELECT table_name FROM information_schema.tables
                                WHERE table_type = 'BASE TABLE' AND table_schema = 'main'
                                  AND table_catalog = current_database())
           ORDER BY table_name, ordinal_position"""
    ).fetchall()
    out: dict[str, list[str]] = {}
    for table, column in rows:
        out.setdefault(table, []).append(column)
    return out


def target_columns() -> dict[str, list[str]]:
    """Columns of every base table of the current schema (applied to a scratch in-memory database)."""
    scratch = duckdb.connect(":memory:")
    try:
        for _, sql in schema_files():
            scratch.execute(sql)
        return _columns(scratch)
    finally:
        scratch.close()


def migrate(con: duckdb.DuckDBPyConnection, from_version: int) -> None:
    """Bring a database of schema `from_version` to the current schema (caller holds the transaction)."""
    schema.run(con, "ingest", "macros")  # cat_key and the link rules, shared with ingest
    target = target_columns()
    old = _columns(con)
    aside: dict[str, list[str]] = {}
    for table, cols in old.items():
        if table in target and cols != target[table]:
            con.execute(f'ALTER TABLE "{table}" RENAME TO "{table}__v{from_version}"')
            aside[table] = cols
    for _, sql in schema_files():
        con.execute(sql)
    for table, cols in aside.items():
        fills = {c: e for c, e in FILLS.get(table, {}).items() if c in target[table] and c not in cols}
        keep = [f'o."{c}"' for c in cols if c in target[table]]
        select = ", ".join(keep + [f'{e} AS "{c}"' for c, e in fills.items()])
        join = _JOINS.get(table, "") if fills else ""
        con.execute(f'INSERT INTO "{table}" BY NAME SELECT {select} FROM "{table}__v{from_version}" o {join}')
        con.execute(f'DROP TABLE "{table}__v{from_version}"')
    if from_version < 2:
        schema.run(con, "migrate", "relink_v1")
