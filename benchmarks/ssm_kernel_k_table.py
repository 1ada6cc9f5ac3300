"""Turn bench_ssm_kernel_k.py's JSON into the committed table and the shipped step data.

    python benchmarks/ssm_kernel_k_table.py benchmarks/results/h200_ssm_kernel_k.json \
        --md benchmarks/results/h200_ssm_kernel_k.md --toml analyzers/rules/ssm_kernel_k.toml \
        --state-update benchmarks/results/h200_state_update.json

Decode kernels (`selective_state_update`, measured at every k) are grouped by what mamba-ssm's launcher
and Triton make of k: the state block is `next_power_of_2(k)` wide, and Triton specialises an integer
argument divisible by 16 (aligned, vectorised loads), so k in one (power-of-two block, k % 16 == 0) class
runs one kernel; the table gives each class's min / median / max. Prefill kernels were measured at
multiples of 8 (Mamba-2) or every k (Mamba-1) and are listed per k (their time is not flat in buckets).

`--state-update` adds tracekit's own decode state update (`prune compare --state-kernel tracekit`, the
default there) from bench_state_update.py's JSON: Mamba-2 130m shapes, k = 32..128 in steps of 16, one
bucket per measured k (no padded block: its time follows k), entry marked `state_kernel = "tracekit"`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict

DENSE_N = {"mamba2": 128, "mamba1": 16}
MACHINE = "NVIDIA H200 (device tool, single GPU)"
TK_KERNEL = "_tk_selective_state_update_kernel"  # tracekit/kernels/state_update.py, the name in traces
STATE_UPDATE_SOURCE = "benchmarks/results/h200_state_update.json"


def _pow2(k: int) -> int:
    return 1 << (k - 1).bit_length()


def _ranges(ks: list[int]) -> str:
    """[1,2,3,5] -> '1-3,5'."""
    ks = sorted(ks)
    out, start, prev = [], ks[0], ks[0]
    for k in [*ks[1:], None]:
        if k is not None and k == prev + 1:
            prev = k
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if k is not None:
            start = prev = k
    return ",".join(out)


def buckets(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    """(kernel, arch, mode) -> buckets [{ks, unit, times: {batch: [min, median, max]}}], smallest k first."""
    series: dict[tuple[str, str, str], dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    units = {}
    for r in rows:
        unit = "us_per_layer" if "us_per_layer" in r else "ms_per_layer"
        key = (r["kernel"], r["arch"], r["mode"])
        units[key] = unit
        series[key][r["k"]][r["batch"]] = r[unit]
    out = {}
    for key, by_k in series.items():
        kernel = key[0]
        groups: dict[tuple, list[int]] = defaultdict(list)
        for k in by_k:
            g = (_pow2(k), k % 16 == 0) if kernel == "selective_state_update" else (k,)
            groups[g].append(k)
        bs = []
        for ks in sorted(groups.values(), key=min):
            batches = sorted({b for k in ks for b in by_k[k]})
            times = {}
            for b in batches:
                vals = [by_k[k][b] for k in ks if b in by_k[k]]
                times[b] = [min(vals), statistics.median(vals), max(vals)]
            bs.append({"ks": _ranges(ks), "unit": units[key], "times": times})
        out[key] = bs
    return out


def state_update_buckets(doc: dict) -> list[dict]:
    """tracekit's state update (bench_state_update.py's `table`): one bucket per measured k (N)."""
    by_k: dict[int, dict[int, float]] = defaultdict(dict)
    for r in doc["table"]:
        by_k[r["N"]][r["batch"]] = r["tracekit_us"]
    return [
        {"ks": str(k), "unit": "us_per_layer", "times": {b: [t, t, t] for b, t in sorted(by_k[k].items())}}
        for k in sorted(by_k)
    ]


def _bucket_lines(bs: list[dict]) -> list[str]:
    lines = ["buckets = ["]
    for b in bs:
        ts = ", ".join(f"times_b{bt} = [{', '.join(f'{x:.4g}' for x in v)}]" for bt, v in b["times"].items())
        lines.append(f'  {{ ks = "{b["ks"]}", {ts} }},')
    return [*lines, "]", ""]


def to_toml(meta: dict, table: dict, state_update: dict | None = None) -> str:
    lines = [
        "# Which kept-state counts k lower each SSM kernel's time: measured step structure, shipped as data.",
        "# Written by benchmarks/ssm_kernel_k_table.py from benchmarks/results/h200_ssm_kernel_k.json; read by",
        "# tracekit.analyzers.kernel_k (prune compare's kernel notes, prune apply --round-k). Times are medians",
        "# per layer on the 130m layer shapes; `times_bN = [min, median, max]` over the k of the bucket.",
        "",
        f'machine = "{MACHINE}"',
        'source = "benchmarks/results/h200_ssm_kernel_k.json"',
        f'software = "torch {meta["torch"]}, mamba-ssm {meta["mamba_ssm"]}, {meta["dtype"]}"',
        f'measured = "{meta.get("date", "")}"',
        "",
    ]
    for (kernel, arch, mode), bs in sorted(table.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        rule = (
            "block = next_power_of_2(k); k % 16 == 0 runs faster (Triton's divisibility specialisation)"
            if kernel == "selective_state_update"
            else "per measured k (time not flat in buckets)"
        )
        lines += [
            "[[kernel]]",
            f'name = "{kernel}"',
            f'arch = "{arch}"',
            f'mode = "{mode}"',
            f"dense_n = {DENSE_N[arch]}",
            f'unit = "{bs[0]["unit"]}"',
            f'rule = "{rule}"',
            *_bucket_lines(bs),
        ]
    if state_update is not None:
        v = state_update["versions"]
        lines += [
            "# tracekit's own state update (`--state-kernel tracekit`): measured at k = 32..128 step 16 only.",
            "[[kernel]]",
            f'name = "{TK_KERNEL}"',
            'arch = "mamba2"',
            'mode = "decode"',
            'state_kernel = "tracekit"',
            f"dense_n = {DENSE_N['mamba2']}",
            'unit = "us_per_layer"',
            'rule = "one masked block, no padding: time follows k (plus a fixed launch cost); k = 32..128 step 16"',
            f'source = "{STATE_UPDATE_SOURCE}"',
            f'software = "torch {v["torch"]}, triton {v["triton"]}, bfloat16"',
            *_bucket_lines(state_update_buckets(state_update)),
        ]
    return "\n".join(lines)


def to_md(meta: dict, table: dict) -> str:
    lines = [
        "# SSM kernel time vs kept states k (issue #11, kernel-aware ratios)",
        "",
        f"{MACHINE}: {meta['device']}, torch {meta['torch']}, mamba-ssm {meta['mamba_ssm']}, {meta['dtype']}, "
        f"{meta.get('date', '')}. Command: `python benchmarks/bench_ssm_kernel_k.py --out h200_ssm_kernel_k.json` "
        f"({meta['seconds']} s on the device); this page and `analyzers/rules/ssm_kernel_k.toml` are written from "
        "the JSON by `benchmarks/ssm_kernel_k_table.py`.",
        "",
        "Shapes: the 130m layers. Mamba-2: 24 heads × headdim 64, 1 group, chunk 256; Mamba-1: d_inner 1536. "
        "Decode (`selective_state_update`): 24 layers' states cycled (nothing sits in L2), the 24 launches in one "
        f"CUDA graph, median of {meta['replays']} replays, µs per layer. Prefill (`mamba_chunk_scan_combined`, "
        f"`selective_scan_fn`): seqlen {meta['seqlen']}, CUDA events after warm-up (Triton autotuning in the "
        f"warm-up), three input sets rotated, median of {meta['reps']}, ms per layer.",
        "",
    ]
    for (kernel, arch, mode), bs in sorted(table.items(), key=lambda kv: (kv[0][2], kv[0][1])):
        batches = sorted({b for x in bs for b in x["times"]})
        unit = "µs" if bs[0]["unit"] == "us_per_layer" else "ms"
        lines += [
            f"## {mode}: `{kernel}`, {arch} (dense N = {DENSE_N[arch]})",
            "",
            "| k | " + " | ".join(f"batch {b}: {unit}/layer (min–max)" for b in batches) + " |",
            "|" + " --- |" * (1 + len(batches)),
        ]
        for x in bs:
            cells = []
            for b in batches:
                lo, med, hi = x["times"].get(b, [None] * 3)
                if med is None:
                    cells.append("–")
                elif lo == hi:
                    cells.append(f"{med:.3g}")
                else:
                    cells.append(f"{med:.3g} ({lo:.3g}–{hi:.3g})")
            lines.append(f"| {x['ks']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("json")
    ap.add_argument("--md", required=True)
    ap.add_argument("--toml", required=True)
    ap.add_argument("--state-update", help="bench_state_update.py's JSON: adds tracekit's state update kernel")
    a = ap.parse_args()
    with open(a.json) as f:
        doc = json.load(f)
    su = None
    if a.state_update:
        with open(a.state_update) as f:
            su = json.load(f)
    table = buckets(doc["rows"])
    with open(a.toml, "w") as f:
        f.write(to_toml(doc["meta"], table, su))
    with open(a.md, "w") as f:
        f.write(to_md(doc["meta"], table))


if __name__ == "__main__":
    main()
