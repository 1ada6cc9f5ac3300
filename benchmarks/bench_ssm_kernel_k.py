"""Which kept-state counts k lower each SSM kernel's time (issue #11, "kernel-aware ratios").

Times mamba-ssm's SSM kernels at every k on the 130m layer shapes and writes the raw table as JSON:

* decode: `selective_state_update` (Triton), Mamba-2 (24 heads × headdim 64, 1 group, tied dt/A as in
  `Mamba2.step`) and Mamba-1 (d_inner 1536), 24 layers' states cycled so nothing sits in L2, the 24
  launches captured in one CUDA graph and timed over its replays (µs per layer);
* prefill: Mamba-2 `mamba_chunk_scan_combined` (chunk 256) and Mamba-1 `selective_scan_fn`, seqlen
  2048, timed with CUDA events after warm-up (Triton autotuning runs in the warm-up), three input sets
  rotated (ms per layer).

Run on the GPU machine (needs mamba-ssm); `--fake` runs the same loops on the CPU with the PyTorch
reference formulas and tiny shapes, to check the script itself:

    python benchmarks/bench_ssm_kernel_k.py --out k.json            # GPU
    python benchmarks/bench_ssm_kernel_k.py --fake --out /tmp/k.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

LAYERS = 24
M2 = {"nheads": 24, "headdim": 64, "ngroups": 1, "chunk": 256}
M1 = {"d_inner": 1536}


def _kernels(fake: bool):
    if fake:
        return _ref_update, _ref_chunk_scan, _ref_selective_scan
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    from mamba_ssm.ops.triton.selective_state_update import selective_state_update
    from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

    return selective_state_update, mamba_chunk_scan_combined, selective_scan_fn


# ---- CPU stand-ins (only for --fake: the loops, shapes and output format) ----------------------
def _ref_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    dt = torch.nn.functional.softplus(dt + dt_bias) if dt_softplus else dt
    if state.dim() == 4:
        B, C = B[:, :1].expand(-1, state.shape[1], -1), C[:, :1].expand(-1, state.shape[1], -1)
        dA = torch.exp(dt[..., None] * A)
        state.copy_(state * dA + (dt * x)[..., None] * B[:, :, None, :])
        return (state * C[:, :, None, :]).sum(-1) + D * x
    dA = torch.exp(dt[..., None] * A)
    state.copy_(state * dA + (dt * x)[..., None] * B[:, None, :])
    return (state * C[:, None, :]).sum(-1) + D * x


def _ref_chunk_scan(x, dt, A, B, C, chunk_size, D=None, dt_bias=None, dt_softplus=False):
    return x * (B.sum(-1, keepdim=True) + C.sum(-1, keepdim=True)).mean(2, keepdim=True)


def _ref_selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    return u * B.sum(1, keepdim=True) * C.sum(1, keepdim=True)


# ---- timing ----------------------------------------------------------------------------------
def _graph_time_us(fn, cuda: bool, replays: int) -> float:
    """Median µs of one call of fn() (which runs LAYERS launches) per layer, from graph replays."""
    if not cuda:
        fn()
        t0 = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - t0) / 1e3 / LAYERS
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    ts = []
    for _ in range(replays):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        ts.append((a, b))
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ts) * 1e3 / LAYERS


def _event_time_ms(calls, cuda: bool, warmup: int, reps: int) -> float:
    """Median ms of one call, rotating over the given input sets (warm-up = autotuning)."""
    for i in range(warmup):
        calls[i % len(calls)]()
    if not cuda:
        t0 = time.perf_counter_ns()
        calls[0]()
        return (time.perf_counter_ns() - t0) / 1e6
    torch.cuda.synchronize()
    ts = []
    for i in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        calls[i % len(calls)]()
        b.record()
        ts.append((a, b))
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ts)


def decode_m2(update, batch: int, k: int, dev, dtype, replays: int) -> float:
    H, P, G = M2["nheads"], M2["headdim"], M2["ngroups"]
    states = [torch.randn(batch, H, P, k, device=dev, dtype=dtype) for _ in range(LAYERS)]
    x = torch.randn(batch, H, P, device=dev, dtype=dtype)
    dt = torch.randn(batch, H, device=dev, dtype=dtype)[..., None].expand(batch, H, P)
    A = (-torch.rand(H, device=dev)).float()[:, None, None].expand(H, P, k)
    dt_bias = torch.randn(H, device=dev, dtype=dtype)[:, None].expand(H, P)
    D = torch.randn(H, device=dev, dtype=dtype)[:, None].expand(H, P)
    B = torch.randn(batch, G, k, device=dev, dtype=dtype)
    C = torch.randn(batch, G, k, device=dev, dtype=dtype)

    def run():
        for s in states:
            update(s, x, dt, A, B, C, D, z=None, dt_bias=dt_bias, dt_softplus=True)

    return _graph_time_us(run, dev.type == "cuda", replays)


def decode_m1(update, batch: int, k: int, dev, dtype, replays: int) -> float:
    Di = M1["d_inner"]
    states = [torch.randn(batch, Di, k, device=dev, dtype=dtype) for _ in range(LAYERS)]
    x = torch.randn(batch, Di, device=dev, dtype=dtype)
    z = torch.randn(batch, Di, device=dev, dtype=dtype)
    dt = torch.randn(batch, Di, device=dev, dtype=dtype)
    A = -torch.rand(Di, k, device=dev)
    dt_bias = torch.randn(Di, device=dev, dtype=dtype)
    D = torch.randn(Di, device=dev)
    B = torch.randn(batch, k, device=dev, dtype=dtype)
    C = torch.randn(batch, k, device=dev, dtype=dtype)

    def run():
        for s in states:
            update(s, x, dt, A, B, C, D, z=z, dt_bias=dt_bias, dt_softplus=True)

    return _graph_time_us(run, dev.type == "cuda", replays)


def prefill_m2(scan, batch: int, seqlen: int, k: int, dev, dtype, reps: int) -> float:
    H, P, G = M2["nheads"], M2["headdim"], M2["ngroups"]
    A = -torch.rand(H, device=dev)
    D = torch.randn(H, device=dev)
    dt_bias = torch.randn(H, device=dev)
    calls = []
    for _ in range(3):
        x = torch.randn(batch, seqlen, H, P, device=dev, dtype=dtype)
        dt = torch.randn(batch, seqlen, H, device=dev, dtype=dtype)
        B = torch.randn(batch, seqlen, G, k, device=dev, dtype=dtype)
        C = torch.randn(batch, seqlen, G, k, device=dev, dtype=dtype)
        calls.append(
            lambda x=x, dt=dt, B=B, C=C: scan(x, dt, A, B, C, M2["chunk"], D=D, dt_bias=dt_bias, dt_softplus=True)
        )
    return _event_time_ms(calls, dev.type == "cuda", 3, reps)


def prefill_m1(scan, batch: int, seqlen: int, k: int, dev, dtype, reps: int) -> float:
    Di = M1["d_inner"]
    A = -torch.rand(Di, k, device=dev)
    D = torch.randn(Di, device=dev)
    bias = torch.randn(Di, device=dev)
    calls = []
    for _ in range(3):
        u = torch.randn(batch, Di, seqlen, device=dev, dtype=dtype)
        z = torch.randn(batch, Di, seqlen, device=dev, dtype=dtype)
        delta = torch.randn(batch, Di, seqlen, device=dev, dtype=dtype)
        B = torch.randn(batch, k, seqlen, device=dev, dtype=dtype)
        C = torch.randn(batch, k, seqlen, device=dev, dtype=dtype)
        calls.append(
            lambda u=u, z=z, delta=delta, B=B, C=C: scan(
                u, delta, A, B, C, D, z=z, delta_bias=bias, delta_softplus=True
            )
        )
    return _event_time_ms(calls, dev.type == "cuda", 2, reps)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--fake", action="store_true", help="CPU, reference formulas, tiny shapes")
    ap.add_argument("--batches", default="8,64")
    ap.add_argument("--seqlen", type=int, default=2048)
    ap.add_argument("--replays", type=int, default=30)
    ap.add_argument("--reps", type=int, default=15)
    a = ap.parse_args(argv)
    update, chunk_scan, sel_scan = _kernels(a.fake)
    dev = torch.device("cpu" if a.fake else "cuda")
    dtype = torch.float32 if a.fake else torch.bfloat16
    batches = [int(b) for b in a.batches.split(",")]
    seqlen = 64 if a.fake else a.seqlen
    if a.fake:
        M2.update(nheads=2, headdim=4, chunk=16)
        M1.update(d_inner=8)
    k2_dec = list(range(1, 129)) if not a.fake else [1, 8, 96, 128]
    k2_pre = list(range(8, 129, 8)) if not a.fake else [8, 96]
    k1 = list(range(1, 17)) if not a.fake else [1, 16]
    rows: list[dict] = []
    t_start = time.time()

    def add(kernel: str, arch: str, mode: str, batch: int, k: int, value: float, unit: str) -> None:
        rows.append({"kernel": kernel, "arch": arch, "mode": mode, "batch": batch, "k": k, unit: value})

    for b in batches:
        for k in k2_dec:
            add(
                "selective_state_update",
                "mamba2",
                "decode",
                b,
                k,
                decode_m2(update, b, k, dev, dtype, a.replays),
                "us_per_layer",
            )
        for k in k1:
            add(
                "selective_state_update",
                "mamba1",
                "decode",
                b,
                k,
                decode_m1(update, b, k, dev, dtype, a.replays),
                "us_per_layer",
            )
        print(f"decode b{b} done at {time.time() - t_start:.0f} s", flush=True)
    for b in batches:
        for k in k2_pre:
            add(
                "mamba_chunk_scan_combined",
                "mamba2",
                "prefill",
                b,
                k,
                prefill_m2(chunk_scan, b, seqlen, k, dev, dtype, a.reps),
                "ms_per_layer",
            )
        for k in k1:
            add(
                "selective_scan_fn",
                "mamba1",
                "prefill",
                b,
                k,
                prefill_m1(sel_scan, b, seqlen, k, dev, dtype, a.reps),
                "ms_per_layer",
            )
        print(f"prefill b{b} done at {time.time() - t_start:.0f} s", flush=True)
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    meta = {
        "device": "cpu (fake)" if a.fake else torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "mamba_ssm": None if a.fake else __import__("mamba_ssm").__version__,
        "dtype": str(dtype).removeprefix("torch."),
        "seqlen": seqlen,
        "layers_cycled": LAYERS,
        "mamba2": dict(M2),
        "mamba1": dict(M1),
        "replays": a.replays,
        "reps": a.reps,
        "seconds": round(time.time() - t_start, 1),
    }
    with open(a.out, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    for r in rows:
        if r["k"] in (8, 16, 32, 64, 96, 128) or (r["arch"] == "mamba1" and r["k"] in (1, 8, 12, 16)):
            print(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
