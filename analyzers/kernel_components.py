"""The rows of the store's `kernel_components` table (tracekit/schema/005_attribution.sql): what attribution
decided for each unit of a trace, with the forward and phase of generate traces.

Built after `breakdown.summarize`, from the attribution and the document's `phases` field: the phase split
(analyzers/phases.py) cuts the kernels, in time order, into consecutive forwards, and each step of `phases`
says how many kernels it holds and its kind; so the rows carry exactly the split the report sums.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from tracekit.analyzers.attribution import Attribution
from tracekit.analyzers.breakdown import time_col_of

SCHEMA = {
    "event_id": pl.Int64,
    "component": pl.String,
    "layer": pl.Int32,
    "reason": pl.String,
    "time_ns": pl.Int64,
    "forward": pl.Int32,
    "phase": pl.String,
}


def kernel_components(att: Attribution, phases: dict[str, Any] | None) -> pl.DataFrame:
    """One row per unit (kernel; CPU event on CPU-only traces): event_id, component, layer, reason, time_ns,
    forward and phase (NULL where the trace has no phase split), in time order."""
    units = att.units.with_row_index("_row").sort("ts_ns", "_row")  # the order the phase split cuts
    forward = pl.lit(None, dtype=pl.Int32)
    phase = pl.lit(None, dtype=pl.String)
    if phases is not None:
        steps = phases["steps"]
        if sum(s["kernels"] for s in steps) != units.height:
            raise ValueError(f"the phase split holds {sum(s['kernels'] for s in steps)} of {units.height} kernels")
        forward = pl.Series([s["index"] for s in steps for _ in range(s["kernels"])], dtype=pl.Int32)
        phase = pl.Series([s["kind"] for s in steps for _ in range(s["kernels"])], dtype=pl.String)
    return units.select(
        pl.col("event_id"),
        pl.col("component"),
        pl.col("layer"),
        pl.col("reason"),
        pl.col(time_col_of(att)).alias("time_ns"),
        forward.alias("forward"),
        phase.alias("phase"),
    ).cast(SCHEMA)
