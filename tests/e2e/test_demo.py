"""`tracekit demo`, the README's main job: the whole pipeline on CPU, offline."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit
from tests.conftest import LIBRARY_LINE

COMPONENTS = ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other")
# The one line tracekit writes to stderr in the demo: the collect bar (its last frame when not a terminal).
TRACEKIT_STDERR = re.compile(r"collect [━╸╺ ]+ \d+/\d+ \S.* \d+:\d\d:\d\d")


def _demo(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tracekit.cli.main", "demo", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env={
            "COLUMNS": "100",
            "PATH": "/usr/bin:/bin",
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
        },
    )


@pytest.mark.slow
def test_demo_collects_ingests_attributes_and_reports(demo_run, tmp_path: Path) -> None:
    out, r = demo_run  # `tracekit demo --out DIR --seqlens 64` (tests/conftest.py)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    for c in COMPONENTS:
        assert c in r.stdout
    db = tracekit.open(out / "tracekit.duckdb", read_only=True)
    # 2 archs x 2 modes x 1 seqlen, each with layer scopes of both tiny layers
    assert db.sql("select count(*) from traces").item() == 4
    layers = db.sql("select count(distinct name) from annotations where name like 'layer.%'").item()
    assert layers == 2
    db.close()
    assert (out / "components.png").stat().st_size > 0
    page = out / "report" / "report.html"  # the demo ends by writing the report and printing its path
    assert page.stat().st_size > 0 and f"report:{page}" in "".join(r.stdout.split())
    out = shutil.copytree(out, tmp_path / "demo")
    r = _demo(out, "--seqlens", "64")  # a previous demo's folder is replaced
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.slow
def test_demo_refuses_a_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    r = _demo(tmp_path)
    assert r.returncode != 0 and "not a previous demo" in r.stderr
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_demo_prints_only_its_own_lines(demo_run) -> None:
    """Torch's, the profiler's and transformers' output goes to run/collect.log; one note says what matters."""
    out, r = demo_run
    assert r.returncode == 0, r.stderr[-2000:]
    stderr = [line for line in r.stderr.splitlines() if line.strip()]
    assert stderr and all(TRACEKIT_STDERR.fullmatch(line) for line in stderr), r.stderr[-2000:]
    assert not [line for line in r.stdout.splitlines() if LIBRARY_LINE.search(line)]
    text = " ".join(r.stdout.split())
    # the CPU's torch path, said once (transformers 5.25 no longer logs its fallbacks there: tracekit knows)
    assert re.search(
        r"note: (transformers ran its PyTorch fallbacks for|on the CPU, transformers runs its PyTorch)", text
    )
    log = out / "run" / "collect.log"  # moved, not lost: the closing note names it
    assert re.search(rf"library output: \d+ lines \(.*\) in {re.escape(str(log))}; --verbose prints it", text)
    said = log.read_text()
    assert "profiler_start" in said
    assert "FutureWarning" in said
    assert [line for line in said.splitlines() if LIBRARY_LINE.search(line)]  # the pattern sees library lines


@pytest.mark.slow
def test_demo_verbose_prints_the_libraries_output(tmp_path: Path) -> None:
    r = _demo(tmp_path / "demo", "--seqlens", "8", "--verbose")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "profiler_start" in r.stderr and "FutureWarning" in r.stderr
    assert "library output:" not in r.stdout and not (tmp_path / "demo" / "run" / "collect.log").exists()
