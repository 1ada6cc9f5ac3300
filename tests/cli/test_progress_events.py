"""The one progress event: what ingest and attribute emit, and what the CLI's renderer makes of a collect point."""

from __future__ import annotations

from pathlib import Path

import tracekit
from tracekit import pipeline
from tracekit.cli.progress import ProgressView, collect_failure
from tracekit.progress import ProgressEvent, Stage, total_of
from tracekit.store.ingest import IngestResult

DATA = Path(__file__).resolve().parents[1] / "data"
TINY = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
CPU = DATA / "conformance" / "cpu_only.json"


def test_ingest_tells_each_trace_in_order(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    with tracekit.open(tmp_path / "t.duckdb") as db:
        results = db.ingest([TINY, CPU], workers=1, on_progress=events.append)
    assert [(e.stage, e.done, e.total, e.label) for e in events] == [
        (Stage.INGEST, 1, 2, TINY.name),
        (Stage.INGEST, 2, 2, CPU.name),
    ]
    assert [e.result for e in events] == results and all(isinstance(e.result, IngestResult) for e in events)


def test_attribute_tells_ingest_then_attribute_then_done(tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    with tracekit.open(tmp_path / "t.duckdb") as db:
        pipeline.attribute_traces(db, [pipeline.trace_item(CPU)], on_progress=events.append)
    assert [(e.stage, e.done, e.total, e.label) for e in events] == [
        (Stage.ATTRIBUTE, 0, 1, f"ingest {CPU.name}"),
        (Stage.ATTRIBUTE, 0, 1, f"attribute {CPU.name}"),
        (Stage.ATTRIBUTE, 1, 1, ""),
    ]


def test_a_failed_collect_point_gets_a_line_and_an_ok_one_none() -> None:
    entry = {"status": "failed", "error": "OutOfMemoryError: CUDA"}
    assert collect_failure(ProgressEvent(Stage.COLLECT, 1, 2, "mamba2 decode b8 l64", entry)) == (
        "[red]mamba2 decode b8 l64: failed: OutOfMemoryError: CUDA"
    )
    assert collect_failure(ProgressEvent(Stage.COLLECT, 1, 2, "x", {"status": "ok", "error": None})) is None
    assert collect_failure(ProgressEvent(Stage.INGEST, 1, 2, "x", entry)) is None


def test_the_view_keeps_one_bar_per_stage() -> None:
    with ProgressView(disable=True) as view:
        view(ProgressEvent(Stage.COLLECT, 0, 4))
        view(ProgressEvent(Stage.COLLECT, 1, 4, "a"))
        view(ProgressEvent(Stage.ATTRIBUTE, 0, 2, "b"))
        tasks = {t.fields["stage"]: t for t in view._progress.tasks}
    assert set(tasks) == {"collect", "attribute"}
    assert (tasks["collect"].completed, tasks["collect"].total, tasks["collect"].description) == (1, 4, "a")
    assert total_of([1, 2, 3]) == 3 and total_of(iter([1])) is None
