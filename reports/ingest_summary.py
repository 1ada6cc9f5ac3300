"""The summary `tracekit ingest` prints: one row per file (status, counts, size, speed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_COMPACT = {
    "file": "file",
    "trace_id": "id",
    "status": "status",
    "events": "events",
    "kernels": "kernels",
    "json_mb": "MB",
    "mb_per_s": "MB/s",
}


def summary_records(results: Sequence[Any], *, compact: bool = False) -> list[dict[str, Any]]:
    """One row per IngestResult, as dicts (rendered by tables.write_records: no polars import on the ingest
    path); `compact`: the columns that fit a terminal, with short names (table format)."""
    rows = [
        {
            "file": r.path.rsplit("/", 1)[-1],
            "trace_id": r.trace_id,
            "status": "error: " + r.error if r.error else ("already stored" if r.skipped else "ingested"),
            "events": r.events,
            "kernels": r.kernels,
            "json_mb": round(r.json_bytes / 1e6, 2),
            "seconds": round(r.seconds, 3),
            "mb_per_s": round(r.mb_per_s, 1),
            "time_parse": r.time_parse,
        }
        for r in results
    ]
    if compact:
        rows = [{short: row[name] for name, short in _COMPACT.items()} for row in rows]
    return rows
