"""Expected failures: the CLI prints these as one line and exits nonzero, never with a traceback.

Exit codes (the same failure gives the same code in every command):

* 2 -- usage: a bad flag value or combination, an input path that does not exist, an output path that
  cannot be written (its folder missing, or not a folder; an unsupported suffix). Detected before any
  work, like click's own usage errors (also 2).
* 1 -- the input is there but bad (not a trace, corrupt, wrong content), or the work failed (database
  locked, out of memory, ...). A folder ingest in which some files failed is also 1: the others are in.
* 130 -- interrupted (Ctrl-C).
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class TracekitError(Exception):
    """An expected, user-facing failure (bad input, missing file, busy database...)."""

    exit_code = EXIT_FAILURE


class TraceError(TracekitError):
    """A trace file that cannot be ingested: the message names the file and the problem."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class UsageError(TracekitError):
    """A bad flag value or combination, detected before any work starts."""

    exit_code = EXIT_USAGE


class MissingPathError(UsageError):
    """A path given by the user that does not exist (an input, or the folder of an output)."""
