"""Checks of the paths a command is given, made before any work (exit 2, see tracekit.errors).

Imports nothing heavy: `tracekit collect` uses these on machines without duckdb/polars.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tracekit.errors import MissingPathError, UsageError


def require_exists(path: str | os.PathLike[str], option: str = "", *, kind: str = "file or directory") -> Path:
    """`path` must exist; a file when kind='file', a directory when kind="directory"."""
    p = Path(path)
    name = f"{option}{path}" if option.endswith(":") else f"{option} {path}" if option else str(path)
    if not p.exists():
        raise MissingPathError(f"{name}: no such {kind}")
    if kind == "file" and p.is_dir():
        raise UsageError(f"{name}: is a directory, not a file")
    if kind == "directory" and not p.is_dir():
        raise UsageError(f"{name}: is not a directory")
    return p


def _nearest_existing(p: Path) -> Path:
    q = p.absolute()
    while not q.exists() and q != q.parent:
        q = q.parent
    return q


def check_output_file(
    path: str | os.PathLike[str], option: str, *, suffixes: Iterable[str] | None = None, make_parents: bool = False
) -> Path:
    """An output file that can be written: its folder exists (or can be made) and, if given, a known suffix.

    With `make_parents`, missing folders are fine as long as the nearest existing ancestor is a folder
    we may write in (they are created later, by the writer).
    """
    p = Path(path)
    if suffixes is not None:
        allowed = tuple(s.lower() for s in suffixes)
        if p.suffix.lower() not in allowed:
            got = f"{p.suffix!r}" if p.suffix else "no suffix"
            raise UsageError(f"{option} {p}: unsupported file type ({got}); use one of {', '.join(allowed)}")
    if p.is_dir():
        raise UsageError(f"{option} {p}: is a directory, not a file")
    parent = p.parent
    if not parent.exists() and not make_parents:
        raise MissingPathError(f"{option} {p}: no such directory {str(parent)!r}")
    _check_folder_writable(parent, option, p)
    return p


def check_output_dir(path: str | os.PathLike[str], option: str) -> Path:
    """An output folder: exists as a folder, or can be created under its nearest existing ancestor."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p}: exists and is not a directory")
    _check_folder_writable(p, option, p)
    return p


def _check_folder_writable(folder: Path, option: str, target: Path) -> None:
    base = _nearest_existing(folder)
    if not base.is_dir():
        raise UsageError(f"{option} {target}: {base} is not a directory")
    if not os.access(base, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {target}: cannot write in {base} (permission denied)")


def image_suffixes() -> tuple[str, ...]:
    """The file types matplotlib can write (png, svg, pdf, jpg, ...), as suffixes."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return (".png", ".svg", ".pdf")
    return tuple(f".{t}" for t in sorted(FigureCanvasBase.get_supported_filetypes()))
