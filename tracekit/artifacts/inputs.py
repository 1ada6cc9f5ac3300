"""What the paths given to `tracekit diff` and `tracekit report` are, told by their files (standard library
only; nothing here reads more than it must to tell)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tracekit.artifacts.compare import COMPARE, is_compare_dir
from tracekit.artifacts.manifest import MANIFEST, is_run_dir
from tracekit.errors import TracekitError, UsageError


def diff_input_kind(ref: str | os.PathLike[str] | int) -> str:
    """ "trace id", "compare row" (DIR#LABEL), "run directory" or "trace file"; UsageError for anything else."""
    if isinstance(ref, int):
        return "trace id"
    s = str(ref)
    if "#" in s and not Path(s).exists():
        return "compare row"
    p = Path(s)
    if p.is_dir():
        if is_run_dir(p):
            return "run directory"
        raise UsageError(f"{p}: a directory without manifest.json (not a `tracekit collect` run)")
    if p.is_file():
        return "trace file"
    if s.isdigit():
        return "trace id"
    raise UsageError(f"{s}: no such file, run directory, trace id or compare row (DIR#LABEL)")


@dataclasses.dataclass(frozen=True)
class ReportInputs:
    """What `tracekit report` found among its paths."""

    runs: list[Path]  # collect run folders (manifest.json)
    compares: list[Path]  # prune-compare folders (compare.json)
    accuracies: list[Path]  # prune accuracy results (JSON with `curves`)
    scores: list[tuple[Path, Any]]  # prune score files (.pt) with their loaded ScoreSet


def find_report_inputs(
    paths: Sequence[str | os.PathLike[str]], load_scores: Callable[[Path], Any] | None = None
) -> ReportInputs:
    """Collect run dirs, prune-compare dirs, prune accuracy files and prune score files among `paths`,
    detected by their files: `manifest.json` → collect run, `compare.json` → prune compare, a JSON file with
    `curves` → accuracy, a `.pt` file that `load_scores` loads (a TracekitError: not one) → scores. A folder
    with none of these is searched two levels down. UsageError when nothing is found."""
    found = ReportInputs([], [], [], [])

    def visit(p: Path, depth: int) -> None:
        if p.is_file():
            if p.name == MANIFEST:
                found.runs.append(p.parent)
            elif p.name == COMPARE:
                found.compares.append(p.parent)
            elif p.suffix == ".json":
                if isinstance(_accuracy_curves(p), dict):
                    found.accuracies.append(p)
            elif p.suffix == ".pt" and load_scores is not None:
                try:
                    found.scores.append((p, load_scores(p)))
                except TracekitError:
                    return
            return
        if is_compare_dir(p):
            found.compares.append(p)
        elif is_run_dir(p):
            found.runs.append(p)
        elif depth > 0:
            for child in sorted(p.iterdir()):
                if child.is_dir() or child.suffix in (".json", ".pt"):
                    visit(child, depth - 1)

    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise UsageError(f"{p}: no such file or directory")
        visit(p, 2)
    if not (found.runs or found.compares or found.accuracies or found.scores):
        raise UsageError(
            "no collect run (manifest.json), prune-compare dir (compare.json), prune accuracy result (JSON with "
            f"`curves`) or prune score file (.pt) in {', '.join(map(str, paths))}"
        )
    return found


def _accuracy_curves(path: Path) -> Any:
    """The `curves` of a prune accuracy result (benchmarks/bench_prune_accuracy.py), else None."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc.get("curves") if isinstance(doc, dict) else None


def read_accuracy(path: Path) -> dict[str, Any]:
    """A prune accuracy result (found by `find_report_inputs`)."""
    return json.loads(path.read_text())
