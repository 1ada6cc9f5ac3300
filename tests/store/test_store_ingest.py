"""The trace store agrees exactly with an independent plain reader, nests and links events correctly."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

import tracekit
from tests import plain_reader
from tests.conftest import shared_trace, shared_traces


@pytest.fixture
def db(tmp_path: Path):
    d = tracekit.open(tmp_path / "t.duckdb")
    yield d
    d.close()


@pytest.mark.parametrize("trace", shared_traces(), ids=lambda p: p.name)
def test_counts_match_plain_reader(db, trace: Path) -> None:
    expected = plain_reader.summary(trace)
    (r,) = db.ingest([trace])
    assert r.error is None and not r.skipped
    tid = r.trace_id
    assert db.sql("select event_count from traces where trace_id = ?", [tid]).item() == expected["events"]
    per_cat = dict(db.sql("select cat, count(*) from events where trace_id = ? group by 1", [tid]).rows())
    assert per_cat == dict(expected["x_per_cat"])
    k = db.sql("select count(*) n, sum(dur_ns)::BIGINT s from kernels where trace_id = ?", [tid]).row(0)
    assert k == (expected["kernels"], expected["kernel_ns"])
    ts = db.sql("select ts_ns from kernels where trace_id = ? order by ts_ns", [tid])["ts_ns"].to_list()
    assert ts == expected["kernel_ts"]
    m = db.sql("select count(*), sum(bytes)::BIGINT from memory where trace_id = ?", [tid]).row(0)
    assert m == (expected["memory"], expected["memory_bytes"])
    assert db.sql("select count(*) from flows where trace_id = ?", [tid]).item() == expected["flow_ids"]
    by_name = dict(db.sql("select name, sum(dur_ns)::BIGINT from kernels where trace_id = ? group by 1", [tid]).rows())
    assert by_name == dict(expected["per_kernel_name_ns"])
    # every kernel reaches its launching runtime call and CPU op; every event nests on these traces
    links = db.sql(
        "select count(*) filter (where launch_id is null), count(*) filter (where op_id is null) "
        "from kernels where trace_id = ?",
        [tid],
    ).row(0)
    assert links == (0, 0)
    assert db.sql("select count(*) from events where trace_id = ? and not nested", [tid]).item() == 0


@pytest.mark.big_trace
def test_decode_trace_kernel_total_is_exact(db) -> None:
    trace = shared_trace("mamba2-130m_generate_b8_p512_n32_h100.json.gz")
    (_r,) = db.ingest([trace])
    # NOTES.md: 25,683.068 µs of kernel time in the file (HTA's µs rounding reports 18,504 µs)
    assert db.sql("select sum(dur_ns)::BIGINT from kernels").item() == 25_683_068


def test_kernel_links_to_launch_op_and_scopes(db) -> None:
    trace = shared_trace("mamba2-tiny_2layer_b2_l512_h100.json.gz")
    (r,) = db.ingest([trace])
    k = db.sql("select * from kernels order by ts_ns limit 1").row(0, named=True)
    launch = db.sql("select * from runtime where event_id = ?", [k["launch_id"]]).row(0, named=True)
    assert launch["correlation"] == k["correlation"]
    op = db.sql("select * from cpu_ops where event_id = ?", [k["op_id"]]).row(0, named=True)
    assert op["external_id"] == k["external_id"]
    assert op["ts_ns"] <= launch["ts_ns"] and launch["end_ns"] <= op["end_ns"]
    chain = db.sql("select name, cat from ancestors(?, ?)", [r.trace_id, k["event_id"]])
    names = chain["name"].to_list()
    assert names[0] == op["name"]
    assert "layer.0" in names and "forward" in names
    assert chain["cat"].to_list()[-1] == "gpu_user_annotation"


def _write_trace(path: Path, events: list[dict], **meta) -> Path:
    doc = {"schemaVersion": 1, **meta, "traceEvents": events, "traceName": path.name}
    path.write_text(json.dumps(doc))
    return path


def test_nesting_depth_parent_and_flags(db, tmp_path: Path) -> None:
    ev = [
        {"ph": "X", "cat": "cpu_op", "name": "outer", "pid": 1, "tid": 1, "ts": 0.0, "dur": 10.0},
        {"ph": "X", "cat": "cpu_op", "name": "inner", "pid": 1, "tid": 1, "ts": 0.0, "dur": 4.0},
        {"ph": "X", "cat": "cpu_op", "name": "sibling", "pid": 1, "tid": 1, "ts": 4.0, "dur": 6.0},
        {"ph": "X", "cat": "cpu_op", "name": "leaf", "pid": 1, "tid": 1, "ts": 5.0, "dur": 0.0},
        {"ph": "X", "cat": "cpu_op", "name": "overlap", "pid": 1, "tid": 1, "ts": 9.0, "dur": 5.0},
        {"ph": "X", "cat": "cpu_op", "name": "other_thread", "pid": 1, "tid": 2, "ts": 1.0, "dur": 1.0},
        {
            "ph": "i",
            "cat": "cpu_instant_event",
            "name": "[memory]",
            "pid": 1,
            "tid": 1,
            "ts": 6.0,
            "args": {"Bytes": 512, "Total Allocated": 512, "Device Type": 1, "Device Id": 0, "Addr": 9},
        },
        {
            "ph": "i",
            "cat": "cpu_instant_event",
            "name": "[memory]",
            "pid": 1,
            "tid": 1,
            "ts": 11.0,
            "args": {"Bytes": -512, "Total Allocated": 0},
        },
    ]
    (_r,) = db.ingest([_write_trace(tmp_path / "n.json", ev)])
    rows = {
        n: (d, p, ok)
        for n, d, p, ok in db.sql("select name, depth, parent_id, nested from events order by event_id").rows()
    }
    assert rows["outer"] == (0, None, True)
    assert rows["inner"] == (1, 0, True)
    assert rows["sibling"] == (1, 0, True)  # touches inner's end: a sibling, not a child
    assert rows["leaf"] == (2, 2, True)
    assert rows["overlap"][2] is False  # outlives its parent: kept and flagged
    assert rows["other_thread"] == (0, None, True)
    mem = db.sql("select bytes, parent_id from memory order by ts_ns").rows()
    # the second [memory] event falls after `overlap` broke the nesting: no false parent is claimed
    assert mem == [(512, 2), (-512, None)]


def test_big_timestamps_take_the_exact_decimal_path(db, tmp_path: Path) -> None:
    # 2^43 µs and beyond: binary64 cannot hold every ns; 4 decimals: not ns at all
    ts = ["9007199254740.993", "9007199254741.001", "12.0005"]
    body = ", ".join(
        f'{{"ph": "X", "cat": "kernel", "name": "k{i}", "pid": 0, "tid": 7, "ts": {t}, "dur": 1.001}}'
        for i, t in enumerate(ts)
    )
    p = tmp_path / "big.json"
    p.write_text(f'{{"traceEvents": [{body}]}}')
    (r,) = db.ingest([p])
    assert r.time_parse == "decimal"
    got = db.sql("select name, ts_ns, dur_ns from events order by name").rows()
    assert got == [("k0", 9007199254740993, 1001), ("k1", 9007199254741001, 1001), ("k2", 12001, 1001)]


@pytest.mark.parametrize(
    ("late", "want_ns", "mode"),
    [
        ("12.0005", 12001, "decimal"),  # sub-ns digits: the double cannot be proven to hold them
        ("12.5e0", 12500, "decimal"),  # an exponent: the same
        ("8796093022208.001", 8796093022208001, "decimal"),  # 13 digits but >= 2^43 µs: the bound check
        ("12345678901234.567", 12345678901234567, "decimal"),  # 14 digits: beyond 2^43 µs
        ("8796093022207.990", 8796093022207990, "binary64-exact"),  # end just below 2^43 µs, 3 decimals: proven
    ],
)
def test_one_value_late_in_the_file_decides_the_time_parse(
    db, tmp_path: Path, late: str, want_ns: int, mode: str
) -> None:
    """Issue #20: exact by construction for every value, not by a sample: over 2 MiB of 3-decimal µs, then one value
    that binary64 cannot be proven to hold (or can); every ts is stored exactly."""
    ev = '{{"ph": "X", "cat": "cpu_op", "name": "n{i}", "pid": 1, "tid": 1, "ts": {ts}, "dur": 0.001}}'
    body = [ev.format(i=i, ts=f"{1000 + i}.{i % 1000:03d}") for i in range(30000)]
    body.append(ev.format(i=30000, ts=late))
    p = tmp_path / "late.json"
    p.write_text('{"traceEvents": [' + ", ".join(body) + "]}")
    assert p.stat().st_size > 2 << 20
    (r,) = db.ingest([p])
    assert r.time_parse == mode
    got = dict(db.sql("select event_id, ts_ns from events").rows())
    assert got[30000] == want_ns
    assert all(got[i] == (1000 + i) * 1000 + i % 1000 for i in range(30000))


def test_reingest_same_content_is_noop(db, tmp_path: Path) -> None:
    p = _write_trace(
        tmp_path / "a.json", [{"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 1, "ts": 1.5, "dur": 2.25}]
    )
    (first,) = db.ingest([p])
    gz = tmp_path / "a.json.gz"
    gz.write_bytes(gzip.compress(p.read_bytes()))
    (again,) = db.ingest([gz])  # same content, compressed: still the same trace
    assert again.skipped and again.trace_id == first.trace_id
    assert db.sql("select count(*) from traces").item() == 1


def test_bare_array_and_keys_after_events(db, tmp_path: Path) -> None:
    ev = [{"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0}]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(ev))
    tricky = tmp_path / "tricky.json"  # an array-valued key after traceEvents
    tricky.write_text(json.dumps({"traceEvents": ev, "deviceProperties": [{"id": 0, "name": "X"}], "traceName": "t"}))
    res = db.ingest([bare, tricky])
    assert [r.error for r in res] == [None, None]
    assert db.sql("select count(*) from events").item() == 2
    props = db.sql("select device_properties::VARCHAR from traces where name = 'tricky.json'").item()
    assert db.sql("select metadata->>'traceName' from traces where name = 'tricky.json'").item() == "t"
    assert json.loads(props) == [{"id": 0, "name": "X"}]


def test_python_api_returns_polars(db, tmp_path: Path) -> None:
    df = db.sql("select 1 as a")
    assert isinstance(df, pl.DataFrame) and df.item() == 1
    assert {"events", "kernels", "memory", "flows", "cpu_ops"} <= set(db.tables()["name"])


def test_export_parquet_partitions_by_trace(db, tmp_path: Path) -> None:
    for i in range(2):
        db.ingest(
            [
                _write_trace(
                    tmp_path / f"t{i}.json",
                    [{"ph": "X", "cat": "cpu_op", "name": f"a{i}", "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0}],
                )
            ]
        )
    written = db.export_parquet(tmp_path / "pq")  # a trace lake (docs/lake.md): one folder per trace
    assert [p.name for p in written] == ["trace_id=1", "trace_id=2"]
    back = pl.read_parquet(tmp_path / "pq" / "*" / "events.parquet", hive_partitioning=True)
    assert sorted(back.select("trace_id", "name").rows()) == [(1, "a0"), (2, "a1")]
    assert db.export_parquet(tmp_path / "pq") == []  # traces it holds already are skipped


def test_gpu_time_per_layer_scope_query_from_docs(db) -> None:
    trace = shared_trace("mamba1-tiny_2layer_b2_l512_h100.json.gz")
    expected = plain_reader.summary(trace)
    db.ingest([trace])
    per_layer = db.sql(
        """select ancestor_name, sum(k.dur_ns)::BIGINT as ns
        from gpu_event_ancestors g join kernels k on k.trace_id = g.trace_id and k.event_id = g.gpu_event_id
        where ancestor_name like 'layer.%' and ancestor_cat = 'user_annotation'
        group by 1 order by 1"""
    ).rows()
    assert [name for name, _ in per_layer] == ["layer.0", "layer.1"]
    # the two layer scopes hold every kernel but the ones launched outside them
    outside = db.sql(
        """select coalesce(sum(dur_ns), 0)::BIGINT from kernels k where not exists (
             select 1 from gpu_event_ancestors g where g.gpu_event_id = k.event_id
             and g.ancestor_cat = 'user_annotation' and g.ancestor_name like 'layer.%')"""
    ).item()
    assert sum(ns for _, ns in per_layer) + outside == expected["kernel_ns"]
    one = db.sql("select * from gpu_event_ancestors_of(1) order by all")
    assert one.equals(db.sql("select * from gpu_event_ancestors where trace_id = 1 order by all"))
    assert one.height > 0


@pytest.mark.parametrize("trace", shared_traces(), ids=lambda p: p.name)
def test_event_id_is_the_position_in_trace_events(db, trace: Path) -> None:
    events = plain_reader.load(trace)["traceEvents"]
    db.ingest([trace])
    rows = db.sql("select event_id, name, ts_ns, dur_ns from events order by event_id").rows()
    assert len(rows) == sum(1 for e in events if e.get("ph") == "X")
    for event_id, name, ts_ns, dur_ns in rows:
        e = events[event_id]
        assert (e["name"], plain_reader.ns(e["ts"]), plain_reader.ns(e["dur"])) == (name, ts_ns, dur_ns)
    mem = db.sql("select event_id, bytes from memory order by event_id").rows()
    assert all(events[i]["name"] == "[memory]" and events[i]["args"]["Bytes"] == b for i, b in mem)
