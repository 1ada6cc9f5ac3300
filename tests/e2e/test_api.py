"""The facade: `tracekit.open()` -> TraceDB (ingest/sql/attribute/run), typed reports, enums, `__all__`."""

from __future__ import annotations

import json

import polars as pl
import pytest
from click.testing import CliRunner
from tracekit.analyzers.components import COMPONENTS

import tracekit
from tests.conftest import shared_trace
from tracekit.cli.attribute_cmd import attribute as attribute_cli
from tracekit.model_config import config_from_flags, dtype_bytes, preset

TINY = "mamba2-tiny_2layer_b2_l512_h100.json.gz"


def test_all_names_resolve():
    for name in tracekit.__all__:
        assert getattr(tracekit, name) is not None, name
    assert {"open", "TraceDB", "ModelConfig", "AttributeReport", "RunAttribution", "ConfigFlags"} <= set(
        tracekit.__all__
    )
    assert {"IngestResult", "TimeSource", "ConfigSource", "LayerSource", "PointStatus"} <= set(tracekit.__all__)
    assert {"TracekitError", "TraceError", "UsageError"} <= set(tracekit.__all__)
    with pytest.raises(AttributeError):
        _ = tracekit.not_a_name


def test_enums_are_plain_strings_in_json():
    assert tracekit.TimeSource.GPU == "gpu" and json.dumps(tracekit.TimeSource.CPU_SELF) == '"cpu_self"'
    assert [s.value for s in tracekit.ConfigSource] == ["manifest", "flags", "inferred", "none"]
    assert [s.value for s in tracekit.LayerSource] == ["scope", "inferred", "structure"]
    assert [s.value for s in tracekit.PointStatus] == ["ok", "failed", "interrupted"]
    assert f"{tracekit.PointStatus.FAILED}" == "failed"


def test_open_returns_tracedb_with_database_api(tmp_path):
    with tracekit.open(tmp_path / "t.duckdb") as db:
        assert isinstance(db, tracekit.TraceDB)
        res = db.ingest([shared_trace(TINY)])
        assert isinstance(res[0], tracekit.IngestResult) and res[0].trace_id is not None
        assert db.sql("select count(*) n from kernels")["n"][0] > 0
        assert db.con is not None and "events" in db.tables()["name"].to_list()


def test_attribute_by_path_equals_cli_json(tmp_path):
    trace = shared_trace(TINY)
    for by in ("component", "layer", "kernel"):
        r = CliRunner().invoke(
            attribute_cli,
            ["--trace", str(trace), "--db", str(tmp_path / f"cli_{by}.duckdb"), "--by", by, "--format", "json"],
        )
        assert r.exit_code == 0, r.output
        with tracekit.open(tmp_path / f"api_{by}.duckdb") as db:
            report = db.attribute(trace, by=by)
        assert json.dumps(report.to_dict(), indent=2) + "\n" == r.output  # byte for byte


def test_attribute_by_id_and_typed_views(tmp_path):
    trace = shared_trace(TINY)
    with tracekit.open(tmp_path / "a.duckdb") as db:
        tid = db.ingest([trace])[0].trace_id
        by_id = db.attribute(tid)
        by_path = db.attribute(str(trace))
        assert by_id.to_dict() == by_path.to_dict()
        assert by_id.trace == trace.name and by_id.trace_id == tid
        assert by_id.time_source is tracekit.TimeSource.GPU
        assert by_id.config_source is tracekit.ConfigSource.INFERRED
        assert by_id.layer_source in (tracekit.LayerSource.SCOPE, tracekit.LayerSource.INFERRED)
        assert isinstance(by_id.config, tracekit.ModelConfig) and by_id.config.arch == "mamba2"
        comps = by_id.components
        assert isinstance(comps, pl.DataFrame) and comps["component"].to_list() == list(COMPONENTS)
        assert any("inferred" in n for n in by_id.notes)
        with pytest.raises(tracekit.UsageError, match="no trace with trace_id 999"):
            db.attribute(999)
        with pytest.raises(tracekit.UsageError, match="no such file"):
            db.attribute(tmp_path / "missing.json")


def test_attribute_with_config_or_flags(tmp_path):
    trace = shared_trace(TINY)
    with tracekit.open(tmp_path / "c.duckdb") as db:
        flagged = db.attribute(trace, flags=tracekit.ConfigFlags("mamba2", "130m"))
        given = db.attribute(trace, config=preset("mamba2", "130m"))
    for rep in (flagged, given):
        assert rep.config_source is tracekit.ConfigSource.FLAGS
        assert rep.config.to_dict() == preset("mamba2", "130m").to_dict()
        assert any("matches none of the trace's GEMM shapes" in n for n in rep.notes)


def test_run_attributes_a_collect_run(tmp_path):
    from tracekit.collectors.spec import CollectSpec
    from tracekit.collectors.sweep import run_collect

    out = tmp_path / "run"
    spec = CollectSpec(
        archs=("mamba1",),
        preset="tiny",
        backend="hf",
        device="cpu",
        dtype="fp32",
        seqlens=(16,),
        batch=1,
        modes=("prefill",),
        warmup=0,
        repeats=1,
        out_dir=str(out),
    )
    run_collect(spec)
    with tracekit.open(tmp_path / "r.duckdb") as db:
        run = db.run(out)
    assert isinstance(run, tracekit.RunAttribution) and run.missing == []
    assert len(run.reports) == 1 and run.reports[0].config_source is tracekit.ConfigSource.MANIFEST
    assert run.manifest.points[0].status == tracekit.PointStatus.OK
    assert run.to_dict() == [run.reports[0].to_dict()]


def test_config_from_flags_both_callers():
    inferred = preset("mamba2", "tiny").replace(d_state=32)
    # trace readers: flags refine the inferred config
    assert config_from_flags(None, None, (), inferred=inferred) == inferred
    assert config_from_flags(None, "130m", (), inferred=inferred) == preset("mamba2", "130m")
    assert config_from_flags("mamba2", None, ("d_state=8",), inferred=inferred).d_state == 8
    with pytest.raises(tracekit.UsageError, match="--preset needs --arch"):
        config_from_flags(None, "130m", ())
    with pytest.raises(tracekit.UsageError, match="--arch mamba1 needs --preset"):
        config_from_flags("mamba1", None, (), inferred=inferred)
    with pytest.raises(tracekit.UsageError, match="--config needs --arch/--preset"):
        config_from_flags(None, None, ("d_state=8",))
    # model builders: --arch required, preset defaults to tiny
    assert config_from_flags("mamba1", None, (), default_preset="tiny") == preset("mamba1", "tiny")
    assert config_from_flags(None, None, (), default_preset="tiny") is None
    with pytest.raises(tracekit.UsageError, match="--preset/--config need --arch"):
        config_from_flags(None, "130m", (), default_preset="tiny")
    with pytest.raises(tracekit.UsageError, match="bad --config"):
        config_from_flags("mamba1", None, ("nope=1",), default_preset="tiny")


def test_one_dtype_table():
    for spelling, n in (("bf16", 2), ("torch.bfloat16", 2), ("c10::Half", 2), ("float", 4), ("double", 8)):
        assert dtype_bytes(spelling) == n
    assert dtype_bytes("long int") is None and dtype_bytes(None) is None
