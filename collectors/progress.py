"""Rich progress over a collect sweep (its summary table is tracekit.reports.collect_summary)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from tracekit.collectors.quiet import TERMINAL_STDERR
from tracekit.collectors.spec import Point


def point_label(e: dict[str, Any]) -> str:
    return f"{e['arch']} {e['mode']}{' cg' if e.get('cuda_graphs') else ''} b{e['batch']} l{e['seqlen']}"


class RichReporter:
    """A progress bar with the running point's name; use as a context manager around the sweep.

    It writes to the terminal's stderr even while `quiet.library_output` captures the descriptors, and
    leaves sys.stdout/sys.stderr alone (rich would otherwise route the libraries' Python output, which the
    capture sends to the log, through the bar onto the terminal).
    """

    def __init__(self, console: Console | None = None):
        self.console = console or Console(file=TERMINAL_STDERR)
        self.progress = Progress(
            TextColumn("[bold]collect"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
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
