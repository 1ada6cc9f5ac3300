"""The SSM component before/after tracekit's state-update kernel, as `tracekit attribute` reports it (issue #14).

Reads the graph decode runs of one device call (layout below), attributes each trace with tracekit (template
alignment, manifest config) and writes one JSON row per (variant, state kernel): decode step time from the
manifest, the SSM component's time per step, achieved GB/s and % of roofline, and the state-update kernel alone
(its time per step and the state bytes it must read + write over that time).

    ROOT/collect_{mamba-ssm,tracekit}/               tracekit collect ... --cuda-graphs on --state-kernel KIND
    ROOT/cmp_{mamba-ssm,tracekit}/runs/{dense,physical_r0.25,physical_r0.5}/   prune compare --phase collect

    python benchmarks/state_update_attribution.py ROOT --out benchmarks/results/h200_state_update_attribution.json

`bench_state_update.py --render` adds the table to h200_state_update.md when this JSON sits beside its results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tracekit
from tracekit.artifacts.manifest import Manifest

KINDS = ("mamba-ssm", "tracekit")
UPDATE_KERNELS = ("_selective_scan_update_kernel", "_tk_selective_state_update_kernel")


def runs(root: Path) -> list[tuple[str, str, str, Path]]:
    """(variant, source, state kernel, run dir) in table order."""
    out = [("dense", "collect", k, root / f"collect_{k}") for k in KINDS]
    for v in ("dense", "physical_r0.25", "physical_r0.5"):
        out += [(v, "prune compare", k, root / f"cmp_{k}" / "runs" / v) for k in KINDS]
    return [r for r in out if (r[3] / "manifest.json").is_file()]


def row(db: tracekit.TraceDB, variant: str, source: str, kind: str, run: Path) -> dict:
    man = Manifest.read(run)
    (point,) = man.points
    if man.state_kernel != kind:
        raise SystemExit(f"{run}: manifest says state_kernel {man.state_kernel!r}, expected {kind!r}")
    trace = run / point.trace
    comp = db.attribute(trace).to_dict()
    kern = db.attribute(trace, by="kernel").to_dict()
    steps = comp["graph"]["replays"]
    (ssm,) = [r for r in comp["components"] if r["component"] == "ssm"]
    (upd,) = [r for r in kern["components"] if r["kernel"] in UPDATE_KERNELS]
    if upd["component"] != "ssm":
        raise SystemExit(f"{trace}: {upd['kernel']} attributed to {upd['component']}, not ssm")
    m = comp["model"]
    cfg = m["config"]
    state_bytes = 2 * m["batch"] * cfg["nheads"] * cfg["headdim"] * cfg["d_state"] * m["dtype_bytes"] * cfg["n_layer"]
    upd_ns = upd["time_ns"] / steps
    return {
        "variant": variant,
        "source": source,
        "state_kernel": kind,
        "d_state": cfg["d_state"],
        "batch": m["batch"],
        "steps": steps,
        "graph_aligned": f"{comp['graph']['aligned']}/{comp['graph']['replayed']}",
        "step_ms": point["timing"]["median_ms"],
        "kernel_us_per_step": comp["total"]["gpu_time_ns"] / steps / 1e3,
        "ssm_us_per_step": ssm["gpu_time_ns"] / steps / 1e3,
        "ssm_share": ssm["share"],
        "ssm_io_bytes_per_step": ssm["io_bytes"] // steps,
        "ssm_gbps": ssm["achieved_gbps"],
        "ssm_roofline_pct": ssm["roofline_pct"],
        "update_kernel": upd["kernel"],
        "update_us_per_step": upd_ns / 1e3,
        "update_state_gbps": state_bytes / upd_ns,
        "peak": comp["peak"],
        "device": comp["device"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    db = tracekit.open(":memory:")
    rows = [row(db, *r) for r in runs(args.root)]
    args.out.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    for r in rows:
        print(
            f"{r['variant']:15} {r['source']:13} {r['state_kernel']:9} step {r['step_ms'] * 1e3:7.1f} µs  "
            f"ssm {r['ssm_us_per_step']:6.1f} µs/step {r['ssm_gbps']:6.0f} GB/s {r['ssm_roofline_pct']:5.1f}%  "
            f"update {r['update_us_per_step']:6.1f} µs/step {r['update_state_gbps']:6.0f} GB/s"
        )


if __name__ == "__main__":
    main()
