"""Kernel-aware kept counts (issue #11): the measured k steps, compare's kernel notes, apply's --round-k,
and the explanation of compare's memory column. CPU only, no model runs except one tiny apply."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from tracekit.analyzers import kernel_k

from tracekit.errors import UsageError
from tracekit.model_config import preset

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _bench(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_steps_are_the_committed_measurement():
    """analyzers/rules/ssm_kernel_k.toml is what benchmarks/ssm_kernel_k_table.py makes of the H200 JSONs."""
    table = _bench("ssm_kernel_k_table")
    doc = json.loads((RESULTS / "h200_ssm_kernel_k.json").read_text())
    su = json.loads((RESULTS / "h200_state_update.json").read_text())
    shipped = (ROOT / "analyzers" / "rules" / "ssm_kernel_k.toml").read_text()
    assert table.to_toml(doc["meta"], table.buckets(doc["rows"]), su) == shipped
    assert "NVIDIA H200 (device tool, single GPU)" in shipped
    # tracekit's entry holds the JSON's own per-N times (independent read of the table rows)
    tk = kernel_k.load_table()[("mamba2", "decode", "tracekit")]
    for r in su["table"]:
        assert tk.times[r["batch"]][r["N"]] == pytest.approx(r["tracekit_us"], rel=1e-3)


def test_k96_cannot_pay_in_the_decode_state_update():
    n = kernel_k.kernel_note("mamba2", "decode", 96, 128, 64)
    assert n["kernel"] == "selective_state_update" and not n["pays"]
    assert "runs like 128" in n["note"] and "nearest k that pays: 64" in n["note"]
    half = kernel_k.kernel_note("mamba2", "decode", 64, 128, 64)
    assert half["pays"] and half["expected_ratio"] == pytest.approx(0.51, abs=0.02)
    worse = kernel_k.kernel_note("mamba2", "decode", 100, 128, 64)
    assert not worse["pays"] and worse["expected_ratio"] > 1.1 and "slower" in worse["note"]
    # batch 50 reads the batch-64 timings, batch 10 the batch-8 ones
    assert kernel_k.kernel_note("mamba2", "decode", 96, 128, 50)["batch"] == 64
    assert kernel_k.kernel_note("mamba2", "decode", 96, 128, 10)["batch"] == 8
    # prefill chunk scan does gain a little at k 96; unmeasured k and dense give no note
    assert kernel_k.kernel_note("mamba2", "prefill", 96, 128, 64)["pays"]
    assert kernel_k.kernel_note("mamba2", "prefill", 100, 128, 64) is None
    assert kernel_k.kernel_note("mamba2", "decode", 128, 128, 64) is None


def test_friendly_ks_and_rounding_on_the_measured_steps():
    legal4 = lambda k: k % 4 == 0  # noqa: E731  (mamba2-130m's causal-conv1d alignment)
    f = kernel_k.friendly_ks("mamba2", 128, 64, legal=legal4)
    assert f == [4, 8, 16, 32, 64, 128]
    assert [kernel_k.round_k(96, how, f) for how in kernel_k.ROUND_MODES] == [96, 64, 128, 128]
    assert kernel_k.round_k(100, "nearest", f) == 128 and kernel_k.round_k(40, "nearest", f) == 32
    assert kernel_k.round_k(64, "down", f) == 64  # already friendly
    assert kernel_k.friendly_ks("mamba1", 16, 64) == [1, 4, 16]
    with pytest.raises(UsageError, match="no mamba-ssm kernel timings for mamba1 decode at k = 64"):
        kernel_k.friendly_ks("mamba1", 64, 64)
    with pytest.raises(UsageError, match="--round-k must be one of"):
        kernel_k.round_k(5, "sideways", f)


def test_frontier_logic_on_a_synthetic_table():
    """Independent of the measurement: a k whose time a larger k matches (within 5%) is not friendly."""
    text = """machine = "test"
source = "test"
[[kernel]]
name = "k"
arch = "mamba2"
mode = "decode"
dense_n = 8
unit = "us_per_layer"
rule = "r"
buckets = [
  { ks = "1-2", times_b8 = [1.0, 1.0, 1.0] },
  { ks = "3", times_b8 = [2.0, 2.0, 2.0] },
  { ks = "4", times_b8 = [1.98, 1.98, 1.98] },
  { ks = "5-8", times_b8 = [4.0, 4.0, 4.0] },
]
"""
    steps = kernel_k.parse_table(text)[("mamba2", "decode", "mamba-ssm")]
    assert steps.time(3, 8) == 2.0 and steps.buckets[6] == "5-8"
    times = steps.times[8]
    # the frontier rule, by hand: from the top, keep k if cheaper than every larger k by > 5%
    expect, best = [], float("inf")
    for k in sorted(times, reverse=True):
        if times[k] < best * 0.95 or k == 8:
            expect.append(k)
        best = min(best, times[k])
    assert sorted(expect) == [2, 4, 8]
    with pytest.raises(UsageError, match="not a kernel-k table"):
        kernel_k.parse_table("machine = 1")


def test_decode_notes_follow_the_state_kernel():
    """tracekit's state update pads nothing: k = 96 of 128 pays with it (12.4 vs 16.0 µs at batch 64,
    benchmarks/results/h200_state_update.md), not with mamba-ssm's (same 128-wide block)."""
    tk = kernel_k.kernel_note("mamba2", "decode", 96, 128, 64, "tracekit")
    assert tk["pays"] and tk["state_kernel"] == "tracekit" and tk["kernel"] == "_tk_selective_state_update_kernel"
    assert (tk["time_k"], tk["time_n"]) == pytest.approx((12.4, 15.99), abs=0.01)
    assert tk["expected_ratio"] == pytest.approx(12.4 / 15.99, abs=0.005) and "×0.78" in tk["note"]
    ms = kernel_k.kernel_note("mamba2", "decode", 96, 128, 64, "mamba-ssm")
    assert not ms["pays"] and "no kernel-time gain expected" in ms["note"]
    assert kernel_k.kernel_note("mamba2", "decode", 96, 128, 64, None) == ms  # results from before the option
    # k not measured for tracekit's kernel: said so, no interpolation; mamba1 has no tracekit timings at all
    gap = kernel_k.kernel_note("mamba2", "decode", 100, 128, 64, "tracekit")
    assert gap["expected_ratio"] is None and gap["pays"] is None and "not measured" in gap["note"]
    assert "not measured" in kernel_k.kernel_note("mamba1", "decode", 8, 16, 64, "tracekit")["note"]
    # prefill does not use the state kernel
    pre = kernel_k.kernel_note("mamba2", "prefill", 96, 128, 64, "tracekit")
    assert (
        pre == kernel_k.kernel_note("mamba2", "prefill", 96, 128, 64) and pre["kernel"] == "mamba_chunk_scan_combined"
    )
    # every measured k pays with tracekit's kernel at batch 64; at batch 8 k 96/112 gain < 5% over larger k
    assert kernel_k.friendly_ks("mamba2", 128, 64, state_kernel="tracekit") == [32, 48, 64, 80, 96, 112, 128]
    assert kernel_k.friendly_ks("mamba2", 128, 8, state_kernel="tracekit") == [32, 48, 64, 80, 128]


def test_compare_notes_use_the_runs_state_kernel():
    from tracekit.reports import compare as report

    from tracekit.prune.compare import CompareResult, add_kernel_notes

    def row(variant, ratio, k, mode="decode"):
        return {"variant": variant, "ratio": ratio, "k": k, "d_state": k, "mode": mode, "batch": 64,
                "seqlen": 2048, "cuda_graphs": True, "median_ms": 1.0, "speedup": 1.0, "mem_reduction": 0.1,
                "state_reduction": 0.2, "component_ns": {}}  # fmt: skip

    rows = [row("dense", 0.0, 128), row("physical", 0.25, 96), row("physical", 0.2, 100)]
    rows.append(row("physical", 0.25, 96, "prefill"))
    add_kernel_notes(rows, "mamba2", 128, "tracekit")
    assert rows[1]["kernel_note"]["pays"] and rows[1]["kernel_note"]["expected_ratio"] == pytest.approx(0.78, abs=0.01)
    assert "not measured" in rows[2]["kernel_note"]["note"]
    assert rows[3]["kernel_note"]["kernel"] == "mamba_chunk_scan_combined"
    res = CompareResult(
        "mamba2", {}, "magnitude", "mamba-ssm", "cuda", "bf16", 64, rows, "out", state_kernel="tracekit"
    )
    md = report.markdown(res, host="h")
    assert "| decode | True | 2048 | SSM kernel | not measured | ×0.78 |" in md
    assert "decode with the tracekit state kernel" in md
    add_kernel_notes(rows, "mamba2", 128, "mamba-ssm")
    assert not rows[1]["kernel_note"]["pays"] and "runs like 128" in rows[1]["kernel_note"]["note"]


def test_compare_flags_ratios_that_cannot_pay():
    from tracekit.reports import compare as report

    from tracekit.prune.compare import CompareResult, add_kernel_notes

    def row(variant, ratio, k):
        return {"variant": variant, "ratio": ratio, "k": k, "d_state": k, "mode": "decode", "batch": 64,
                "seqlen": 2048, "cuda_graphs": True, "median_ms": 1.0, "speedup": 1.0, "mem_reduction": 0.1,
                "state_reduction": 0.2, "component_ns": {}}  # fmt: skip

    rows = [row("dense", 0.0, 128), row("physical", 0.25, 96), row("physical", 0.5, 64), row("masked", 0.5, 64)]
    add_kernel_notes(rows, "mamba2", 128)
    assert rows[0]["kernel_note"] is None and rows[3]["kernel_note"] is None
    assert not rows[1]["kernel_note"]["pays"] and rows[2]["kernel_note"]["pays"]
    res = CompareResult("mamba2", {}, "magnitude", "mamba-ssm", "cuda", "bf16", 64, rows, "out")
    md = report.markdown(res, host="h")
    assert "| decode | True | 2048 | SSM kernel | ×1.00 ✗ | ×0.51 |" in md
    assert "r=0.25 decode (k=96): k=96 runs like 128" in md
    assert "Peak memory explained" not in md  # no row carries a memory object


def test_memory_column_explained_from_the_h200_run():
    """The r = 0.5 point of the issue's H200 run, its parts read from the allocator history there."""
    from tracekit.reports import compare as report

    from tracekit.prune.compare import CompareResult

    doc = json.loads((RESULTS / "h200_prune_memory" / "mem_r0.25_0.5_0.75.json").read_text())
    p = next(x for x in doc["points"] if x["label"] == "physical_r0.5")
    cats = p["live_before_window"]["by_category"]
    memory = {
        "window": "timed decode repeats",
        "at_window_start_bytes": p["allocated_at_window_start"],
        "weights_bytes": cats["weights (model build / load)"],
        "state_bytes": cats["inference state (allocate_inference_cache)"],
        "peak_bytes": p["max_memory_allocated"],
    }
    row = {"variant": "physical", "ratio": 0.5, "mode": "decode", "seqlen": 2048, "cuda_graphs": True,
           "memory": memory}  # fmt: skip
    res = CompareResult("mamba2", {}, "magnitude", "mamba-ssm", "cuda", "bf16", 64, [row], "out")
    (line,) = report.memory_explained(res)
    assert line == (
        "physical r=0.5 decode L=2048 graphs: peak 0.696 GB = 0.683 allocated when the window opened "
        "(weights 0.253, inference state 0.322, other 0.107) + 0.013 within it"
    )
    # the r = 0.25 point of that run: its "peak" was the window's start, 4.09 GB of it dead prompt tensors
    bad = next(x for x in doc["points"] if x["label"] == "physical_r0.25")
    assert bad["live_before_window"]["by_category"]["prompt prefill (_decoder)"] > 4e9
    assert bad["allocated_at_window_start"] < 0.9e9 < 4.9e9 < bad["max_memory_allocated"]


def test_reset_peak_collects_garbage_before_the_reset(monkeypatch):
    """The fix: gc runs before reset_peak_memory_stats, so dead tensors held by cycles never set the peak."""
    import torch
    from tracekit.collectors import measure

    calls: list[str] = []
    monkeypatch.setattr(measure.gc, "collect", lambda: calls.append("gc") or 0)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: calls.append("sync"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda: calls.append("reset"))
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda: 123)
    assert measure._reset_peak(True) == 123
    assert calls.index("gc") < calls.index("reset")
    assert measure._reset_peak(False) is None


def test_state_bytes_of_a_decoder_keep_alive():
    import torch
    from tracekit.collectors import measure

    conv, ssm = torch.zeros(2, 8, 4), torch.zeros(2, 3, 5, 7)

    ip = SimpleNamespace(key_value_memory_dict={0: (conv, ssm), 1: (conv[:1], ssm)})  # views count once
    cache = SimpleNamespace(inference_params=ip)
    want = conv.numel() * 4 + ssm.numel() * 4
    assert measure._state_bytes(cache) == measure._state_bytes(ip) == want
    assert measure._memory(False, "w", 1, 2, 3, 4) is None
    m = measure._memory(True, "w", 10, 25, 4, 5)
    assert m == {"window": "w", "at_window_start_bytes": 10, "weights_bytes": 4, "state_bytes": 5, "peak_bytes": 25}


@pytest.mark.slow
def test_apply_round_k_says_what_it_chose(tmp_path):
    from tests.conftest import run_cli

    cfg = preset("mamba2", "tiny")  # d_state 16, conv alignment: k multiple of 4
    assert cfg.d_state == 16
    r = run_cli("prune", "score", "--arch", "mamba2", "--preset", "tiny", "--method", "magnitude",
                "--out", "s.pt", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli("prune", "apply", "--scores", "s.pt", "--ratio", "0.25", "--variant", "physical",
                "--round-k", "down", "--out", "m", cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "k rounded down from 12 to 8" in r.stdout and "keep 8 of 16" in r.stdout
    assert "for mamba-ssm's state update" in r.stdout
    assert "tracekit's state kernel (--state-kernel tracekit) pads nothing; not measured at d_state 16" in r.stdout
    meta = json.loads((tmp_path / "m" / "tracekit_prune.json").read_text())
    assert meta["k"] == 8 and meta["round_k"]["from"] == 12 and meta["round_k"]["friendly"] == [4, 8, 16]
    assert meta["round_k"]["state_kernel"] == "mamba-ssm" and meta["round_k"]["tracekit_friendly"] is None
