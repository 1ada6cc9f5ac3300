"""`tracekit diff` (analyzers/diff.py, reports/diff.py): exact Δ, kernel matching, noise, formats, compare rows."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console
from tracekit.analyzers.diff import DiffSide, diff, timing_diff
from tracekit.reports import diff as report
from tracekit.reports.units import duration, middle_ellipsis, signed_duration

import tracekit
from tests import plain_reader
from tracekit.cli.main import cli

DATA = Path(__file__).resolve().parents[1] / "data"
M1 = DATA / "h100" / "mamba1-tiny_2layer_b2_l512_h100.json.gz"
M2 = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
DECODE = DATA / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz"
COMPARE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h100_prune_compare" / "decode_b64"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with tracekit.open(tmp_path_factory.mktemp("diff") / "t.duckdb") as d:
        yield d


@pytest.fixture(scope="module")
def m2_m1(db):
    [d] = db.diff(M2, M1)
    return d


def test_self_diff_is_all_zero(db):
    [d] = db.diff(M2, M2)
    assert all(r["delta_ns"] == 0 and r["ratio"] in (1.0, None) for r in d.components + d.layers + d.kernels)
    assert not d.new and not d.gone and not d.significant
    assert {k["status"] for k in d.kernels} == {"same"}
    assert d.totals["delta_ns"] == 0 and d.totals["delta_flops"] == 0 and d.totals["delta_peak_bytes"] == 0


def test_exact_deltas_against_plain_reader(m2_m1):
    sa, sb = plain_reader.summary(M2), plain_reader.summary(M1)
    assert m2_m1.totals["time_a_ns"] == sa["kernel_ns"] and m2_m1.totals["time_b_ns"] == sb["kernel_ns"]
    assert m2_m1.totals["delta_ns"] == sb["kernel_ns"] - sa["kernel_ns"]
    ka, kb = sa["per_kernel_name_ns"], sb["per_kernel_name_ns"]
    rows = {r["kernel"]: r for r in m2_m1.kernels}
    assert set(rows) == set(ka) | set(kb)
    for name, r in rows.items():
        assert r["time_a_ns"] == ka.get(name, 0) and r["time_b_ns"] == kb.get(name, 0)
        assert r["delta_ns"] == kb.get(name, 0) - ka.get(name, 0)
        assert isinstance(r["delta_ns"], int)
    assert sorted(m2_m1.new) == sorted(set(kb) - set(ka))
    assert sorted(m2_m1.gone) == sorted(set(ka) - set(kb))
    assert sum(r["delta_ns"] for r in m2_m1.components) == m2_m1.totals["delta_ns"]
    assert "_chunk_scan_fwd_kernel" in m2_m1.gone and any("selective_scan_fwd" in n for n in m2_m1.new)


def test_kernels_matched_by_position_within_decode_steps(db):
    [d] = db.diff(DECODE, DECODE)
    assert d.a.steps > 1 and "decode.step" in d.step_rule
    inst = d.a.kernels
    assert inst["step"].min() >= -1 and inst.filter(inst["step"] >= 0).height > 0
    assert all(k["matched"] == k["count_a"] == k["count_b"] for k in d.kernels)


def test_position_matching_counts_extra_launches():
    import polars as pl

    def side(names):
        k = pl.DataFrame(
            {
                "name": names,
                "component": ["ssm"] * len(names),
                "layer": [0] * len(names),
                "time_ns": [10] * len(names),
                "step": [0] * len(names),
                "pos": [names[:i].count(n) for i, n in enumerate(names)],
            }
        )
        return DiffSide("x", [{"component": "ssm", "time_ns": 10 * len(names)}], [], k)

    d = diff(side(["a", "b", "a"]), side(["a", "b", "c"]))
    rows = {r["kernel"]: r for r in d.kernels}
    assert rows["a"]["status"] == "changed" and rows["a"]["matched"] == 1 and rows["a"]["delta_ns"] == -10
    assert rows["b"]["status"] == "same" and d.new == ["c"] and d.gone == []


def test_noise_rule_interval_overlap():
    a = {"median_ms": 10.0, "p10_ms": 9.5, "p90_ms": 10.5}
    assert timing_diff(a, {"median_ms": 10.3, "p10_ms": 10.2, "p90_ms": 10.9})["within_noise"] is True
    assert timing_diff(a, {"median_ms": 12.0, "p10_ms": 11.0, "p90_ms": 13.0})["within_noise"] is False
    assert timing_diff(a, {"median_ms": 12.0})["within_noise"] is None
    assert timing_diff(None, None) is None


def _run_dir(root: Path, trace: Path, timing: dict) -> Path:
    root.mkdir()
    shutil.copy(trace, root / "t.json.gz")
    point = {"arch": "mamba2", "mode": "prefill", "batch": 2, "seqlen": 512, "cuda_graphs": False}
    manifest = {"points": [{**point, "status": "ok", "trace": "t.json.gz", "timing": timing, "peak_mem_bytes": 1000}]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_run_dirs_matched_and_noise_marked(db, tmp_path):
    a = _run_dir(tmp_path / "a", M2, {"median_ms": 1.0, "p10_ms": 0.9, "p90_ms": 1.1})
    b = _run_dir(tmp_path / "b", M2, {"median_ms": 1.05, "p10_ms": 1.0, "p90_ms": 1.2})
    c = _run_dir(tmp_path / "c", M2, {"median_ms": 2.0, "p10_ms": 1.9, "p90_ms": 2.1})
    [d] = db.diff(a, b)
    assert d.timing["within_noise"] is True and d.totals["delta_peak_mem_bytes"] == 0
    [d] = db.diff(a, c)
    assert d.timing["within_noise"] is False and d.timing["ratio"] == pytest.approx(2.0)
    text = _render([d])
    assert "outside noise" in text and "p10–p90" in text


def _render(diffs, by="component", width=80):
    console = Console(record=True, width=width, file=io.StringIO())
    report.render(diffs, by, console=console)
    return console.export_text()


@pytest.mark.parametrize("by", ["component", "layer", "kernel"])
def test_table_fits_80_columns(m2_m1, by):
    text = _render([m2_m1], by)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text.splitlines()[2]  # headers whole


def test_formats(m2_m1):
    doc = json.loads(report.json_text([m2_m1]))
    assert doc["format"] == "tracekit-diff" and doc["version"] == 1
    pair = doc["pairs"][0]
    assert {"components", "layers", "kernels", "new", "gone", "totals", "timing", "step_rule"} <= set(pair)
    rows = list(csv.DictReader(io.StringIO(report.csv_text([m2_m1], "kernel"))))
    assert len(rows) == len(m2_m1.kernels) and int(rows[0]["delta_ns"]) == m2_m1.kernels[0]["delta_ns"]
    md = report.markdown([m2_m1], "component")
    assert "| component | A | B | Δ |" in md and "Significant:" in md


def test_cli_formats(tmp_path):
    runner = CliRunner()
    base = ["diff", str(M2), str(M1), "--db", str(tmp_path / "c.duckdb")]
    for fmt in ("table", "json", "csv", "markdown"):
        r = runner.invoke(cli, [*base, "--format", fmt, "--by", "kernel"])
        assert r.exit_code == 0, r.output
    assert json.loads(runner.invoke(cli, [*base, "--format", "json"]).output)["pairs"][0]["new"]
    r = runner.invoke(cli, ["diff", str(M2), str(tmp_path), "--db", str(tmp_path / "c.duckdb")])
    assert r.exit_code != 0


def test_trace_ids(db, m2_m1):
    [d] = db.diff(m2_m1.a.trace, m2_m1.b.trace)
    ids = db.sql("select trace_id from traces order by trace_id")["trace_id"].to_list()
    [by_id] = db.diff(str(ids[0]), str(ids[0]))
    assert by_id.totals["delta_ns"] == 0 and d.totals == m2_m1.totals


def test_acceptance_dense_vs_physical_half_only_ssm(db):
    """Committed prune-compare results (traces not committed: component times from compare.json)."""
    diffs = db.diff(f"{COMPARE}#dense", f"{COMPARE}#physical_r0.5")
    assert len(diffs) == 2  # eager and CUDA graphs
    for d in diffs:
        assert d.significant == ["ssm"]
        ssm = next(r for r in d.components if r["component"] == "ssm")
        assert ssm["delta_ns"] < 0 and isinstance(ssm["delta_ns"], int)


def test_units():
    assert duration(5) == "5 ns" and duration(5057) == "5.06 µs" and duration(1_234_567) == "1.23 ms"
    assert duration(999_999) == "1.00 ms" and duration(2.5e9) == "2.50 s"
    assert signed_duration(-385) == "−385 ns" and signed_duration(0) == "0 ns"
    assert middle_ellipsis("at::native::vectorized_elementwise_kernel", 20) == "at::nativ…ise_kernel"
    assert len(middle_ellipsis("x" * 100, 30)) == 30


def test_prune_compare_diff_section_only_for_new_results():
    from tracekit.reports import compare as compare_report

    from tracekit.artifacts.compare import CompareResult
    from tracekit.prune.compare import component_diff

    result = CompareResult.read(COMPARE)
    old = compare_report.markdown(result, host="vm")
    assert "Component change vs dense" not in old
    new = dataclasses.replace(result, component_diff=component_diff(result.rows))
    md = compare_report.markdown(new, host="vm")
    assert md.startswith(old.rstrip("\n")) and "Component change vs dense" in md
    assert all(d["significant"] == ["ssm"] for d in new.component_diff)
