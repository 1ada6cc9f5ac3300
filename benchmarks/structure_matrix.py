"""Attribution from structure alone vs the scoped reference, on real GPU traces made plain (issue #19).

    python benchmarks/structure_matrix.py --out benchmarks/results/structure_matrix_cpu.md
    python benchmarks/structure_matrix.py --gpu DIR --out benchmarks/results/structure_matrix_gpu.md

`--gpu DIR`: traces recorded with plain `torch.profiler` on the GPU machine (`benchmarks/plain_profile_matrix.sh`:
DIR/plain/points.json lists them) against `tracekit collect`'s scoped reference of the same point (DIR/ref),
recorded separately: see `gpu_matrix`.

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


IN_LAYER = ("time", "flops", "io")


def in_layer(db: tracekit.TraceDB, path: Path) -> tuple[dict[str, dict[str, int | None]], dict]:
    """Per component, the time, FLOPs and minimal I/O inside the layers (no flags: a manifest beside the trace
    is read, as `tracekit attribute` does), and the report."""
    report = db.attribute(path, by="layer").to_dict()
    out: dict[str, dict[str, int | None]] = {c: {"time": 0, "flops": 0, "io": 0} for c in COMPONENTS}
    for row in report["components"]:
        if row["layer"] is None:
            continue
        got = out[row["component"]]
        time_ns = row["gpu_time_ns"] if report["time_source"] == "gpu" else row["cpu_self_ns"]
        for key, value in zip(IN_LAYER, (time_ns, row["flops"], row["io_bytes"]), strict=True):
            got[key] = None if got[key] is None or value is None else got[key] + value
    return out, report


def shares(parts: dict[str, dict[str, int | None]]) -> dict[str, float]:
    total = sum(int(v["time"] or 0) for v in parts.values()) or 1
    return {c: 100 * int(parts[c]["time"] or 0) / total for c in COMPONENTS}


def add(a: dict[str, dict[str, int | None]], b: dict[str, dict[str, int | None]]) -> dict[str, dict[str, int | None]]:
    return {c: {k: None if a[c][k] is None or b[c][k] is None else a[c][k] + b[c][k] for k in IN_LAYER} for c in a}


def max_rel_err(ref: dict, got: dict, key: str) -> float | None:
    """Largest relative difference (%) of `key` over components where both traces have it (None: none has)."""
    errs = [
        100 * abs(got[c][key] - ref[c][key]) / ref[c][key]
        for c in COMPONENTS
        if ref[c][key] and got[c][key] is not None
    ]
    return max(errs) if errs else None


def gpu_matrix(root: Path) -> list[dict]:
    """Each plain trace vs its scoped reference, recorded separately on the same GPU (same shapes and widths).

    forward = collect's prefill point; `generate` of n tokens = one prompt forward + (n - 1) decode steps, so its
    reference is the prefill point plus the decode point (`--decode-steps n-1`; eager, or the CUDA-graph point
    for `generate(cg=True)`, whose template step attribution leaves out). Shares are each component's share of
    the time inside the layers, each trace on its own kernel times.
    """
    points = json.loads((root / "plain" / "points.json").read_text())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db = tracekit.open(Path(tmp) / "m.duckdb")
        refs: dict[Path, dict] = {}

        def ref_of(path: Path) -> dict:
            if path not in refs:
                refs[path] = in_layer(db, path)[0]
            return refs[path]

        for p in points:
            t0 = time.perf_counter()
            run = root / "ref" / f"{p['backend']}_b{p['batch']}"
            stem = f"{p['arch']}_{{}}_b{p['batch']}_l{p['prompt']}"
            ref = ref_of(run / f"{stem.format('prefill')}.json.gz")
            if p["mode"] != "forward":
                cg = "_cg" if p["mode"] == "generate_cg" else ""
                ref = add(ref, ref_of(run / f"{stem.format('decode')}{cg}.json.gz"))
            got, report = in_layer(db, root / "plain" / p["trace"])
            a, b = shares(ref), shares(got)
            err = {c: b[c] - a[c] for c in COMPONENTS}
            worst = max(err, key=lambda c: abs(err[c]))
            row = {
                **{k: p[k] for k in ("trace", "backend", "arch", "mode", "batch", "record_shapes", "with_stack")},
                "gpu": p["gpu"],
                "max_err_pts": abs(err[worst]),
                "worst": f"{worst} {a[worst]:.1f}% -> {b[worst]:.1f}%",
                "shares_ref": a,
                "shares_plain": b,
                "other_plain_pct": 100
                * sum(r["busy_ns"] or 0 for r in report["components"] if r["component"] == "other")
                / (report["total"]["busy_ns"] or 1),
                "flops_err_pct": max_rel_err(ref, got, "flops"),
                "io_err_pct": max_rel_err(ref, got, "io"),
                "layer_source": report["layer_source"],
                "config_source": report["model"]["config_source"] if report["model"] else None,
            }
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if not k.startswith("shares")}), flush=True)
            print(f"  {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return rows


def write_gpu(rows: list[dict], out: Path | None) -> None:
    """The GPU matrix as markdown (and the rows as JSON beside it)."""
    gpus = sorted({r["gpu"] for r in rows})
    lines = [
        "# Plain `torch.profiler` GPU traces vs the scoped reference (issue #19)",
        "",
        f"Recorded on {', '.join(gpus)} (`benchmarks/plain_profile_matrix.sh`: plain traces by "
        "`benchmarks/plain_profile_matrix.py`, no tracekit code in that process; references by `tracekit collect`, "
        "same shapes and widths); attributed on "
        f"{cpu_name()} by `python benchmarks/structure_matrix.py --gpu DIR`, each plain trace with no flags. "
        "Error = largest |plain − reference| share of in-layer time over the components, each trace on its own "
        "kernel times (two recordings: forward vs collect's prefill point; `generate` of 6 tokens vs prefill + "
        "5 decode steps, eager or CUDA-graph). FLOPs / I/O: largest relative error of in-layer per-component "
        "totals where both traces have them (– : the plain trace has none; without shapes they need the batch).",
        "",
        "| backend | arch | mode | batch | shapes | stack | max share error (pts) | worst component: ref → plain "
        "| FLOPs err | I/O err | other (all time) |",
        "| --- | --- | --- | ---: | --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    pct = lambda v: "–" if v is None else f"{v:.2f}%"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['arch']} | {r['mode']} | {r['batch']} | {'on' if r['record_shapes'] else 'off'} | "
            f"{'on' if r['with_stack'] else 'off'} | {r['max_err_pts']:.2f} | {r['worst']} | {pct(r['flops_err_pct'])} "
            f"| {pct(r['io_err_pct'])} | {r['other_plain_pct']:.1f}% |"
        )
    worst = max(rows, key=lambda r: r["max_err_pts"])
    lines += ["", f"{len(rows)} traces; largest error {worst['max_err_pts']:.2f} pts ({worst['trace']})."]
    text = "\n".join(lines) + "\n"
    if out:
        out.write_text(text)
        out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--traces", nargs="*", type=Path)
    ap.add_argument("--gpu", type=Path, help="a folder made by benchmarks/plain_profile_matrix.sh (plain/, ref/)")
    args = ap.parse_args()
    if args.gpu:
        write_gpu(gpu_matrix(args.gpu), args.out)
        return
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
