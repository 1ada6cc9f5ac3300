"""`tracekit attribute` on traces it did not write: optional fields missing, non-Mamba models, no GPU, no
kernels, nothing attributable. Every case must exit 0 with exact totals (checked against the plain
json+Decimal reader) and say in `notes` what it could not compute — never a traceback or a silent zero."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.plain_reader import load, ns
from tracekit.cli.attribute_cmd import attribute as attribute_cli

H100 = [{"id": 0, "name": "NVIDIA H100 80GB HBM3", "totalGlobalMem": 85899345920, "computeMajor": 9}]
VIEWS = ("component", "layer", "kernel", "category", "stream")

# ---------------------------------------------------------------- tiny Kineto-style event builders


def cpu(name: str, ts: Any, dur: Any, *, ext: int | None = None, dims: Any = None, cat: str = "cpu_op", tid: int = 1):
    args: dict[str, Any] = {}
    if ext is not None:
        args["External id"] = ext
    if dims is not None:
        args["Input Dims"] = dims
    return {"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": ts, "dur": dur, "args": args}


def runtime(ts: Any, dur: Any, corr: int, ext: int | None = None, name: str = "cudaLaunchKernel"):
    args: dict[str, Any] = {"correlation": corr, "cbid": 211}
    if ext is not None:
        args["External id"] = ext
    return {"ph": "X", "cat": "cuda_runtime", "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur, "args": args}


def gpu(name: str, ts: Any, dur: Any, *, corr=None, ext=None, stream=7, cat="kernel", full=True, extra=None):
    args: dict[str, Any] = {"device": 0, "stream": stream}
    if corr is not None:
        args["correlation"] = corr
    if ext is not None:
        args["External id"] = ext
    if full and cat == "kernel":
        args.update({"grid": [80, 1, 1], "block": [128, 1, 1], "registers per thread": 32, "shared memory": 0})
    args.update(extra or {})
    return {"ph": "X", "cat": cat, "name": name, "pid": 0, "tid": stream, "ts": ts, "dur": dur, "args": args}


def mem(
    ts: Any, nbytes: int, *, dev: int | None = 1, total: int | None = None, addr: int | None = None, dev_id: int = 0
):
    """A [memory] instant; by default only Bytes, Device Type and Device Id (no Addr, no totals)."""
    args: dict[str, Any] = {"Bytes": nbytes}
    if dev is not None:
        args["Device Type"], args["Device Id"] = dev, (dev_id if dev else -1)
    if total is not None:
        args["Total Allocated"], args["Total Reserved"] = total, total
    if addr is not None:
        args["Addr"] = addr
    return {
        "ph": "i",
        "cat": "cpu_instant_event",
        "s": "t",
        "name": "[memory]",
        "pid": 1,
        "tid": 1,
        "ts": ts,
        "args": args,
    }


def launched(ops_kernels: list[tuple[str, str, Any]], t0: float = 1000.0, stream: int = 7, base: int = 0) -> list[dict]:
    """CPU op -> cudaLaunchKernel -> kernel, linked by External id and correlation, one after another."""
    ev: list[dict] = []
    t = Decimal(str(t0))
    for i, (op, kernel, dims) in enumerate(ops_kernels):
        ext, corr = base + 100 + i, base + 5000 + i
        ev.append(cpu(op, float(t), 12.5, ext=ext, dims=dims))
        ev.append(runtime(float(t + 2), 4.25, corr, ext))
        ev.append(gpu(kernel, float(t + 20), float(Decimal("10.125") + i), corr=corr, ext=ext, stream=stream))
        t += 40
    return ev


def write(path: Path, events: list[dict], props: Any = H100) -> Path:
    doc: dict[str, Any] = {"schemaVersion": 1}
    if props is not None:
        doc["deviceProperties"] = props
    doc["traceEvents"] = events
    path.write_text(json.dumps(doc))
    return path


RESNET = [
    (
        "aten::cudnn_convolution",
        "void cudnn::cnn::implicit_convolve_sgemm<float, float, 128, 5, 5, 3, 3, 3, 1, false, false, true>"
        "(int, int, int, float const*, int, float*, float const*, kernel_conv_params, unsigned long long, int, "
        "float, float, int, float const*, float const*, bool, int, int)",
        [[8, 3, 224, 224], [64, 3, 7, 7], [], [], [], [], []],
    ),
    ("aten::cudnn_batch_norm", "void cudnn::bn_fw_tr_1C11_kernel_NCHW<float, float, int, 512, true, 1>()", None),
    (
        "aten::clamp_min_",
        "void at::native::vectorized_elementwise_kernel<4, at::native::(anonymous namespace)::launch_clamp_scalar"
        "(at::TensorIteratorBase&, c10::Scalar, c10::Scalar, at::native::detail::ClampLimits)::{lambda()#1}, "
        "at::detail::Array<char*, 2> >(int, at::detail::Array<char*, 2>)",
        [[8, 64, 112, 112], []],
    ),
    (
        "aten::addmm",
        "sm90_xmma_gemm_f32f32_tf32f32_f32_tn_n_tilesize128x128x32_warpgroupsize1x1x1_execute_segment_k_off_kernel",
        [[1000], [8, 2048], [2048, 1000], [], []],
    ),
]
TRANSFORMER = [
    ("aten::mm", "void cutlass::Kernel2<cutlass_80_tensorop_s16816gemm_f16_128x128_32x3_nn_align8>(Params)", None),
    ("aten::_softmax", "void (anonymous namespace)::softmax_warp_forward<c10::Half, c10::Half, float, 10>()", None),
    (
        "aten::_efficient_attention_forward",
        "fmha_cutlassF_f16_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel<cutlass::half_t>::Params)",
        None,
    ),
    ("aten::native_layer_norm", "void at::native::vectorized_layer_norm_kernel<c10::Half, float>()", None),
]
TRITON = [
    ("triton_poi_fused_add_mul_0", "triton_poi_fused_add_mul_0", None),
    ("triton_red_fused__softmax_1", "triton_red_fused__softmax_1", None),
    ("triton_per_fused_native_layer_norm_2", "triton_per_fused_native_layer_norm_2", None),
]


def _cases(d: Path) -> dict[str, Path]:
    """Every synthetic trace of this file, by name (a few hundred bytes to a few KB each)."""
    two = launched([("aten::mm", "ampere_sgemm_128x64_nn", None), ("aten::add", "elementwise_kernel", None)])
    return {
        "mem_bytes_only": write(
            d / "mem_bytes_only.json", [*two, mem(1000.5, 4096), mem(1001, 1024), mem(1061, -4096), mem(1062, 2048)]
        ),
        "mem_with_totals": write(
            d / "mem_with_totals.json",
            [*two, mem(1000.5, 4096, total=10000 + 4096, addr=1), mem(1061, -4096, total=10000, addr=1)],
        ),
        "mem_no_device_type": write(
            d / "mem_no_device_type.json", [*two, mem(1000.5, 64, dev=None), mem(1001, -64, dev=None)]
        ),
        "mem_cpu_only_on_gpu_trace": write(d / "mem_cpu_on_gpu.json", [*two, mem(1000.5, 64, dev=0)]),
        "kernels_bare": write(
            d / "kernels_bare.json",
            [
                gpu("volta_sgemm_128x64_nn", 10.0, 5.5, full=False),
                gpu("triton_poi_fused_add_0", 20.0, 3.25, stream=13, full=False),
            ],
            props=None,
        ),
        "zero_durations": write(
            d / "zero_durations.json",
            [*launched([("aten::add", "k0", None)]), gpu("k1", 5000.0, 0, full=False), gpu("k2", 5001.0, 0.0)],
        ),
        "no_device_properties": write(d / "no_props.json", launched(TRITON), props=None),
        "unknown_device": write(
            d / "unknown_device.json", launched(TRITON), props=[{"id": 0, "name": "Some Accelerator X1"}]
        ),
        "resnet": write(d / "resnet.json", launched(RESNET)),
        "transformer": write(
            d / "transformer.json", launched(TRANSFORMER) + launched(TRANSFORMER[:2], t0=3000.125, stream=13, base=50)
        ),
        "triton": write(d / "triton.json", launched(TRITON)),
        "memcpy_memset_only": write(
            d / "memcpy_memset_only.json",
            [
                cpu("aten::copy_", 10.0, 30.0, ext=1),
                runtime(11.0, 4.0, 9, 1, name="cudaMemcpyAsync"),
                gpu(
                    "Memcpy HtoD (Pageable -> Device)",
                    20.0,
                    12.345,
                    corr=9,
                    ext=1,
                    cat="gpu_memcpy",
                    extra={"bytes": 4096},
                ),
                gpu("Memset (Device)", 40.0, 1.001, cat="gpu_memset", stream=8, extra={"bytes": 64}),
                gpu("Memcpy DtoH (Device -> Pageable)", 41.5, 2.5, cat="gpu_memcpy", stream=8),
            ],
        ),
        "memcpy_no_cpu": write(
            d / "memcpy_no_cpu.json",
            [
                gpu("Memcpy DtoD (Device -> Device)", 20.0, 2.5, cat="gpu_memcpy"),
                gpu("Memset (Device)", 40.0, 1.001, cat="gpu_memset"),
            ],
            props=None,
        ),
        "cpu_python_program": write(
            d / "cpu_python.json",
            [
                cpu("main.py(1): <module>", 0.0, 100.0, cat="python_function"),
                cpu("main.py(5): work", 10.0, 50.5, cat="python_function"),
                cpu("aten::add", 20.0, 5.25, dims=[[3, 4], [3, 4], []]),
                cpu("aten::mm", 30.0, 7.5),  # a GEMM without Input Dims (record_shapes off)
                cpu("worker", 5.0, 1.125, cat="user_annotation", tid=2),
                mem(21.0, 48, dev=0),
                mem(22.0, -48, dev=0),
            ],
            props=None,
        ),
        "cpu_runtime_without_gpu_records": write(
            d / "cpu_runtime_only.json", [cpu("aten::add", 0.0, 10.0, ext=3), runtime(1.0, 2.0, 77, 3)], props=None
        ),
        "unknown_categories_only": write(
            d / "unknown_cats.json", [cpu("foo", 0.0, 10.0, cat="Foo"), cpu("bar", 2.0, 3.0, cat="Foo")], props=None
        ),
        "names_and_args_missing": write(
            d / "noname.json",
            [
                {"ph": "X", "cat": "kernel", "pid": 0, "tid": 7, "ts": 10.0, "dur": 2.0},
                {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 20.0, "dur": 2.5, "args": {}},
                {"ph": "X", "cat": "cpu_op", "pid": 1, "tid": 1, "ts": 5.0, "dur": 30.0, "args": {"Input type": 5}},
                cpu("aten::mm", 6.0, 3.0, ext=9, dims=[[2, "x"], [3]]),
                runtime(7.0, 1.0, 42, 9),
                gpu("gemm", 40.0, 1.5, corr=42, ext=9, extra={"device": None}),
            ],
            props=[{"name": None}],
        ),
        "cpu_events_not_nested": write(
            d / "overlap.json", [cpu("outer", 0.0, 10.0), cpu("a", 2.0, 7.0), cpu("b", 3.0, 20.0)], props=None
        ),
        "metadata_only": write(
            d / "meta_only.json", [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "x"}}], props=None
        ),
    }


@pytest.fixture(scope="module")
def cases(tmp_path_factory) -> dict[str, Path]:
    return _cases(tmp_path_factory.mktemp("robust"))


@pytest.fixture(scope="module")
def dbfile(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("robust_db") / "r.duckdb")


def run(trace: Path, db: str, *args: str) -> Any:
    r = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", db, *args])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    return r


def doc_of(trace: Path, db: str, by: str = "component") -> dict[str, Any]:
    return json.loads(run(trace, db, "--format", "json", "--by", by).output)


# ---------------------------------------------------------------- the plain reader's numbers


def plain(trace: Path) -> dict[str, Any]:
    events = load(trace)["traceEvents"]
    x = [e for e in events if e.get("ph") == "X"]
    by_cat: dict[str, list[tuple[int, int]]] = {}
    for e in x:
        by_cat.setdefault(e.get("cat"), []).append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"])))
    gpu_iv = [iv for c in ("kernel", "gpu_memcpy", "gpu_memset") for iv in by_cat.get(c, [])]
    streams: dict[tuple, int] = {}
    for e in x:
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            key = (e.get("args", {}).get("device"), e.get("args", {}).get("stream"))
            streams[key] = streams.get(key, 0) + ns(e["dur"])
    mems = [e for e in events if e.get("ph") in ("i", "I") and e.get("name") == "[memory]"]
    return {
        "ns": {c: sum(b - a for a, b in iv) for c, iv in by_cat.items()},
        "count": {c: len(iv) for c, iv in by_cat.items()},
        "kernel_busy": union(by_cat.get("kernel", [])),
        "gpu_busy": union(gpu_iv),
        "streams": streams,
        "mem": mems,
    }


def union(iv: list[tuple[int, int]]) -> int:
    total, end = 0, None
    for a, b in sorted(iv):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


# ---------------------------------------------------------------- every case, every view, every format


@pytest.mark.slow
def test_every_case_every_view_exits_cleanly(cases, dbfile, capsys):
    """End to end in JSON for every view; the table and CSV renderers then run on those same documents."""
    from tracekit.analyzers.report_types import AttributeReport
    from tracekit.reports.attribute_export import write

    for name, trace in cases.items():
        for by in VIEWS:
            doc = doc_of(trace, dbfile, by)
            assert isinstance(doc["notes"], list) and doc["notes"], name
            assert all(isinstance(n, str) and "\n" not in n for n in doc["notes"]), name
            for fmt in ("table", "csv"):
                write([AttributeReport.from_json(doc)], by, fmt)
                out = capsys.readouterr()
                assert "Traceback" not in out.out + out.err, (name, by, fmt)
    assert run(cases["mem_bytes_only"], dbfile, "--format", "table").output  # and once through click


# ---------------------------------------------------------------- memory without totals / addresses


def test_memory_with_bytes_only_gives_running_sum_peak(cases, dbfile):
    trace = cases["mem_bytes_only"]
    doc = doc_of(trace, dbfile)
    live, peak = 0, 0
    for e in plain(trace)["mem"]:  # already in time order
        live += e["args"]["Bytes"]
        peak = max(peak, live)
    t = doc["total"]
    assert t["peak_source"] == "running_sum" and t["peak_bytes"] == peak == 5120
    assert t["bytes_allocated"] == 4096 + 1024 + 2048
    assert sum(r["bytes_allocated"] for r in doc["components"]) == t["bytes_allocated"]
    assert any("no `Total Allocated`" in n and "running sum" in n for n in doc["notes"])
    table = run(trace, dbfile).output
    assert "running sum" in table and "[memory]" in table  # notes are printed verbatim, not eaten as markup


def test_memory_with_totals_keeps_allocator_peak(cases, dbfile):
    doc = doc_of(cases["mem_with_totals"], dbfile)
    assert doc["total"]["peak_source"] == "total_allocated" and doc["total"]["peak_bytes"] == 14_096
    assert not any("Total Allocated" in n for n in doc["notes"])


def test_memory_without_device_type_is_not_guessed(cases, dbfile):
    doc = doc_of(cases["mem_no_device_type"], dbfile)
    assert doc["total"]["bytes_allocated"] is None and doc["total"]["peak_bytes"] is None
    assert any("2 [memory] events carry no `Device Type`" in n for n in doc["notes"])
    doc = doc_of(cases["mem_cpu_only_on_gpu_trace"], dbfile)
    assert doc["total"]["bytes_allocated"] is None
    assert any("no [memory] events for the GPU" in n for n in doc["notes"])


def test_no_memory_events_is_null_not_zero(cases, dbfile):
    doc = doc_of(cases["triton"], dbfile)
    assert doc["total"]["bytes_allocated"] is None and doc["total"]["peak_source"] is None
    assert all(r["bytes_allocated"] is None for r in doc["components"])
    assert any("no [memory] events" in n for n in doc["notes"])


# ---------------------------------------------------------------- non-Mamba GPU traces: exact totals


@pytest.mark.parametrize("name", ["resnet", "transformer", "triton", "kernels_bare", "zero_durations"])
def test_non_mamba_gpu_traces_exact_totals(cases, dbfile, name):
    trace = cases[name]
    p = plain(trace)
    kernel_ns = p["ns"].get("kernel", 0)
    doc = doc_of(trace, dbfile)
    t = doc["total"]
    assert doc["time_source"] == "gpu"
    assert t["time_ns"] == t["gpu_time_ns"] == kernel_ns
    assert t["kernels"] == p["count"]["kernel"]
    assert t["busy_ns"] == p["kernel_busy"] and t["gpu_events_busy_ns"] == p["gpu_busy"]
    span = doc["span_ns"]
    assert span and doc["gpu_busy"] == pytest.approx(p["kernel_busy"] / span)
    # nothing claimed for Mamba: every kernel is `other`, and one note says so
    assert doc["mamba_found"] is False
    assert {r["component"]: r["gpu_time_ns"] for r in doc["components"]} == {
        "rmsnorm": 0,
        "gated_mlp": 0,
        "conv": 0,
        "ssm": 0,
        "final_linear": 0,
        "other": kernel_ns,
    }
    line = [n for n in doc["notes"] if n.startswith("no Mamba components found")]
    assert line == [
        f"no Mamba components found: all {t['kernels']} kernels ({kernel_ns / 1e6:.3f} ms) are `other`; "
        "see --by kernel, --by category, --by stream"
    ]
    # by kernel: exact per name
    rows = doc_of(trace, dbfile, "kernel")["components"]
    per_name: dict[str, int] = {}
    for e in load(trace)["traceEvents"]:
        if e.get("cat") == "kernel":
            per_name[e["name"]] = per_name.get(e["name"], 0) + ns(e["dur"])
    assert {r["kernel"]: r["time_ns"] for r in rows} == per_name
    # by category / stream: exact, and the same sections whatever the view
    assert [(r["category"], r["gpu_time_ns"], r["count"]) for r in doc["by_category"]] == [
        ("kernel", kernel_ns, p["count"]["kernel"])
    ]
    assert {(r["device"], r["stream"]): r["gpu_time_ns"] for r in doc["by_stream"]} == p["streams"]
    assert doc_of(trace, dbfile, "stream")["components"] == doc["by_stream"]
    assert t["memcpy_ns"] == 0 and t["memset_ns"] == 0


def test_resnet_convolutions_are_not_mamba_conv(cases, dbfile):
    rows = doc_of(cases["resnet"], dbfile, "kernel")["components"]
    conv = [r for r in rows if "convolve" in r["kernel"]]
    assert conv and all(r["component"] == "other" and r["reason"] == "default" for r in conv)


def test_transformer_has_two_streams(cases, dbfile):
    doc = doc_of(cases["transformer"], dbfile)
    assert [r["stream"] for r in doc["by_stream"]] == [7, 13]
    assert sum(r["gpu_time_ns"] for r in doc["by_stream"]) == doc["total"]["gpu_time_ns"]
    table = run(cases["transformer"], dbfile, "--by", "stream").output
    assert "kernels" in table and "13" in table


# ---------------------------------------------------------------- optional kernel / op fields


def test_kernels_without_launch_args_or_props(cases, dbfile):
    doc = doc_of(cases["kernels_bare"], dbfile)
    assert doc["device"] is None and doc["peak"] is None
    notes = " | ".join(doc["notes"])
    assert "2 of 2 kernels have no launching CPU op (the trace has no CPU ops)" in notes
    assert "no deviceProperties (or no device name in them) in the trace" in notes
    assert doc["total"]["gemm_flops"] is None and "GEMM FLOPs unknown" in notes
    assert doc["by_category"][0]["busy_ns"] == plain(cases["kernels_bare"])["kernel_busy"]


def test_zero_durations_are_counted_and_said(cases, dbfile):
    doc = doc_of(cases["zero_durations"], dbfile)
    assert doc["total"]["kernels"] == 3
    assert "2 of 3 kernels have zero duration (counted, 0 ns each)" in doc["notes"]
    assert any("2 of 3 kernels have no launching CPU op (no correlation/External id link)" in n for n in doc["notes"])


def test_unknown_device_says_why_no_roofline(cases, dbfile):
    doc = doc_of(cases["unknown_device"], dbfile)
    assert doc["device"] == "Some Accelerator X1" and doc["peak"] is None
    assert any("not in tracekit's peak table" in n for n in doc["notes"])
    doc = doc_of(cases["no_device_properties"], dbfile)
    assert any("no deviceProperties" in n for n in doc["notes"])


# ---------------------------------------------------------------- memcpy / memset without kernels


def test_memcpy_memset_only_trace(cases, dbfile):
    trace = cases["memcpy_memset_only"]
    p = plain(trace)
    doc = doc_of(trace, dbfile)
    t = doc["total"]
    assert t["memcpy_ns"] == p["ns"]["gpu_memcpy"] == 14_845 and t["memcpy_count"] == 2
    assert t["memset_ns"] == p["ns"]["gpu_memset"] == 1001 and t["memset_count"] == 1
    assert t["gpu_events_busy_ns"] == p["gpu_busy"]
    assert {r["category"]: r["gpu_time_ns"] for r in doc["by_category"]} == {
        "gpu_memcpy": 14_845,
        "gpu_memset": 1001,
    }
    assert {(r["device"], r["stream"]): r["gpu_time_ns"] for r in doc["by_stream"]} == p["streams"]
    assert doc["device"] == "NVIDIA H100 80GB HBM3"  # the GPU, although no kernel ran
    assert not any(n.startswith("CPU-only") for n in doc["notes"])
    assert any(n.startswith("no GPU kernels: component times are CPU self time") for n in doc["notes"])
    table = run(trace, dbfile).output
    assert "memcpy 14.8 µs (2)" in table and "not in the component times" in table
    doc = doc_of(cases["memcpy_no_cpu"], dbfile)
    assert doc["total"]["memcpy_ns"] == 2500 and doc["total"]["memset_ns"] == 1001
    assert any(n.startswith("nothing to attribute") and "memcpy" in n for n in doc["notes"])


# ---------------------------------------------------------------- CPU-only traces without scopes


def test_cpu_python_program(cases, dbfile):
    trace = cases["cpu_python_program"]
    doc = doc_of(trace, dbfile)
    assert doc["time_source"] == "cpu_self" and doc["mamba_found"] is False
    # exact CPU total: self times add up to the top-level durations of each thread (plain reader)
    events = load(trace)["traceEvents"]
    assert doc["total"]["time_ns"] == ns(events[0]["dur"]) + ns(events[4]["dur"]) == 101_125
    assert all(r["cpu_self_ns"] == 0 for r in doc["components"] if r["component"] != "other")
    assert {r["category"]: r["cpu_self_ns"] for r in doc["by_category"]} == {
        "python_function": 100_000 - 50_500 + 50_500 - 5_250 - 7_500,
        "cpu_op": 5_250 + 7_500,
        "user_annotation": 1_125,
    }
    assert doc["by_stream"] is None and doc["total"]["memcpy_ns"] is None
    notes = doc["notes"]
    assert "CPU-only trace: times are CPU self time of the ops in each component" in notes
    assert (
        "no Mamba components found: all 5 CPU events (0.101 ms CPU self time) are `other`; "
        "see --by kernel, --by category" in notes
    )
    assert doc["total"]["gemm_flops"] is None and any("usable `Input Dims`" in n for n in notes)
    assert doc["total"]["peak_source"] == "running_sum" and doc["total"]["peak_bytes"] == 48
    assert any("--by stream: the trace has no GPU events" in n for n in doc_of(trace, dbfile, "stream")["notes"])


def test_cpu_trace_with_runtime_calls_but_no_gpu_records(cases, dbfile):
    doc = doc_of(cases["cpu_runtime_without_gpu_records"], dbfile)
    assert any("1 CUDA runtime/driver calls but no GPU activity records" in n for n in doc["notes"])


@pytest.mark.parametrize("name", ["unknown_categories_only", "metadata_only"])
def test_nothing_attributable_says_so(cases, dbfile, name):
    doc = doc_of(cases[name], dbfile)
    assert doc["total"]["time_ns"] == 0 and doc["total"]["flops"] is None and doc["span_ns"] is None
    assert any(n.startswith("nothing to attribute") for n in doc["notes"])
    assert not any(n.startswith("no Mamba components found") for n in doc["notes"])


def test_unknown_categories_are_named(cases, dbfile):
    doc = doc_of(cases["unknown_categories_only"], dbfile)
    assert any("Foo×2" in n for n in doc["notes"])


def test_name_rules_alone_do_not_claim_a_mamba_model(tmp_path, dbfile):
    """An LLM's rms_norm kernel matches the rmsnorm rule; without config, scopes or SSM/conv kernels the
    notes say that no Mamba model was recognised (and which components came from name rules alone)."""
    trace = write(tmp_path / "llama.json", launched([*TRANSFORMER[:2], ("_C::rms_norm", "rms_norm_kernel", None)]))
    doc = doc_of(trace, dbfile)
    assert doc["mamba_found"] is True  # a unit is outside `other`
    line = [n for n in doc["notes"] if n.startswith("no Mamba model recognised")]
    assert len(line) == 1 and "rmsnorm 1 kernels 0.012 ms" in line[0]
    # a Mamba CUDA-graph trace (SSM and conv kernels, no config, no scopes) is not told that
    cg = Path(__file__).parents[1] / "data" / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz"
    doc = doc_of(cg, dbfile)
    assert not any(n.startswith(("no Mamba", "CPU-only")) for n in doc["notes"])
    p = plain(cg)
    assert doc["total"]["memcpy_count"] == p["count"]["gpu_memcpy"] == doc["by_stream"][0]["memcpy"]
    assert doc["total"]["memcpy_ns"] == p["ns"]["gpu_memcpy"] and doc["total"]["gpu_time_ns"] == p["ns"]["kernel"]
    flagged = json.loads(run(cg, dbfile, "--format", "json", "--arch", "mamba2", "--preset", "130m").output)
    assert f"{16 * 49} GEMMs by their position in each graph launch" in " ".join(flagged["notes"])


def test_missing_names_and_args(cases, dbfile):
    trace = cases["names_and_args_missing"]
    doc = doc_of(trace, dbfile, "kernel")
    assert {r["kernel"]: r["time_ns"] for r in doc["components"]} == {None: 2000, "k": 2500, "gemm": 1500}
    assert doc["total"]["gpu_time_ns"] == plain(trace)["ns"]["kernel"] == 6000
    assert {(r["device"], r["stream"]): r["gpu_time_ns"] for r in doc["by_stream"]} == plain(trace)["streams"]
    assert plain(trace)["streams"] == {(None, None): 4500, (None, 7): 1500}
    assert doc["total"]["gemm_flops"] is None  # aten::mm ran a kernel but its Input Dims are unusable
    assert any("none of the 1 GEMM ops has usable `Input Dims`" in n for n in doc["notes"])


def test_cpu_events_that_do_not_nest(cases, dbfile):
    doc = doc_of(cases["cpu_events_not_nested"], dbfile)
    assert doc["total"]["time_ns"] == 10_000  # outer's duration: the self times of its subtree add up to it
    assert any(n.startswith("1 CPU events have negative self time") for n in doc["notes"])


def test_real_profiled_python_program(tmp_path, dbfile):
    """A plain Python program under torch.profiler (CPU, stacks, memory): no Mamba claimed, exact CPU total."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    def program() -> None:
        data = sorted(range(2000), key=lambda i: -i)
        x = torch.arange(len(data), dtype=torch.float32).reshape(40, 50)
        (x.softmax(dim=1) * 2).sum()

    with profile(activities=[ProfilerActivity.CPU], with_stack=True, record_shapes=True, profile_memory=True) as p:
        program()
    trace = tmp_path / "program.json"
    p.export_chrome_trace(str(trace))
    doc = doc_of(trace, dbfile)
    assert doc["time_source"] == "cpu_self" and doc["mamba_found"] is False and doc["model"]["config"] is None
    per_thread: dict[tuple, list[tuple[int, int]]] = {}
    for e in load(trace)["traceEvents"]:
        if e.get("ph") == "X" and e.get("cat") in ("cpu_op", "user_annotation", "python_function"):
            per_thread.setdefault((e["pid"], e["tid"]), []).append((ns(e["ts"]), ns(e["ts"]) + ns(e["dur"])))
    assert doc["total"]["time_ns"] == sum(union(iv) for iv in per_thread.values()) > 0
    assert sum(r["cpu_self_ns"] for r in doc["by_category"]) == doc["total"]["time_ns"]
    assert any(n.startswith("no Mamba components found: all") for n in doc["notes"])
    assert "CPU-only trace: times are CPU self time of the ops in each component" in doc["notes"]


def test_running_sum_peak_is_per_device(tmp_path, dbfile):
    """Two GPUs: live bytes are summed per device; the trace's peak is the larger device's, not their sum."""
    two = launched([("aten::mm", "ampere_sgemm_128x64_nn", None)])
    events = [
        *two,
        mem(1000.5, 1000, dev_id=0),
        mem(1000.6, 700, dev_id=1),
        mem(1000.7, 700, dev_id=1),
        mem(1000.8, -1000, dev_id=0),
        mem(1000.9, 500, dev_id=0),
    ]
    doc = doc_of(write(tmp_path / "two_gpus.json", events), dbfile)
    assert doc["total"]["peak_source"] == "running_sum" and doc["total"]["peak_bytes"] == 1400
    assert doc["total"]["bytes_allocated"] == 1000 + 700 + 700 + 500
