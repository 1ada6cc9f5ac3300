"""`tracekit report`: exponent fit, bottleneck crossover, paper claims, and the CLI on the committed H100
results and on a tiny CPU run (the shared demo run of tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tracekit.analyzers import claims as cl
from tracekit.analyzers import pruning, scaling
from tracekit.analyzers.report_types import AttributeReport, ConfigSource, ModelInfo, TimeSource, Timing, Totals

from tests.conftest import run_report as _report
from tracekit.artifacts.compare import CompareResult
from tracekit.artifacts.manifest import Manifest, ManifestPoint

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _frame(series: dict[str, tuple[float, float]], seqlens=(64, 256, 1024, 4096, 16384)) -> pl.DataFrame:
    """Synthetic component frame: component -> (a, k), time = a·L^k, one mamba1 prefill series."""
    docs = []
    for s in seqlens:
        comps = [{"component": c, "layer": None, "gpu_time_ns": a * s**k * 1e6} for c, (a, k) in series.items()]
        point = ManifestPoint.from_json({"arch": "mamba1", "mode": "prefill", "batch": 8, "seqlen": s})
        docs.append(("syn", point, _attribute_report(comps)))
    return scaling.component_frame(docs)


def _attribute_report(rows: list[dict]) -> AttributeReport:
    """An attribute report holding only `rows` (everything else unknown)."""
    return AttributeReport(
        trace=None,
        trace_id=0,
        device=None,
        time_source=TimeSource.GPU,
        span_ns=None,
        layer_source=None,
        gpu_busy=None,
        gpu_busy_all=None,
        mamba_found=True,
        total=Totals(0, None, None, 0, None, None, None, None, None, None, None, None, None, None, None, 0),
        rows=rows,
        by_category=[],
        by_stream=None,
        model=ModelInfo(None, ConfigSource.NONE, None, None, None, None, None, None, None),
        peak=None,
        memory_peak=None,
        timing=Timing(),
        phases=None,
        graph=None,
        host=None,
        notes=(),
    )


def test_fit_recovers_known_exponents() -> None:
    df = _frame({"ssm": (0.01, 1.01), "conv": (0.5, 0.0), "gated_mlp": (1e-4, 2.0)})
    exps = scaling.exponents(df)
    got = {r["component"]: r for r in exps.iter_rows(named=True)}
    assert got["ssm"]["exponent"] == pytest.approx(1.01, abs=1e-9)
    assert got["conv"]["exponent"] == pytest.approx(0.0, abs=1e-9)
    assert got["gated_mlp"]["exponent"] == pytest.approx(2.0, abs=1e-9)
    assert got["ssm"]["r2"] == pytest.approx(1.0)
    assert (got["ssm"]["fit_from"], got["ssm"]["fit_to"], got["ssm"]["points"]) == (64, 16384, 5)
    assert got["ssm"]["tail_from"] == 1024  # upper half of the lengths: 1024, 4096, 16384
    assert scaling.fit_exponent([64, 128], [1.0, 2.0]).r2 is None  # two points: no R²
    assert scaling.fit_exponent([64], [1.0]) is None


def test_fit_r2_drops_with_noise() -> None:
    fit = scaling.fit_exponent([1, 2, 4, 8, 16], [1.0, 2.6, 3.2, 9.5, 14.0])
    assert 0.8 < fit.exponent < 1.1 and fit.r2 < 0.99


def test_bottleneck_crossover() -> None:
    # conv flat at 1 ms, ssm 0.001·L ms: ssm overtakes conv between L = 256 (0.256) and 1024 (1.024)
    df = _frame({"conv": (1.0, 0.0), "ssm": (0.001, 1.0), "other": (100.0, 0.0)})
    tops = scaling.bottlenecks(df)
    assert tops["component"].to_list() == ["conv", "conv", "ssm", "ssm", "ssm"]  # `other` is never the bottleneck
    xo = scaling.crossovers(tops)
    assert xo.select("from_seqlen", "seqlen", "before", "after").rows() == [(256, 1024, "conv", "ssm")]
    assert scaling.crossovers(scaling.bottlenecks(_frame({"ssm": (1.0, 1.0), "conv": (1.0, 0.5)}))).height == 0


def _measured(components: pl.DataFrame, compare: pl.DataFrame | None = None) -> cl.Measured:
    return cl.Measured(
        components,
        scaling.exponents(components),
        compare if compare is not None else pl.DataFrame(schema=pruning.COMPARE_SCHEMA),
        pl.DataFrame(schema=pruning.ACCURACY_SCHEMA),
    )


def test_claims_hold_fail_and_not_measured() -> None:
    df = _frame({"ssm": (0.01, 1.0), "conv": (0.001, 1.0), "gated_mlp": (0.002, 1.0)})
    m1 = {"arch": "mamba1", "mode": "prefill"}
    prune = {"mode": "prefill", "seqlen": 16384, "ratio": 0.9, "metric": "speedup", "expected": 1.14, "tol": 0.05}
    claims = [
        cl.Claim("a", "ssm > half", "§1", "share", m1 | {"component": "ssm", "min": 0.5}),
        cl.Claim("b", "conv largest", "§4.1", "largest", m1 | {"component": "conv"}),
        cl.Claim("c", "conv ∝ L²", "§4.1", "exponent", m1 | {"component": "conv", "expected": 2.0, "tol": 0.3}),
        cl.Claim("d", "decode ssm", "§4.1", "largest", {"arch": "*", "mode": "decode", "component": "ssm"}),
        cl.Claim("e", "1.14×", "Table 2", "prune", prune),
        cl.Claim("f", "acc", "§6.2", "accuracy", {"method": "delta", "max_ratio": 0.3, "max_drop": 0.01}),
    ]
    res = {r.id: r for r in cl.evaluate(claims, _measured(df))}
    assert res["a"].verdict == cl.HOLDS and "77–77%" in res["a"].measured  # 10 / (10 + 1 + 2)
    assert res["b"].verdict == cl.FAILS and "ssm at 5" in res["b"].measured
    assert res["c"].verdict == cl.FAILS and "L^1.00" in res["c"].measured
    for cid in "def":
        assert res[cid].verdict == cl.UNMEASURED and res[cid].reason


def test_prune_claim_against_compare_rows() -> None:
    doc = json.loads((RESULTS / "h100_prune_compare/prefill_b8/compare.json").read_text())
    cmp = pruning.compare_frame("prefill_b8", CompareResult.from_json(doc))
    p = {"mode": "prefill", "seqlen": 16384, "ratio": 0.5, "metric": "speedup", "expected": 1.14, "tol": 0.05}
    res = cl.evaluate([cl.Claim("x", "", "", "prune", p)], _measured(_frame({"ssm": (1, 1)}), cmp))[0]
    assert res.verdict == cl.HOLDS and res.measured == "1.14×"
    p |= {"ratio": 0.9}
    res = cl.evaluate([cl.Claim("x", "", "", "prune", p)], _measured(_frame({"ssm": (1, 1)}), cmp))[0]
    assert res.verdict == cl.UNMEASURED and "r = 0.5, L = 16384: 1.14×" in res.measured


def test_packaged_claims_file_loads() -> None:
    claims = cl.load_claims()
    ids = {c.id for c in claims}
    assert {"ssm-half-prefill-m1", "m2-prefill-gated-mlp", "prune-speedup-r09-16k", "accuracy-stable-r03"} <= ids
    assert len(claims) >= 8 and all(c.where and c.claim for c in claims)


@pytest.mark.slow
def test_report_cli_on_h100_results(h100_report) -> None:
    out, r = h100_report
    assert r.returncode == 0, r.stderr[-3000:]
    page = (out / "report.html").read_text()
    for section in ("scaling", "resources", "roofline", "pruning", "accuracy", "claims"):
        assert f'<section id="{section}">' in page
    assert "NVIDIA H100 80GB HBM3" in page and "36 of the manifest" in page
    assert page.count('src="data:image/png;base64,') == 5
    assert "<script" not in page and 'src="http' not in page and "<link" not in page  # offline, self-contained
    assert "no state-importance heatmap" in page  # no score file given
    for f in ("scaling", "roofline", "pruning", "accuracy", "tradeoff"):
        assert (out / "figures" / f"{f}.png").stat().st_size > 10_000
    md = (out / "report.md").read_text()
    assert "![Roofline](figures/roofline.png)" in md and "| ssm-half-prefill-m1 |" in md
    flat = " ".join(r.stdout.split())
    assert "paper vs measured" in flat and str(out / "report.html") in "".join(r.stdout.split())
    # the measured facts of the committed run, as verdicts
    assert "m2-prefill-gated-mlp │ does not hold" in flat
    assert "prune-speedup-r09-16k │ not measured here" in flat


@pytest.mark.slow
def test_report_cli_on_cpu_demo_run(demo_run, tmp_path: Path) -> None:
    out, r = demo_run
    assert r.returncode == 0, r.stderr[-2000:]
    rep = _report(tmp_path / "rep", out / "run", db=out / "tracekit.duckdb")
    assert rep.returncode == 0, rep.stderr[-3000:]
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 2  # scaling and roofline; no pruning/accuracy inputs
    assert "no prune-compare results among the inputs" in page
    assert "not measured here" in rep.stdout


def test_report_cli_errors(tmp_path: Path) -> None:
    r = _report(tmp_path / "rep", tmp_path / "missing", db=tmp_path / "t.duckdb")
    assert r.returncode == 2 and "no such" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "empty").mkdir()
    r = _report(tmp_path / "rep", tmp_path / "empty", db=tmp_path / "t.duckdb")
    assert r.returncode == 2 and "no collect run" in r.stderr


def test_compare_rows_take_p10_p90_from_variant_manifests() -> None:
    doc = json.loads((RESULTS / "h100_prune_compare/prefill_b8/compare.json").read_text())
    point = {"mode": "prefill", "seqlen": 2048, "cuda_graphs": False, "timing": {"p10_ms": 35.0, "p90_ms": 37.5}}
    cmp = pruning.compare_frame(
        "prefill_b8", CompareResult.from_json(doc), {"physical_r0.5": Manifest.from_json({"points": [point]})}
    )
    row = cmp.filter((pl.col("variant") == "physical") & (pl.col("seqlen") == 2048)).row(0, named=True)
    assert (row["p10_ms"], row["p90_ms"]) == (35.0, 37.5)
    assert cmp.filter(pl.col("variant") == "dense")["p10_ms"].null_count() == 2  # no manifest: no band


@pytest.mark.slow
def test_report_with_score_file_draws_heatmap_and_tradeoff(prune_report) -> None:
    out, r = prune_report
    assert r.returncode == 0, r.stderr[-3000:]
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # pruning, heatmap, accuracy, trade-off
    assert 'id="fig-heatmap-0"' in page and 'id="fig-tradeoff"' in page
    assert (out / "figures" / "heatmap_0.png").stat().st_size > 5_000
    assert (out / "figures" / "tradeoff.png").stat().st_size > 10_000
    heat = page[page.index('id="fig-heatmap-0"') :]
    assert "`magnitude` score" in heat and "mamba2 model of 2 layers" in heat and "data-free" in heat
    trade = page[page.index('id="fig-tradeoff"') :]
    assert "different models" in trade and "r = 0, 0.5" in trade and "decode with CUDA graphs, batch 64" in trade
    assert "not drawn" not in page
    assert "prune scores" in r.stdout or "tiny_magnitude" in page


def test_tradeoff_joins_only_common_ratios() -> None:
    doc = json.loads((RESULTS / "h100_prune_compare/prefill_b8/compare.json").read_text())
    cmp = pruning.compare_frame("prefill_b8", CompareResult.from_json(doc))
    acc = pruning.accuracy_frame("a", json.loads((RESULTS / "prune_accuracy_mqar_mamba2.json").read_text()))
    t, point, common, reason = pruning.tradeoff(cmp, acc)
    assert common == [0.0, 0.5] and not reason and "prefill" in point and "L = 16384" in point
    assert set(t["ratio"]) == {0.0, 0.5} and t.filter(pl.col("ratio") == 0.0)["speedup"].to_list() == [1.0] * 6
    t, _, common, reason = pruning.tradeoff(cmp, acc.filter(pl.col("ratio") != 0.5))
    assert not t.height and not common and "no pruning ratio in common" in reason
