"""Attribution from structure alone vs the scoped reference, on real GPU traces made plain (issue #19).

    python benchmarks/structure_matrix.py --out benchmarks/results/structure_matrix_cpu.md

Each trace recorded by `tracekit collect` on an H100 / H200 (scopes, and on CUDA-graph traces a template
step) is copied as a plain `torch.profiler` recording of the same run would be: (a) without tracekit's
scopes and template step, shapes kept (`record_shapes=True`); (b) also without shapes (profiler defaults).
Both copies are attributed with no flags and no manifest, and compared kernel by kernel with the scoped
original: the largest in-layer share error (each component's share of the time inside layers, on the
same kernel times), the kernels whose component differs, and `other`'s share of all kernel time.
CUDA-graph traces are compared on their replays (the reference holds its template step out).
The GPU recordings were made earlier (machines in each folder's README); this script needs no GPU.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.components import COMPONENTS, load_rules

import tracekit

ROOT = Path(__file__).resolve().parents[1]

SCOPE = re.compile(r"^(layer\.\d+|component\..*|prefill|decode(\.step\.\d+)?|tracekit\..*)$")
SHAPE_KEYS = ("Input Dims", "Input type", "Input Strides", "Concrete Inputs")


def cpu_name() -> str:
    """The processor model and core count, for the results' header."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.machine()
    return f"{model}, {os.cpu_count()} cores"


def plain_copy(src: Path, dst: Path, shapes: bool) -> Path:
    with gzip.open(src, "rt") as f:
        data = json.load(f)
    keep = []
    for e in data["traceEvents"]:
        if e.get("cat") in ("user_annotation", "gpu_user_annotation") and SCOPE.match(str(e.get("name", ""))):
            continue
        if not shapes and isinstance(e.get("args"), dict):
            for k in SHAPE_KEYS:
                e["args"].pop(k, None)
        keep.append(e)
    data["traceEvents"] = keep
    dst.write_text(json.dumps(data))
    return dst


def units(db: tracekit.TraceDB, path: Path) -> pl.DataFrame:
    [res] = db.ingest([path], keep_going=False)
    return attribute(db.con, res.trace_id, load_rules()).units.sort("ts_ns", "event_id")


def in_layer_shares(u: pl.DataFrame) -> dict[str, float]:
    inl = u.filter(pl.col("layer").is_not_null())
    got = dict(inl.group_by("component").agg(pl.col("dur_ns").sum()).iter_rows())
    total = sum(got.values()) or 1
    return {c: 100 * got.get(c, 0) / total for c in COMPONENTS}


def compare(ref: pl.DataFrame, plain: pl.DataFrame) -> dict:
    if ref.height != plain.height:
        ref = ref.filter(pl.col("launcher") == "cudaGraphLaunch")
        plain = plain.filter(pl.col("launcher") == "cudaGraphLaunch")
    assert ref["kernel"].to_list() == plain["kernel"].to_list()
    plain = plain.with_columns(ref["dur_ns"].alias("dur_ns"))
    a, b = in_layer_shares(ref), in_layer_shares(plain)
    differ = plain.filter(pl.col("component") != ref["component"])
    total = int(ref["dur_ns"].sum())
    other = lambda u: 100 * int(u.filter(pl.col("component") == "other")["dur_ns"].sum()) / total  # noqa: E731
    return {
        "kernels": ref.height,
        "max_err_pts": max(abs(a[c] - b[c]) for c in COMPONENTS),
        "differ": differ.height,
        "differ_pct": 100 * int(differ["dur_ns"].sum()) / total,
        "other_ref": other(ref),
        "other_plain": other(plain),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--traces", nargs="*", type=Path)
    args = ap.parse_args()
    traces = args.traces or [
        *sorted((ROOT / "tests" / "data" / "h100").glob("*.json.gz")),
        *sorted((ROOT / "tests" / "data" / "h200_graph").glob("*/*.json.gz")),
        *sorted((ROOT / "benchmarks" / "results" / "h100_collect_130m").glob("*.json.gz")),
        *sorted((ROOT.parent / "shared" / "traces").glob("mamba2-130m_generate*.json.gz")),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = tracekit.open(Path(tmp) / "m.duckdb")
        for t in traces:
            t0 = time.perf_counter()
            ref = units(db, t)
            for shapes in (True, False):
                plain = units(db, plain_copy(t, Path(tmp) / f"{t.stem}_{shapes}.json", shapes))
                row = {"trace": f"{t.parent.name}/{t.name}", "shapes": shapes, **compare(ref, plain)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    lines = [
        "# Attribution from structure alone vs the scoped reference (issue #19)",
        "",
        f"`python benchmarks/structure_matrix.py` on {cpu_name()} (CPU only; the traces were recorded on the "
        "GPUs named in their folders' READMEs). Plain copy = the trace without tracekit's scopes and template step; "
        "shapes off = also without `Input Dims`/`Input type` (profiler defaults). Attributed with no flags, "
        "no manifest; compared kernel by kernel with the scoped original (graph traces: on their replays).",
        "",
        "| trace | shapes | kernels | max in-layer share error (pts) | kernels in another component | "
        "time in them | other: scoped / plain |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['trace']} | {'on' if r['shapes'] else 'off'} | {r['kernels']} | {r['max_err_pts']:.2f} | "
            f"{r['differ']} | {r['differ_pct']:.2f}% | {r['other_ref']:.1f}% / {r['other_plain']:.1f}% |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
