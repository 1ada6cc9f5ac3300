"""Record Mamba models with plain `torch.profiler`, as a user would: no tracekit code in this process (issue #19).

    python benchmarks/plain_profile_matrix.py --out DIR [--backends mamba-ssm,hf] [--archs mamba1,mamba2]

Runs on the GPU machine (stdlib, torch, mamba-ssm / causal-conv1d, transformers only). For every backend
(mamba-ssm `MambaLMHeadModel`; transformers `MambaForCausalLM` / `Mamba2ForCausalLM`, which call the
mamba-ssm / causal-conv1d kernels when they import: the normal GPU path), architecture (130m shapes,
`--n-layer` layers, random weights) and batch, and for each way of running it — `forward` (one forward
over the prompt), `generate` (eager), `generate_cg` (mamba-ssm `generate(cg=True)`; transformers has no
CUDA-graph decode, so its `generate` runs with its default cache) — one warm-up run, then one profiled
run per profiler setting (`record_shapes`, `with_stack` on/off; see `SETTINGS`). Each trace is written as
`{backend}_{arch}_{mode}_b{batch}_shapes{0|1}_stack{0|1}.json.gz`, and `points.json` lists them.

The scoped reference of each point comes from `tracekit collect` on the same machine (shapes, widths and
`--seqlens`/`--decode-steps` match: a `generate` of `new_tokens` tokens is one prompt forward plus
`new_tokens - 1` decode steps); `benchmarks/structure_matrix.py --gpu` compares the two.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

D_MODEL = 768  # the 130m presets of mamba-ssm / state-spaces
VOCAB = 50277
# (record_shapes, with_stack) recorded at each batch; the full 2x2 at batch 8 only keeps the matrix inside
# one device call (every axis is still represented).
SETTINGS = {1: [(False, False), (True, False)], 8: [(False, False), (True, False), (False, True), (True, True)]}
SETTINGS[64] = SETTINGS[1]


def padded_vocab(arch: str) -> int:
    """mamba-ssm pads the vocabulary to a multiple of 8 (Mamba-1) / 16 (Mamba-2 130m)."""
    m = 8 if arch == "mamba1" else 16
    return math.ceil(VOCAB / m) * m


def build(backend: str, arch: str, n_layer: int, device: str) -> torch.nn.Module:
    """The 130m-shaped model with random (seeded) weights, in bf16 on the GPU, as `tracekit collect` builds it."""
    torch.manual_seed(0)
    if backend == "mamba-ssm":
        from mamba_ssm.models.config_mamba import MambaConfig
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        ssm = {"layer": "Mamba1", "d_state": 16, "d_conv": 4, "expand": 2, "dt_rank": math.ceil(D_MODEL / 16)}
        if arch == "mamba2":
            ssm = {"layer": "Mamba2", "d_state": 128, "d_conv": 4, "expand": 2, "headdim": 64, "ngroups": 1}
            ssm["chunk_size"] = 256
        cfg = MambaConfig(
            d_model=D_MODEL,
            d_intermediate=0,
            n_layer=n_layer,
            vocab_size=VOCAB,
            ssm_cfg=ssm,
            rms_norm=True,
            residual_in_fp32=True,
            fused_add_norm=True,
            pad_vocab_size_multiple=8 if arch == "mamba1" else 16,
            tie_embeddings=True,
        )
        model = MambaLMHeadModel(cfg, device=device, dtype=torch.bfloat16)
    else:
        import transformers

        common = dict(
            vocab_size=padded_vocab(arch),
            hidden_size=D_MODEL,
            num_hidden_layers=n_layer,
            expand=2,
            conv_kernel=4,
            use_bias=False,
            use_conv_bias=True,
            residual_in_fp32=True,
            tie_word_embeddings=True,
            layer_norm_epsilon=1e-5,
        )
        if arch == "mamba1":
            hcfg = transformers.MambaConfig(state_size=16, time_step_rank=math.ceil(D_MODEL / 16), **common)
            cls = transformers.MambaForCausalLM
        else:
            hcfg = transformers.Mamba2Config(
                state_size=128, num_heads=2 * D_MODEL // 64, head_dim=64, n_groups=1, chunk_size=256, **common
            )
            cls = transformers.Mamba2ForCausalLM
        model = cls(hcfg).to(device=device, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
        # random weights emit any token: no end-of-sequence, so every run makes exactly new_tokens tokens
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    return model.eval()


def runner(model: torch.nn.Module, backend: str, mode: str, ids: torch.Tensor, new_tokens: int):
    """The call a user makes for `mode`."""
    if mode == "forward":
        return lambda: model(ids) if backend == "mamba-ssm" else model(ids, use_cache=False)
    if backend == "mamba-ssm":
        cg = mode == "generate_cg"
        return lambda: model.generate(ids, max_length=ids.shape[1] + new_tokens, cg=cg)
    return lambda: model.generate(ids, max_new_tokens=new_tokens, do_sample=False)


def record(fn, shapes: bool, stack: bool, path: Path) -> float:
    """One profiled run with the profiler's own options only; the gzip'd Chrome trace goes to `path`."""
    cuda = torch.cuda.is_available()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
    with profile(activities=acts, record_shapes=shapes, with_stack=stack) as p:
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    raw = path.with_suffix("")
    p.export_chrome_trace(str(raw))
    with open(raw, "rb") as src, gzip.open(path, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    raw.unlink()
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--backends", default="mamba-ssm,hf")
    ap.add_argument("--archs", default="mamba1,mamba2")
    ap.add_argument("--batches", default="8,64,1")
    ap.add_argument("--modes", default="forward,generate,generate_cg")
    ap.add_argument("--n-layer", type=int, default=6)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=6)
    ap.add_argument("--device", default="cuda", help="cuda; cpu only to check this script (hf backend)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    listing = args.out / "points.json"
    points = json.loads(listing.read_text()) if listing.exists() else []
    import transformers

    env = {
        "gpu": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
    }
    try:
        import causal_conv1d
        import mamba_ssm

        env.update(mamba_ssm=mamba_ssm.__version__, causal_conv1d=causal_conv1d.__version__)
    except ImportError as e:
        if args.device != "cpu":
            sys.exit(f"mamba-ssm / causal-conv1d do not import ({e}): the normal GPU path needs both")
    print(json.dumps(env), flush=True)
    for backend in args.backends.split(","):
        for arch in args.archs.split(","):
            model = build(backend, arch, args.n_layer, args.device)
            with torch.inference_mode():
                for batch in map(int, args.batches.split(",")):
                    g = torch.Generator().manual_seed(0)
                    ids = torch.randint(0, VOCAB, (batch, args.prompt), generator=g).to(args.device)
                    for mode in args.modes.split(","):
                        if mode == "generate_cg" and backend != "mamba-ssm":
                            continue
                        fn = runner(model, backend, mode, ids, args.new_tokens)
                        fn()  # warm-up: Triton autotuning, graph capture, cuBLAS handles
                        fn()
                        for shapes, stack in SETTINGS[batch]:
                            name = f"{backend}_{arch}_{mode}_b{batch}_shapes{int(shapes)}_stack{int(stack)}.json.gz"
                            wall = record(fn, shapes, stack, args.out / name)
                            points.append(
                                dict(
                                    trace=name,
                                    backend=backend,
                                    arch=arch,
                                    mode=mode,
                                    batch=batch,
                                    prompt=args.prompt,
                                    new_tokens=0 if mode == "forward" else args.new_tokens,
                                    n_layer=args.n_layer,
                                    record_shapes=shapes,
                                    with_stack=stack,
                                    profiled_s=round(wall, 4),
                                    bytes=(args.out / name).stat().st_size,
                                    **env,
                                )
                            )
                            print(name, f"{wall:.3f} s", points[-1]["bytes"], flush=True)
                            listing.write_text(json.dumps(points, indent=1))
            del model
            gc.collect()
            if args.device == "cuda":
                torch.cuda.empty_cache()
            if hasattr(os, "sync"):
                os.sync()


if __name__ == "__main__":
    main()
