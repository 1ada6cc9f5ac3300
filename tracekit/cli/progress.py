"""The one renderer of the library's progress events (tracekit.progress.ProgressEvent): rich bars on stderr.

Imports only rich and the base layer, so `tracekit collect` stays free of duckdb/polars.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracekit.progress import ProgressEvent, Stage

EventText = Callable[[ProgressEvent], str | None]


def stderr_console() -> Any:
    """stderr as the user sees it, also while `collectors.quiet.library_output` captures the descriptors."""
    from rich.console import Console

    from tracekit.collectors.quiet import TERMINAL_STDERR

    return Console(file=TERMINAL_STDERR)


def quiet_transformers() -> None:
    """transformers' own progress bars would interleave with ours."""
    from transformers.utils import logging

    logging.disable_progress_bar()


class ProgressView:
    """One bar per stage (stage, bar, done/total, label, detail, elapsed) on the terminal's stderr.

    Pass the view itself as the library's `on_progress`; use it as a context manager (or `close()` it) so the
    bars stop before what is printed next. It starts drawing at the first event.

    transient: the bars vanish when closed (the output that follows replaces them).
    detail: more text for the bar from each event (ingest: the rate).
    note: a line to print above the bars for an event (collect: a point that failed), or None.
    disable: draw nothing (e.g. stderr is not a terminal).

    It writes to the terminal even while `quiet.library_output` captures the descriptors, and leaves
    sys.stdout/sys.stderr alone (rich would otherwise route the libraries' Python output, which the capture
    sends to the log, through the bar onto the terminal).
    """

    def __init__(
        self,
        *,
        transient: bool = False,
        detail: EventText | None = None,
        note: EventText | None = None,
        disable: bool = False,
    ):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = stderr_console()
        self._detail = detail
        self._note = note
        self._tasks: dict[str, Any] = {}
        self._started = False
        self._progress = Progress(
            TextColumn("[bold]{task.fields[stage]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=transient,
            disable=disable,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __call__(self, event: ProgressEvent) -> None:
        task = self._tasks.get(event.stage)
        if task is None:
            task = self._tasks[event.stage] = self._progress.add_task(
                "", total=event.total, stage=event.stage, detail=""
            )
        if not self._started:
            self._progress.start()
            self._started = True
        detail = self._detail(event) if self._detail else None
        self._progress.update(
            task, total=event.total, completed=event.done, description=event.label, detail=detail or ""
        )
        line = self._note(event) if self._note else None
        if line:
            self.console.print(line, highlight=False)

    def close(self) -> None:
        """Stop drawing (the finished bars stay unless transient)."""
        if self._started:
            self._progress.stop()
            self._started = False

    def __enter__(self) -> ProgressView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def collect_failure(event: ProgressEvent) -> str | None:
    """The red line of a collect point that did not finish (its manifest entry is the event's result)."""
    entry = event.result
    if event.stage != Stage.COLLECT or not isinstance(entry, dict) or entry.get("status", "ok") == "ok":
        return None
    return f"[red]{event.label}: {entry['status']}: {entry['error']}"
