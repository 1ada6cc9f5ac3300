"""Upgrade an older tracekit database in place (docs/schema.md#migration), inside the caller's transaction.

A base table whose columns changed is set aside (renamed), the current schema files create it anew, and its
rows are copied back by column name; a new column gets its value from `FILLS` (else NULL). Then what v1
computed from raw categories is recomputed from `events.category`: External ids written as "external id"
(PyTorch 1.8-1.10), correlations written only as launch-flow ids (older ROCm), the launch/op links, `tracks.kind`
and `traces.device_properties`.
"""

from __future__ import annotations

import duckdb

from tracekit.schema import CAT_KEY, schema_files

# Values of columns that a table gains, per table: SQL over the old table `o` and the alias table `a`.
FILLS = {
    "events": {
        "category": "coalesce(a.category, lower(o.cat))",
        "ph": "'X'",  # v1 stored only complete ('X') events in `events`
    },
}
_JOINS = {"events": f"LEFT JOIN category_aliases a ON a.alias = lower({CAT_KEY.format(cat='o.cat', pid='o.pid')})"}

_GPU = "('kernel', 'gpu_memcpy', 'gpu_memset')"
_RUNTIME = "('cuda_runtime', 'cuda_driver')"
_LINKED = "('kernel', 'gpu_memcpy', 'gpu_memset', 'gpu_user_annotation', 'cuda_runtime', 'cuda_driver')"

# The link rules of tracekit/store/ingest.py (_LINK_SQL and _insert), over the stored events of every trace.
_RELINK_SQL = f"""
UPDATE events SET external_id = TRY_CAST(args->>'$."external id"' AS BIGINT)
WHERE external_id IS NULL AND args->>'$."external id"' IS NOT NULL;

UPDATE events SET stream = TRY_CAST(args->>'$."sycl queue"' AS BIGINT)
WHERE stream IS NULL AND args->>'$."sycl queue"' IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mig_flow_corr AS
WITH need AS (
    SELECT trace_id, event_id, pid, tid, ts_ns, category IN {_RUNTIME} AS is_launch FROM events
    WHERE correlation IS NULL AND (category IN {_RUNTIME} OR category IN {_GPU})
),
fl AS (SELECT * FROM flows WHERE lower(coalesce(cat, '')) NOT IN ('fwdbwd', 'forward_backward')),
hit AS (
    SELECT n.trace_id, n.event_id, f.flow_id FROM need n JOIN fl f
      ON f.trace_id = n.trace_id AND f.start_pid IS NOT DISTINCT FROM n.pid
     AND f.start_tid IS NOT DISTINCT FROM n.tid AND f.start_ts_ns = n.ts_ns
    WHERE n.is_launch
    UNION ALL
    SELECT n.trace_id, n.event_id, f.flow_id FROM need n JOIN fl f
      ON f.trace_id = n.trace_id AND f.end_pid IS NOT DISTINCT FROM n.pid
     AND f.end_tid IS NOT DISTINCT FROM n.tid AND f.end_ts_ns = n.ts_ns
    WHERE NOT n.is_launch
)
SELECT trace_id, event_id, min(TRY_CAST(flow_id AS BIGINT)) AS correlation FROM hit GROUP BY 1, 2;

UPDATE events SET correlation = m.correlation
FROM mig_flow_corr m
WHERE m.trace_id = events.trace_id AND m.event_id = events.event_id AND m.correlation IS NOT NULL;

CREATE OR REPLACE TEMP TABLE mig_launches AS
SELECT trace_id, correlation, min(event_id) AS launch_id, arg_min(parent_id, event_id) AS launch_parent
FROM events WHERE category IN {_RUNTIME} AND correlation IS NOT NULL
GROUP BY 1, 2;

CREATE OR REPLACE TEMP TABLE mig_ops AS
SELECT trace_id, external_id, arg_max(event_id, depth) AS op_id
FROM events WHERE category IN ('cpu_op', 'user_annotation') AND external_id <> 0
GROUP BY 1, 2;

CREATE OR REPLACE TEMP TABLE mig_links AS
SELECT x.trace_id, x.event_id,
       CASE WHEN x.category IN {_GPU} THEN l.launch_id END AS launch_id,
       coalesce(o.op_id, CASE WHEN x.category IN {_RUNTIME} THEN x.parent_id
                              WHEN x.category IN {_GPU} THEN l.launch_parent END) AS op_id
FROM events x
LEFT JOIN mig_launches l ON l.trace_id = x.trace_id AND l.correlation = x.correlation AND x.category IN {_GPU}
LEFT JOIN mig_ops o ON o.trace_id = x.trace_id AND o.external_id = x.external_id
WHERE x.category IN {_LINKED};

UPDATE events SET launch_id = m.launch_id, op_id = m.op_id
FROM mig_links m
WHERE m.trace_id = events.trace_id AND m.event_id = events.event_id
  AND (events.launch_id IS DISTINCT FROM m.launch_id OR events.op_id IS DISTINCT FROM m.op_id);

UPDATE tracks SET kind = 'gpu'
WHERE kind <> 'gpu' AND EXISTS (
    SELECT 1 FROM events e
    WHERE e.trace_id = tracks.trace_id AND e.pid IS NOT DISTINCT FROM tracks.pid
      AND e.tid IS NOT DISTINCT FROM tracks.tid
      AND e.category IN ('kernel', 'gpu_memcpy', 'gpu_memset', 'gpu_user_annotation'));

UPDATE traces SET device_properties = json_extract(metadata, '$.computeProperties')
WHERE device_properties IS NULL AND json_extract(metadata, '$.computeProperties') IS NOT NULL;

DROP TABLE mig_flow_corr;
DROP TABLE mig_launches;
DROP TABLE mig_ops;
DROP TABLE mig_links;
"""


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
        con.execute(_RELINK_SQL)
