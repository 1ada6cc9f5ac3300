"""tracekit's state-update kernel vs mamba-ssm's `selective_state_update`, in one run on one GPU (issue #14).

1. the device-to-device copy bandwidth (bf16, read + write), the ceiling the kernels are held to;
2. equivalence at every k from 1 to 128 (Mamba-2 decode form, fp32 and bf16 states; a few Mamba-1 and
   option cases): new state bit for bit, output relative error;
3. the issue's table for both kernels: batch 8/64/256 × N in 32..128 step 16, 24 heads × headdim 64, bf16
   state, 24 layers' states cycled (nothing stays in L2), timed as CUDA-graph replays; plus each CONFIG;
4. the decode step at batch 64 (mamba2-130m shapes, bf16, CUDA graphs): dense / physical r=0.25 / r=0.5,
   each with both kernels.

Writes a JSON with everything to --out (and prints the tables). `--cpu-check` runs tiny shapes through
Triton's interpreter (no timing) to catch mistakes before a device call; mamba-ssm's kernel then comes from
the sdist in ../shared/kernels/src. Imports only torch, triton, mamba-ssm and tracekit's torch-only modules.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if "--cpu-check" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from tracekit.kernels import state_update as tk  # noqa: E402

NS = [32, 48, 64, 80, 96, 112, 128]
BATCHES = [8, 64, 256]
LAYERS, NHEADS, HEADDIM = 24, 24, 64
# every launch config timed alone: (BLOCK_M, num_warps, split N); padded only differs for N not a power of 2
SWEEP = [(m, w, sp) for m in (16, 32, 64) for w in (2, 4) for sp in (True, False)]


def mamba_ssm_kernel():
    """mamba-ssm's selective_state_update: installed, else (CPU check) from the sdist."""
    try:
        from mamba_ssm.ops.triton.selective_state_update import selective_state_update

        return selective_state_update, "installed"
    except ImportError:
        sdist = ROOT.parent / "shared" / "kernels" / "src" / "mamba_ssm-2.3.2.post1.tar.gz"
        d = Path(tempfile.mkdtemp())
        base = "mamba_ssm-2.3.2.post1/mamba_ssm/ops/triton/"
        with tarfile.open(sdist) as tar:
            src = tar.extractfile(base + "selective_state_update.py").read().decode()
            (d / "mssm_softplus.py").write_bytes(tar.extractfile(base + "softplus.py").read())
        src = src.replace("from mamba_ssm.ops.triton.softplus import softplus", "from mssm_softplus import softplus")
        src = src.replace("with torch.cuda.device(x.device.index):", "if True:")
        (d / "mssm_ssu.py").write_text(src)
        sys.path.insert(0, str(d))
        import mssm_ssu

        return mssm_ssu.selective_state_update, "sdist (interpreter)"


def inputs(batch, k, dtype, dev, *, ngroups=1, z=False, gen=None, states=1):
    """Mamba-2 decode-form arguments (as Mamba2.step passes them); `states` separate state tensors."""
    r = lambda *s: torch.randn(*s, device=dev, generator=gen)  # noqa: E731
    h, p = NHEADS, HEADDIM
    return dict(
        states=[r(batch, h, p, k).to(dtype) for _ in range(states)],
        x=r(batch, h, p).to(torch.bfloat16 if dtype == torch.bfloat16 else torch.float32),
        dt=r(batch, h)[..., None].expand(batch, h, p),
        A=(-torch.rand(h, device=dev, generator=gen))[:, None, None].expand(h, p, k),
        B=r(batch, ngroups, k),
        C=r(batch, ngroups, k),
        D=r(h)[:, None].expand(h, p),
        z=r(batch, h, p) if z else None,
        dt_bias=(r(h) * 0.1)[:, None].expand(h, p),
    )


def call(fn, inp, state, **kw):
    return fn(state, inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], inp["D"], z=inp["z"],
              dt_bias=inp["dt_bias"], dt_softplus=True, **kw)  # fmt: skip


def rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def equivalence(mssm, dev, ks, batch, deadline=float("inf")):
    """Every k: both kernels from the same state; count state elements that differ, output rel. error."""
    rows = []
    gen = torch.Generator(device=dev).manual_seed(0)
    for k in ks:
        if time.time() > deadline:
            print(f"equivalence: out of time at k={k}", flush=True)
            break
        for dtype in (torch.float32, torch.bfloat16):
            for ngroups, z in ((1, False), (2, True)) if k in (16, 37, 96, 128) else ((1, False),):
                inp = inputs(batch, k, dtype, dev, ngroups=ngroups, z=z, gen=gen)
                s0 = inp["states"][0]
                s_tk, s_ms = s0.clone(), s0.clone()
                o_tk = call(tk.selective_state_update, inp, s_tk)
                o_ms = call(mssm, inp, s_ms)
                rows.append({
                    "dtype": str(dtype).split(".")[-1], "k": k, "ngroups": ngroups, "z": z,
                    "state_mismatches": int((s_tk != s_ms).sum()), "state_rel": rel(s_tk, s_ms),
                    "out_rel": rel(o_tk, o_ms), "out_bit_equal": bool(torch.equal(o_tk, o_ms)),
                })  # fmt: skip
    # Mamba-1 form (full A, dt per channel, no heads) at a few k
    for k in (1, 16, 24, 37):
        g = lambda *s: torch.randn(*s, device=dev, generator=gen)  # noqa: E731
        dim = 256
        st = g(batch, dim, k)
        args = (g(batch, dim), g(batch, dim), -torch.rand(dim, k, device=dev, generator=gen), g(batch, k), g(batch, k))
        kw = dict(D=g(dim), z=g(batch, dim), dt_bias=g(dim) * 0.1, dt_softplus=True)
        a, b = st.clone(), st.clone()
        o1 = tk.selective_state_update(a, *args, **kw)
        o2 = mssm(b, *args, **kw)
        rows.append({"dtype": "float32", "k": k, "form": "mamba1", "state_mismatches": int((a != b).sum()),
                     "state_rel": rel(a, b), "out_rel": rel(o1, o2),
                     "out_bit_equal": bool(torch.equal(o1, o2))})  # fmt: skip
    return rows


def graph_time_us(fn, reps=20, rounds=7):
    """µs per call of `fn` (which launches one kernel per layer): median over rounds of graph replays."""
    fn()  # compile / autotune outside the graph
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        torch.cuda.synchronize()
        with torch.cuda.graph(g, stream=s):
            for _ in range(reps):
                fn()
    torch.cuda.current_stream().wait_stream(s)
    g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(rounds):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) * 1e3 / reps)
    return statistics.median(times)


def copy_bandwidth(dev):
    """bf16 device copy of 2 GiB, read + write bytes over time (graph-free, large enough to hide launch)."""
    n = 1 << 30
    a = torch.randn(n, device=dev, dtype=torch.bfloat16)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    ts = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        b.copy_(a)
        e1.record()
        e1.synchronize()
        ts.append(e0.elapsed_time(e1) / 1e3)
    del a, b
    return 2 * 2 * n / statistics.median(ts) / 1e12  # TB/s


def cname(c):
    return f"tracekit_m{c[0]}w{c[1]}{'s' if c[2] else 'p'}"


def table(mssm, dev, copy_tbs, batches, ns, do_sweep=True):
    rows = []
    gen = torch.Generator(device=dev).manual_seed(1)
    for batch in batches:
        for n in ns:
            inp = inputs(batch, n, torch.bfloat16, dev, gen=gen, states=LAYERS)
            nbytes = 2 * inp["states"][0].numel() * 2  # read + write, bf16

            def layers(fn, kw, inp=inp):
                return lambda: [call(fn, inp, s, **kw) for s in inp["states"]]

            row = {"batch": batch, "N": n, "state_bytes_rw": nbytes}
            sweep = [c for c in SWEEP if c[2] or n & (n - 1)] if do_sweep else []
            runs = [("mamba_ssm", mssm, {}), ("tracekit", tk.selective_state_update, {})]
            if do_sweep:
                runs += [("tracekit_autotune", tk.selective_state_update, {"config": "autotune"})]
            runs += [(cname(c), tk.selective_state_update, {"config": c}) for c in sweep]
            pairs = [(torch.empty_like(s), s) for s in inp["states"]]
            us = graph_time_us(lambda pairs=pairs: [c.copy_(s) for c, s in pairs]) / LAYERS
            row["copy_same_bytes_us"] = us
            row["copy_same_bytes_pct_copy"] = 100 * nbytes / (us * 1e-6) / (copy_tbs * 1e12)
            del pairs
            for name, fn, kw in runs:
                us = graph_time_us(layers(fn, kw)) / LAYERS
                row[name + "_us"] = us
                row[name + "_pct_copy"] = 100 * nbytes / (us * 1e-6) / (copy_tbs * 1e12)
            row["default_config"] = list(tk.default_config(HEADDIM, n))
            best = min(sweep, key=lambda c: row[cname(c) + "_us"]) if sweep else tuple(row["default_config"])
            row["best_config"] = list(best)
            if do_sweep:
                row["autotuned"] = str(getattr(tk._tuned_kernel, "best_config", None))
            rows.append(row)
            print(f"b{batch} N{n}: mamba-ssm {row['mamba_ssm_us']:.1f} µs ({row['mamba_ssm_pct_copy']:.0f}%), "
                  f"tracekit {row['tracekit_us']:.1f} µs ({row['tracekit_pct_copy']:.0f}%), best {best} "
                  f"{row.get(cname(best) + '_us', row['tracekit_us']):.1f} µs; "
                  f"same-size copy {row['copy_same_bytes_us']:.1f} µs",
                  flush=True)  # fmt: skip
    return rows


def decode(dev, batch, ks):
    """Decode step (µs) of mamba2-130m shapes at d_state k, CUDA graphs, with each kernel."""
    from mamba_ssm.utils.generation import update_graph_cache
    from tracekit.collectors.backends import build_model

    from tracekit.model_config import preset

    out = []
    base = preset("mamba2", "130m")
    for k in ks:
        model = build_model(base.replace(d_state=k), "mamba-ssm", dev, torch.bfloat16, 0)
        tok = torch.randint(0, 1000, (batch, 1), device=dev)
        pos = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        for kind in ("mamba-ssm", "tracekit"):
            with tk.use_state_kernel(kind) as patched, torch.inference_mode():
                cache = update_graph_cache(model, None, batch, 16, 16 + 4096)
                ip = cache.inference_params
                ip.seqlen_offset = 16
                for _ in range(5):
                    cache.run(tok, pos, 16)
                torch.cuda.synchronize()
                ts = []
                for _ in range(7):
                    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    e0.record()
                    for _ in range(50):
                        cache.run(tok, pos, 16)
                    e1.record()
                    e1.synchronize()
                    ts.append(e0.elapsed_time(e1) * 1e3 / 50)
                out.append({"d_state": k, "kernel": kind, "patched": patched, "step_us": statistics.median(ts)})
                print(f"decode b{batch} d_state {k} {kind}: {out[-1]['step_us']:.1f} µs/step", flush=True)
                del cache, ip
        del model
        torch.cuda.empty_cache()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="state_update.json")
    ap.add_argument("--cpu-check", action="store_true", help="tiny shapes through the interpreter, no timing")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: equiv,table,decode,sweep")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    mssm, mssm_src = mamba_ssm_kernel()
    res: dict = {"mamba_ssm_kernel": mssm_src}
    if args.cpu_check:
        global NHEADS, HEADDIM
        NHEADS, HEADDIM = 2, 8
        res["equivalence"] = equivalence(mssm, "cpu", [1, 7, 16, 37, 96, 128], batch=2)
    else:
        import triton

        dev = "cuda"
        res["device"] = torch.cuda.get_device_name()
        res["versions"] = {"torch": torch.__version__, "triton": triton.__version__}
        try:
            import mamba_ssm

            res["versions"]["mamba_ssm"] = mamba_ssm.__version__
        except ImportError:
            pass
        t0 = time.time()
        save = lambda: Path(args.out).write_text(json.dumps(res, indent=1) + "\n")  # noqa: E731
        res["copy_tbs"] = copy_bandwidth(dev)
        print(f"copy bandwidth (bf16, read+write): {res['copy_tbs']:.2f} TB/s", flush=True)
        if "table" not in skip:
            res["table"] = table(mssm, dev, res["copy_tbs"], BATCHES, NS, do_sweep="sweep" not in skip)
            save()
            print(f"table done {time.time() - t0:.0f} s", flush=True)
        if "decode" not in skip:
            res["decode"] = decode(dev, 64, [128, 96, 64])
            save()
            print(f"decode done {time.time() - t0:.0f} s", flush=True)
        if "equiv" not in skip:
            res["equivalence"] = equivalence(mssm, dev, list(range(1, 129)), batch=8, deadline=t0 + 520)
            save()
            print(f"equivalence done {time.time() - t0:.0f} s", flush=True)
    eq = res.get("equivalence", [])
    for dt in ("float32", "bfloat16"):
        rs = [r for r in eq if r["dtype"] == dt]
        if rs:
            mism = sum(r["state_mismatches"] for r in rs)
            print(f"equivalence {dt}: {len(rs)} cases, state mismatches {mism}, "
                  f"max state rel {max(r['state_rel'] for r in rs):.2e}, "
                  f"max out rel {max(r['out_rel'] for r in rs):.2e}, "
                  f"out bit-equal in {sum(r['out_bit_equal'] for r in rs)}")  # fmt: skip
    Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
