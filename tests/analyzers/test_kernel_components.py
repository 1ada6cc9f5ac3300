"""Attribution as a table (docs/schema.md, "Results: kernel_components"): every attributed trace's units in the
DuckDB file as in a lake, summing exactly to the report; replaced, in one transaction, when attributed again;
migrated into a v2 database; copied by `export --parquet`."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl
import pytest
from tracekit.analyzers.components import Rule

import tracekit
from tests.conftest import REPO, run_cli, shared_trace
from tracekit.schema import SCHEMA_VERSION

DATA = REPO / "tests" / "data"
TINY = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
GRAPH_DECODE = DATA / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz"  # split at graph launches
EAGER_DECODE = DATA / "h200_graph" / "b8" / "mamba2_decode_b8_l64.json.gz"  # split at in_proj anchors
PER_COMPONENT = "select component, sum(time_ns) ns, count(*) n from kernel_components where trace_id = ? group by 1"


def _stored(db: tracekit.TraceDB, trace_id: int) -> pl.DataFrame:
    return db.sql("select * from kernel_components where trace_id = ? order by event_id", [trace_id])


def _check_against_report(db: tracekit.TraceDB, doc: dict) -> None:
    """The stored rows are the report's units: totals, per component, per phase and per forward, exactly."""
    tid = doc["trace_id"]
    rows = _stored(db, tid)
    assert rows.height == (doc["total"]["kernels"] or doc["total"]["cpu_units"])
    assert int(rows["time_ns"].sum()) == doc["total"]["time_ns"]
    per = {c: (ns, n) for c, ns, n in db.sql(PER_COMPONENT, [tid]).rows()}
    for c in doc["components"]:
        t = c["gpu_time_ns"] if doc["time_source"] == "gpu" else c["cpu_self_ns"]
        assert per.get(c["component"], (0, 0))[0] == t, c["component"]
    phases = doc["phases"]
    if phases is None:
        assert rows["phase"].null_count() == rows["forward"].null_count() == rows.height
        return
    by_forward = dict(
        db.sql("select forward, sum(time_ns) from kernel_components where trace_id = ? group by 1", [tid]).rows()
    )
    assert by_forward == {s["index"]: s["kernel_ns"] for s in phases["steps"]}
    kinds = dict(db.sql("select distinct forward, phase from kernel_components where trace_id = ?", [tid]).rows())
    assert kinds == {s["index"]: s["kind"] for s in phases["steps"]}
    if phases["decode"] is not None:
        dec = db.sql("select sum(time_ns) from kernel_components where trace_id = ? and phase = 'decode'", [tid]).item()
        assert dec == phases["decode"]["kernel_ns"]


@pytest.mark.parametrize(
    "trace", [TINY, GRAPH_DECODE, EAGER_DECODE, DATA / "conformance" / "cpu_only.json"], ids=lambda p: p.name
)
def test_attribution_is_stored_and_sums_to_the_report(trace: Path, tmp_path: Path) -> None:
    with tracekit.open(tmp_path / "t.duckdb") as db:
        doc = db.attribute(trace).to_dict()
        _check_against_report(db, doc)
        if trace != TINY and doc["time_source"] == "gpu":
            assert doc["phases"] is not None and _stored(db, doc["trace_id"])["phase"].null_count() == 0


@pytest.mark.big_trace
def test_generate_trace_rows_carry_prefill_and_decode(tmp_path: Path) -> None:
    with tracekit.open(tmp_path / "g.duckdb") as db:
        doc = db.attribute(shared_trace("mamba2-130m_generate_b8_p512_n32_h100.json.gz")).to_dict()
        _check_against_report(db, doc)
        assert set(_stored(db, doc["trace_id"])["phase"].unique()) == {"prefill", "decode"}


def test_attributing_again_replaces_the_rows_in_one_transaction(tmp_path: Path) -> None:
    with tracekit.open(tmp_path / "t.duckdb") as db:
        first = db.attribute(TINY)
        before = _stored(db, first.trace_id)
        everything_ssm = [Rule(component="ssm", kernel=re.compile(".*"))]
        again = db.attribute(TINY, rules=everything_ssm)
        after = _stored(db, again.trace_id)
        assert after.height == before.height and after["event_id"].to_list() == before["event_id"].to_list()
        assert set(after["component"]) == {"ssm"} != set(before["component"])
        broken = after.with_columns(pl.lit(None, dtype=pl.String).alias("component"))  # NOT NULL refuses it
        with pytest.raises(duckdb.Error):
            db.record_attribution(again.trace_id, broken)
        assert _stored(db, again.trace_id).equals(after)  # the delete was rolled back with the failed insert


def test_a_v2_database_gains_the_table(tmp_path: Path) -> None:
    path = tmp_path / "v2.duckdb"
    with tracekit.open(path) as db:
        tid = db.ingest([TINY])[0].trace_id
    con = duckdb.connect(str(path))  # what a v2 tracekit left: no kernel_components, version 2
    con.execute("DROP TABLE kernel_components")
    con.execute("UPDATE tracekit_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    with tracekit.open(path) as db:
        assert db.sql("select value from tracekit_meta where key = 'schema_version'").item() == str(SCHEMA_VERSION)
        assert db.sql("select count(*) from kernel_components").item() == 0
        assert db.attribute(tid).trace_id == tid and _stored(db, tid).height > 0


def test_export_and_lake_keep_the_same_rows(tmp_path: Path) -> None:
    with tracekit.open(tmp_path / "t.duckdb") as db:
        doc = db.attribute(TINY).to_dict()
        want = _stored(db, doc["trace_id"])
        assert [p.name for p in db.export_parquet(tmp_path / "copy")] == ["trace_id=1"]
    assert run_cli("attribute", "--trace", str(TINY), "--lake", "lake", cwd=tmp_path).returncode == 0
    for root in ("copy", "lake"):
        with tracekit.open_lake(tmp_path / root) as lk:
            assert _stored(lk, 1).equals(want), root


def test_a_v2_lake_is_still_read(tmp_path: Path) -> None:
    """A lake written by tracekit v2: its marker says 2 and its kernel_components files lack the v3 columns
    (read as NULL); its base tables are v3's."""
    assert run_cli("attribute", "--trace", str(TINY), "--lake", "lake", cwd=tmp_path).returncode == 0
    root = tmp_path / "lake"
    (root / "tracekit_lake.json").write_text('{"schema_version": 2, "layout": "trace_id=N/<table>.parquet"}\n')
    kc = root / "trace_id=1" / "kernel_components.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT event_id, component, layer, reason FROM '{kc}') TO '{kc}.v2' (FORMAT parquet)")
    con.close()
    kc.with_suffix(".parquet.v2").replace(kc)
    with tracekit.open_lake(root) as lk:
        rows = _stored(lk, 1)
    assert rows.height > 0 and rows["time_ns"].null_count() == rows.height and rows["component"].null_count() == 0
    (root / "tracekit_lake.json").write_text('{"schema_version": 1}\n')
    with pytest.raises(tracekit.TracekitError, match="lake schema v1 is older"):
        tracekit.open_lake(root)
