# ruff: noqa: E501  (kernel names are quoted whole, as CUPTI writes them)
"""Serving stacks' Mamba layers (issue #19): vLLM's and SGLang's copies of the mamba-ssm / causal-conv1d
kernels, attributed with no flags (no config, no scopes, no shapes).

The fixtures in tests/data/serving were written by `python -m tests.analyzers.test_serving_stacks` from the per-layer
kernel sequences below, which are read from the stacks' source (tests/data/serving/README.md,
docs/attribute.md "Serving stacks"). Each kernel's true component comes from its role in that sequence,
never from tracekit's output; the test checks the files still hold exactly these sequences.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.components import load_rules

import tracekit
from tests.conftest import run_cli

DATA = Path(__file__).parents[1] / "data" / "serving"

# Role -> true component. Out-of-layer roles are the embedding, the final norm, logits gather, lm_head,
# sampling. `out_copy` is the mixer writing out_proj's result into the layer's preallocated output
# (`output[:n] = out_proj(...)` in vLLM's MambaMixer and SGLang's MambaMixer2): part of out_proj.
TRUTH = {
    "norm": "rmsnorm",
    "in_proj": "gated_mlp",
    "conv": "conv",
    "x_proj": "ssm",
    "dt_proj": "ssm",
    "ssm_prep": "ssm",
    "ssm": "ssm",
    "gated_norm": "rmsnorm",
    "out_proj": "final_linear",
    "out_copy": "final_linear",
    "embedding": "other",
    "norm_f": "rmsnorm",
    "gather": "other",
    "lm_head": "other",
    "sampling": "other",
}
OUT_OF_LAYER = {"embedding", "norm_f", "gather", "lm_head", "sampling"}

# Kernel names (as CUPTI writes them: CUDA kernels as demangled signatures, Triton kernels by function name).
EMB = "void at::native::(anonymous namespace)::indexSelectLargeIndex<c10::BFloat16, long, unsigned int, 2, 2, -2, true>(at::cuda::detail::TensorInfo<c10::BFloat16, unsigned int>, at::cuda::detail::TensorInfo<c10::BFloat16 const, unsigned int>, at::cuda::detail::TensorInfo<long const, unsigned int>, int, int, unsigned int, unsigned int, long)"
VLLM_RMS = "void vllm::rms_norm_kernel<c10::BFloat16, 8, 3>(c10::BFloat16*, c10::BFloat16 const*, long, long, long, long, c10::BFloat16 const*, float, int, int)"
VLLM_ADD_RMS = "void vllm::fused_add_rms_norm_kernel<c10::BFloat16, 8>(c10::BFloat16*, long, c10::BFloat16*, c10::BFloat16 const*, float, int, int)"
FI_RMS = "void flashinfer::norm::RMSNormKernel<8u, __nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*, unsigned int, unsigned int, unsigned int, float, float)"
FI_ADD_RMS = "void flashinfer::norm::FusedAddRMSNormKernel<8u, __nv_bfloat16>(__nv_bfloat16*, __nv_bfloat16*, __nv_bfloat16*, unsigned int, unsigned int, unsigned int, float, float)"
G_IN = "nvjet_tst_128x64_64x8_1x1_v_bz_TNT"
G_OUT = "nvjet_tst_64x32_64x16_4x1_v_bz_splitK_TNT"
G_X = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x64x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas"
G_DT = "sm90_xmma_gemm_bf16bf16_bf16f32_f32_nn_n_tilesize64x32x64_warpgroupsize1x1x1_execute_segment_k_off_kernel__5x_cublas"
G_LM = "nvjet_tst_256x128_64x4_2x1_v_bz_coopA_TNN"
CAST = "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(float)#1}, std::array<char*, 2ul>, 4, TrivialOffsetCalculator<1, unsigned int>, TrivialOffsetCalculator<1, unsigned int>, at::native::memory::LoadWithCast<1>, at::native::memory::StoreWithCast<1> >(int, at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(float)#1}, std::array<char*, 2ul>, TrivialOffsetCalculator<1, unsigned int>, TrivialOffsetCalculator<1, unsigned int>, at::native::memory::LoadWithCast<1>, at::native::memory::StoreWithCast<1>)"
COPY = "void at::native::elementwise_kernel<128, 4, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1}>(at::TensorIteratorBase&, at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1} const&)::{lambda(int)#1}>(int, at::native::gpu_kernel_impl_nocast<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1}>(at::TensorIteratorBase&, at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)::{lambda()#3}::operator()() const::{lambda()#12}::operator()() const::{lambda(c10::BFloat16)#1} const&)::{lambda(int)#1})"
GATHER = "void at::native::index_elementwise_kernel<128, 4, at::native::gpu_index_kernel<at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1}>(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>, at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1} const&, bool)::{lambda(int)#1}>(long, at::native::gpu_index_kernel<at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1}>(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>, at::native::index_kernel_impl<at::native::OpaqueType<2> >(at::TensorIteratorBase&, c10::ArrayRef<long>, c10::ArrayRef<long>)::{lambda(char*, char const*, long)#1} const&, bool)::{lambda(int)#1})"
ARGMAX = "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>, unsigned int, long, 4, 4> >(at::native::ReduceOp<float, at::native::ArgMaxOps<float>, unsigned int, long, 4, 4>)"
CONV1D_FWD_TRITON = "_causal_conv1d_fwd_kernel"
CONV1D_UPDATE_TRITON = "_causal_conv1d_update_kernel"
CONV1D_UPDATE_CUDA = "void causal_conv1d_update_kernel<Causal_conv1d_update_kernel_traits<64, 4, c10::BFloat16, c10::BFloat16>, true>(ConvParamsBase)"
SCAN_CUDA = "void selective_scan_fwd_kernel<Selective_Scan_fwd_kernel_traits<32, 4, true, true, true, true, true, c10::BFloat16, float, c10::BFloat16> >(SSMParamsBase)"
SSU_TRITON = "_selective_scan_update_kernel"
GATED_NORM = "_layer_norm_fwd_1pass_kernel"

LINEAR = ("aten::linear", "aten::matmul", "aten::mm")
TO_FLOAT = ("aten::to", "aten::_to_copy", "aten::copy_")
CONTIGUOUS = ("aten::contiguous", "aten::clone", "aten::copy_")
TRITON = ()  # a Triton launch from Python: no aten op of its own (cuLaunchKernelEx)


def _u(role: str, kernel: str, ops: tuple[str, ...] | None = None) -> tuple[str, str, tuple[str, ...] | None]:
    """One kernel of a sequence: its role, its name, the op chain that launched it (None: no CPU op)."""
    return role, kernel, ops


def _vllm_mamba2_decode_step(n_layer: int) -> list:
    """vLLM MambaMixer2 decode (mamba_mixer2.py `forward` / `conv_ssm_forward`), one full CUDA graph."""
    seq = [_u("embedding", EMB)]
    for i in range(n_layer):
        seq += [
            _u("norm", VLLM_RMS if i == 0 else VLLM_ADD_RMS),
            _u("in_proj", G_IN),
            _u("conv", CONV1D_UPDATE_TRITON),
            _u("ssm", SSU_TRITON),
            _u("gated_norm", GATED_NORM),
            _u("out_proj", G_OUT),
        ]
    return [*seq, _u("norm_f", VLLM_ADD_RMS)]


def _vllm_mamba1_prefill(n_layer: int) -> list:
    """vLLM MambaMixer `forward_cuda` prefill (mamba_mixer.py), eager, inside the `vllm::mamba_mixer` op."""
    seq = [_u("embedding", EMB, ("aten::embedding", "aten::index_select"))]
    for i in range(n_layer):
        mixer = ("vllm::mamba_mixer",)
        seq += [
            _u(
                "norm",
                VLLM_RMS if i == 0 else VLLM_ADD_RMS,
                ("_C::rms_norm",) if i == 0 else ("_C::fused_add_rms_norm",),
            ),
            _u("in_proj", G_IN, mixer + LINEAR),
            _u("conv", CONV1D_FWD_TRITON, mixer + TRITON),
            _u("x_proj", G_X, mixer + LINEAR),
            _u("dt_proj", G_DT, mixer + LINEAR),
            _u("ssm_prep", CAST, mixer + TO_FLOAT),  # dt_proj.bias.float()
            _u("ssm_prep", CAST, mixer + TO_FLOAT),  # D.float()
            _u("ssm_prep", COPY, mixer + CONTIGUOUS),  # B.contiguous() in selective_scan_fn
            _u("ssm_prep", COPY, mixer + CONTIGUOUS),  # C.contiguous()
            _u("ssm", SCAN_CUDA, (*mixer, "_C::selective_scan_fwd")),
            _u("out_proj", G_OUT, mixer + LINEAR),
            _u("out_copy", COPY, (*mixer, "aten::copy_")),  # output[:num_actual_tokens] = out
        ]
    return [
        *seq,
        _u("norm_f", VLLM_ADD_RMS, ("_C::fused_add_rms_norm",)),
        _u("gather", GATHER, ("aten::index",)),
        _u("lm_head", G_LM, LINEAR),
        _u("sampling", ARGMAX, ("aten::argmax",)),
    ]


def _sglang_mamba2_decode_step(n_layer: int) -> list:
    """SGLang MambaMixer2 decode (layers/attention/mamba/mamba.py), eager, sgl_kernel conv update."""
    seq = [_u("embedding", EMB, ("aten::embedding", "aten::index_select"))]
    for i in range(n_layer):
        seq += [
            _u(
                "norm",
                FI_RMS if i == 0 else FI_ADD_RMS,
                ("sgl_kernel::rmsnorm",) if i == 0 else ("sgl_kernel::fused_add_rmsnorm",),
            ),
            _u("in_proj", G_IN, LINEAR),
            _u("conv", CONV1D_UPDATE_CUDA, ("sgl_kernel::causal_conv1d_update",)),
            _u("ssm", SSU_TRITON, TRITON),
            _u("gated_norm", GATED_NORM, TRITON),
            _u("out_proj", G_OUT, LINEAR),
            _u("out_copy", COPY, ("aten::copy_",)),  # output[:num_actual_tokens], _ = self.out_proj(...)
        ]
    return [
        *seq,
        _u("norm_f", FI_ADD_RMS, ("sgl_kernel::fused_add_rmsnorm",)),
        _u("lm_head", G_LM, LINEAR),
        _u("sampling", ARGMAX, ("aten::argmax",)),
    ]


def _vllm_llama_decode_step(n_layer: int) -> list:
    """A vLLM Llama-like decode step: RMSNorms, GEMMs, attention, SiLU-and-mul; no conv, no SSM."""
    seq = [_u("embedding", EMB, ("aten::embedding", "aten::index_select"))]
    for i in range(n_layer):
        seq += [
            _u(
                "norm",
                VLLM_RMS if i == 0 else VLLM_ADD_RMS,
                ("_C::rms_norm",) if i == 0 else ("_C::fused_add_rms_norm",),
            ),
            _u("qkv_proj", G_IN, LINEAR),
            _u(
                "rope",
                "void vllm::rotary_embedding_kernel<c10::BFloat16, true>(long const*, c10::BFloat16*, c10::BFloat16*, c10::BFloat16 const*, int, long, long, long, int, int, int)",
                ("_C::rotary_embedding",),
            ),
            _u(
                "kv_write",
                "void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, __nv_bfloat16, (vllm::Fp8KVCacheDataType)0>(__nv_bfloat16 const*, __nv_bfloat16 const*, __nv_bfloat16*, __nv_bfloat16*, long const*, long, long, long, long, long, int, int, int, float const*, float const*)",
                ("_C_cache_ops::reshape_and_cache_flash",),
            ),
            _u(
                "attention",
                "void flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, cutlass::bfloat16_t, Flash_kernel_traits<128, 64, 128, 4, cutlass::bfloat16_t> >, false, true, false, false, true, true, false, false>(flash::Flash_fwd_params)",
                ("_vllm_fa2_C::varlen_fwd",),
            ),
            _u("o_proj", G_OUT, LINEAR),
            _u("norm", VLLM_ADD_RMS, ("_C::fused_add_rms_norm",)),
            _u("gate_up_proj", G_X, LINEAR),
            _u(
                "act",
                "void vllm::act_and_mul_kernel<c10::BFloat16, &(c10::BFloat16 vllm::silu_kernel<c10::BFloat16>(c10::BFloat16 const&)), true>(c10::BFloat16*, c10::BFloat16 const*, int)",
                ("_C::silu_and_mul",),
            ),
            _u("down_proj", G_DT, LINEAR),
        ]
    return [*seq, _u("norm_f", VLLM_ADD_RMS, ("_C::fused_add_rms_norm",)), _u("lm_head", G_LM, LINEAR)]


N_LAYER = 3
FIXTURES = {
    # name: (steps, one CUDA graph per step?, the kernels launched outside the graph after each step)
    "vllm_mamba2_decode_cudagraph.json": ([_vllm_mamba2_decode_step(N_LAYER)] * 2, True),
    "vllm_mamba1_prefill_eager.json": ([_vllm_mamba1_prefill(N_LAYER)], False),
    "sglang_mamba2_decode_eager.json": ([_sglang_mamba2_decode_step(N_LAYER)] * 2, False),
    "vllm_llama_decode_eager.json": ([_vllm_llama_decode_step(N_LAYER)] * 2, False),
}
# vLLM computes logits and samples outside the decode graph (gpu_model_runner: the graph holds the model's
# forward); those kernels are launched eagerly, here without CPU ops (a trace with only runtime/GPU rows).
GRAPH_TAIL = [_u("lm_head", G_LM, None), _u("sampling", ARGMAX, None)]


def _expected(name: str) -> list[tuple[str, str]]:
    """(role, kernel) of every kernel of a fixture, in launch order."""
    steps, graph = FIXTURES[name]
    out = []
    for step in steps:
        out += [(r, k) for r, k, _ in step] + ([(r, k) for r, k, _ in GRAPH_TAIL] if graph else [])
    return out


def write_fixture(name: str) -> None:
    """Kineto JSON as torch.profiler writes it: cpu_op chains, a launch per kernel (or one cudaGraphLaunch
    per step whose correlation all its kernels share), kernels on stream 7; integer-ns µs times."""
    steps, graph = FIXTURES[name]
    ev: list[dict] = []
    t = 1_700_000_000_000_000  # ns
    gpu_t = t + 50_000
    ext = corr = 0
    dur_of = {k: 1_000 + (sum(map(ord, k)) * 37) % 9_000 for _, k in _expected(name)}

    def us(ns: int) -> str:
        return f"{ns // 1000}.{ns % 1000:03d}"

    def kernel(k: str, c: int, e: int) -> None:
        nonlocal gpu_t
        d = dur_of[k]
        args = {
            **({"External id": e} if e else {}),
            "queued": 0,
            "device": 0,
            "context": 1,
            "stream": 7,
            "correlation": c,
        }
        ev.append(
            {"ph": "X", "cat": "kernel", "name": k, "pid": 0, "tid": 7, "ts": us(gpu_t), "dur": us(d), "args": args}
        )
        gpu_t += d + 700

    def launch(name_: str, c: int, e: int) -> None:
        nonlocal t
        cat = "cuda_driver" if name_ == "cuLaunchKernelEx" else "cuda_runtime"
        ev.append(
            {
                "ph": "X",
                "cat": cat,
                "name": name_,
                "pid": 1,
                "tid": 1,
                "ts": us(t),
                "dur": us(3_000),
                "args": {**({"External id": e} if e else {}), "correlation": c},
            }
        )
        t += 4_000

    def op_chain(ops: tuple[str, ...], body, top: bool = True) -> None:
        nonlocal t, ext
        if not ops:
            body(ext if not top else 0)  # a launch outside any op links to none
            return
        ext += 1
        start, e = t, ext
        t += 1_000
        op_chain(ops[1:], body, False)
        t += 1_000
        ev.append(
            {
                "ph": "X",
                "cat": "cpu_op",
                "name": ops[0],
                "pid": 1,
                "tid": 1,
                "ts": us(start),
                "dur": us(t - start),
                "args": {"External id": e, "Record function id": 0},
            }
        )

    for step in steps:
        if graph:
            corr += 1
            launch("cudaGraphLaunch", corr, 0)
            for _, k, _ in step:
                kernel(k, corr, 0)
            tail = GRAPH_TAIL
        else:
            tail = step
        for _, k, ops in tail:
            corr += 1
            c = corr
            if ops is None:
                launch("cudaLaunchKernel", c, 0)
                kernel(k, c, 0)
                continue
            triton = k.startswith("_")
            op_chain(
                ops,
                lambda e, k=k, c=c, triton=triton: (
                    launch("cuLaunchKernelEx" if triton else "cudaLaunchKernel", c, e),
                    kernel(k, c, e),
                ),
            )
        t = max(t, gpu_t) + 20_000
        gpu_t = t + 50_000
    doc = {
        "schemaVersion": 1,
        "deviceProperties": [
            {
                "id": 0,
                "name": "NVIDIA H100 80GB HBM3",
                "totalGlobalMem": 84929347584,
                "computeMajor": 9,
                "computeMinor": 0,
                "numSms": 132,
            }
        ],
        "traceEvents": sorted(ev, key=lambda x: (x["pid"], float(x["ts"]))),
        "displayTimeUnit": "ms",
    }
    text = re.sub(r'"(ts|dur)": "([0-9.]+)"', r'"\1": \2', json.dumps(doc))  # exact µs with ns digits
    (DATA / name).write_text(text + "\n")


# ---- the tests ---------------------------------------------------------------------------------------


def _kernels_of_file(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    ks = [e for e in data["traceEvents"] if e.get("cat") == "kernel"]
    return [e["name"] for e in sorted(ks, key=lambda e: float(e["ts"]))]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tracekit.open(tmp_path_factory.mktemp("serving") / "s.duckdb")


MAMBA = [n for n in FIXTURES if "mamba" in n]


@pytest.mark.parametrize("name", MAMBA)
def test_every_kernel_lands_in_its_role_component(db, name):
    want = _expected(name)
    assert _kernels_of_file(DATA / name) == [k for _, k in want], "fixture differs from its sequence: regenerate"
    [res] = db.ingest([DATA / name], keep_going=False)
    att = attribute(db.con, res.trace_id, load_rules())
    units = att.units.sort("ts_ns")
    assert units["kernel"].to_list() == [k for _, k in want]
    got = units["component"].to_list()
    wrong = [
        (i, role, TRUTH[role], c, r)
        for i, ((role, _), c, r) in enumerate(zip(want, got, units["reason"].to_list(), strict=True))
        if c != TRUTH[role]
    ]
    # A copy right after out_proj (its result moved into the output buffer) is out_proj's, not the next
    # block norm's, though it sits where HF's residual add sits.
    assert wrong == [], wrong
    # `other` holds only out-of-layer kernels.
    assert all(role in OUT_OF_LAYER for (role, _), c in zip(want, got, strict=True) if c == "other")
    steps, _ = FIXTURES[name]
    assert att.structure is not None and att.structure.layers == N_LAYER * len(steps)


@pytest.mark.parametrize("name", MAMBA)
def test_component_totals_add_up_exactly(tmp_path, name):
    r = run_cli(
        "attribute", "--trace", str(DATA / name), "--db", str(tmp_path / "t.duckdb"), "--format", "json", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    data = json.loads((DATA / name).read_text())
    total = sum(int(Decimal(str(e["dur"])) * 1000) for e in data["traceEvents"] if e.get("cat") == "kernel")
    assert doc["total"]["gpu_time_ns"] == total
    assert sum(c["gpu_time_ns"] for c in doc["components"]) == total
    assert sum(c["kernels"] for c in doc["components"]) == len(_expected(name))
    assert doc["mamba_found"] is True
    assert not any(n.startswith("no Mamba model recognised") for n in doc["notes"])


def test_a_vllm_llama_trace_is_not_read_as_mamba(tmp_path, db):
    """vLLM's RMSNorm kernels are RMSNorm in any model, so they land in `rmsnorm` by name; nothing else
    may: no layer structure, no conv/SSM, and the note says no Mamba model was recognised."""
    name = "vllm_llama_decode_eager.json"
    assert _kernels_of_file(DATA / name) == [k for _, k in _expected(name)]
    [res] = db.ingest([DATA / name], keep_going=False)
    att = attribute(db.con, res.trace_id, load_rules())
    assert att.structure is None and att.config is None
    comp = dict(zip(att.units["kernel"].to_list(), att.units["component"].to_list(), strict=True))
    assert {c for k, c in comp.items() if k not in (VLLM_RMS, VLLM_ADD_RMS)} == {"other"}
    assert {comp[VLLM_RMS], comp[VLLM_ADD_RMS]} == {"rmsnorm"}
    r = run_cli(
        "attribute", "--trace", str(DATA / name), "--db", str(tmp_path / "t.duckdb"), "--format", "json", cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    [note] = [n for n in doc["notes"] if n.startswith("no Mamba model recognised")]
    assert "rmsnorm" in note
    by = {c["component"]: c["kernels"] for c in doc["components"]}
    assert by["conv"] == by["ssm"] == by["gated_mlp"] == by["final_linear"] == 0


def test_no_serving_kernel_is_left_to_position_alone():
    """Every conv / SSM / norm kernel name of the stacks' tables is decided by a name rule (structure only
    places what names cannot: GEMMs and copies)."""
    from tracekit.analyzers.components import first_match

    rules = load_rules()
    named = {
        CONV1D_FWD_TRITON: "conv",
        CONV1D_UPDATE_TRITON: "conv",
        CONV1D_UPDATE_CUDA: "conv",
        "void causal_conv1d_fwd_kernel<Causal_conv1d_fwd_kernel_traits<128, 4, true, c10::BFloat16, c10::BFloat16>, true>(ConvParamsBase)": "conv",
        "void causal_conv1d_channellast_fwd_kernel<Causal_conv1d_channellast_fwd_kernel_traits<128, 4, 64, true, c10::BFloat16, c10::BFloat16>, true, true>(ConvParamsBase)": "conv",
        SCAN_CUDA: "ssm",
        SSU_TRITON: "ssm",
        "void flashinfer::mamba::selective_state_update_kernel_simple<__nv_bfloat16, float, float, float, int, 64, 128, 4>(flashinfer::mamba::SelectiveStateUpdateParams)": "ssm",
        "_chunk_cumsum_fwd_kernel": "ssm",
        "_chunk_state_fwd_kernel": "ssm",
        "_chunk_state_varlen_kernel": "ssm",
        "_state_passing_fwd_kernel": "ssm",
        "_bmm_chunk_fwd_kernel": "ssm",
        "_chunk_scan_fwd_kernel": "ssm",
        GATED_NORM: "rmsnorm",
        VLLM_RMS: "rmsnorm",
        VLLM_ADD_RMS: "rmsnorm",
        FI_RMS: "rmsnorm",
        FI_ADD_RMS: "rmsnorm",
    }
    got = {k: (m.component if (m := first_match(rules, k, None, (), False, fallback=False)) else None) for k in named}
    assert got == named
    # A Transformer's kernels match no Mamba rule.
    for _, k, _ in _vllm_llama_decode_step(1):
        m = first_match(rules, k, None, (), True, fallback=False)
        assert m is None or m.component == "rmsnorm", k


if __name__ == "__main__":
    DATA.mkdir(parents=True, exist_ok=True)
    for fixture in FIXTURES:
        write_fixture(fixture)
