"""Phase split of generate traces (prefill + decode steps) and the host-bound verdict (docs/attribute.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from tracekit.reports.attribute_table import host_line, phase_line

import tracekit
from tests.conftest import shared_trace
from tracekit.model_config import ModelConfig, preset

GENERATE = "mamba2-130m_generate_b8_p512_n32_h100.json.gz"
H100 = [{"id": 0, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85899345920, "computeMajor": 9}]


def _kernel_total(db: Any, trace_id: int) -> int:
    return int(
        db.con.sql("SELECT sum(dur_ns) FROM kernels WHERE trace_id = $t", params={"t": trace_id}).fetchall()[0][0]
    )


def _check_conservation(doc: dict[str, Any], kernel_total: int) -> None:
    """Every kernel in exactly one forward: phase and per-forward kernel times add up to the total exactly."""
    ph = doc["phases"]
    assert sum(s["kernel_ns"] for s in ph["steps"]) == kernel_total == doc["total"]["time_ns"]
    parts = [p for p in (ph["prefill"], ph["decode"]) if p]
    assert sum(p["kernel_ns"] for p in parts) == kernel_total
    assert sum(r["gpu_time_ns"] for p in parts for r in p["components"]) == kernel_total
    assert sum(s["kernels"] for s in ph["steps"]) == doc["total"]["kernels"]
    # per component, the phases add up to the whole-trace component table
    whole = {r["component"]: r["gpu_time_ns"] for r in doc["components"]}
    for comp, t in whole.items():
        assert sum(r["gpu_time_ns"] for p in parts for r in p["components"] if r["component"] == comp) == t


# ---------------------------------------------------------------- the real H100 generate trace


@pytest.mark.big_trace
def test_generate_trace_split(tmp_path):
    path = shared_trace(GENERATE)
    with tracekit.open(tmp_path / "t.duckdb") as db:
        rep = db.attribute(path)
        doc = rep.to_dict()
        _check_conservation(doc, _kernel_total(db, rep.trace_id))
    ph = doc["phases"]
    kinds = [s["kind"] for s in ph["steps"]]
    # max_length 544 = 512 + 32 new tokens: the prefill forward's logits give token 1, 31 decode forwards the rest
    assert kinds == ["prefill"] + ["decode"] * 31
    assert ph["forwards"] == 32 and ph["decode"]["steps"] == 31
    assert ph["steps"][0]["tokens"] == 8 * 512 and {s["tokens"] for s in ph["steps"][1:]} == {8}
    assert all(s["boundary"] == "embedding" for s in ph["steps"][1:])
    # every step launches the same kernel sequence: 24 layers × 9 + embedding, norm_f, lm_head, 2 sampling
    assert ph["decode"]["launches_per_step"]["min"] == ph["decode"]["launches_per_step"]["max"] == 221
    assert ph["prefill"]["kernels"] == 413
    # TTFT phase and steps: kernels a small part of the wall span (no CUDA graphs, profiled)
    assert 40e6 < ph["prefill"]["span_ns"] < 80e6 and 3e6 < ph["prefill"]["kernel_ns"] < 6e6
    assert 0.6e6 < ph["decode"]["step_kernel_ns"]["median"] < 0.8e6
    assert 20e6 < ph["decode"]["step_span_ns"]["median"] < 50e6
    sp = ph["decode"]["step_span_ns"]
    assert sp["p10"] <= sp["median"] <= sp["p90"]
    # the prefill's SSM runs the chunked SSD kernels, the decode steps the state update
    dec_ssm = next(r for r in ph["decode"]["components"] if r["component"] == "ssm")
    assert dec_ssm["kernels"] == 31 * 24 * 4
    # the wrong fields
    m = doc["model"]
    assert (m["mode"], m["batch"], m["seqlen"]) == ("generate", 8, 512)
    assert m["config"]["arch"] == "mamba2" and "dt_rank" not in m["config"]
    assert not any("seqlen 1 inferred" in n for n in doc["notes"])
    assert any(n.startswith("generate trace: 1 prefill forward and 31 decode steps") for n in doc["notes"])
    host = doc["host"]
    assert host["bound"] == "host-bound" and host["launches"] == 7264
    assert host["launches_per_step"] == 221 and host["step_busy_fraction"] < 0.05
    assert host["verdict"].startswith("host-bound: GPU idle 9") and "221 launches per step" in host["verdict"]
    line = phase_line(ph)
    assert "decode: 31 steps" in line and host_line(host).startswith("host: host-bound")
    assert not re.search(r"(ms|µs|ns|s) (ms|µs|ns)\b", line), line  # one unit per figure
    assert rep.phases is ph and rep.host is host


# ---------------------------------------------------------------- a synthetic Mamba-1 generate-like trace

CFG = ModelConfig("mamba1", d_model=64, n_layer=2, vocab_size=1024, d_state=8, dt_rank=4, pad_vocab_size_multiple=1)


class _Builder:
    """CPU op -> cudaLaunchKernel -> kernel triples, the host slow (40 µs per launch), kernels short."""

    def __init__(self) -> None:
        self.ev: list[dict[str, Any]] = []
        self.t = 1000.0  # host clock, µs
        self.gpu_free = 0.0
        self.n = 0

    def launch(self, op: str, kernel: str, dims: Any, dur: float = 5.0, driver: bool = False) -> None:
        self.n += 1
        ext, corr = 100 + self.n, 50000 + self.n
        args: dict[str, Any] = {"External id": ext}
        if dims is not None:
            args["Input Dims"] = dims
        self.ev.append(
            {"ph": "X", "cat": "cpu_op", "name": op, "pid": 1, "tid": 1, "ts": self.t, "dur": 12.0, "args": args}
        )
        name, cat = ("cuLaunchKernelEx", "cuda_driver") if driver else ("cudaLaunchKernel", "cuda_runtime")
        self.ev.append(
            {
                "ph": "X",
                "cat": cat,
                "name": name,
                "pid": 1,
                "tid": 1,
                "ts": self.t + 2,
                "dur": 4.0,
                "args": {"correlation": corr, "External id": ext},
            }
        )
        start = max(self.t + 10, self.gpu_free + 1)
        self.ev.append(
            {
                "ph": "X",
                "cat": "kernel",
                "name": kernel,
                "pid": 0,
                "tid": 7,
                "ts": start,
                "dur": dur,
                "args": {"device": 0, "stream": 7, "correlation": corr, "External id": ext},
            }
        )
        self.gpu_free = start + dur
        self.t += 40.0

    def forward(self, batch: int, seqlen: int, lm: bool = True) -> None:
        c, t = CFG, batch * seqlen
        di, x_out = c.d_inner, c.dt_rank_value + 2 * c.d_state
        if lm:
            self.launch("aten::embedding", "indexSelectLargeIndex", [[c.vocab_size, c.d_model], [batch, seqlen]])
        for _ in range(c.n_layer):
            self.launch("LayerNormFn", "_layer_norm_fwd_1pass_kernel", [[batch, seqlen, c.d_model]], driver=True)
            self.launch("aten::mm", "ampere_bf16_s16816gemm_bf16_128x64", [[t, c.d_model], [c.d_model, 2 * di]])
            conv = "causal_conv1d_fwd_kernel" if seqlen > 1 else "causal_conv1d_update_kernel"
            self.launch("causal_conv1d_fwd", conv, [[batch, di, seqlen]])
            self.launch("aten::mm", "ampere_bf16_s16816gemm_bf16_64x64", [[t, di], [di, x_out]])
            self.launch("aten::mm", "ampere_bf16_s16816gemm_bf16_64x32", [[t, c.dt_rank_value], [c.dt_rank_value, di]])
            scan = "selective_scan_fwd_kernel" if seqlen > 1 else "_selective_scan_update_kernel"
            self.launch("selective_scan", scan, [[batch, di, seqlen]], dur=20.0 if seqlen > 1 else 5.0)
            self.launch("aten::mm", "ampere_bf16_s16816gemm_bf16_128x32", [[t, di], [di, c.d_model]])
        if not lm:
            self.launch("aten::add", "vectorized_elementwise_kernel", [[batch, seqlen, c.d_model]])
            return
        self.launch("LayerNormFn", "_layer_norm_fwd_1pass_kernel", [[batch, seqlen, c.d_model]], driver=True)
        self.launch("aten::mm", "ampere_bf16_s16816gemm_bf16_256x64", [[batch, c.d_model], [c.d_model, c.vocab_size]])
        self.launch("aten::argmax", "reduce_kernel", [[batch, c.vocab_size]])
        self.launch("aten::copy_", "vectorized_elementwise_kernel", [[batch, 1]])

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps({"schemaVersion": 1, "deviceProperties": H100, "traceEvents": self.ev}))
        return path


def mamba1_generate_trace(path: Path, batch: int = 2, prompt: int = 16, steps: int = 3) -> Path:
    b = _Builder()
    b.forward(batch, prompt)
    for _ in range(steps):
        b.forward(batch, 1)
    return b.write(path)


def test_mamba1_generate_like_split(tmp_path):
    path = mamba1_generate_trace(tmp_path / "m1_generate.json")
    with tracekit.open(tmp_path / "t.duckdb") as db:
        rep = db.attribute(path)
        doc = rep.to_dict()
        _check_conservation(doc, _kernel_total(db, rep.trace_id))
    m = doc["model"]
    assert m["config_source"] == "inferred" and m["config"]["arch"] == "mamba1"
    # a Mamba-1 config carries no Mamba-2 fields, and no Mamba-2 assumption is noted
    assert not {"headdim", "ngroups", "chunk_size", "nheads"} & set(m["config"])
    assert m["config"]["dt_rank"] == 4 and m["config"]["d_state"] == 8
    assert not any("ngroups" in n for n in doc["notes"])
    assert (m["mode"], m["batch"], m["seqlen"]) == ("generate", 2, 16)
    ph = doc["phases"]
    assert [s["kind"] for s in ph["steps"]] == ["prefill", "decode", "decode", "decode"]
    per_forward = 1 + CFG.n_layer * 7 + 4
    assert [s["kernels"] for s in ph["steps"]] == [per_forward] * 4
    assert ph["decode"]["launches_per_step"]["median"] == per_forward
    # the decode steps hold the state-update scan, the prefill the full scan
    pre_ssm = next(r for r in ph["prefill"]["components"] if r["component"] == "ssm")
    dec_ssm = next(r for r in ph["decode"]["components"] if r["component"] == "ssm")
    assert pre_ssm["kernels"] == CFG.n_layer * 3 and dec_ssm["kernels"] == 3 * CFG.n_layer * 3
    assert doc["host"]["bound"] == "host-bound" and doc["host"]["launches"] == 4 * per_forward


def test_split_without_embedding_ops(tmp_path):
    """No aten::embedding (e.g. an unlinked embedding): the boundary falls back to the first layered kernel."""
    b = _Builder()
    b.forward(2, 16)
    b.forward(2, 1)
    for e in b.ev:
        if e["name"] == "aten::embedding":
            e["name"] = "my_embed"
    path = b.write(tmp_path / "no_emb.json")
    with tracekit.open(tmp_path / "t.duckdb") as db:
        rep = db.attribute(path)
        doc = rep.to_dict()
        _check_conservation(doc, _kernel_total(db, rep.trace_id))
    steps = doc["phases"]["steps"]
    assert [s["boundary"] for s in steps] == ["trace start", "first layered kernel"]
    # the unlinked embedding kernel of the decode step now ends the prefill forward
    assert [s["kernels"] for s in steps] == [1 + 14 + 4 + 1, 14 + 4]


def test_single_forward_has_no_phases(tmp_path):
    b = _Builder()
    b.forward(2, 16)
    with tracekit.open(tmp_path / "t.duckdb") as db:
        doc = db.attribute(b.write(tmp_path / "one.json")).to_dict()
    assert doc["phases"] is None and doc["model"]["mode"] == "prefill" and doc["model"]["seqlen"] == 16
    assert doc["host"]["verdict"].startswith("host-bound")


def test_to_dict_arch_fields():
    m1, m2 = preset("mamba1", "130m").to_dict(), preset("mamba2", "130m").to_dict()
    assert "dt_rank" in m1 and not {"headdim", "ngroups", "chunk_size", "nheads"} & set(m1)
    assert {"headdim", "ngroups", "chunk_size", "nheads"} <= set(m2) and "dt_rank" not in m2
    for arch in ("mamba1", "mamba2"):
        cfg = preset(arch, "130m")
        assert ModelConfig.from_dict(cfg.to_dict()).to_dict() == cfg.to_dict()  # dt_rank None -> its value


# ---------------------------------------------------------------- host verdicts on the small H100 prefill traces


def test_host_verdicts_h100_prefill(tmp_path):
    """README of the shared traces: Mamba-2 prefill B8 L2048 is host/launch-bound (Triton launches), Mamba-1's
    kernels take most of its wall time. Under the profiler: Mamba-2's GPU is busy 30% of the kernel window,
    Mamba-1's 49% (the profiler inflates host time, so Mamba-1 reads as mixed, not GPU-bound)."""
    with tracekit.open(tmp_path / "t.duckdb") as db:
        m2 = db.attribute(shared_trace("mamba2-130m_prefill_b8_l2048_h100.json.gz")).to_dict()["host"]
        m1 = db.attribute(shared_trace("mamba1-130m_prefill_b8_l2048_h100.json.gz")).to_dict()["host"]
    assert m2["bound"] == "host-bound" and 0.25 < m2["busy_fraction"] < 0.35
    assert m1["bound"] == "mixed" and 0.45 < m1["busy_fraction"] < 0.55
    assert m2["launches"] == 315 and m1["launches"] == 291
    assert m2["idle_ns"] == m2["window_ns"] - m2["busy_ns"]
    assert m2["verdict"].startswith("host-bound: GPU idle 70% of the kernel window; 315 launches")
    assert m2["steps"] is None and m2["python_launcher_ns_per_launch"] is None  # no with_stack Python events


def test_host_unprofiled_and_graph_timing(tmp_path):
    """With a manifest: the verdict uses the unprofiled wall time per step and names the CUDA-graph time."""
    from tracekit.analyzers.attribution import attribute
    from tracekit.analyzers.breakdown import summarize
    from tracekit.analyzers.components import load_rules

    from tracekit.artifacts.manifest import RunContext

    path = mamba1_generate_trace(tmp_path / "g.json")
    with tracekit.open(tmp_path / "t.duckdb") as db:
        tid = db.ingest([path])[0].trace_id
        att = attribute(db.con, tid, load_rules())
        ctx = RunContext(mode="decode", median_ms=0.2, graph_ms_per_step=0.05, eager_ms_per_step=0.2)
        doc = summarize(db.con, att, context=ctx).to_json()
    host = doc["host"]
    per_step = doc["phases"]["decode"]["step_kernel_ns"]["median"]
    assert host["unprofiled_busy_fraction"] == pytest.approx(per_step / 0.2e6)
    assert doc["model"]["mode"] == "decode"  # a manifest's mode is kept
    assert "unprofiled" in host["verdict"] and "CUDA-graph run of this point takes 0.05 ms/step" in host["verdict"]


def test_graph_decode_split_by_graph_launches(tmp_path):
    """The H100 CUDA-graph decode fixture (no config inferable): one step per cudaGraphLaunch, exact totals."""
    from tests.conftest import DATA

    with tracekit.open(tmp_path / "t.duckdb") as db:
        rep = db.attribute(DATA / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz")
        doc = rep.to_dict()
        _check_conservation(doc, _kernel_total(db, rep.trace_id))
    ph = doc["phases"]
    assert ph["method"] == "graph launches" and ph["decode"]["steps"] == 16 and ph["prefill"] is None
    assert ph["decode"]["kernels_per_step"]["median"] == 221
    # replays queue up behind each other: a step's span starts at the previous step's end, not its launch
    assert all(s["span_ns"] < 2.1e6 for s in ph["steps"])
    assert doc["host"]["bound"] == "GPU-bound" and doc["host"]["step_busy_fraction"] > 0.85


def test_split_mixer_stack_without_lm_head(tmp_path):
    """Bare mixers (no embedding, no lm_head): forward f-1 ends after its last layer, f starts at block 0's norm.

    The config must be given: without an lm_head, inference cannot tell 3 forwards of 2 layers from one of 6.
    """
    b = _Builder()
    b.forward(2, 16, lm=False)
    b.forward(2, 1, lm=False)
    b.forward(2, 1, lm=False)
    with tracekit.open(tmp_path / "t.duckdb") as db:
        rep = db.attribute(b.write(tmp_path / "mixers.json"), config=CFG)
        doc = rep.to_dict()
        _check_conservation(doc, _kernel_total(db, rep.trace_id))
    steps = doc["phases"]["steps"]
    assert [s["kind"] for s in steps] == ["prefill", "decode", "decode"]
    assert [s["boundary"] for s in steps] == ["trace start", "first layered kernel", "first layered kernel"]
    assert [s["kernels"] for s in steps] == [CFG.n_layer * 7 + 1] * 3


def test_host_verdicts_with_readme_wall_times(tmp_path):
    """The README's unprofiled wall times as the manifest's timing: Mamba-2 prefill host-bound (16.1 ms of
    kernels in 41.9 ms), Mamba-1 GPU-bound (20.1 ms in 21.1 ms) — the profiler's host inflation removed."""
    from tracekit.analyzers.attribution import attribute
    from tracekit.analyzers.breakdown import summarize
    from tracekit.analyzers.components import load_rules

    from tracekit.artifacts.manifest import RunContext

    got = {}
    with tracekit.open(tmp_path / "t.duckdb") as db:
        for arch, wall in (("mamba2", 41.9), ("mamba1", 21.1)):
            path = shared_trace(f"{arch}-130m_prefill_b8_l2048_h100.json.gz")
            tid = db.ingest([path])[0].trace_id
            att = attribute(db.con, tid, load_rules())
            got[arch] = summarize(db.con, att, context=RunContext(mode="prefill", median_ms=wall)).host
    assert got["mamba2"]["bound"] == "host-bound" and 0.35 < got["mamba2"]["unprofiled_busy_fraction"] < 0.4
    assert got["mamba1"]["bound"] == "GPU-bound" and got["mamba1"]["unprofiled_busy_fraction"] > 0.9
    assert "of each forward unprofiled" in got["mamba1"]["verdict"]


def test_manifest_pairs_eager_and_graph_decode(tmp_path):
    from tracekit.artifacts.manifest import Manifest, run_traces

    point = {"arch": "mamba2", "mode": "decode", "batch": 8, "seqlen": 2048, "timing": {"median_ms": 1.0}}
    doc = {
        "models": {"mamba2": preset("mamba2", "130m").to_dict()},
        "points": [
            {**point, "cuda_graphs": False, "tpot_ms": 26.0, "trace": "eager.json.gz"},
            {**point, "cuda_graphs": True, "tpot_ms": 0.73, "trace": "cg.json.gz"},
            {**point, "mode": "prefill", "cuda_graphs": False, "ttft_ms": 40.0, "trace": "pre.json.gz"},
        ],
    }
    eager, cg, pre = run_traces(tmp_path, Manifest.from_json(doc))
    for t in (eager, cg):
        assert (t.point.graph_ms_per_step, t.point.eager_ms_per_step) == (0.73, 26.0)
    assert t.config == preset("mamba2", "130m")
    assert pre.point.graph_ms_per_step is None and pre.point.eager_ms_per_step is None  # decode points only
