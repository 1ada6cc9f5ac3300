"""Expected failures: the CLI prints these as one line and exits nonzero, never with a traceback."""

from __future__ import annotations


class TracekitError(Exception):
    """An expected, user-facing failure (bad input, missing file, busy database...)."""

    exit_code = 1


class TraceError(TracekitError):
    """A trace file that cannot be ingested: the message names the file and the problem."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(TracekitError):
    """A bad flag value or combination, detected before any work starts."""

    exit_code = 2
