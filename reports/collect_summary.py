"""The table printed at the end of a collect sweep (`tracekit collect`, `tracekit demo`): one row per point.

Imports only rich and tracekit.collectors (no duckdb/polars): `tracekit collect` runs on GPU machines without them.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from tracekit.collectors.progress import point_label
from tracekit.reports.units import ms_band


def _mib(b: int | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.0f} MiB"


def summary_table(doc: dict[str, Any]) -> Table:
    """One row per point: latency (TTFT per forward / TPOT per step, median [p10–p90]), tokens/s, peak memory."""
    t = Table(title=f"{doc['backend']} · {doc['dtype']} · {doc['device']} · weights {doc['weights']}")
    for col, just in (
        ("point", "left"),
        ("latency (p10–p90)", "right"),
        ("tokens/s", "right"),
        ("peak mem", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=just, no_wrap=col != "status")
    for e in doc["points"]:
        tim = e.get("timing")
        lat = "—" if not tim else ms_band(tim["median_ms"], tim["p10_ms"], tim["p90_ms"])
        tps = "—" if e.get("tokens_per_s") is None else f"{e['tokens_per_s']:,.0f}"
        status = e["status"] if e["status"] == "ok" else f"[red]{e['status']}: {e.get('error') or ''}"
        t.add_row(point_label(e), lat, tps, _mib(e.get("peak_mem_bytes")), status)
    return t


def print_summary(doc: dict[str, Any], out_dir: str, console: Console) -> None:
    """`tracekit collect`'s closing output: the table, then how many points are ok and where the manifest is."""
    console.print(summary_table(doc))
    failed = sum(e["status"] != "ok" for e in doc["points"])
    console.print(f"{len(doc['points']) - failed}/{len(doc['points'])} points ok · manifest: {out_dir}/manifest.json")
