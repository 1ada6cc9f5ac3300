"""Ingest speed and memory: tracekit vs Holistic Trace Analysis on the same trace, in one run.

    python benchmarks/bench_ingest.py                         # the 40 MB decode trace, + HTA
    python benchmarks/bench_ingest.py --synthetic-gb 1        # also a 1 GB trace built from real events
    python benchmarks/bench_ingest.py --out benchmarks/results/ingest_cpu.json

Each tool runs in its own fresh subprocess (cold imports included, as a user sees it); wall time and the
child's peak RSS are taken with os.wait4. MB/s counts uncompressed JSON bytes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRACE = ROOT.parent / "shared" / "traces" / "mamba2-130m_generate_b8_p512_n32_h100.json.gz"

TRACEKIT_CHILD = """
import sys, tracekit
db = tracekit.open(sys.argv[1])
(r,) = db.ingest([sys.argv[2]], keep_going=False)
print(r.events, r.kernels, r.time_parse)
"""

HTA_CHILD = """
import sys, logging
logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis
ta = TraceAnalysis(trace_dir=sys.argv[1])
print(sum(len(t) for t in ta.t.traces.values()))
"""


def run_child(code: str, *args: str) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of `python -c code args`."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    return wall, usage.ru_maxrss * 1024, out.decode().strip()


def json_size(path: Path) -> int:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        return sum(len(c) for c in iter(lambda: f.read(1 << 20), b""))


def build_synthetic(src: Path, target_bytes: int, out: Path) -> Path:
    """A trace of ~target_bytes: copies of src's events shifted in time, ids offset so links stay unique."""
    with gzip.open(src, "rb") as f:
        doc = json.load(f)
    events = doc.pop("traceEvents")
    body = [e for e in events if e.get("ph") != "M"]
    meta = [e for e in events if e.get("ph") == "M"]
    span = max(e.get("ts", 0) + e.get("dur", 0) for e in body) - min(e.get("ts", 0) for e in body) + 1000.0
    one = len(json.dumps(body))
    copies = max(1, round(target_bytes / one))
    with open(out, "w") as f:
        f.write(json.dumps(doc)[:-1] + ', "traceEvents": [')
        f.write(json.dumps(meta)[1:-1])
        for k in range(copies):
            shift, off = k * span, k * 10_000_000
            chunk = []
            for e in body:
                e = dict(e)
                if "ts" in e:
                    e["ts"] = round(e["ts"] + shift, 3)
                a = e.get("args")
                if a:
                    a = dict(a)
                    for key in ("correlation", "External id"):
                        if key in a:
                            a[key] += off
                    e["args"] = a
                if "id" in e and isinstance(e["id"], int):
                    e["id"] += off
                chunk.append(e)
            f.write(", " + json.dumps(chunk)[1:-1])
        f.write("]}")
    return out


def bench(trace: Path, with_hta: bool) -> dict:
    size = json_size(trace)
    res: dict = {"trace": trace.name, "json_mb": round(size / 1e6, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        wall, rss, out = run_child(TRACEKIT_CHILD, str(Path(tmp) / "b.duckdb"), str(trace))
        res["tracekit"] = {
            "seconds": round(wall, 3),
            "mb_per_s": round(size / 1e6 / wall, 1),
            "peak_rss_mb": round(rss / 1e6),
            "rss_over_json": round(rss / size, 2),
            "output": out,
        }
    if with_hta:
        with tempfile.TemporaryDirectory() as tmp:
            os.symlink(trace.resolve(), Path(tmp) / trace.name)
            try:
                wall, rss, out = run_child(HTA_CHILD, tmp)
                res["hta"] = {
                    "seconds": round(wall, 3),
                    "mb_per_s": round(size / 1e6 / wall, 1),
                    "peak_rss_mb": round(rss / 1e6),
                    "events": out,
                }
                res["speedup_vs_hta"] = round(res["hta"]["seconds"] / res["tracekit"]["seconds"], 1)
            except (RuntimeError, OSError) as exc:
                res["hta"] = {"error": str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)}
    return res


def machine() -> dict:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--synthetic-gb", type=float, default=0.0, help="also ingest a synthetic trace of this size")
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    results = {"machine": machine(), "runs": [bench(args.trace, not args.no_hta)]}
    if args.synthetic_gb > 0:
        with tempfile.TemporaryDirectory() as tmp:
            big = build_synthetic(args.trace, int(args.synthetic_gb * 1e9), Path(tmp) / "synthetic.json")
            results["runs"].append(bench(big, with_hta=False))
    for r in results["runs"]:
        tk = r["tracekit"]
        line = (
            f"{r['trace']}: {r['json_mb']} MB JSON | tracekit {tk['seconds']} s, {tk['mb_per_s']} MB/s, "
            f"peak RSS {tk['peak_rss_mb']} MB ({tk['rss_over_json']}x JSON)"
        )
        if "seconds" in r.get("hta", {}):
            line += (
                f" | HTA {r['hta']['seconds']} s, {r['hta']['mb_per_s']} MB/s, "
                f"peak RSS {r['hta']['peak_rss_mb']} MB | tracekit {r['speedup_vs_hta']}x faster"
            )
        elif "hta" in r:
            line += f" | HTA failed: {r['hta']['error']}"
        print(line)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
