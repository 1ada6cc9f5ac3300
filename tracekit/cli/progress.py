"""Progress bars on stderr for the model commands (`prune`, `train`)."""

from __future__ import annotations

from typing import Any


def stderr_console() -> Any:
    """stderr as the user sees it, also while `collectors.quiet.library_output` captures the descriptors."""
    from rich.console import Console

    from tracekit.collectors.quiet import TERMINAL_STDERR

    return Console(file=TERMINAL_STDERR)


def quiet_transformers() -> None:
    """transformers' own progress bars would interleave with ours."""
    from transformers.utils import logging

    logging.disable_progress_bar()


def progress_bar() -> Any:
    """A rich Progress on stderr (description, bar, n/total, elapsed), transformers' own bars off."""
    quiet_transformers()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr_console(),
    )
