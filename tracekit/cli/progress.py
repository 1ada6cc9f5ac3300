"""Progress bars on stderr for the model commands (`prune`, `train`)."""

from __future__ import annotations

from typing import Any


def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


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
