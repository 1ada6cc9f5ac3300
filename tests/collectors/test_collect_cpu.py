"""`tracekit collect` on CPU (hf backend, tiny preset): traces, scopes, manifest, ingest into the store."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path

import pytest
from tracekit.collectors import manifest as mf
from tracekit.collectors.check import check_run, trace_summary
from tracekit.collectors.spec import CollectSpec
from tracekit.collectors.sweep import run_collect

SEQLENS = (16, 32)
STEPS = 3


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("collect")
    spec = CollectSpec(
        archs=("mamba1", "mamba2"),
        preset="tiny",
        device="cpu",
        seqlens=SEQLENS,
        batch=2,
        decode_steps=STEPS,
        warmup=1,
        repeats=2,
        out_dir=str(out),
    )
    doc = run_collect(spec)
    return out, doc


@pytest.mark.slow
def test_every_point_ok_with_trace(run):
    out, doc = run
    assert [(e["arch"], e["mode"], e["seqlen"]) for e in doc["points"]] == [
        (a, m, L) for a in ("mamba1", "mamba2") for m in ("prefill", "decode") for L in SEQLENS
    ]
    for e in doc["points"]:
        assert e["status"] == "ok", e
        assert e["trace"] == f"{e['arch']}_{e['mode']}_b2_l{e['seqlen']}.json.gz"
        assert (out / e["trace"]).is_file()
    assert doc["backend"] == "hf" and doc["dtype"] == "fp32" and doc["device"] == "cpu"
    assert doc["weights"] == "random" and doc["models"]["mamba2"]["d_state"] == 16
    # the manifest on disk is the returned one
    assert mf.read(out / "manifest.json") == json.loads(json.dumps(doc))


@pytest.mark.slow
def test_timing_fields_consistent(run):
    _, doc = run
    for e in doc["points"]:
        t = e["timing"]
        assert 0 < t["p10_ms"] <= t["median_ms"] <= t["p90_ms"]
        assert t["repeats"] == 2 and t["warmup"] == 1
        assert t["samples"] == (2 if e["mode"] == "prefill" else 2 * STEPS)
        assert t["profiled_ms"] > 0
        tokens = 2 * e["seqlen"] if e["mode"] == "prefill" else 2
        assert e["tokens_per_s"] == pytest.approx(tokens / (t["median_ms"] / 1e3))
        assert (e["ttft_ms"], e["tpot_ms"]) == (
            (t["median_ms"], None) if e["mode"] == "prefill" else (None, t["median_ms"])
        )
        assert e["peak_mem_bytes"] is None  # no per-point allocator statistics on CPU


@pytest.mark.slow
def test_manifest_validates_and_validator_catches_errors(run):
    _, doc = run
    assert mf.validate(doc) == []
    bad = copy.deepcopy(doc)
    del bad["points"][0]["timing"]
    bad["points"][1]["status"] = "done"
    bad["points"][2]["seqlen"] = "16"
    bad["backend"] = "jax"
    bad["models"]["mamba1"]["d_state"] = 0
    errors = mf.validate(bad)
    assert any("points[0]: missing required key 'timing'" in x for x in errors)
    assert any("points[1].status" in x for x in errors)
    assert any("points[2].seqlen: expected integer" in x for x in errors)
    assert any("$.backend" in x for x in errors)
    assert any("models.mamba1.d_state" in x and "minimum" in x for x in errors)
    assert len(errors) == 5


@pytest.mark.slow
def test_layer_and_step_scopes(run):
    out, doc = run
    assert check_run(out) == []
    for e in doc["points"]:
        s = trace_summary(out / e["trace"])["scopes"]
        per_pass = 1 if e["mode"] == "prefill" else STEPS
        assert s[e["mode"]] == 1
        assert s["layer.0"] == s["layer.1"] == per_pass and "layer.2" not in s
        if e["mode"] == "decode":
            assert sorted(k for k in s if k.startswith("decode.step.")) == [f"decode.step.{k}" for k in range(STEPS)]


def _intervals(trace: Path, name_prefix: str) -> list[tuple[str, float, float]]:
    with gzip.open(trace, "rt") as f:
        events = json.load(f)["traceEvents"]
    return [
        (e["name"], e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "user_annotation" and e["name"].startswith(name_prefix)
    ]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_component_scopes_nest_inside_layers(run, arch):
    """Every block component appears once per layer and lies inside a layer scope; embedding, lm_head and
    norm_f lie outside all of them."""
    out, _ = run
    trace = out / f"{arch}_prefill_b2_l32.json.gz"
    layers = _intervals(trace, "layer.")
    comps = _intervals(trace, "component.")
    names = {n for n, _, _ in comps}
    assert names == {f"component.{c}" for c in ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other")}

    def inside(c):
        return any(a <= c[1] and c[2] <= b for _, a, b in layers)

    for comp in ("gated_mlp", "conv", "final_linear", "ssm"):
        hits = [c for c in comps if c[0] == f"component.{comp}"]
        assert all(inside(c) for c in hits), comp
        assert len({next(n for n, a, b in layers if a <= c[1] and c[2] <= b) for c in hits}) == 2
    outside = [c for c in comps if not inside(c)]
    # embedding + lm_head (other) and norm_f (rmsnorm) run outside the blocks
    assert sorted(n for n, _, _ in outside) == ["component.other", "component.other", "component.rmsnorm"]


@pytest.mark.slow
def test_traces_ingest_into_store(run, tmp_path):
    pytest.importorskip("duckdb")
    import tracekit

    out, doc = run
    try:
        db = tracekit.open(str(tmp_path / "t.duckdb"))
    except ModuleNotFoundError as exc:  # the store not present in this checkout
        pytest.skip(f"trace store unavailable: {exc}")
    results = db.ingest([str(out / e["trace"]) for e in doc["points"]])
    assert len(results) == len(doc["points"]) and all(r.trace_id is not None and not r.skipped for r in results)
    got = db.sql("select count(*) as n from annotations where name like 'layer.%'")["n"][0]
    assert got == sum(2 * (1 if e["mode"] == "prefill" else STEPS) for e in doc["points"])
