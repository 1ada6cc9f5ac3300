"""Trace edges found on real traces from other projects (issue #18, part 3).

- An `X` event without `dur` (Chrome: a task still running when recording stopped) is an unfinished slice:
  the file is accepted, the event kept in other_events ('unfinished X'), counted in the ingest summary, and
  no total counts it (docs/schema.md, "Unfinished slices"). Its ts is still required.
- Typed view columns read from args (grid, block, registers, bandwidth, ...) are NULL for a value of the
  wrong type, never an error; an error raised while a result streams into polars is one line.
The expected values come from tests/plain_reader.py (json + Decimal) and from the typing rules written out
here in Python, independently of the views' SQL.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tracekit
from tests import plain_reader
from tests.conftest import run_cli
from tracekit.errors import TraceError

CONF = Path(__file__).parents[1] / "data" / "conformance"
UNFINISHED = CONF / "chrome_unfinished_x.json"
ARG_TYPES = CONF / "kineto_arg_types_unfinished_kernel.json"


@pytest.fixture
def db(tmp_path: Path):
    d = tracekit.open(str(tmp_path / "t.duckdb"))
    yield d
    d.close()


# ---- unfinished X -------------------------------------------------------------------------------------------
def test_unfinished_x_is_kept_counted_and_no_slice(db) -> None:
    exp = plain_reader.expected(UNFINISHED)
    assert set(exp.unmatched.values()) == {"unfinished X"} and len(exp.unmatched) == 3
    r = db.ingest_file(UNFINISHED)
    assert r.notes == {"unfinished X": 3}
    tid = r.trace_id
    got = dict(
        db.con.execute(
            "SELECT event_id, ts_ns FROM other_events WHERE trace_id = ? AND note = 'unfinished X'", [tid]
        ).fetchall()
    )
    events = plain_reader.load(UNFINISHED)["traceEvents"]
    assert got == {i: plain_reader.ns(events[i]["ts"]) for i in exp.unmatched}
    slices = {e for (e,) in db.con.execute("SELECT event_id FROM events WHERE trace_id = ?", [tid]).fetchall()}
    assert slices == set(exp.slices) and not slices & set(exp.unmatched)
    # children of the unfinished task nest in nothing it does not close: they are top level on their track
    depth = dict(db.con.execute("SELECT event_id, depth FROM events WHERE trace_id = ?", [tid]).fetchall())
    assert depth[5] == 0 and depth[10] == 0
    meta = json.loads(db.sql("select metadata from traces").item())
    assert meta["tracekit"]["notes"] == {"unfinished X": 3}


def test_x_without_ts_still_refused(db, tmp_path: Path) -> None:
    p = tmp_path / "no_ts.json"
    p.write_text(json.dumps({"traceEvents": [{"ph": "X", "name": "a", "ts": 1, "dur": 2}, {"ph": "X", "name": "b"}]}))
    with pytest.raises(TraceError) as exc:
        db.ingest_file(p)
    assert "1 complete ('X') events lack 'ts' (missing or null; first: traceEvents[1])" in str(exc.value)
    assert db.sql("select count(*) from traces").item() == 0


def test_ingest_cli_counts_unfinished(tmp_path: Path) -> None:
    r = run_cli("ingest", str(UNFINISHED), "--db", str(tmp_path / "c.duckdb"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "kept in other_events (see its note column): 3 unfinished X" in r.stderr


def test_unfinished_kernel_is_left_out_of_totals_and_noted(tmp_path: Path) -> None:
    exp = plain_reader.expected(ARG_TYPES)
    assert exp.unmatched == {9: "unfinished X"} and set(exp.kernels) == {2, 5}
    r = run_cli(
        "attribute", "--trace", str(ARG_TYPES), "--db", str(tmp_path / "a.duckdb"), "--format", "json", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["total"]["gpu_time_ns"] == exp.kernel_ns and doc["total"]["kernels"] == 2
    assert sum(c["gpu_time_ns"] for c in doc["components"]) == exp.kernel_ns
    note = [n for n in doc["notes"] if "no 'dur'" in n]
    assert note == [
        "1 complete event has no 'dur' (still running when recording stopped; all kernels): left out of every "
        "total and breakdown, kept in other_events with note 'unfinished X'"
    ]


# ---- typed views: the wrong type is NULL -------------------------------------------------------------------
_INT = re.compile(r"\s*-?[0-9]+\s*")


def _int(v: Any) -> int | None:
    """A JSON integer, or a string holding one; anything else (fraction, boolean, array...) None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and _INT.fullmatch(v):
        return int(v)
    return None


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or v is None or isinstance(v, dict | list):
        return None
    try:
        return float(v)
    except ValueError:
        return None


def _ints(v: Any) -> list[int] | None:
    if isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return v
    return None


def _typed(ev: dict[str, Any]) -> dict[str, Any]:
    a = ev.get("args") if isinstance(ev.get("args"), dict) else {}
    return {
        "grid": _ints(a.get("grid")),
        "block": _ints(a.get("block")),
        "registers_per_thread": _int(a.get("registers per thread")),
        "shared_memory": _int(a.get("shared memory")),
        "blocks_per_sm": _number(a.get("blocks per SM")),
        "warps_per_sm": _number(a.get("warps per SM")),
        "occupancy_pct": _number(a.get("est. achieved occupancy %")),
    }


@pytest.mark.parametrize("fixture", sorted(p.name for p in CONF.glob("*.json")))
def test_kernels_typed_columns_follow_the_rules(tmp_path: Path, fixture: str) -> None:
    """For every conformance trace: each typed column of `kernels` is the value the rules give (NULL for a
    value of another type), the whole view reads without error, and args keep the raw value."""
    exp = plain_reader.expected(CONF / fixture)
    events = plain_reader.load(CONF / fixture)["traceEvents"]
    with tracekit.open(str(tmp_path / "k.duckdb")) as d:
        tid = d.ingest_file(CONF / fixture).trace_id
        cols = list(_typed({}))
        rows = d.con.execute(
            f"SELECT event_id, {', '.join(cols)}, args FROM kernels WHERE trace_id = ?", [tid]
        ).fetchall()
    assert {r[0] for r in rows} == set(exp.kernels)
    for event_id, *values, args in rows:
        want = _typed(events[event_id])
        got = dict(zip(cols, values, strict=True))
        assert got == want, (fixture, event_id)
        if events[event_id].get("args") is not None:  # the raw values stay in args
            assert json.loads(args, parse_float=Decimal) == events[event_id]["args"], (fixture, event_id)


def test_other_typed_views_tolerate_wrong_types(db) -> None:
    tid = db.ingest_file(ARG_TYPES).trace_id
    q = "SELECT bytes, bandwidth_gbps FROM memcpy WHERE trace_id = ?"
    assert db.con.execute(q, [tid]).fetchall() == [(None, None)]  # "4096 B", false
    cbid = dict(db.con.execute("SELECT event_id, cbid FROM runtime WHERE trace_id = ?", [tid]).fetchall())
    assert cbid == {1: None, 4: 211, 8: None}  # "211x", 211, absent
    seq = dict(db.con.execute("SELECT event_id, sequence_number FROM cpu_ops WHERE trace_id = ?", [tid]).fetchall())
    assert seq == {0: None, 3: 7, 7: None}  # "abc", 7, absent
    for view in ("kernels", "gpu_events", "memcpy", "memset", "cpu_ops", "runtime", "annotations", "gpu_annotations"):
        db.sql(f"select * from {view}")  # every column of every view reads


# ---- errors while a result streams into polars: one line -----------------------------------------------------
def test_streaming_query_error_is_one_line(tmp_path: Path) -> None:
    """The conversion fails past the first batches (DuckDB runs it while polars pulls the Arrow stream, and
    polars wraps the error as its ComputeError): one line, exit 1, no traceback."""
    dbp = tmp_path / "s.duckdb"
    tracekit.open(str(dbp)).close()
    sql = "select CAST(CASE WHEN i < 900000 THEN '1' ELSE 'x' END AS INTEGER) AS v from range(1000000) t(i)"
    r = run_cli("query", sql, "--db", str(dbp), "--format", "csv", cwd=tmp_path)
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("tracekit: error: query failed: Conversion Error"), lines[0]
    assert "got external error" not in lines[0]


def test_old_views_are_replaced_on_a_write_open(tmp_path: Path) -> None:
    """A database written by a tracekit of the same schema version with the old failing views (CAST of a
    string grid) gets the current views the next time it is opened for writing."""
    dbp = tmp_path / "old.duckdb"
    with tracekit.open(str(dbp)) as d:
        d.ingest_file(ARG_TYPES)
        d.con.execute(
            "CREATE OR REPLACE VIEW kernels AS SELECT CAST(args->'$.grid' AS INTEGER[]) AS grid FROM events "
            "WHERE category = 'kernel'"
        )
        d.con.execute("UPDATE tracekit_meta SET value = 'old' WHERE key = 'schema_sha256'")
    with tracekit.open(str(dbp), read_only=True) as d, pytest.raises(tracekit.TracekitError, match="query failed"):
        d.sql("select grid from kernels")
    with tracekit.open(str(dbp)) as d:
        assert sorted(d.sql("select grid from kernels")["grid"].to_list(), key=str) == [None, None]
