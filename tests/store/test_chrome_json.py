"""Plain Chrome JSON (catapult / Perfetto style): B/E pairs, async b/e/n and legacy S/T/F, counters, scopes.

Every trace here is small and written by the test; expectations come from tests/plain_reader.py (json +
Decimal, an explicit stack in Python) or are spelled out.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import tracekit
from tests import plain_reader
from tracekit.errors import TraceError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path: Path):
    d = tracekit.open(tmp_path / "t.duckdb")
    yield d
    d.close()


def write(tmp_path: Path, name: str, events: list[dict[str, Any]], **top: Any) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps({"traceEvents": events, **top}))
    return p


def ingest(db, path: Path):
    (r,) = db.ingest([path])
    assert r.error is None, r.error
    return r


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text, parse_float=Decimal)


def check_slices(db, r, path: Path, nesting: bool = True) -> dict[str, Any]:
    """events (X and B/E pairs) and the unmatched B/E agree with the plain reader, field by field.

    The plain reader nests with a stack, which agrees with tracekit's nesting when events nest properly;
    `nesting=False` leaves parent/depth out (partially overlapping X events).
    """
    expected = plain_reader.slices(path)
    if not nesting:
        for row in expected["slices"]:
            row["parent_id"] = row["depth"] = None
    rows = db.sql(
        "select event_id, ph, name, pid, tid, ts_ns, dur_ns, end_ns, args, parent_id, depth from events "
        "where trace_id = ? order by event_id",
        [r.trace_id],
    ).rows()
    got = [
        {
            "event_id": e,
            "ph": ph,
            "name": n,
            "track": (pid, tid),
            "ts_ns": ts,
            "dur_ns": d,
            "args": loads(a),
            "parent_id": par if nesting else None,
            "depth": dep if nesting else None,
        }
        for e, ph, n, pid, tid, ts, d, end, a, par, dep in rows
        if end == ts + d
    ]
    assert got == expected["slices"]
    notes = dict(
        db.sql(
            "select note, list(event_id order by event_id) from other_events "
            "where trace_id = ? and note like 'unmatched %' group by 1",
            [r.trace_id],
        ).rows()
    )
    assert notes.get("unmatched B", []) == expected["unmatched_B"]
    assert notes.get("unmatched E", []) == expected["unmatched_E"]
    counts = {
        k: len(v) for k, v in (("unmatched B", expected["unmatched_B"]), ("unmatched E", expected["unmatched_E"]))
    }
    assert {k: v for k, v in r.notes.items() if k in counts} == {k: v for k, v in counts.items() if v}
    return expected


def ev(ph: str, ts: Any, name: str | None = None, pid: Any = 1, tid: Any = 1, **kw: Any) -> dict[str, Any]:
    e = {"ph": ph, "ts": ts, "pid": pid, "tid": tid, **kw}
    if name is not None:
        e["name"] = name
    return e


# ---- B/E ------------------------------------------------------------------------------------------------


def test_nested_be_with_x_merged_args_and_interleaved_tracks(db, tmp_path: Path) -> None:
    events = [
        ev("M", 0, "thread_name", args={"name": "main"}),
        ev("B", 1.5, "outer", cat="c", args={"a": 1, "keep": "b", "nest": {"x": 1, "y": 2}, "gone": 1}),
        ev("B", 100, "t2", tid=2),
        ev("B", 2.001, "mid", cat="c"),
        ev("X", 2.5, "x_inside", cat="c", dur=0.25),
        ev("B", 3, "inner", cat="c"),
        ev("E", 150, tid=2),  # closes t2 on track 2: tracks are independent
        ev("E", 5.999, args={"deep": True}),  # closes inner
        ev("E", 8, args={"b": 2}),  # closes mid: args merged
        ev("X", 9, "x_sibling", cat="c", dur=0.5),
        ev(
            "E", 10.000001, args={"a": 5, "nest": {"y": 3, "z": 4}, "gone": None}
        ),  # closes outer; E's value wins; 1 ns resolution (exact, rounded)
        ev("X", 11, "x_after", cat="c", dur=2),
        ev("B", 11.5, "in_x"),
        ev("E", 12),
    ]
    p = write(tmp_path, "mixed.json", events)
    r = ingest(db, p)
    check_slices(db, r, p)
    rows = {
        n: (ph, ts, d, par, dep)
        for n, ph, ts, d, par, dep in db.sql(
            "select name, ph, ts_ns, dur_ns, parent_id, depth from events order by event_id"
        ).rows()
    }
    # spelled out once (the plain reader checks the rest)
    assert rows["outer"] == ("B", 1500, 8500, None, 0)  # 10.000001 µs -> 10000 ns (nearest ns)
    assert rows["mid"] == ("B", 2001, 5999, 1, 1)
    assert rows["x_inside"] == ("X", 2500, 250, 3, 2)
    assert rows["inner"] == ("B", 3000, 2999, 3, 2)
    assert rows["x_sibling"] == ("X", 9000, 500, 1, 1)
    assert rows["in_x"] == ("B", 11500, 500, 11, 1)  # a B/E pair nests inside an X
    assert rows["t2"] == ("B", 100000, 50000, None, 0)
    args = loads(db.sql("select args from events where name = 'outer'").item())
    assert args == {"a": 5, "keep": "b", "nest": {"x": 1, "y": 3, "z": 4}}  # JSON merge patch (RFC 7396)
    assert loads(db.sql("select args from events where name = 'mid'").item()) == {"b": 2}
    assert db.sql("select count(*) from other_events where note is not null").item() == 0
    assert r.notes == {}


def test_unmatched_b_and_e_are_kept_and_counted(db, tmp_path: Path) -> None:
    events = [
        ev("E", 1, "orphan_end"),  # nothing open
        ev("B", 2, "a"),
        ev("E", 3, "a"),
        ev("E", 4, "second_orphan"),
        ev("B", 5, "never_closed"),
        ev("B", 6, "closed"),
        ev("E", 7),
        ev("B", 1, "other_track_open", tid=9),
    ]
    p = write(tmp_path, "unmatched.json", events)
    r = ingest(db, p)
    expected = check_slices(db, r, p)
    assert expected["unmatched_E"] == [0, 3] and expected["unmatched_B"] == [4, 7]
    assert r.notes == {"unmatched B": 2, "unmatched E": 2}
    meta = json.loads(db.sql("select metadata from traces").item())
    assert meta["tracekit"]["notes"] == {"unmatched B": 2, "unmatched E": 2}
    assert db.sql("select ts_ns from other_events where event_id = 4").item() == 5000  # kept with its time
    # 'closed' nests inside the never-closed B? No: an unclosed B is no slice, so nothing nests in it.
    assert db.sql("select parent_id from events where name = 'closed'").item() is None


def test_equal_timestamps_follow_file_order(db, tmp_path: Path) -> None:
    events = [
        ev("B", 0, "a"),
        ev("E", 5),  # closes a at 5
        ev("B", 5, "b"),  # starts where a ended: a sibling
        ev("B", 5, "c"),  # same ts, later in the file: inside b
        ev("E", 5),  # closes c (zero length)
        ev("E", 7),  # closes b
        ev("B", 7, "d"),
        ev("X", 7, "x0", dur=0),
        ev("E", 7),  # closes d, zero length
    ]
    p = write(tmp_path, "equal.json", events)
    r = ingest(db, p)
    check_slices(db, r, p)
    got = db.sql("select name, ts_ns, dur_ns, parent_id, depth from events order by event_id").rows()
    assert got == [
        ("a", 0, 5000, None, 0),
        ("b", 5000, 2000, None, 0),
        ("c", 5000, 0, 2, 1),
        ("d", 7000, 0, None, 0),
        ("x0", 7000, 0, None, 0),
    ]


def test_events_out_of_file_order_are_sorted_by_ts(db, tmp_path: Path) -> None:
    events = [ev("E", 9), ev("B", 1, "late_in_file_early_in_time"), ev("B", 3, "inner"), ev("E", 4)]
    p = write(tmp_path, "unsorted.json", events)
    r = ingest(db, p)
    check_slices(db, r, p)
    assert db.sql("select name, ts_ns, dur_ns, depth from events order by ts_ns").rows() == [
        ("late_in_file_early_in_time", 1000, 8000, 0),
        ("inner", 3000, 1000, 1),
    ]


@pytest.mark.parametrize(("seed", "phases"), [(s, "BBBEEEEi") for s in range(4)] + [(s, "BBBEEEXi") for s in range(3)])
def test_random_be_streams_match_the_plain_stack(db, tmp_path: Path, seed: int, phases: str) -> None:
    """Random B/E(/X)/i streams over 3 tracks, with duplicate timestamps and unmatched events. B/E pairs
    nest properly by construction, so their nesting is checked too; random X events overlap partially."""
    rng = random.Random(seed)
    events = []
    for _ in range(300):
        tid = rng.randint(1, 3)
        ts = Decimal(rng.randint(0, 400)) / 4
        ph = rng.choice(phases)
        e = ev(ph, float(ts), f"n{len(events)}" if ph != "E" else None, tid=tid)
        if ph == "X":
            e["dur"] = float(Decimal(rng.randint(0, 40)) / 8)
        if ph == "E" and rng.random() < 0.3:
            e["args"] = {"k": rng.randint(0, 3)}
        if ph == "B" and rng.random() < 0.3:
            e["args"] = {"k": -1, "b": True}
        events.append(e)
    p = write(tmp_path, f"random{seed}.json", events)
    r = ingest(db, p)
    expected = check_slices(db, r, p, nesting="X" not in phases)
    assert expected["unmatched_E"] and expected["slices"]  # the stream exercises both


# ---- async, counters, instants -----------------------------------------------------------------------------


def test_async_nestable_and_legacy(db, tmp_path: Path) -> None:
    events = [
        ev("b", 1, "req", cat="net", id="0x1", args={"url": "u"}),
        ev("b", 2, "sub", cat="net", id="0x1"),  # nested on the same id
        ev("n", 2.5, "mark", cat="net", id="0x1"),
        ev("e", 3, "sub", cat="net", id="0x1", tid=7),  # async ends may come from another thread
        ev("b", 2, "req_other", cat="other", id="0x1"),  # same id, other category: another tree
        ev("e", 4, "req_other", cat="other", id="0x1"),
        ev("e", 6, "req", cat="net", id="0x1", args={"status": 200}),
        ev("b", 1, "local", cat="net", id2={"local": "0x7"}, pid=3),
        ev("e", 2, "local", cat="net", id2={"local": "0x7"}, pid=4),  # other process: no match
        ev("b", 1, "glob", cat="net", id2={"global": "g1"}, pid=3),
        ev("e", 5, "glob", cat="net", id2={"global": "g1"}, pid=4),  # global id: matches across processes
        ev("b", 1, "noid", cat="net"),  # no id: kept with a note
        ev("S", 10, "legacy", cat="a", id=5),
        ev("T", 11, "legacy", cat="a", id=5, args={"step": "s1"}),
        ev("p", 12, "legacy", cat="a", id=5, args={"step": "s2"}),
        ev("F", 13, "legacy", cat="a", id=5),
        ev("T", 14, "stray", cat="a", id=6),
        ev("F", 20, "legacy", cat="a", id=99),  # unmatched legacy finish
    ]
    p = write(tmp_path, "async.json", events)
    r = ingest(db, p)
    expected = plain_reader.async_slices(p)
    rows = db.sql(
        "select event_id, end_event_id, ph, name, id, ts_ns, dur_ns, depth, args from async_slices order by event_id"
    ).rows()
    got = [
        {
            "event_id": e,
            "end_event_id": end,
            "ph": ph,
            "name": n,
            "id": i,
            "ts_ns": ts,
            "dur_ns": d,
            "depth": dep,
            "args": loads(a),
        }
        for e, end, ph, n, i, ts, d, dep, a in rows
    ]
    assert got == expected
    by_name = {row["name"]: row for row in got}
    assert (by_name["req"]["event_id"], by_name["req"]["end_event_id"], by_name["req"]["dur_ns"]) == (0, 6, 5000)
    assert by_name["req"]["args"] == {"url": "u", "status": 200}
    assert (by_name["sub"]["depth"], by_name["sub"]["dur_ns"]) == (1, 1000)
    assert by_name["glob"]["dur_ns"] == 4000
    assert "local" not in by_name
    assert by_name["legacy"]["dur_ns"] == 3000
    inst = db.sql("select event_id, ph, name, id, ts_ns, note from async_instants order by event_id").rows()
    assert inst == [
        (2, "n", "mark", "0x1", 2500, None),
        (13, "T", "legacy", "5", 11000, None),
        (14, "p", "legacy", "5", 12000, None),
        (16, "T", "stray", "6", 14000, "no S with this id"),
    ]
    notes = db.sql("select event_id, note from other_events where note is not null order by event_id").rows()
    assert notes == [(7, "unmatched b"), (8, "unmatched e"), (11, "async without id"), (17, "unmatched F")]
    assert r.notes == {"unmatched b": 1, "unmatched e": 1, "async without id": 1, "unmatched F": 1}


def test_counters_one_row_per_series(db, tmp_path: Path) -> None:
    events = [
        ev("C", 1, "mem", cat="m", tid=None, args={"heap": 10, "stack": "2.5", "big": 12345678901234}),
        ev("C", 2.5, "mem", cat="m", tid=None, args={"heap": 11.75, "stack": 3}),
        ev("C", 3, "ctr", id="7", args={"v": 1}),
        ev("C", 4, "empty", args={}),
    ]
    p = write(tmp_path, "counters.json", events)
    r = ingest(db, p)
    got = db.sql("select event_id, name, id, ts_ns, series, value from counters order by event_id, series").rows()
    assert got == [
        (0, "mem", None, 1000, "big", 12345678901234.0),
        (0, "mem", None, 1000, "heap", 10.0),
        (0, "mem", None, 1000, "stack", 2.5),
        (1, "mem", None, 2500, "heap", 11.75),
        (1, "mem", None, 2500, "stack", 3.0),
        (2, "ctr", "7", 3000, "v", 1.0),
    ]
    assert r.notes == {"counter without values": 1}


def test_instant_scopes_and_nesting(db, tmp_path: Path) -> None:
    events = [
        ev("B", 0, "slice"),
        ev("i", 1, "thread_inst", s="t"),
        ev("I", 2, "no_scope"),
        ev("i", 3, "proc_inst", s="p"),
        ev("i", 4, "global_inst", s="g"),
        ev("E", 10),
        ev("X", 5, "x", tid=1, dur=1),  # instants never change the depth of complete events
    ]
    p = write(tmp_path, "instants.json", events)
    r = ingest(db, p)
    check_slices(db, r, p)
    got = db.sql("select name, scope, parent_id from instants order by event_id").rows()
    assert got == [("thread_inst", "t", 0), ("no_scope", None, 0), ("proc_inst", "p", None), ("global_inst", "g", None)]
    assert db.sql("select parent_id, depth from events where name = 'x'").row(0) == (0, 1)


# ---- displayTimeUnit, forms, validation ------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["ns", "ms", None])
def test_display_time_unit_does_not_change_ts(db, tmp_path: Path, unit: str | None) -> None:
    """Like Perfetto (and catapult), ts/dur are µs whatever displayTimeUnit says; the unit is recorded."""
    events = [ev("B", 1234567.891, "a"), ev("E", 1234570.5), ev("X", 1234568.0004, "x", dur=0.0016)]
    top = {} if unit is None else {"displayTimeUnit": unit}
    p = write(tmp_path, f"dtu_{unit}.json", events, **top)
    r = ingest(db, p)
    check_slices(db, r, p)
    assert db.sql("select ts_ns, dur_ns from events where name = 'a'").row(0) == (1234567891, 2609)
    # sub-ns digits (more than 3 decimals) are rounded to the nearest ns
    assert db.sql("select ts_ns, dur_ns from events where name = 'x'").row(0) == (1234568000, 2)
    meta = json.loads(db.sql("select metadata from traces").item())
    assert meta["tracekit"]["ts_unit"] == "us"
    assert meta["tracekit"]["display_time_unit"] == unit
    assert r.time_parse == "decimal"


def test_bare_array_form(db, tmp_path: Path) -> None:
    p = tmp_path / "bare.json"
    events = [ev("B", 1, "a"), ev("B", 2, "b"), ev("E", 3), ev("E", 4), ev("C", 1, "c", args={"v": 1})]
    p.write_text(json.dumps(events))
    r = ingest(db, p)
    check_slices(db, r, p)
    assert db.sql("select count(*) from events").item() == 2
    assert db.sql("select count(*) from counters").item() == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (ev("B", None, "no_ts"), "1 'B' events lack 'ts' (first: traceEvents[1])"),
        (ev("E", None), "1 'E' events lack 'ts' (first: traceEvents[1])"),
        (ev("C", None, "c", args={"v": 1}), "1 'C' events lack 'ts' (first: traceEvents[1])"),
        (ev("X", None, "x", dur=1), "complete ('X') events lack 'ts' (missing or null; first: traceEvents[1])"),
    ],
)
def test_missing_ts_is_one_clear_error(db, tmp_path: Path, bad: dict[str, Any], message: str) -> None:
    bad = {k: v for k, v in bad.items() if v is not None or k != "ts"}
    p = write(tmp_path, "bad.json", [ev("B", 0, "ok"), bad, ev("E", 5)])
    with pytest.raises(TraceError) as exc:
        db.ingest_file(p)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert db.sql("select count(*) from traces").item() == 0


def test_b_and_e_need_no_dur(db, tmp_path: Path) -> None:
    p = write(tmp_path, "dur.json", [ev("B", 0, "a", dur=99), ev("E", 5)])
    ingest(db, p)
    assert db.sql("select dur_ns from events").item() == 5000  # E.ts - B.ts; a stray dur is ignored


def test_attribute_on_a_cpu_only_chrome_trace(tmp_path: Path) -> None:
    events = [ev("B", 0, "step", cat="cpu_op"), ev("X", 1, "matmul", cat="cpu_op", dur=2), ev("E", 5)]
    p = write(tmp_path, "cpu_only.json", events, displayTimeUnit="ms")
    r = subprocess.run(
        [sys.executable, "-m", "tracekit.cli.main", "attribute", "--trace", str(p), "--db", str(tmp_path / "a.duckdb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0 or len(r.stderr.strip().splitlines()) == 1, (r.returncode, r.stdout, r.stderr)


def test_ingest_cli_says_what_was_kept_unmatched(tmp_path: Path) -> None:
    p = write(tmp_path, "u.json", [ev("E", 0), ev("B", 1, "a"), ev("B", 2, "open"), ev("E", 3)])
    r = subprocess.run(
        [sys.executable, "-m", "tracekit.cli.main", "ingest", str(p), "--db", str(tmp_path / "u.duckdb")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "u.json: kept in other_events (see its note column): 1 unmatched B, 1 unmatched E" in r.stderr


def test_other_phases_stay_in_other_events(db, tmp_path: Path) -> None:
    events = [
        ev("M", 0, "process_name", args={"name": "p"}),
        ev("P", 1, "sample"),
        ev("O", 2, "obj", id="0x1", args={"snapshot": {"a": 1}}),
        ev("N", 1, "obj", id="0x1"),
        ev("D", 3, "obj", id="0x1"),
        ev("R", 4, "mark"),
        ev("c", 5, "clock_sync", args={"sync_id": "x"}),
        ev("X", 0, "x", dur=1),
    ]
    p = write(tmp_path, "other.json", events)
    r = ingest(db, p)
    got = db.sql("select event_id, ph, ts_ns, note from other_events order by event_id").rows()
    assert got == [(0, "M", 0, None), (1, "P", 1000, None), (2, "O", 2000, None), (3, "N", 1000, None),
                   (4, "D", 3000, None), (5, "R", 4000, None), (6, "c", 5000, None)]  # fmt: skip
    assert r.notes == {}
    assert db.sql("select process_name from tracks").item() == "p"
