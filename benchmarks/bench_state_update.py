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


def render(res: dict, sweep: dict | None = None, attribution: dict | None = None) -> str:
    """The results page: the issue's table for both kernels, targets met or not, equivalence, decode, and
    (with `attribution`, from state_update_attribution.py) the SSM component as `tracekit attribute` sees it."""
    t = res["table"]
    cp = res["copy_tbs"]
    out = [
        "# State-update kernel: tracekit vs mamba-ssm (issue #14)",
        "",
        f"Machine: NVIDIA H200 (device tool, single GPU; torch reports '{res['device']}'); "
        f"torch {res['versions']['torch']}, "
        f"triton {res['versions']['triton']}, mamba-ssm {res['versions'].get('mamba_ssm')}. Made by "
        "`benchmarks/bench_state_update.py` (both kernels in one run; `--render` rewrites this page from the JSON).",
        "",
        "Mamba-2 130m layer shapes: 24 heads × headdim 64, bf16 state, ngroups 1, D, dt_bias, softplus; "
        f"24 layers' states cycled (nothing stays in L2), timed as CUDA-graph replays (20 × 24 launches, "
        f"median of 7). Copy bandwidth (2 GiB bf16 device copy, read + write): **{cp:.2f} TB/s**. "
        "'same-size copy' = `torch.Tensor.copy_` of the same state bytes, cycled and graphed the same way: "
        "the per-launch floor a kernel of that size cannot beat.",
        "",
        "µs per layer, and % of the copy bandwidth (state bytes read + written / time):",
        "",
        "| batch | N | mamba-ssm | tracekit | speedup | same-size copy | tracekit / same-size copy |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in t:
        out.append(
            f"| {r['batch']} | {r['N']} | {r['mamba_ssm_us']:.1f} µs, {r['mamba_ssm_pct_copy']:.0f}% "
            f"| {r['tracekit_us']:.1f} µs, {r['tracekit_pct_copy']:.0f}% | {r['mamba_ssm_us'] / r['tracekit_us']:.2f}× "
            f"| {r['copy_same_bytes_us']:.1f} µs, {r['copy_same_bytes_pct_copy']:.0f}% "
            f"| {100 * r['copy_same_bytes_us'] / r['tracekit_us']:.0f}% |"
        )
    big = [r for r in t if r["batch"] >= 64]
    worst = min(big, key=lambda r: r["tracekit_pct_copy"])
    out += ["", "## Targets", ""]
    met = all(r["tracekit_pct_copy"] >= 80 for r in big)
    out.append(
        f"- ≥ 80% of copy bandwidth at batch ≥ 64 for every N: **{'met' if met else 'not met'}**. Batch 256: "
        + ", ".join(f"N {r['N']} {r['tracekit_pct_copy']:.0f}%" for r in t if r["batch"] == 256)
        + "; batch 64: "
        + ", ".join(f"N {r['N']} {r['tracekit_pct_copy']:.0f}%" for r in t if r["batch"] == 64)
        + f" (lowest: batch {worst['batch']} N {worst['N']}, {worst['tracekit_pct_copy']:.0f}%). A plain copy of the "
        "same bytes reaches only "
        + ", ".join(f"{r['copy_same_bytes_pct_copy']:.0f}%" for r in t if r["batch"] == 64)
        + " at batch 64: a launch of 5-16 µs pays a fixed ~2 µs (start, ramp, tail) that the 2 GiB copy hides; "
        "the kernel runs at 85-90% of the same-size copy everywhere at batch ≥ 64."
    )
    for b in (64, 256):
        rs = {r["N"]: r["tracekit_us"] for r in t if r["batch"] == b}
        cs = {r["N"]: r["copy_same_bytes_us"] for r in t if r["batch"] == b}
        dev = {n: 100 * (rs[n] / (rs[128] * n / 128) - 1) for n in rs}
        cdev = {n: 100 * (cs[n] / (cs[128] * n / 128) - 1) for n in cs}
        ok = all(abs(v) <= 10 for v in dev.values())
        out.append(
            f"- time ∝ k within 10% (batch {b}, against N = 128 scaled by k/128): **{'met' if ok else 'not met'}**: "
            + ", ".join(f"N {n} {v:+.0f}%" for n, v in dev.items())
            + " (the same-size copy: "
            + ", ".join(f"{v:+.0f}%" for v in cdev.values())
            + "; no padding cost is left: N 96 and 112 are within 3% of proportional; the small-N excess is the "
            "launch's fixed cost)"
        )
    dec = {(d["d_state"], d["kernel"]): d["step_us"] for d in res["decode"]}
    base = dec[(128, "mamba-ssm")]
    goals = {128: 1.3, 96: 1.45, 64: 1.7}
    names = {128: "dense", 96: "physical r = 0.25 (k 96)", 64: "physical r = 0.5 (k 64)"}
    for k, goal in goals.items():
        sp = base / dec[(k, "tracekit")]
        out.append(
            f"- decode step, batch 64, {names[k]} with tracekit's kernel vs dense with mamba-ssm's: ≥ {goal}×: "
            f"**{'met' if sp >= goal else 'not met'}**, {sp:.2f}× ({dec[(k, 'tracekit')]:.0f} vs {base:.0f} µs)"
        )
    out += [attribution_target(attribution) if attribution else (
        "- `tracekit attribute` / the report showing the SSM component's GB/s and % of roofline: **not done here** "
        "(it needs the graph attribution of the decode-as-served issue; see the report)."
    )]  # fmt: skip
    out += [
        "",
        "## Decode step (mamba2-130m shapes, random weights, bf16, batch 64, CUDA graph, 50 steps × 7)",
        "",
        "| d_state | mamba-ssm kernel | tracekit kernel | tracekit speedup | vs dense mamba-ssm |",
        "| --- | --- | --- | --- | --- |",
    ]
    for k in (128, 96, 64):
        a, b = dec[(k, "mamba-ssm")], dec[(k, "tracekit")]
        out.append(f"| {k} | {a:.0f} µs ({base / a:.2f}×) | {b:.0f} µs | {a / b:.2f}× | {base / b:.2f}× |")
    pc = res.get("prune_compare")
    if pc:
        ms = {(r["state_kernel"], r["label"]): r["median_ms"] for r in pc["rows"]}
        d0 = ms[("mamba-ssm", "dense")]
        out += ["", f"`prune compare` in the same call (`{pc['command']}`), decode median per step:", ""]
        out += ["| variant | --state-kernel mamba-ssm | --state-kernel tracekit |", "| --- | --- | --- |"]
        for lab in ("dense", "physical_r0.25", "physical_r0.5"):
            a, b = ms[("mamba-ssm", lab)], ms[("tracekit", lab)]
            out.append(f"| {lab} | {a:.3f} ms ({d0 / a:.2f}×) | {b:.3f} ms ({d0 / b:.2f}×) |")
    eq = res["equivalence"]
    out += ["", "## Equivalence to mamba-ssm's kernel (same inputs, same GPU)", ""]
    for dt in ("float32", "bfloat16"):
        rs = [e for e in eq if e["dtype"] == dt and e.get("form") != "mamba1"]
        bad = [e for e in rs if e["state_mismatches"]]
        out.append(
            f"- Mamba-2 decode form, {dt} state, every k from {min(e['k'] for e in rs)} to {max(e['k'] for e in rs)} "
            f"({len(rs)} cases; ngroups 2 + z at k 16/37/96/128): new state bit-identical in {len(rs) - len(bad)}"
            + (
                "; differs in " + ", ".join(f"k {e['k']} ({e['state_mismatches']} elements, rel {e['state_rel']:.1e})"
                                            for e in bad)
                if bad else ""
            )
            + f"; output max relative error {max(e['out_rel'] for e in rs):.1e}, bit-identical in "
            f"{sum(e['out_bit_equal'] for e in rs)}"
        )  # fmt: skip
    m1 = [e for e in eq if e.get("form") == "mamba1"]
    if m1:
        out.append(
            f"- Mamba-1 form (full A, dt per channel), fp32, k {', '.join(str(e['k']) for e in m1)}: state max "
            f"relative error {max(e['state_rel'] for e in m1):.1e}, output {max(e['out_rel'] for e in m1):.1e} "
            "(not bit-identical: the compiler contracts exp(A·dt)·s + B·dt·x into FMAs differently)"
        )
    if sweep:
        out += [
            "",
            "## Launch configs (`h200_state_update_sweep.json`: an earlier call, same machine kind, same kernel code)",
            "",
            "12 launch configs (rows of headdim 16/32/64 × 2/4 warps × N split into power-of-two blocks or "
            "one masked block) were timed alone at all 21 shapes; the default, 32 rows × 2 warps × one padded "
            "block, is within 2% of the best at every shape with batch ≥ 64. Splitting N (96 = 64 + 32, "
            "112 = 64 + 32 + 16) was 2-16% slower than one masked block at batch 64 (best of each), and four "
            "warps over 16-column blocks collapsed (66.7 µs at batch 64 N 96): the cost of mamba-ssm's kernel "
            "was never the masked lanes but its 4-row programs. Triton's autotuner (which times its candidates on one "
            "L2-resident state) picked configs up to 24% slower than the best (batch 64 N 112: 17.3 vs 14.0 µs), "
            "so it is opt-in (`config='autotune'`).",
        ]
    if attribution:
        out += ["", *attribution_section(attribution)]
    return "\n".join(out) + "\n"


def _att(att: dict, variant: str, kind: str, source: str = "prune compare") -> dict:
    return next(r for r in att["rows"] if (r["variant"], r["state_kernel"], r["source"]) == (variant, kind, source))


def attribution_target(att: dict) -> str:
    """The issue's third target line, with the dense figures of the `tracekit collect` runs."""
    a, b = _att(att, "dense", "mamba-ssm", "collect"), _att(att, "dense", "tracekit", "collect")
    return (
        "- `tracekit attribute` / the report showing the SSM component's GB/s and % of roofline before and after: "
        f"**met** (section 'SSM component in `tracekit attribute`'): dense, batch 64, graph decode: SSM component "
        f"{a['ssm_us_per_step']:.0f} → {b['ssm_us_per_step']:.0f} µs/step, {a['ssm_gbps']:.0f} → {b['ssm_gbps']:.0f} "
        f"GB/s, {a['ssm_roofline_pct']:.1f}% → {b['ssm_roofline_pct']:.1f}% of roofline ({a['peak']['name']} "
        f"{a['peak']['bandwidth_gbps'] / 1e3:.1f} TB/s datasheet HBM peak); decode step {a['step_ms'] * 1e3:.0f} → "
        f"{b['step_ms'] * 1e3:.0f} µs"
    )


def attribution_section(att: dict) -> list[str]:
    """Before (mamba-ssm's kernel) and after (tracekit's), per variant, as `tracekit attribute` reports them."""
    r0 = att["rows"][0]
    out = [
        "## SSM component in `tracekit attribute` (before: mamba-ssm's kernel, after: tracekit's)",
        "",
        f"Machine: NVIDIA H200 (device tool, single GPU; the traces say '{r0['device']}'), one call, both kernels. "
        f"mamba2-130m shapes, random weights, bf16, batch {r0['batch']}, prompt 64, {r0['steps']} decode steps "
        "replayed from a CUDA graph, with the template step (`tracekit collect --arch mamba2 --preset 130m "
        "--seqlens 64 --batch 64 --mode decode --decode-steps 16 --cuda-graphs on --warmup 2 --repeats 3 "
        "--state-kernel KIND`; "
        "the physical variants and a second dense run by `tracekit prune compare` with the same options, "
        "`--ratios 0.25,0.5 --variants physical --phase collect --state-kernel KIND`). Each trace attributed by "
        "`tracekit attribute` (every replayed kernel aligned with the template; the manifest's config; made by "
        "`benchmarks/state_update_attribution.py`, rows in `h200_state_update_attribution.json`). Roofline = "
        f"the tool's peak table, {r0['peak']['name']}: {r0['peak']['bandwidth_gbps'] / 1e3:.1f} TB/s HBM (datasheet), "
        f"{r0['peak']['tflops_bf16']:.0f} TFLOP/s bf16; the SSM component is memory-bound, so its % of roofline is "
        "its achieved GB/s over 4.8 TB/s. Its GB/s counts the minimal bytes (`analyzers/io_bytes.py`: state read + "
        "written once, x, B, C, dt, z, y) over the time of all its kernels: the state update and three small "
        "elementwise kernels of mamba-ssm's step (A = −exp(A_log.float()): a cast, exp, neg) that stay whichever "
        "update kernel runs. 'update kernel' = that kernel alone: its time and the state bytes it must read + "
        "write over that time (% of 4.8 TB/s). 'decode step' = the manifest's median graph replay (3 runs × "
        f"{r0['steps']} steps, no profiler); 'kernel time' = the trace's kernel time per replayed step.",
        "",
        "| variant | d_state | state kernel | decode step | kernel time / step | SSM / step (share) | SSM GB/s | "
        "SSM % of roofline | update kernel / step | update kernel GB/s (state) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in att["rows"]:
        src = " (collect)" if r["source"] == "collect" else ""
        out.append(
            f"| {r['variant']}{src} | {r['d_state']} | {r['state_kernel']} | {r['step_ms'] * 1e3:.0f} µs "
            f"| {r['kernel_us_per_step']:.0f} µs | {r['ssm_us_per_step']:.0f} µs ({100 * r['ssm_share']:.0f}%) "
            f"| {r['ssm_gbps']:.0f} | {r['ssm_roofline_pct']:.1f}% | {r['update_us_per_step']:.0f} µs "
            f"| {r['update_state_gbps']:.0f} ({100 * r['update_state_gbps'] / r['peak']['bandwidth_gbps']:.0f}%) |"
        )
    base = _att(att, "dense", "mamba-ssm")["step_ms"]
    out += [
        "",
        "Decode step over dense with mamba-ssm's kernel (prune compare rows, this call): "
        + ", ".join(
            f"{v} {base / _att(att, v, 'tracekit')['step_ms']:.2f}× with tracekit's kernel "
            f"({base / _att(att, v, 'mamba-ssm')['step_ms']:.2f}× with mamba-ssm's)"
            for v in ("dense", "physical_r0.25", "physical_r0.5")
        )
        + ". The SSM component's GB/s falls with k for both kernels: its three elementwise kernels and each "
        "launch's fixed cost do not shrink with the state (and mamba-ssm's kernel pads N = 96 to 128).",
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="state_update.json")
    ap.add_argument("--cpu-check", action="store_true", help="tiny shapes through the interpreter, no timing")
    ap.add_argument("--render", metavar="JSON", help="print the markdown page of a results JSON and exit")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: equiv,table,decode,sweep")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    if args.render:
        sweep = Path(args.render).with_name("h200_state_update_sweep.json")
        att = Path(args.render).with_name("h200_state_update_attribution.json")
        att_doc = json.loads(att.read_text()) if att.exists() else None
        print(render(json.loads(Path(args.render).read_text()), sweep.exists() or None, att_doc), end="")
        return
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
