"""`tracekit attribute` on the 40 MB decode trace (fresh database, ingest included) vs HTA's load +
get_gpu_kernel_breakdown on the same file, in one run. Prints both wall times and the ratio, and writes
benchmarks/results/attribute_cpu.md. Targets (issue 4): <= 1.5 s and >= 5x faster than HTA."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACE = ROOT.parent / "shared" / "traces" / "mamba2-130m_generate_b8_p512_n32_h100.json.gz"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def bench_tracekit(trace: Path) -> float:
    """The CLI end to end in a fresh process (imports, ingest, attribution, JSON output)."""
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tracekit.cli.main",
                "attribute",
                "--trace",
                str(trace),
                "--db",
                str(Path(d) / "b.duckdb"),
                "--format",
                "json",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - t0


_PHASES = """
import json, sys, tempfile, time
t0 = time.perf_counter()
import tracekit
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.components import load_rules
from tracekit.analyzers.breakdown import summarize
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    db = tracekit.open(d + "/p.duckdb")
    tid = db.ingest([sys.argv[1]])[0].trace_id
    t2 = time.perf_counter()
    att = attribute(db.con, tid, load_rules())
    t3 = time.perf_counter()
    doc = summarize(db.con, att).to_json()
    t4 = time.perf_counter()
    db.close()
print(json.dumps({"import": t1 - t0, "ingest": t2 - t1, "attribute": t3 - t2, "summarize": t4 - t3}))
"""


def phases(trace: Path) -> dict[str, float]:
    """Where one fresh-process run spends its time (imports, ingest, attribution, summary)."""
    import json

    out = subprocess.run([sys.executable, "-c", _PHASES, str(trace)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_hta(trace: Path) -> float:
    code = (
        "import sys; from tracekit.analyzers.hta_check import hta_kernel_breakdown; hta_kernel_breakdown(sys.argv[1])"
    )
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, str(trace)], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - t0


def main() -> None:
    if not TRACE.exists():
        sys.exit(f"trace not found: {TRACE}")
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    tk = sorted(bench_tracekit(TRACE) for _ in range(runs))
    hta = sorted(bench_hta(TRACE) for _ in range(runs))
    tk_med, hta_med = tk[len(tk) // 2], hta[len(hta) // 2]
    ratio = hta_med / tk_med
    ph = phases(TRACE)
    load = os.getloadavg()[0]
    machine = (
        f"{os.cpu_count()} cores (nproc), {_cpu_model()}, Python {platform.python_version()}, "
        f"load average {load:.1f} when measured"
    )
    import gzip

    with gzip.open(TRACE, "rb") as f:
        json_mb = len(f.read()) / 1e6
    lines = [
        "# `tracekit attribute` vs HTA on the 40 MB decode trace",
        "",
        f"Trace: `{TRACE.name}` ({json_mb:.1f} MB JSON, {TRACE.stat().st_size / 1e6:.1f} MB gzip). Machine: {machine}.",
        f"Median of {runs} runs, each a fresh process; tracekit uses a fresh database (ingest included).",
        "",
        "| tool | what | wall s (median) | all runs |",
        "| --- | --- | --- | --- |",
        f"| tracekit | `tracekit attribute --trace ... --db NEW --format json` | {tk_med:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in tk)} |",
        f"| HTA 0.5 | `TraceAnalysis(trace_dir)` + `get_gpu_kernel_breakdown` | {hta_med:.2f} | "
        f"{', '.join(f'{x:.2f}' for x in hta)} |",
        "",
        f"Ratio HTA / tracekit: **{ratio:.1f}x**. Targets: tracekit <= 1.5 s "
        f"({'met' if tk_med <= 1.5 else 'NOT met'}), >= 5x faster than HTA ({'met' if ratio >= 5 else 'NOT met'}).",
        "",
        "Phases of one fresh tracekit process (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in ph.items())
        + ". The store's ingest (tracekit/store) is most of the wall time; attribution + summary is the rest.",
        "5x HTA means the whole process in HTA / 5 (~0.8 s). The ingest alone needs ~0.65 s by the measured",
        "floors in `ingest_cpu.md` ('Why the two speed targets are out of reach': interpreter + DuckDB import,",
        "inflate, hash, DuckDB's parse, then nesting, links, inserts, commit); with attribution and the",
        "summary (~0.26 s) that is ~0.9 s, before click/rich/polars imports.",
        "",
        "Reproduce: `python benchmarks/bench_attribute.py` (BENCH_RUNS=N to change the run count).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / "results" / "attribute_cpu.md").write_text(text)


if __name__ == "__main__":
    main()
