"""GPU targets of state pruning with mamba-ssm kernels (run on the CUDA machine).

    source .device-kernels/activate.sh && python benchmarks/bench_prune_gpu.py --out $OUT

1. masked vs physical equivalence through mamba-ssm's fused kernels, fp32 (Mamba-1 and Mamba-2), plus
   the hf→mamba-ssm weight mapping checked against the CPU transformers model;
2. mamba2-130m shapes, bf16, random weights, dense vs physical at ratio 0.5 (k = 64):
   - decode *step* time: one CUDA-graph replay of the model's step (no sampling), batch 1/64/256;
   - prefill forward at seqlen 16384 (batch 1 and 8), and 2048 (batch 8);
   - inference-state bytes (conv_state + ssm_state from allocate_inference_cache) at batch 64.
Timings: CUDA events, median over repeats after warm-up. Writes prune_gpu.json and prune_gpu.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tracekit.collectors.backends import build_model as build_backend

from tracekit.model_config import ModelConfig, preset
from tracekit.prune import apply as variants
from tracekit.prune.checkpoints import build_model, mixers
from tracekit.prune.compare import to_backend
from tracekit.prune.scoring import keep_indices, kept_count, legal_k, random_scores


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


@torch.no_grad()
def dense_with_conv_biases(cfg: ModelConfig) -> torch.nn.Module:
    """A random model (seed 0) with non-zero conv biases, as in trained models: a pruned state's conv
    channel then carries a bias that a wrong slice would leave behind."""
    dense = build_model(cfg, seed=0)
    g = torch.Generator().manual_seed(5)
    for m in mixers(dense):
        m.conv1d.bias.copy_(0.5 * torch.randn(m.conv1d.bias.shape, generator=g))
    return dense


@torch.no_grad()
def equivalence() -> list[dict]:
    out = []
    cases = [
        ModelConfig("mamba2", d_model=256, n_layer=2, vocab_size=256, d_state=64, headdim=64, chunk_size=64),
        ModelConfig("mamba1", d_model=256, n_layer=2, vocab_size=256, d_state=16),
    ]
    ids = torch.randint(0, 256, (2, 300), generator=torch.Generator().manual_seed(0))
    for cfg in cases:
        dense = dense_with_conv_biases(cfg)
        k = legal_k(cfg, kept_count(cfg.d_state, 0.4))  # Mamba-2: 38 → 40 so causal-conv1d accepts the conv
        keep = keep_indices(random_scores(cfg, 1), k)
        masked = variants.masked(dense, cfg, keep)
        small, small_cfg = variants.physical(dense, cfg, keep)
        # transformers on this machine dispatches to the CUDA kernels, so its reference runs on the GPU too
        x = ids.cuda()
        cpu_dense = dense.cuda()(input_ids=x, use_cache=False).logits
        cpu_masked = masked.cuda()(input_ids=x, use_cache=False).logits
        gd = to_backend(dense, cfg, "mamba-ssm", "cuda", "fp32", 0)
        gm = to_backend(masked, cfg, "mamba-ssm", "cuda", "fp32", 0)
        gp = to_backend(small, small_cfg, "mamba-ssm", "cuda", "fp32", 0)
        yd, ym, yp = (m(x).logits for m in (gd, gm, gp))
        row = {
            "arch": cfg.arch,
            "d_model": cfg.d_model,
            "d_state": cfg.d_state,
            "k": k,
            "masked_vs_physical_max_abs": (ym - yp).abs().max().item(),
            "masked_vs_physical_rel": rel(yp, ym),
            "masked_vs_dense_rel": rel(ym, yd),
            "mamba_ssm_vs_hf_dense_rel": rel(yd, cpu_dense),
            "mamba_ssm_vs_hf_masked_rel": rel(ym, cpu_masked),
        }
        print(row, flush=True)
        out.append(row)
    return out


def cuda_time(fn, warmup: int, repeats: int, inner: int = 1) -> dict:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(inner):
            fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / inner)
    return {
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "repeats": repeats,
        "inner": inner,
    }


@torch.inference_mode()
def step_graph(model, batch: int, dtype: torch.dtype):
    """Capture one decode step (seqlen_offset > 0 → the model's step path) as a CUDA graph."""
    from mamba_ssm.utils.generation import InferenceParams

    cache = model.allocate_inference_cache(batch, 2048, dtype)
    state_bytes = sum(t.numel() * t.element_size() for pair in cache.values() for t in pair)
    ip = InferenceParams(max_seqlen=2048, max_batch_size=batch, seqlen_offset=1, key_value_memory_dict=cache)
    ids = torch.zeros(batch, 1, dtype=torch.long, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            model(ids, inference_params=ip, num_last_tokens=1)
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(ids, inference_params=ip, num_last_tokens=1)
    return graph, state_bytes


def speed(ratio: float) -> dict:
    cfg = preset("mamba2", "130m")
    dtype = torch.bfloat16
    dense = build_backend(cfg, "mamba-ssm", "cuda", dtype, 0)
    k = kept_count(cfg.d_state, ratio)
    keep = keep_indices(random_scores(cfg, 0), k)
    small_cfg = cfg.replace(d_state=k)
    small = build_backend(small_cfg, "mamba-ssm", "cuda", dtype, 0)
    small.load_state_dict(variants.sliced_state_dict(dense, cfg, keep), strict=True)
    res: dict = {"model": "mamba2-130m shapes, random weights, bf16", "ratio": ratio, "d_state": cfg.d_state, "k": k}
    for name, m in (("dense", dense), ("physical", small)):
        r: dict = {}
        for b in (1, 64, 256):
            graph, sb = step_graph(m, b, dtype)
            r[f"decode_step_b{b}"] = cuda_time(graph.replay, 20, 7, inner=50)
            r[f"state_bytes_b{b}"] = sb
            del graph
            torch.cuda.empty_cache()
        with torch.inference_mode():
            for b, L in ((1, 16384), (8, 16384), (8, 2048)):
                x = torch.randint(0, 50000, (b, L), device="cuda")
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                r[f"prefill_b{b}_l{L}"] = cuda_time(lambda m=m, x=x: m(x, num_last_tokens=1), 3, 10)
                r[f"prefill_b{b}_l{L}"]["peak_extra_bytes"] = torch.cuda.max_memory_allocated() - base
                del x
                torch.cuda.empty_cache()
        res[name] = r
        print(name, json.dumps(r), flush=True)
    d, p = res["dense"], res["physical"]
    res["speedup"] = {key: d[key]["median_ms"] / p[key]["median_ms"] for key in d if isinstance(d[key], dict)}
    res["state_reduction"] = {key: 1 - p[key] / d[key] for key in d if key.startswith("state_bytes")}
    return res


def markdown(doc: dict) -> str:
    s = doc["speed"]
    lines = [
        f"# State pruning on the GPU ({doc['device']})",
        "",
        f"torch {doc['torch']}, mamba-ssm {doc['mamba_ssm']}, {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "## masked vs physical through mamba-ssm kernels (fp32)",
        "",
        "| arch | d_model | N → k | max abs | rel (masked vs physical) | rel (masked vs dense) | "
        "mamba-ssm vs transformers (dense) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in doc["equivalence"]:
        lines.append(
            f"| {e['arch']} | {e['d_model']} | {e['d_state']} → {e['k']} | "
            f"{e['masked_vs_physical_max_abs']:.2e} | {e['masked_vs_physical_rel']:.2e} | "
            f"{e['masked_vs_dense_rel']:.2e} | {e['mamba_ssm_vs_hf_dense_rel']:.2e} |"
        )
    lines += [
        "",
        f"## {s['model']}: dense vs physical, ratio {s['ratio']} (N {s['d_state']} → {s['k']})",
        "",
        "| point | dense ms | physical ms | speedup |",
        "| --- | --- | --- | --- |",
    ]
    for key, sp in s["speedup"].items():
        lines.append(
            f"| {key} | {s['dense'][key]['median_ms']:.3f} | {s['physical'][key]['median_ms']:.3f} | {sp:.2f}× |"
        )
    lines += ["", "| inference state | dense bytes | physical bytes | reduction |", "| --- | --- | --- | --- |"]
    for key, red in s["state_reduction"].items():
        lines.append(f"| {key} | {s['dense'][key]} | {s['physical'][key]} | {100 * red:.1f}% |")
    lines += [
        "",
        "Decode step = one CUDA-graph replay of the model's step (batch b, one token each, no sampling); "
        "median of 7 × 50 replays. Prefill = one forward (logits of the last token only), median of 10. "
        "State bytes = conv_state + ssm_state of allocate_inference_cache (bf16).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--equivalence-only", action="store_true")
    args = ap.parse_args()
    import mamba_ssm

    out = Path(args.out)
    import os

    doc = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "mamba_ssm": mamba_ssm.__version__,
        "TRITON_F32_DEFAULT": os.environ.get("TRITON_F32_DEFAULT", "(unset: tl.dot uses tf32 for fp32)"),
    }
    doc["equivalence"] = equivalence()
    if args.equivalence_only:
        print(json.dumps(doc, indent=2))
        (out / "prune_gpu_equivalence.json").write_text(json.dumps(doc, indent=2))
        return
    (out / "prune_gpu.json").write_text(json.dumps(doc, indent=2))
    doc["speed"] = speed(args.ratio)
    (out / "prune_gpu.json").write_text(json.dumps(doc, indent=2))
    (out / "prune_gpu.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
