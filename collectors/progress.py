"""Rich progress over a collect sweep and the summary table printed at its end."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from tracekit.collectors.spec import Point


def point_label(e: dict[str, Any]) -> str:
    return f"{e['arch']} {e['mode']}{' cg' if e.get('cuda_graphs') else ''} b{e['batch']} l{e['seqlen']}"


class RichReporter:
    """A progress bar with the running point's name; use as a context manager around the sweep."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]collect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.task = None

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start(self, total: int) -> None:
        self.task = self.progress.add_task("", total=total)

    def point_started(self, point: Point) -> None:
        if self.task is not None:
            self.progress.update(self.task, description=point.name)

    def point_done(self, entry: dict[str, Any]) -> None:
        if self.task is not None:
            self.progress.update(self.task, advance=1, description=point_label(entry))
        if entry["status"] != "ok":
            self.console.print(f"[red]{point_label(entry)}: {entry['status']}: {entry['error']}")


def _mib(b: int | None) -> str:
    return "—" if b is None else f"{b / 2**20:,.0f} MiB"


def summary_table(doc: dict[str, Any]) -> Table:
    """One row per point: latency (TTFT per forward / TPOT per step, median [p10–p90]), tokens/s, peak memory."""
    t = Table(title=f"{doc['backend']} · {doc['dtype']} · {doc['device']} · weights {doc['weights']}")
    for col, just in (
        ("point", "left"),
        ("latency ms (p10–p90)", "right"),
        ("tokens/s", "right"),
        ("peak mem", "right"),
        ("status", "left"),
    ):
        t.add_column(col, justify=just)
    for e in doc["points"]:
        tim = e.get("timing")
        lat = "—" if not tim else f"{tim['median_ms']:.3f} ({tim['p10_ms']:.3f}–{tim['p90_ms']:.3f})"
        tps = "—" if e.get("tokens_per_s") is None else f"{e['tokens_per_s']:,.0f}"
        status = e["status"] if e["status"] == "ok" else f"[red]{e['status']}: {e.get('error') or ''}"
        t.add_row(point_label(e), lat, tps, _mib(e.get("peak_mem_bytes")), status)
    return t
