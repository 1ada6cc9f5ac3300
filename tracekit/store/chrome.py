"""Plain Chrome JSON (catapult / Perfetto style) phases: B/E pairs, async b/e/n and legacy S/T/p/F, counters.

The SQL lives in tracekit/schema/queries/chrome.sql (statements named by `-- name:` lines) and runs over
ingest's temp table `raw`; everything is set-based (window functions and an ASOF join), no per-event
Python. docs/schema.md ("Chrome JSON") documents the rules; they follow the Trace Event Format spec and
Perfetto's JSON importer (json_trace_parser_impl.cc, slice_tracker.cc):

- B/E: per thread track (pid, tid), in (ts, file position) order, an E closes the innermost open B (stack
  order). The pair is one `events` row (ph 'B', event_id = the B's position, dur_ns = E.ts - B.ts) whose
  args are the B's merged with the E's. An E with nothing open, and a B never closed, are kept in
  `other_events` with note 'unmatched E' / 'unmatched B'.
- b/e (and legacy S/F): the same stack pairing per (cat, id, scope) -> `async_slices`; n, T, p ->
  `async_instants`.
- C: one `counters` row per args key.
"""

from __future__ import annotations

import duckdb

from tracekit import schema

# temp tables and views this module creates (dropped by ingest after each trace, views first)
TEMP_VIEWS = ("nest_input", "slices_src")
TEMP_TABLES = ("chrome_ids", "pair_walk", "pairs", "chrome_notes", "b_pairs")
# phases paired into slices (B/E) or async slices and instants
PAIRED_PHASES = ("B", "E", "b", "e", "n", "S", "T", "p", "F")
# phases whose events need a 'ts' (X and instants are checked by ingest itself)
TIMED_PHASES = ("B", "E", "b", "e", "n", "S", "T", "p", "F", "C")


def query(name: str) -> str:
    """One named statement of chrome.sql."""
    return schema.query("chrome", name)


def prepare(con: duckdb.DuckDBPyConnection, paired: bool = True) -> None:
    """Pair begins with ends and build `slices_src` (X events and B/E pairs) and `nest_input`.

    The typed args (`a`) of each B/E pair are ingest's macro `typed_args` (queries/ingest.sql) over its
    merged args. `paired=False` (the trace has no event of PAIRED_PHASES, e.g. any Kineto trace) skips the
    pairing: its tables are made empty, with the same columns.
    """
    for name in ("ids", "walk", "pairs", "notes", "slices", "nest_input"):
        sql = query(name)
        if not paired and name in ("ids", "walk", "pairs"):
            con.execute(f"{sql.rstrip().rstrip(';')} LIMIT 0")  # one statement each: same columns, no rows
            continue
        con.execute(sql)


def insert(con: duckdb.DuckDBPyConnection, trace_id: int) -> None:
    """Write counters, async slices and instants, and other_events (with notes) for one trace."""
    for name in ("insert_counters", "insert_async_slices", "insert_async_instants", "insert_other"):
        con.execute(query(name), {"trace_id": trace_id})


def note_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How many events were kept in other_events for each reason ('unmatched B', ...)."""
    return dict(con.execute("SELECT note, count(*) FROM chrome_notes GROUP BY note ORDER BY note").fetchall())


def missing_ts(con: duckdb.DuckDBPyConnection) -> tuple[int, int | None, str | None]:
    """(count, first event index, its phase) of events of a timed phase without a 'ts'."""
    phases = ", ".join(f"'{p}'" for p in TIMED_PHASES)
    n, first, ph = con.execute(
        f"SELECT count(*), min(event_id), arg_min(ph, event_id) FROM raw WHERE ts_ns IS NULL AND ph IN ({phases})"
    ).fetchone()
    return n, first, ph
