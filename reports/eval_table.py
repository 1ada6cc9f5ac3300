"""The `tracekit prune eval` results as a rich table (the JSON payload is the machine format)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render(payload: dict[str, Any], console: Console | None = None) -> None:
    """payload = {"model", "d_state", "results": [{"task", "metric", "value", "n"}, ...]}."""
    table = Table(title=f"{payload['model']} (d_state {payload['d_state']})")
    for col in ("task", "metric", "value", "n"):
        table.add_column(col, justify="right" if col in ("value", "n") else "left")
    for r in payload["results"]:
        table.add_row(r["task"], r["metric"], f"{r['value']:.4f}", str(r["n"]))
    (console or Console()).print(table)
