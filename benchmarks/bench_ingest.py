"""Ingest speed and memory: tracekit vs Holistic Trace Analysis on the same trace, in one run.

    python benchmarks/bench_ingest.py                         # the 40 MB decode trace, + HTA
    python benchmarks/bench_ingest.py --synthetic-gb 1        # also a 1 GB trace built from real events
    python benchmarks/bench_ingest.py --synthetic-gb 1 --no-hta --cores 1,2,4,8,16   # scaling table
    python benchmarks/bench_ingest.py --out benchmarks/results/ingest_cpu.json
    python benchmarks/bench_ingest.py --baseline /tmp/tk_main --epoch --repeat 3 --check-exact   # issue #20

`--baseline DIR` runs a second tracekit source tree (another revision, e.g. `git archive main | tar -x -C DIR`)
on every trace too, alternating with this checkout run by run, and prints the ratio (baseline time / this
time; medians over `--repeat`). `--epoch` adds the trace with every `ts` shifted to epoch µs (+1.7e15 µs, the
digits kept as written: HTA's, TraceLens's and many users' traces). `--check-exact` ingests each trace once
more and compares `ts_ns`/`dur_ns` of every stored event with Python's json + Decimal (not for the synthetic).

Each tool runs in its own fresh subprocess (cold imports included, as a user sees it); wall time and the
child's peak RSS are taken with os.wait4. tracekit's child is an ingest-only process (the store's
`Database`, as `tracekit ingest` uses it); it also reports the ingest call's own time ("in process").
MB/s counts uncompressed JSON bytes. `--cores N` pins the child to N cores (sched_setaffinity) and sets
DuckDB's threads to N; core counts above this machine's are skipped.

Issue #13's targets, each printed met or not with its figure: the 40 MB trace whole process >= 5x HTA's
load; the 1 GB trace in process >= 100 MB/s on 2 cores and >= 400 MB/s on 16, peak RSS <= 2x the JSON.
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
import json, sys, time
import tracekit
from tracekit.store.database import Database
db = Database(sys.argv[1])
db.con.execute("SET enable_progress_bar = false")
if int(sys.argv[3]):
    db.con.execute(f"SET threads = {int(sys.argv[3])}")
t = time.perf_counter()
(r,) = db.ingest([sys.argv[2]], keep_going=False)
t = time.perf_counter() - t
db.close()
print(json.dumps({"events": r.events, "kernels": r.kernels, "time_parse": r.time_parse, "in_process_s": t,
                  "code": tracekit.__file__}))
"""
EPOCH_SHIFT_US = 1_700_000_000_000_000  # ≈ 2023-11 in µs since 1970: beyond 2^43 µs
TARGET_HTA = 5.0  # 40 MB trace, whole process: tracekit >= 5x faster than HTA's load
TARGET_MB_S = {2: 100.0, 16: 400.0}  # 1 GB trace in process, by core count
TARGET_RSS = 2.0  # peak RSS <= 2x the JSON (1 GB trace)

HTA_CHILD = """
import sys, logging
logging.disable(logging.WARNING)
from hta.trace_analysis import TraceAnalysis
ta = TraceAnalysis(trace_dir=sys.argv[1])
print(sum(len(t) for t in ta.t.traces.values()))
"""


def run_child(
    code: str, *args: str, cores: int = 0, env: dict | None = None, cwd: str | None = None
) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, stdout) of `python -c code args`, pinned to `cores` cores if > 0; the
    child's CPU seconds (user + system, all threads) are in LAST_CPU_S."""
    pin = (lambda: os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))) if cores else None
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=pin,
        env=os.environ | (env or {}),
        cwd=cwd,  # `python -c` imports from its working directory first: a baseline tree needs another one
    )
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    LAST_CPU_S[0] = usage.ru_utime + usage.ru_stime
    if status != 0:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    return wall, usage.ru_maxrss * 1024, out.decode().strip()


LAST_CPU_S = [0.0]  # CPU seconds of the last run_child: steadier than wall time on a machine shared with others


def json_size(path: Path) -> int:
    with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
        return sum(len(c) for c in iter(lambda: f.read(1 << 20), b""))


def build_synthetic(src: Path, target_bytes: int, out: Path) -> int:
    """A trace of ~target_bytes: copies of src's events shifted in time, ids offset so links stay unique.
    Returns its number of events."""
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
    return len(meta) + copies * len(body)


def shift_to_epoch(src: Path, out: Path) -> None:
    """`src` with every "ts" number shifted by EPOCH_SHIFT_US, its fraction digits kept as written."""
    import re

    with gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb") as f:
        raw = f.read()

    def shift(m: re.Match) -> bytes:
        return m.group(1) + str(int(m.group(2)) + EPOCH_SHIFT_US).encode() + (m.group(3) or b"")

    out.write_bytes(re.sub(rb'("ts"\s*:\s*)([0-9]+)(\.[0-9]+)?', shift, raw))


def check_exact(trace: Path) -> dict:
    """Ingest `trace` with this checkout and compare ts_ns/dur_ns of every events row (X events with a dur) with
    Python's json + Decimal: the count and the number of mismatches."""
    from decimal import Decimal

    sys.path.insert(0, str(ROOT))
    from tracekit.store.database import Database

    with gzip.open(trace, "rb") if trace.suffix == ".gz" else open(trace, "rb") as f:
        doc = json.loads(f.read(), parse_float=Decimal)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    want = {
        i: (int((Decimal(e["ts"]) * 1000).to_integral_value()), int((Decimal(e["dur"]) * 1000).to_integral_value()))
        for i, e in enumerate(events)
        if e.get("ph") == "X" and e.get("dur") is not None
    }
    del doc, events
    with tempfile.TemporaryDirectory() as tmp, Database(str(Path(tmp) / "x.duckdb")) as db:
        (r,) = db.ingest([trace], keep_going=False)
        got = db.con.execute("SELECT event_id, ts_ns, dur_ns FROM events WHERE ph = 'X'").fetchall()
    bad = sum(1 for e, ts, dur in got if want.get(e) != (ts, dur)) + abs(len(want) - len(got))
    return {"trace": trace.name, "events_checked": len(want), "mismatches": bad, "time_parse": r.time_parse}


def bench(
    trace: Path,
    with_hta: bool,
    cores: int = 0,
    events: int | None = None,
    part_mb: str = "",
    baseline: Path | None = None,
) -> dict:
    size = json_size(trace)
    res: dict = {"trace": trace.name, "json_mb": round(size / 1e6, 1), "cores": cores or len(os.sched_getaffinity(0))}
    env = {"TRACEKIT_PART_MB": part_mb} if part_mb else {}
    res["part_mb"] = part_mb or os.environ.get("TRACEKIT_PART_MB", "default")
    if baseline is not None:  # the other revision first, then this one: pairs taken back to back
        with tempfile.TemporaryDirectory() as tmp:
            wall, rss, out = run_child(
                TRACEKIT_CHILD, str(Path(tmp) / "b.duckdb"), str(trace), str(cores), cores=cores,
                env=env | {"PYTHONPATH": str(baseline)}, cwd=tmp,
            )  # fmt: skip
            child = json.loads(out.splitlines()[-1])
            if not child["code"].startswith(str(baseline)):
                raise RuntimeError(f"baseline child imported {child['code']}, not {baseline}")
            res["baseline"] = {
                "seconds": round(wall, 3),
                "cpu_s": round(LAST_CPU_S[0], 3),
                "in_process_s": round(child["in_process_s"], 3),
                "peak_rss_mb": round(rss / 1e6),
                "output": {k: child[k] for k in ("events", "kernels", "time_parse")},
            }
    with tempfile.TemporaryDirectory() as tmp:
        wall, rss, out = run_child(
            TRACEKIT_CHILD, str(Path(tmp) / "b.duckdb"), str(trace), str(cores), cores=cores, env=env, cwd=tmp
        )
        child = json.loads(out.splitlines()[-1])
        if events is not None and child["events"] != events:
            raise RuntimeError(f"{trace.name}: ingested {child['events']} events, the file has {events}")
        res["tracekit"] = {
            "seconds": round(wall, 3),
            "cpu_s": round(LAST_CPU_S[0], 3),
            "mb_per_s": round(size / 1e6 / wall, 1),
            "in_process_s": round(child["in_process_s"], 3),
            "in_process_mb_per_s": round(size / 1e6 / child["in_process_s"], 1),
            "peak_rss_mb": round(rss / 1e6),
            "rss_over_json": round(rss / size, 2),
            "output": {k: child[k] for k in ("events", "kernels", "time_parse")},
        }
    if "baseline" in res:
        b, t = res["baseline"], res["tracekit"]
        if b["output"]["events"] != t["output"]["events"] or b["output"]["kernels"] != t["output"]["kernels"]:
            raise RuntimeError(f"{trace.name}: baseline and this checkout ingested different counts: {b} {t}")
        res["speedup_vs_baseline"] = round(b["seconds"] / t["seconds"], 2)
        res["in_process_speedup_vs_baseline"] = round(b["in_process_s"] / t["in_process_s"], 2)
    if with_hta:
        with tempfile.TemporaryDirectory() as tmp:
            os.symlink(trace.resolve(), Path(tmp) / trace.name)
            try:
                wall, rss, out = run_child(HTA_CHILD, tmp, cores=cores)
                res["hta"] = {
                    "seconds": round(wall, 3),
                    "mb_per_s": round(size / 1e6 / wall, 1),
                    "peak_rss_mb": round(rss / 1e6),
                    "events": out,
                }
                res["speedup_vs_hta"] = round(res["hta"]["seconds"] / res["tracekit"]["seconds"], 2)
            except (RuntimeError, OSError) as exc:
                res["hta"] = {"error": str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)}
    return res


def verdicts(r: dict, synthetic: bool) -> list[str]:
    """Issue #13's targets that apply to one run, each met or not with the figure."""
    tk, out = r["tracekit"], []
    if not synthetic and "speedup_vs_hta" in r:
        x = r["speedup_vs_hta"]
        met = "met" if x >= TARGET_HTA else "NOT met"
        out.append(f"target 40 MB whole process >= {TARGET_HTA:g}x HTA: {x}x — {met}")
    if synthetic:
        mbs, rss = tk["in_process_mb_per_s"], tk["rss_over_json"]
        if r["cores"] in TARGET_MB_S:
            goal = TARGET_MB_S[r["cores"]]
            met = "met" if mbs >= goal else "NOT met"
            out.append(f"target 1 GB in process on {r['cores']} cores >= {goal:g} MB/s: {mbs} MB/s — {met}")
        met = "met" if rss <= TARGET_RSS else "NOT met"
        out.append(f"target peak RSS <= {TARGET_RSS:g}x JSON: {rss}x — {met}")
    return out


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


def report(r: dict) -> None:
    """Print one run and its targets (as soon as it is done: a long run that is cut short keeps its lines)."""
    tk = r["tracekit"]
    line = (
        f"{r['trace']}: {r['json_mb']} MB JSON, {r['cores']} cores, parts {r['part_mb']} MB | "
        f"tracekit {tk['seconds']} s whole process "
        f"({tk['mb_per_s']} MB/s), {tk['in_process_s']} s in process ({tk['in_process_mb_per_s']} MB/s), "
        f"peak RSS {tk['peak_rss_mb']} MB ({tk['rss_over_json']}x JSON)"
    )
    if "baseline" in r:
        line += (
            f" | baseline {r['baseline']['seconds']} s whole process, {r['baseline']['in_process_s']} s in process: "
            f"{r['speedup_vs_baseline']}x whole, {r['in_process_speedup_vs_baseline']}x in process"
        )
    if "seconds" in r.get("hta", {}):
        line += (
            f" | HTA {r['hta']['seconds']} s, {r['hta']['mb_per_s']} MB/s, "
            f"peak RSS {r['hta']['peak_rss_mb']} MB | tracekit {r['speedup_vs_hta']}x faster"
        )
    elif "hta" in r:
        line += f" | HTA failed: {r['hta']['error']}"
    print(line)
    for v in verdicts(r, r.get("synthetic", False)):
        print("    " + v)


def summarize(runs: list[dict]) -> None:
    """Medians per trace over the repeats: this checkout, the baseline, their ratio, HTA."""
    from statistics import median

    by: dict[str, list[dict]] = {}
    for r in runs:
        by.setdefault(r["trace"], []).append(r)
    for name, rs in by.items():
        med = {k: median(r["tracekit"][k] for r in rs) for k in ("seconds", "in_process_s", "peak_rss_mb", "cpu_s")}
        line = (
            f"median of {len(rs)}: {name} ({rs[0]['json_mb']} MB): {med['seconds']:.2f} s whole process, "
            f"{med['in_process_s']:.2f} s in process ({rs[0]['json_mb'] / med['in_process_s']:.1f} MB/s), "
            f"peak RSS {med['peak_rss_mb']:.0f} MB ({med['peak_rss_mb'] / rs[0]['json_mb']:.2f}x JSON), "
            f"{med['cpu_s']:.2f} CPU s"
        )
        if all("baseline" in r for r in rs):
            b = {k: median(r["baseline"][k] for r in rs) for k in ("seconds", "in_process_s", "cpu_s")}
            line += (
                f" | baseline {b['seconds']:.2f} s whole, {b['in_process_s']:.2f} s in process, "
                f"{b['cpu_s']:.2f} CPU s | "
                f"{b['cpu_s'] / med['cpu_s']:.2f}x CPU, "
                f"{b['seconds'] / med['seconds']:.2f}x whole process, {b['in_process_s'] / med['in_process_s']:.2f}x "
                f"in process (ratio of medians)"
            )
        hta = [r["hta"]["seconds"] for r in rs if "seconds" in r.get("hta", {})]
        if hta:
            line += f" | HTA {median(hta):.2f} s: {median(hta) / med['seconds']:.2f}x"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    ap.add_argument("--synthetic-gb", type=float, default=0.0, help="also ingest a synthetic trace of this size")
    ap.add_argument("--synthetic", type=Path, help="use (or build, if missing) the synthetic trace at this path")
    ap.add_argument("--cores", default="", help="comma-separated core counts for the scaling table, e.g. 1,2,4,8,16")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each row (all are kept in the JSON)")
    ap.add_argument(
        "--part-mb", default="", help="comma-separated TRACEKIT_PART_MB values to compare (0: the array as one file)"
    )
    ap.add_argument("--no-hta", action="store_true")
    ap.add_argument("--baseline", type=Path, help="another tracekit source tree to pair with this checkout")
    ap.add_argument("--epoch", action="store_true", help="also the trace shifted to epoch µs (ts + 1.7e15)")
    ap.add_argument("--check-exact", action="store_true", help="compare every stored ts/dur with json + Decimal")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    args = ap.parse_args()
    cores = [int(c) for c in args.cores.split(",") if c] or [0]
    avail = len(os.sched_getaffinity(0))
    skipped = [c for c in cores if c > avail]
    cores = [c for c in cores if c <= avail]
    results: dict = {"machine": machine(), "runs": [], "skipped_cores": skipped}

    def done(run: dict) -> None:
        results["runs"].append(run)
        report(run)
        if args.out:  # after every run, so a run cut short keeps what it measured
            args.out.write_text(json.dumps(results, indent=2) + "\n")

    parts = args.part_mb.split(",") if args.part_mb else [""]
    scratch = tempfile.TemporaryDirectory()
    traces = [args.trace]
    if args.epoch:
        traces.append(Path(scratch.name) / args.trace.name.replace(".json", "_epoch_us.json").removesuffix(".gz"))
        shift_to_epoch(args.trace, traces[-1])
    for c in cores:
        for _ in range(args.repeat):
            for trace in traces:
                for pm in parts:
                    done(bench(trace, not args.no_hta, cores=c, part_mb=pm, baseline=args.baseline))
    summarize(results["runs"])
    if args.check_exact:  # after the timed runs: a child forked from this process counts its memory in its RSS
        results["exact"] = [check_exact(t) for t in traces]
        for e in results["exact"]:
            print(
                f"exact: {e['trace']}: {e['mismatches']} mismatches in {e['events_checked']} events ({e['time_parse']})"
            )
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.synthetic_gb > 0 or args.synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            big = args.synthetic or Path(tmp) / "synthetic.json"
            count = None
            if not big.exists():
                count = build_synthetic(args.trace, int((args.synthetic_gb or 1) * 1e9), big)
            for c in cores:
                for _ in range(args.repeat):
                    for pm in parts:
                        row = bench(big, with_hta=False, cores=c, events=count, part_mb=pm, baseline=args.baseline)
                        done(row | {"synthetic": True})
        summarize(results["runs"])
    scratch.cleanup()
    if skipped:
        print(f"skipped core counts {skipped}: this machine has {avail}")


if __name__ == "__main__":
    main()
