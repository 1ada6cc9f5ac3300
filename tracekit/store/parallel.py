"""The earlier entry point of lake ingest, kept for its callers: one call of the one ingest path
(`tracekit.store.driver`). New code calls `Database.ingest` / `Lake.ingest`, or `driver.ingest` with a sink.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from tracekit.store.driver import auto_workers, connect_ray, default_workers, engine_for, ingest
from tracekit.store.ingest import IngestResult
from tracekit.store.lake import LakeSink

__all__ = ["auto_workers", "connect_ray", "default_workers", "ingest_lake"]


def ingest_lake(
    files: Sequence[Path],
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    keep_going: bool = True,
    on_progress: ProgressFn | None = None,
    ray_address: str | None = None,
) -> list[IngestResult]:
    """`files` into the lake `root` (created if needed), parsed by `workers` processes (default: `auto_workers`)
    or Ray tasks at `ray_address`."""
    engine = engine_for(files, workers, ray_address)
    return ingest(files, LakeSink(root), engine=engine, keep_going=keep_going, on_progress=on_progress)
