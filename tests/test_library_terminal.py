"""Library code leaves the terminal to the CLI (docs/architecture.md, "Progress and the terminal").

Scanned: everything under tracekit/ but tracekit/cli/ (the shells), collectors/ and analyzers/. reports/ is
not scanned: its renderers take a console or a stream and exist to write. The library reports progress
through `tracekit.progress.ProgressEvent` and returns what it computed; it creates no rich console or
progress bar, calls no print() or click.echo(), and touches no sys.stdout/sys.stderr — except where
ALLOWED says why it cannot be otherwise.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [ROOT / "tracekit", ROOT / "collectors", ROOT / "analyzers"]
SHELLS = ROOT / "tracekit/cli"

# (file relative to the repository root, what it does) -> why it must
ALLOWED: dict[tuple[str, str], str] = {
    ("collectors/quiet.py", "sys.stdout"): (
        "library_output() points descriptors 1 and 2 at the run's log and back, and flushes the Python streams "
        "around the switch; TERMINAL_STDOUT/STDERR are the saved terminal that the CLI's renderers write to"
    ),
    ("collectors/quiet.py", "sys.stderr"): "as sys.stdout above",
    ("collectors/quiet.py", "print"): (
        "after a failed capture, the last lines the libraries wrote to the log are shown: the exception that "
        "follows is the CLI's one line, and by then only this context manager knows the log's tail"
    ),
    ("collectors/check.py", "print"): "`python -m tracekit.collectors.check RUN_DIR`: its main() is a shell",
    ("collectors/check.py", "sys.stderr"): "as print above (its usage line)",
    ("tracekit/prune/lm_eval_adapter.py", "print"): (
        "`python -m tracekit.prune.lm_eval_adapter`: its main() is a shell printing lm-eval's results"
    ),
}

TERMINAL_MODULES = ("rich", "tqdm")  # importing one of these means drawing on a terminal
ECHO = {("click", "echo"), ("click", "secho")}


def terminal_uses(path: Path) -> list[tuple[int, str]]:
    """(line, what) for each way `path` writes to the terminal itself."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            out += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in TERMINAL_MODULES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            out.append((node.lineno, "print"))
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pair = (node.value.id, node.attr)
            if pair[0] == "sys" and pair[1] in ("stdout", "stderr", "__stdout__", "__stderr__"):
                out.append((node.lineno, f"sys.{node.attr.strip('_')}"))
            elif pair in ECHO:
                out.append((node.lineno, f"{pair[0]}.{pair[1]}"))
            elif pair == ("console", "print"):  # a console handed in from the CLI is still the terminal
                out.append((node.lineno, "console.print"))
    return sorted(set(out))


def _library_files() -> list[Path]:
    return [f for d in SCANNED for f in sorted(d.rglob("*.py")) if SHELLS not in f.parents]


def test_library_code_does_not_write_to_the_terminal() -> None:
    bad = [
        f"{f.relative_to(ROOT)}:{line}: {what}"
        for f in _library_files()
        for line, what in terminal_uses(f)
        if (str(f.relative_to(ROOT)), what) not in ALLOWED
    ]
    assert not bad, "library code writing to the terminal (emit ProgressEvents / return data instead):\n" + "\n".join(
        bad
    )


def test_every_allowance_is_still_needed() -> None:
    used = {(str(f.relative_to(ROOT)), what) for f in _library_files() for _, what in terminal_uses(f)}
    assert not set(ALLOWED) - used, f"stale allowances: {sorted(set(ALLOWED) - used)}"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("print('x')\n", "print"),
        ("import sys\nsys.stderr.write('x')\n", "sys.stderr"),
        ("from rich.progress import Progress\n", "rich"),
        ("def f():\n    from rich.console import Console\n    Console().print('x')\n", "rich"),
        ("import click\nclick.echo('x')\n", "click.echo"),
        ("def f(console):\n    console.print('x')\n", "console.print"),
    ],
)
def test_the_scan_finds_each_way(tmp_path: Path, source: str, found: str) -> None:
    f = tmp_path / "m.py"
    f.write_text(source)
    assert found in {what for _, what in terminal_uses(f)}
