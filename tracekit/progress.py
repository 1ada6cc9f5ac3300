"""The one progress event the library emits; the CLI renders them (tracekit/cli/progress.py).

Library code never draws on the terminal: a long operation takes `on_progress: ProgressFn | None` and calls it
with a `ProgressEvent` as units start and finish. Standard library only: the collectors import it on GPU
machines without duckdb/polars.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Stage(StrEnum):
    """What runs; a renderer keeps one bar per stage."""

    COLLECT = "collect"  # collectors.sweep: one unit per point; result: the point's manifest entry
    INGEST = "ingest"  # tracekit.store: one unit per trace file; result: its IngestResult
    ATTRIBUTE = "attribute"  # tracekit.pipeline: one unit per trace (ingest if needed, then attribute)
    CALIBRATE = "calibrate"  # prune scoring: one unit per calibration batch
    TRAIN = "train"  # prune training: one unit per step; result: the logged row (loss, accuracy)
    PRUNE_COMPARE = "prune compare"  # prune compare: one unit per variant collected


@dataclass(frozen=True)
class ProgressEvent:
    """Where a long operation stands: `done` of `total` units of `stage` finished, `label` naming the unit.

    stage: what runs (a `Stage`).
    total: the units in all, None when not known in advance.
    label: the unit being worked on, or the one that just finished, for people ("" when none).
    result: the finished unit's own result when the caller may want it (an `IngestResult`, a collect
      manifest point, a training row), else None.
    """

    stage: Stage
    done: int
    total: int | None
    label: str = ""
    result: Any = None


ProgressFn = Callable[[ProgressEvent], None]


def total_of(items: object) -> int | None:
    """The number of units in `items` when it has a length (a list of batches), else None (a generator)."""
    return len(items) if isinstance(items, Sized) else None
