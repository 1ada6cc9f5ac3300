"""The summary `tracekit ingest` prints: one row per file (status, counts, size, speed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl


def summary_frame(results: Sequence[Any], *, compact: bool = False) -> pl.DataFrame:
    """One row per IngestResult; `compact`: the columns that fit a terminal, with short names (table format)."""
    summary = pl.DataFrame(
        [
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
    )
    if compact:
        summary = summary.select("file", "trace_id", "status", "events", "kernels", "json_mb", "mb_per_s").rename(
            {"trace_id": "id", "json_mb": "MB", "mb_per_s": "MB/s"}
        )
    return summary
