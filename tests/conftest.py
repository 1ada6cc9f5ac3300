"""Shared fixtures: the real H100 traces.

The small ones are copies in tests/data/h100 (so a plain clone runs every test); the 40 MB generate trace
stays in ../shared/traces. Tests that need it carry the `big_trace` mark; without the file they skip on a
developer's machine and fail under CI=true (CI always has ../shared).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Triton kernels on CPU tensors run only through Triton's interpreter, and triton decides that when it is
# first imported (its own tl.sum etc. are decorated then): set it before any test can import triton.
# tests/kernels/test_state_update.py needs it; nothing else in the suite runs Triton kernels.
os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
REPO_TRACES = DATA / "h100"
SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"
BIG_TRACES = ("mamba2-130m_generate_b8_p512_n32_h100.json.gz",)
# A line of library output, which `collect`, `demo` and `prune compare` keep off the terminal: a source
# location (`module.py:1789:`, `Handler.cpp:52]`), a logger's `[name]` prefix, a native logger's `LEVEL:date`
# or `[W1207 ...` prefix, a Python warning category, or the source line Python prints under a warning.
LIBRARY_LINE = re.compile(
    r"\.(py|cpp|cc|cu|h):\d+|^\[\w+\] |^\[[IWEF]\d{4} |^[A-Z]+:\d{4}-\d\d-\d\d|\w+Warning: |^\s+(return|output) \w+\("
)


def _missing(what: str) -> None:
    """Fail under CI (a missing fixture there is a broken checkout), skip elsewhere."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI=true: fixtures must be present)")
    pytest.skip(what)


def shared_trace(name: str) -> Path:
    """A real H100 trace by file name: in-repo copy first, then ../shared/traces."""
    for root in (REPO_TRACES, SHARED_TRACES):
        p = root / name
        if p.exists():
            return p
    _missing(f"real H100 trace {name} not found in {REPO_TRACES} or {SHARED_TRACES}")
    raise AssertionError("unreachable")


def shared_traces() -> list:
    """Every real H100 trace as pytest params; the big ones are marked `big_trace` and checked at run time."""
    small = sorted(REPO_TRACES.glob("*.json.gz"))
    params = [pytest.param(p, id=p.name) for p in small]
    params += [pytest.param(SHARED_TRACES / n, id=n, marks=pytest.mark.big_trace) for n in BIG_TRACES]
    return params


SLOW_BY_KIND = ("ray", "spark", "big_trace")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A Ray cluster, Spark or the 40 MB trace is slow by kind: such tests join the `slow` tier without a
    second mark (the fast tier, `pytest -m "not slow"`, is documented in docs/architecture.md#tests)."""
    for item in items:
        if any(item.get_closest_marker(kind) for kind in SLOW_BY_KIND):
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("big_trace") is None:
        return
    callspec = getattr(item, "callspec", None)
    paths = [v for v in (callspec.params.values() if callspec else ()) if isinstance(v, Path)]
    for p in paths or [SHARED_TRACES / n for n in BIG_TRACES]:
        if not p.exists():
            _missing(f"big real trace {p} not found (it lives in ../shared/traces)")


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`tracekit ARGS` in a subprocess, importing this checkout's code (not whatever tracekit is installed)."""
    return subprocess.run(
        [sys.executable, "-m", "tracekit.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    """One `tracekit demo --seqlens 64` (CPU, about half a minute), shared by the demo and report tests:
    (output folder, the completed process)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    r = run_cli("demo", "--out", str(out), "--seqlens", "64", cwd=out.parent, env={"COLUMNS": "100"}, timeout=600)
    return out, r


_RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def run_report(out: Path, *inputs: str | Path, db: Path) -> subprocess.CompletedProcess[str]:
    args = ["report", *map(str, inputs), "--out", str(out), "--db", str(db)]
    return run_cli(*args, cwd=out.parent, env={"COLUMNS": "160"}, timeout=600)


@pytest.fixture(scope="session")
def h100_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`tracekit report` on the committed H100 collect sweep, prune-compare results and two accuracy results."""
    tmp = tmp_path_factory.mktemp("h100report")
    r = run_report(
        tmp / "rep",
        _RESULTS / "h100_collect_130m",
        _RESULTS / "h100_prune_compare",
        _RESULTS / "prune_accuracy_mqar_mamba2.json",
        _RESULTS / "prune_accuracy_bytes_mamba2.json",
        db=tmp / "t.duckdb",
    )
    return tmp / "rep", r


@pytest.fixture(scope="session")
def prune_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`tracekit report` on a tiny prune score file (made here, data-free), the committed prune-compare results
    and one accuracy result: the pruning figures only (heatmap, latency, accuracy, trade-off)."""
    tmp = tmp_path_factory.mktemp("prunereport")
    args = ["prune", "score", "--arch", "mamba2", "--preset", "tiny", "--method", "magnitude"]
    score = run_cli(*args, "--out", str(tmp / "tiny_magnitude.pt"), cwd=tmp, env={"COLUMNS": "100"})
    assert score.returncode == 0, score.stderr[-2000:]
    r = run_report(
        tmp / "rep",
        tmp / "tiny_magnitude.pt",
        _RESULTS / "h100_prune_compare",
        _RESULTS / "prune_accuracy_mqar_mamba2.json",
        db=tmp / "t.duckdb",
    )
    return tmp / "rep", r


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The one non-blank stderr line of a refused command (asserting there is exactly one, and no traceback)."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


ONE_KERNEL_TRACE = {
    "traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0}]
}


@pytest.fixture(scope="module")
def one_kernel_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with t.json (one kernel, 2 µs) and t.duckdb holding it, for the CLI's store and error tests."""
    import json

    import tracekit

    d = tmp_path_factory.mktemp("store")
    (d / "t.json").write_text(json.dumps(ONE_KERNEL_TRACE))
    db = tracekit.open(d / "t.duckdb")
    db.ingest([d / "t.json"])
    db.close()
    return d
