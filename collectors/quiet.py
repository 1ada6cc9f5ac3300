"""What the libraries print while a model runs goes to a log file; tracekit says what matters once.

While `collect` runs a model, three kinds of library output reach the terminal: Python warnings
(transformers' `FutureWarning`s), transformers' logger (`[transformers] ... falling back to its reference
PyTorch implementation`), and native logging that C++ writes straight to file descriptor 2 (libkineto's
`USDT:... profiler_start`, c10's `[W... CPUAllocator.cpp]`). Only a redirect of the file descriptors
catches all three, so `library_output()` points descriptors 1 and 2 at the log: sys.stdout and
sys.stderr keep writing to those descriptors, so everything Python-level follows, whoever set it up.
tracekit's own output (progress bar, notes) goes through `TERMINAL_STDOUT` / `TERMINAL_STDERR`, which
write to the saved original descriptors while a capture is on and to sys.stdout / sys.stderr otherwise.

No environment knob covers all three: KINETO_LOG_LEVEL=6 silences libkineto (its USDT lines sit one
level above ERROR; 5, the value usually quoted, does not) but is read once per process, c10's warnings
follow TORCH_CPP_LOG_LEVEL, read when torch is imported, and Python warnings and loggers have their own
switches. `read_library_log` sorts a log into what tracekit recognises and the rest, which
`tracekit.reports.collect_summary.print_library_notes` turns into notes.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tracekit.errors import TracekitError

_lock = threading.RLock()  # held while a capture starts or ends and while tracekit writes through it


@dataclass
class _Capture:
    log: IO[bytes]
    saved: dict[int, int]  # descriptor -> a duplicate of what it was before the capture
    terminal: dict[str, IO[str]]  # "stdout"/"stderr" -> a stream on the saved descriptor


_active: _Capture | None = None


class TerminalStream:
    """sys.stdout or sys.stderr as the user sees it: where tracekit's own output goes, capture or not.

    Give it to rich as `Console(file=TERMINAL_STDERR)`. Writes are resolved at write time, so a console
    made before a capture (a progress bar's refresh thread included) stays on the terminal during it.
    """

    def __init__(self, name: str):
        self.name = name

    def _target(self) -> Any:
        cap = _active
        if cap is not None and self.name in cap.terminal:
            return cap.terminal[self.name]
        return getattr(sys, self.name)

    def write(self, text: str) -> int:
        with _lock:
            return self._target().write(text)

    def flush(self) -> None:
        with _lock:
            self._target().flush()

    def isatty(self) -> bool:
        return bool(getattr(self._target(), "isatty", lambda: False)())

    def fileno(self) -> int:
        return self._target().fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._target(), "encoding", None) or "utf-8"


TERMINAL_STDOUT = TerminalStream("stdout")
TERMINAL_STDERR = TerminalStream("stderr")
MARK = "=== tracekit: {} ==="
_MARK_RE = re.compile(r"^=== tracekit: (.*) ===$")
ERROR_TAIL_LINES = 30


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError and a ValueError
        return None


def _flush_all() -> None:
    """Python's and C's stdio buffers, so what was written before a switch lands on its side of it (C's
    stdout is fully buffered when it is not a terminal, unless PYTHONUNBUFFERED is set)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)  # printf / std::cout output still in the C library's buffer


@contextlib.contextmanager
def library_output(log_path: str | os.PathLike[str], *, show: bool = False) -> Iterator[Path | None]:
    """Send everything written to descriptors 1 and 2 inside the block to `log_path`; yield that path.

    Descriptors are restored on any exit, Ctrl-C included. If the block raises an unexpected error (not a
    TracekitError, not Ctrl-C), the library output since the last `mark()` is printed to stderr first: a
    native failure explains itself there. A log without library output is removed, with the folders made
    for it. `show=True` (the CLI's `--verbose`) captures nothing and removes an earlier run's log there;
    inside another capture nothing changes either. Both yield None.
    """
    global _active
    path = Path(log_path)
    if show:
        path.unlink(missing_ok=True)  # an earlier run's log would pass for this one's
    if show or _active is not None:
        yield None
        return
    made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    saved: dict[int, int] = {}
    terminal: dict[str, IO[str]] = {}
    failed: BaseException | None = None
    log = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in finally, after the descriptors are back
    try:
        _flush_all()
        with _lock:
            for fd, name in ((1, "stdout"), (2, "stderr")):
                try:
                    saved[fd] = os.dup(fd)
                except OSError:  # a closed descriptor: nothing reaches the terminal through it anyway
                    continue
                stream = getattr(sys, name, None)
                if _fileno(stream) == fd:  # else (pytest's capsys, Jupyter) tracekit writes to sys.<name>
                    terminal[name] = io.TextIOWrapper(
                        io.FileIO(saved[fd], "w", closefd=False),
                        encoding=getattr(stream, "encoding", None) or "utf-8",
                        errors=getattr(stream, "errors", None) or "strict",
                        line_buffering=True,
                    )
                os.dup2(log.fileno(), fd)
            _active = _Capture(log, saved, terminal)
        yield path
    except Exception as exc:
        failed = exc
        raise
    finally:
        _flush_all()
        with _lock:
            _active = None
            for fd, dup in saved.items():
                os.dup2(dup, fd)
            for stream in terminal.values():
                with contextlib.suppress(OSError, ValueError):
                    stream.close()
            for dup in saved.values():
                os.close(dup)
        log.close()
        if failed is not None and not isinstance(failed, TracekitError):
            _print_tail(path)
        if not _library_lines(path):  # the libraries said nothing, or a usage error came first
            path.unlink()
            for d in made:  # deepest first; a folder the work wrote into stays
                with contextlib.suppress(OSError):
                    d.rmdir()


def mark(title: str) -> None:
    """Start a section of the active capture's log (e.g. one collect point); nothing without a capture."""
    cap = _active
    if cap is None:
        return
    _flush_all()
    with _lock:
        os.write(cap.log.fileno(), (MARK.format(title) + "\n").encode())


def _library_lines(path: Path, *, last_section: bool = False) -> list[str]:
    """The log's non-blank lines other than marks; `last_section`: only those after the last mark."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if last_section:
        starts = [i for i, line in enumerate(lines) if _MARK_RE.match(line)]
        lines = lines[starts[-1] + 1 if starts else 0 :]
    return [line for line in lines if line.strip() and not _MARK_RE.match(line)]


def _print_tail(path: Path) -> None:
    section = _library_lines(path, last_section=True)
    if not section:
        return
    shown = section[-ERROR_TAIL_LINES:]
    more = f", the last {len(shown)} of {len(section)} lines" if len(shown) < len(section) else ""
    print(f"tracekit: what the libraries printed before the error ({path}{more}):", file=sys.stderr)
    for line in shown:
        print(f"  {line}", file=sys.stderr)


# ---- what a log says ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LibraryLog:
    """The library output of one or more logs, sorted into what tracekit recognises and the rest."""

    paths: tuple[Path, ...]  # the logs that hold library output
    lines: int  # library lines in all of them (tracekit's section marks not counted)
    fallbacks: tuple[str, ...]  # functions transformers ran through its PyTorch reference code
    fallback_packages: tuple[str, ...]  # the packages it said were missing or not for this device
    profiler: int  # the profiler's own chatter: libkineto's start/stop lines, c10's pre-profiling allocations
    deprecations: int  # deprecation notices (Python warnings with their source line, transformers' logger)
    other: tuple[str, ...]  # lines tracekit does not recognise, those that look like errors first


_KINETO = re.compile(r"^(?P<level>[A-Z]+):\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \d+:\d+ \S+:\d+\] ")
_C10 = re.compile(r"^\[(?P<level>[IWEF])\d{4} [\d:.]+ (?:\d+ )?\S+:\d+\] (?P<message>.*)")
_PY_WARNING = re.compile(r"^\S.*:\d+: (?P<category>\w+Warning): ")
_TRANSFORMERS = re.compile(r"^\[transformers\] (?P<message>.*)")
_FALLBACK = re.compile(
    r"`(?P<function>\w+)` is falling back to its reference PyTorch implementation because `(?P<package>[\w.-]+)`"
)
_ERROR_LIKE = re.compile(r"error|Traceback|^\[[EF]\d{4}|^(ERROR|FATAL):", re.IGNORECASE)
_CHATTY_KINETO = {"USDT", "STAGE", "INFO", "VERBOSE"}
_DEPRECATION = {"DeprecationWarning", "FutureWarning", "PendingDeprecationWarning"}
_PROFILER_C10 = ("allocated before the profiling started",)


def read_library_log(paths: Iterable[str | os.PathLike[str] | None]) -> LibraryLog:
    """Sort the lines of the logs that exist among `paths` (None and missing files are skipped)."""
    found = tuple(Path(p) for p in paths if p is not None and Path(p).is_file())
    count = profiler = deprecations = 0
    fallbacks: list[str] = []
    packages: list[str] = []
    other: list[str] = []
    for path in found:
        previous_was_warning = False
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip() or _MARK_RE.match(line):
                previous_was_warning = False
                continue
            count += 1
            if previous_was_warning and line.startswith((" ", "\t")):
                continue  # the source line Python prints under a warning: counted with it
            previous_was_warning = False
            if m := _KINETO.match(line):
                if m["level"] in _CHATTY_KINETO:
                    profiler += 1
                    continue
            elif m := _C10.match(line):
                if m["level"] in "IW" and any(s in m["message"] for s in _PROFILER_C10):
                    profiler += 1
                    continue
            elif m := _PY_WARNING.match(line):
                previous_was_warning = True
                if m["category"] in _DEPRECATION:
                    deprecations += 1
                    continue
            elif m := _TRANSFORMERS.match(line):
                if f := _FALLBACK.search(m["message"]):
                    fallbacks.append(f["function"])
                    packages.append(f["package"])
                    continue
                if "deprecated" in m["message"]:
                    deprecations += 1
                    continue
            other.append(line)
    other.sort(key=lambda line: not _ERROR_LIKE.search(line))
    return LibraryLog(
        paths=tuple(p for p in found if p.stat().st_size),
        lines=count,
        fallbacks=tuple(dict.fromkeys(sorted(fallbacks))),
        fallback_packages=tuple(dict.fromkeys(sorted(packages))),
        profiler=profiler,
        deprecations=deprecations,
        other=tuple(other),
    )
