"""Committed results re-render byte-identical from their JSON through tracekit.reports (issue #10)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from tracekit.reports import compare as report

from tracekit.artifacts.compare import CompareResult

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h100_prune_compare"
RUNS = sorted(p for p in RESULTS.iterdir() if (p / "compare.json").is_file())


def load(run: Path) -> CompareResult:
    return CompareResult.read(run)


def host_of(md: str) -> str:
    """The machine the committed markdown names (`device cuda (HOST)`): not in compare.json."""
    line = next(line for line in md.splitlines() if line.startswith("Backend "))
    return line.split(" (", 1)[1].split(")", 1)[0]


def test_results_are_there():
    assert [p.name for p in RUNS] == ["decode_b64", "decode_b8", "prefill_b8"]


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_compare_markdown_rerenders_byte_identical(run):
    committed = (run / "compare.md").read_bytes()
    md = report.markdown(load(run), host=host_of(committed.decode()))
    assert md.encode() == committed


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.name)
def test_compare_rich_table_renders(run):
    result = load(run)
    console = Console(record=True, width=160, file=open("/dev/null", "w"))  # noqa: SIM115
    report.print_table(result, console=console)
    text = console.export_text()
    for variant in sorted({r["variant"] for r in result.rows} - {"dense"}):
        assert f"{result.arch} {variant} vs dense" in text
    assert "speedup" in text and "state red." in text
    assert f"wrote {result.out}/compare.json" in text


def test_compare_plot_renders(tmp_path):
    path = report.plot(load(RUNS[0]), tmp_path / "latency.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_rows_as_csv():
    """`prune compare --format csv`: one line per row of compare.json, nested component times as JSON text."""
    import csv
    import io

    from tracekit.reports.tables import records_to_csv

    result = load(RUNS[0])
    rows = list(csv.DictReader(io.StringIO(records_to_csv(result.rows))))
    assert len(rows) == len(result.rows) and list(rows[0]) == list(result.rows[0])
    assert json.loads(rows[0]["component_ns"]) == result.rows[0]["component_ns"]
    assert rows[0]["error"] == ""  # None is an empty cell
