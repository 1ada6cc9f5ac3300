"""`tracekit attribute`: conservation, the Mamba-2 130m split, layers, CPU traces, non-Mamba, CLI."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
import torch
from click.testing import CliRunner
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.breakdown import summarize
from tracekit.analyzers.components import COMPONENTS, load_rules, parse_rules

import tracekit
from tests.analyzers.test_attribute_helpers import profile_cpu, scoped_prefill_trace
from tests.conftest import shared_trace, shared_traces
from tracekit.cli.attribute_cmd import attribute as attribute_cli
from tracekit.errors import UsageError

JSON_KEYS = {
    "component",
    "layer",
    "gpu_time_ns",
    "share",
    "kernels",
    "flops",
    "bytes_allocated",
    "peak_bytes",
    "io_bytes",
    "achieved_gbps",
    "intensity",
}


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    d = tracekit.open(tmp_path_factory.mktemp("attr") / "t.duckdb")
    yield d
    d.close()


def _ingest(db, path: Path) -> int:
    return db.ingest([path])[0].trace_id


def _plain_totals(path: Path) -> tuple[int, int]:
    """(kernel ns, CUDA bytes allocated) straight from the JSON text, independent of the store."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        doc = json.load(f, parse_float=Decimal)
    events = doc["traceEvents"]
    kernel_ns = sum(int(Decimal(e["dur"]) * 1000) for e in events if e.get("cat") == "kernel")
    alloc = sum(
        e["args"]["Bytes"]
        for e in events
        if e.get("name") == "[memory]" and e["args"].get("Device Type") == 1 and e["args"]["Bytes"] > 0
    )
    return kernel_ns, alloc


@pytest.mark.parametrize("path", shared_traces(), ids=lambda p: p.name)
def test_conservation_on_every_fixture(db, path):
    tid = _ingest(db, path)
    att = attribute(db.con, tid, load_rules())
    doc = summarize(db.con, att).to_json()
    expected, allocated = _plain_totals(path)
    assert sum(r["gpu_time_ns"] for r in doc["components"]) == expected
    # every CUDA allocation is attributed to exactly one component too
    assert sum(r["bytes_allocated"] for r in doc["components"]) == allocated == doc["total"]["bytes_allocated"]
    assert doc["total"]["gpu_time_ns"] == expected
    assert att.units["component"].is_in(COMPONENTS).all()
    assert att.units.height == att.units["event_id"].n_unique()  # exactly one component per kernel
    assert doc["total"]["kernels"] == att.units.height
    assert 0 < doc["gpu_busy"] <= 1


def test_mamba2_130m_prefill_split_matches_notes(db):
    tid = _ingest(db, shared_trace("mamba2-130m_prefill_b8_l2048_h100.json.gz"))
    att = attribute(db.con, tid, load_rules())
    assert att.config is not None and att.config.arch == "mamba2"
    assert (att.config.d_model, att.config.d_state, att.config.n_layer, att.config.padded_vocab) == (
        768,
        128,
        24,
        50288,
    )
    share = {r["component"]: r["share"] for r in summarize(db.con, att).rows}
    assert share["ssm"] == pytest.approx(0.37, abs=0.01)
    assert share["rmsnorm"] == pytest.approx(0.15, abs=0.01)
    assert share["conv"] == pytest.approx(0.075, abs=0.005)
    kernels = summarize(db.con, att, by="kernel").rows
    scan = sum(r["share"] for r in kernels if r["kernel"].startswith("_chunk_scan_fwd"))
    assert scan == pytest.approx(0.22, abs=0.01)
    # GEMMs: in_proj -> gated_mlp, out_proj -> final_linear, lm_head -> other; together ~40%
    roles = att.gemms.group_by("role", "component").agg(pl.len()).sort("role").rows()
    assert roles == [("in_proj", "gated_mlp", 24), ("lm_head", "other", 1), ("out_proj", "final_linear", 24)]
    gemm_ns = att.units.filter(pl.col("gemm_id").is_not_null())["dur_ns"].sum()
    assert gemm_ns / att.units["dur_ns"].sum() == pytest.approx(0.40, abs=0.01)
    assert share["gated_mlp"] + share["final_linear"] == pytest.approx(0.288, abs=0.01)


def test_mamba1_130m_prefill_projections(db):
    tid = _ingest(db, shared_trace("mamba1-130m_prefill_b8_l2048_h100.json.gz"))
    att = attribute(db.con, tid, load_rules())
    assert att.config.arch == "mamba1" and att.config.dt_rank_value == 48 and att.config.d_state == 16
    roles = dict(att.gemms.group_by("role").agg(pl.col("component").first()).rows())
    assert roles == {
        "in_proj": "gated_mlp",
        "out_proj": "final_linear",
        "x_proj": "ssm",
        "dt_proj": "ssm",
        "lm_head": "other",
    }
    scan = att.units.filter(pl.col("kernel").str.contains("selective_scan_fwd"))
    assert set(scan["component"]) == {"ssm"}


@pytest.mark.parametrize("name", ["mamba1-tiny_2layer_b2_l512_h100.json.gz", "mamba2-tiny_2layer_b2_l512_h100.json.gz"])
def test_tiny_traces_have_per_layer_rows(db, name):
    tid = _ingest(db, shared_trace(name))
    att = attribute(db.con, tid, load_rules())
    doc = summarize(db.con, att, by="layer").to_json()
    layers = {r["layer"] for r in doc["components"]}
    assert layers == {0, 1}
    per_layer = {}
    for r in doc["components"]:
        per_layer.setdefault(r["layer"], 0)
        per_layer[r["layer"]] += r["gpu_time_ns"]
    assert sum(per_layer.values()) == doc["total"]["gpu_time_ns"]
    comps = {(r["layer"], r["component"]) for r in doc["components"] if r["gpu_time_ns"]}
    assert {(0, "ssm"), (1, "ssm"), (0, "gated_mlp"), (1, "final_linear")} <= comps


def test_layers_inferred_from_in_proj_order_without_scopes(db):
    tid = _ingest(db, shared_trace("mamba2-130m_prefill_b8_l2048_h100.json.gz"))
    att = attribute(db.con, tid, load_rules())
    assert att.layer_source == "inferred"
    doc = summarize(db.con, att, by="layer").to_json()
    assert {r["layer"] for r in doc["components"]} == {*range(24), None}
    # every layer gets the same kernels; norm_f, embedding and lm_head stay outside the layers
    per_layer = att.units.drop_nulls("layer").group_by("layer").agg(pl.len())["len"]
    assert set(per_layer) == {13}
    outside = att.units.filter(pl.col("layer").is_null())
    assert sorted(outside["component"]) == ["other", "other", "rmsnorm"]
    assert sum(r["gpu_time_ns"] for r in doc["components"]) == doc["total"]["gpu_time_ns"]


@pytest.mark.parametrize("name", ["mamba1-tiny_2layer_b2_l512_h100.json.gz", "mamba2-tiny_2layer_b2_l512_h100.json.gz"])
def test_inferred_layers_equal_scoped_layers(db, name):
    """On traces that do have layer.{i} scopes, the launch-order inference reproduces them exactly."""
    from tracekit.analyzers.layers import infer_layers

    tid = _ingest(db, shared_trace(name))
    att = attribute(db.con, tid, load_rules())
    assert att.layer_source == "scope"
    inferred = infer_layers(att.units, att.config.n_layer)
    assert inferred is not None and inferred.to_list() == att.units["layer"].to_list()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_cpu_trace_components_from_scopes(db, tmp_path, arch):
    path = scoped_prefill_trace(arch, tmp_path / f"{arch}_cpu.json")
    tid = _ingest(db, path)
    att = attribute(db.con, tid, load_rules())
    assert att.time_source == "cpu_self"
    doc = summarize(db.con, att).to_json()
    t = {r["component"]: r["cpu_self_ns"] for r in doc["components"]}
    for comp in ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other"):
        assert t[comp] > 0, comp
    # every CPU op in a component scope got that scope's component
    scoped_units = att.units.filter(pl.col("scope").is_not_null())
    assert (scoped_units["scope"] == scoped_units["component"]).all()
    assert scoped_units.height > 0.5 * att.units.height
    # conservation: self times add up to the union of top-level CPU intervals per thread
    top = db.sql(f"""select tid, ts_ns, end_ns from events where trace_id = {tid} and parent_id is null
                     and cat in ('cpu_op', 'user_annotation', 'python_function')""")
    assert sum(t.values()) == int((top["end_ns"] - top["ts_ns"]).sum())
    # per-layer rows from layer.{i}
    layers = {r["layer"] for r in summarize(db.con, att, by="layer").rows}
    assert {0, 1} <= layers
    # memory attributed (profile_memory=True on CPU)
    assert doc["total"]["bytes_allocated"] > 0


def test_non_mamba_trace_attributes_honestly(db, tmp_path):
    mlp = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 8))
    x = torch.randn(4, 32)
    path = profile_cpu(lambda: mlp(x), tmp_path / "mlp.json")
    tid = _ingest(db, path)
    att = attribute(db.con, tid, load_rules())
    assert att.config is None
    doc = summarize(db.con, att).to_json()
    t = {r["component"]: r["cpu_self_ns"] for r in doc["components"]}
    assert t["other"] == doc["total"]["time_ns"] > 0
    assert doc["total"]["gemm_flops"] == 2 * 4 * 32 * 64 + 2 * 4 * 64 * 8


def test_user_rules_override_and_validate(db, tmp_path):
    tid = _ingest(db, shared_trace("mamba2-tiny_2layer_b2_l512_h100.json.gz"))
    f = tmp_path / "r.toml"
    f.write_text('[[rule]]\ncomponent = "other"\nkernel = "^_chunk_scan_fwd"\n')
    att = attribute(db.con, tid, load_rules(f))
    scan = att.units.filter(pl.col("kernel").str.starts_with("_chunk_scan_fwd"))
    assert scan.height == 2 and set(scan["component"]) == {"other"}
    assert scan["reason"][0] == "rule r.toml#1"
    with pytest.raises(UsageError, match="component must be one of"):
        parse_rules('[[rule]]\ncomponent = "mlp"\nkernel = "x"\n', "bad.toml")
    with pytest.raises(UsageError, match="bad regex"):
        parse_rules('[[rule]]\ncomponent = "ssm"\nkernel = "("\n', "bad.toml")


def test_cli_json_is_stable_and_cached(tmp_path):
    trace = shared_trace("mamba2-tiny_2layer_b2_l512_h100.json.gz")
    dbp = str(tmp_path / "cli.duckdb")
    r = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", dbp, "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert {"trace", "device", "span_ns", "gpu_busy", "total", "components"} <= set(doc)
    assert [c["component"] for c in doc["components"]] == list(COMPONENTS)
    for c in doc["components"]:
        assert set(c) >= JSON_KEYS
    again = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", dbp, "--format", "json"])
    assert json.loads(again.output)["trace_id"] == doc["trace_id"]  # same trace, not re-ingested
    csv_out = CliRunner().invoke(
        attribute_cli, ["--trace", str(trace), "--db", dbp, "--format", "csv", "--by", "kernel"]
    )
    assert csv_out.exit_code == 0 and csv_out.output.splitlines()[0].startswith("trace,kernel,component")


def test_cli_bad_input_is_one_line(tmp_path):
    from tracekit.cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["attribute", "--trace", str(tmp_path / "missing.json"), "--db", str(tmp_path / "x.duckdb")])
    assert e.value.code != 0
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit) as e:
        main(["attribute", "--trace", str(bad), "--db", str(tmp_path / "x.duckdb")])
    assert e.value.code != 0


def test_mamba1_130m_analytic_flops_use_token_rows(db):
    """Mamba-1's in_proj is W @ xᵀ: the token count is the GEMM's n, not its m."""
    from tracekit.analyzers import flops as F

    from tracekit.model_config import preset

    tid = _ingest(db, shared_trace("mamba1-130m_prefill_b8_l2048_h100.json.gz"))
    att = attribute(db.con, tid, load_rules())
    assert set(att.gemms.filter(pl.col("role") == "in_proj")["tokens"]) == {8 * 2048}
    rows = {r["component"]: r for r in summarize(db.con, att).rows}
    cfg = preset("mamba1", "130m")
    assert rows["conv"]["flops"] == 24 * F.conv_flops(cfg, 8 * 2048)
    assert rows["ssm"]["flops"] == 24 * (F.scan_flops(cfg, 8 * 2048) + F.ssm_projection_flops(cfg, 8 * 2048))
    assert rows["gated_mlp"]["flops"] == 24 * F.layer_flops(cfg, 8 * 2048)["gated_mlp"]


@pytest.fixture(scope="module")
def collect_run(tmp_path_factory):
    """A real `tracekit collect --preset tiny` CPU run (Mamba-2 prefill + decode, one seqlen)."""
    from tracekit.cli.main import cli

    out = tmp_path_factory.mktemp("collect") / "run"
    args = [
        "collect",
        "--arch",
        "mamba2",
        "--preset",
        "tiny",
        "--seqlens",
        "32",
        "--batch",
        "2",
        "--decode-steps",
        "3",
        "--warmup",
        "1",
        "--repeats",
        "1",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    r = CliRunner().invoke(cli, args)
    if r.exit_code != 0 or not (out / "manifest.json").exists():
        pytest.fail(f"tracekit collect failed: {r.output[-2000:]}")
    return out


def test_collect_run_components_from_scopes(collect_run, tmp_path):
    from tracekit.analyzers import flops as F

    from tracekit.model_config import preset

    r = CliRunner().invoke(
        attribute_cli,
        ["--run", str(collect_run), "--db", str(tmp_path / "r.duckdb"), "--format", "json", "--by", "layer"],
    )
    assert r.exit_code == 0, r.output
    docs = json.loads(r.output)
    assert [d["model"]["mode"] for d in docs] == ["prefill", "decode"]
    pre = docs[0]
    assert pre["time_source"] == "cpu_self" and pre["model"]["config_source"] == "manifest"
    assert pre["timing"]["ttft_ms"] > 0 and docs[1]["timing"]["tpot_ms"] > 0
    layers = {row["layer"] for row in pre["components"]}
    assert {0, 1} <= layers
    by_comp: dict[str, int] = {}
    for row in pre["components"]:
        by_comp[row["component"]] = by_comp.get(row["component"], 0) + row["cpu_self_ns"]
    assert all(by_comp.get(c, 0) > 0 for c in COMPONENTS)
    # FLOPs of the projections from recorded shapes equal the analytic formulas for the manifest config
    cfg = preset("mamba2", "tiny")
    gm = sum(row["flops"] for row in pre["components"] if row["component"] == "gated_mlp")
    assert gm == cfg.n_layer * F.layer_flops(cfg, 2 * 32)["gated_mlp"]
    assert pre["model"]["ssm_state_bytes"] == F.state_bytes(cfg, 4)["ssm_state_bytes"]


def test_paper_final_linear_matches_trace_gemm_flops(db):
    """The paper's Table 1 Final Linear at L=2048 (927.71 G) is out_proj over 24 layers at batch 8."""
    for name in ("mamba1-130m_prefill_b8_l2048_h100.json.gz", "mamba2-130m_prefill_b8_l2048_h100.json.gz"):
        tid = _ingest(db, shared_trace(name))
        rows = {r["component"]: r for r in summarize(db.con, attribute(db.con, tid, load_rules())).rows}
        assert rows["final_linear"]["flops"] == 927_712_935_936


def test_wrong_config_gives_null_flops_and_a_note(tmp_path):
    trace = shared_trace("mamba2-tiny_2layer_b2_l512_h100.json.gz")
    args = ["--trace", str(trace), "--db", str(tmp_path / "w.duckdb"), "--format", "json"]
    r = CliRunner().invoke(attribute_cli, [*args, "--arch", "mamba2", "--preset", "130m"])
    doc = json.loads(r.output)
    assert doc["model"]["config_source"] == "flags" and doc["total"]["flops"] is None
    assert any("matches none" in n for n in doc["notes"])


def test_plot_and_hta_note_on_cpu_trace(tmp_path):
    path = scoped_prefill_trace("mamba2", tmp_path / "cpu.json")
    png = tmp_path / "shares.png"
    r = CliRunner().invoke(
        attribute_cli,
        ["--trace", str(path), "--db", str(tmp_path / "p.duckdb"), "--format", "json", "--hta", "--plot", str(png)],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)  # `wrote FILE` goes to stderr with --format json
    assert "CPU-only" in doc["hta"]["note"]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_cuda_graph_gemms_get_roles_from_their_position() -> None:
    """A CUDA-graph replay (H100, mamba2-130m, decode B=64, 16 steps) has GEMMs without launching ops."""
    import polars as pl
    from tracekit.analyzers.attribution import attribute
    from tracekit.analyzers.components import load_rules

    import tracekit
    from tracekit.model_config import preset

    trace = Path(__file__).parents[1] / "data" / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz"
    db = tracekit.open(":memory:")
    (r,) = db.ingest([trace])
    total = db.sql("select sum(dur_ns)::BIGINT from kernels").item()
    cfg = preset("mamba2", "130m")
    a = attribute(db.con, r.trace_id, load_rules(), config=cfg, config_source="flags", infer=False)
    gemms = a.units.filter(pl.col("kernel").str.starts_with("nvjet"))
    roles = dict(gemms.group_by("role").len().rows())
    assert roles == {"in_proj": 16 * 24, "out_proj": 16 * 24, "lm_head": 16}
    assert set(gemms["reason"]) == {"graph position"}
    assert a.units["dur_ns"].sum() == total  # relabelling keeps conservation
    # a config whose layer count does not match the replay leaves graph position out; the layer structure of
    # the replay itself (analyzers/structure.py) then places every in-layer GEMM, and lm_head stays `other`
    wrong = attribute(db.con, r.trace_id, load_rules(), config=cfg.replace(n_layer=23), infer=False)
    w = wrong.units.filter(pl.col("kernel").str.starts_with("nvjet"))
    assert "graph position" not in set(w["reason"])
    assert dict(w.group_by("role").len().rows()) == {"in_proj": 16 * 24, "out_proj": 16 * 24, None: 16}
    assert dict(w.group_by("component").len().rows()) == {"gated_mlp": 16 * 24, "final_linear": 16 * 24, "other": 16}


def test_graph_trace_without_template_gets_flops_and_an_inferred_time_note() -> None:
    """The H100 graph fixture has no template step: GEMM roles by position, FLOPs/I/O from the batch read off
    the sampling ops' logits, and a note saying how much kernel time was inferred (ns and %)."""
    import polars as pl

    import tracekit
    from tracekit.pipeline import ConfigFlags

    trace = Path(__file__).parents[1] / "data" / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz"
    db = tracekit.open(":memory:")
    doc = db.attribute(trace, flags=ConfigFlags("mamba2", "130m")).to_dict()
    assert not any("matches none" in n for n in doc["notes"])
    assert doc["model"]["batch"] == 64 and doc["model"]["mode"] == "decode"
    g = doc["graph"]
    assert g["template"] is False and g["aligned"] == 0 and g["replays"] == 16
    assert g["inferred"] == g["replayed"] == 3504
    [note] = [n for n in doc["notes"] if "are inferred (no template step" in n]
    assert f"({g['inferred_ns']} ns, " in note and f"{g['inferred_other_ns']} ns" in note
    rows = {r["component"]: r for r in doc["components"]}
    # in_proj FLOPs: 2 · B · d_model · in_proj_out per layer call, 24 layers × 16 steps
    cfg = tracekit.model_config.preset("mamba2", "130m")
    assert rows["gated_mlp"]["flops"] == 2 * 64 * cfg.d_model * cfg.in_proj_out * 24 * 16
    for c in ("gated_mlp", "conv", "ssm", "final_linear", "rmsnorm"):
        r = rows[c]
        assert r["io_bytes"] and r["achieved_gbps"] and r["intensity"] and r["roofline_pct"] is not None, c
    assert doc["total"]["gemm_flops"] == sum(r["gemm_flops"] for r in doc["components"])
    assert pl.Series([r["share"] for r in doc["components"]]).sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "kernel",
    [
        "_selective_scan_update_kernel",  # mamba-ssm's decode state update
        "_tk_selective_state_update_kernel",  # tracekit's (tracekit/kernels/state_update.py)
    ],
)
def test_decode_state_update_kernels_are_ssm(kernel) -> None:
    """Both state-update kernels land in `ssm` by name alone: a graph replay has no launching op or scope."""
    from tracekit.analyzers.components import first_match

    from tracekit.kernels import state_update

    if kernel.startswith("_tk") and state_update.triton is not None:  # the name Kineto records for it
        assert state_update._tk_selective_state_update_kernel.fn.__name__ == kernel
    rule = first_match(load_rules(), kernel, None, [], False, fallback=False)
    assert rule is not None and rule.component == "ssm"
    # the pattern is specific: a kernel that only shares a prefix with it stays unmatched
    assert first_match(load_rules(), "_tk_other_update_kernel", None, [], False, fallback=False) is None


def test_state_kernel_graph_traces_show_ssm_before_and_after() -> None:
    """H200 graph decode, batch 64, with mamba-ssm's and with tracekit's state update (tests/data/h200_state_kernel):
    every replayed kernel aligned with the template, each update kernel in `ssm`, and the SSM component's GB/s
    equal to its minimal bytes over its time (the I/O model counts the same state either way)."""
    import tracekit

    data = Path(__file__).parents[1] / "data" / "h200_state_kernel"
    db = tracekit.open(":memory:")
    ssm = {}
    for kind, kernel in (
        ("mamba-ssm", "_selective_scan_update_kernel"),
        ("tracekit", "_tk_selective_state_update_kernel"),
    ):
        man = json.loads((data / kind / "manifest.json").read_text())
        assert man["state_kernel"] == kind
        trace = data / kind / man["points"][0]["trace"]
        doc = db.attribute(trace).to_dict()
        g = doc["graph"]
        assert g["template"] and g["aligned"] == g["replayed"] and g["replays"] == 16
        kernels = {r["kernel"]: r for r in db.attribute(trace, by="kernel").to_dict()["components"]}
        assert kernels[kernel]["component"] == "ssm" and kernels[kernel]["count"] == 16 * 24
        assert not any("state_update_kernel" in k or "scan_update" in k for k in kernels if k != kernel)
        (row,) = [r for r in doc["components"] if r["component"] == "ssm"]
        assert row["achieved_gbps"] == pytest.approx(row["io_bytes"] / row["gpu_time_ns"])
        assert row["roofline_pct"] == pytest.approx(100 * row["achieved_gbps"] / doc["peak"]["bandwidth_gbps"])
        ssm[kind] = row
    assert ssm["mamba-ssm"]["io_bytes"] == ssm["tracekit"]["io_bytes"]
    assert ssm["tracekit"]["gpu_time_ns"] < ssm["mamba-ssm"]["gpu_time_ns"]
