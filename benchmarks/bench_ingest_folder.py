"""Folder ingest: many small traces, serial vs worker processes vs a lake, in one run.

    python benchmarks/bench_ingest_folder.py                       # 54 traces: 3 distinct copies of each
                                                                   # trace of h100_collect_130m
    python benchmarks/bench_ingest_folder.py --copies 1 --out benchmarks/results/ingest_folder_cpu.json

The folder holds `--copies` distinct copies of every trace of benchmarks/results/h100_collect_130m (a copy
differs by one top-level key, so its content hash differs and it is really ingested; the events are the
same). Each row is `tracekit ingest FOLDER` in a fresh process (cold imports and worker start-up included,
as a user sees it), into a new DuckDB file or lake; the peer is the serial ingest (`--workers 1`, today's
path). MB/s counts decompressed JSON. Every row's tables are checked equal to the serial row's.

The last row (issue #20's target: a folder serially in at most 1.5x the time of one trace holding the same events)
ingests one trace made of every event of the folder's traces, each trace's times shifted past the previous one's
and its correlation / External id / flow ids offset, so its links stay its own. `--repeat N` runs the serial and
the one-trace rows N times, alternating, and reports medians (a noisy shared machine).
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
SRC = ROOT / "benchmarks" / "results" / "h100_collect_130m"


def build_folder(out: Path, copies: int) -> tuple[int, int]:
    """(traces, JSON bytes) of the folder written to `out`."""
    n = total = 0
    for src in sorted(SRC.glob("*.json.gz")):
        doc = json.loads(gzip.decompress(src.read_bytes()))
        for c in range(copies):
            doc["benchCopy"] = c
            data = json.dumps(doc).encode()
            (out / f"{src.name.removesuffix('.json.gz')}_c{c}.json.gz").write_bytes(gzip.compress(data, 1))
            n += 1
            total += len(data)
    return n, total


def build_one_trace(folder: Path, out: Path) -> int:
    """One trace holding every event of the folder's traces (see the module's docstring); returns JSON bytes."""
    events: list = []
    shift = 0.0
    for k, src in enumerate(sorted(folder.glob("*.json.gz"))):
        doc = json.loads(gzip.decompress(src.read_bytes()))
        body = doc["traceEvents"]
        timed = [e for e in body if isinstance(e.get("ts"), int | float)]
        start = min((e["ts"] for e in timed), default=0.0)
        end = max((e["ts"] + (e.get("dur") or 0) for e in timed), default=0.0)
        off = k * 10_000_000
        for e in body:
            if isinstance(e.get("ts"), int | float):
                e["ts"] = round(e["ts"] - start + shift, 3)
            a = e.get("args")
            if isinstance(a, dict):
                for key in ("correlation", "External id"):
                    if isinstance(a.get(key), int):
                        a[key] += off
            if isinstance(e.get("id"), int):
                e["id"] += off
            events.append(e)
        shift += end - start + 1000.0
    data = json.dumps({"traceEvents": events}).encode()
    out.write_bytes(gzip.compress(data, 1))
    return len(data)


def run(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "tracekit.cli.main", *args], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-2000:])
    return wall


def tables_digest(store: Path, lake: bool) -> list:
    """Per base table: row count and an order-independent hash of its rows, with each row's trace named by
    its content hash (a lake written by several workers numbers traces in commit order); ingested_at left out."""
    sys.path.insert(0, str(ROOT))
    from tracekit.store.database import BASE_TABLES, Database
    from tracekit.store.lake import open_lake

    # the store layer only (no polars: the bench also runs on the GPU machine, which has none)
    db = open_lake(store) if lake else Database(store, read_only=True)
    out = []
    try:
        for t in BASE_TABLES:
            cols = [r[0] for r in db.con.execute(f"DESCRIBE {t}").fetchall() if r[0] not in ("ingested_at", "trace_id")]
            sel = ", ".join(f'x."{c}"' for c in cols)
            out.append(
                db.con.execute(
                    f"SELECT count(*), sum(hash((s.sha256, {sel}))) FROM {t} x "
                    "JOIN (SELECT trace_id, sha256 FROM traces) s USING (trace_id)"
                ).fetchone()
            )
    finally:
        db.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--copies", type=int, default=3)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int, default=1, help="serial and one-trace runs, alternating (medians)")
    ap.add_argument("--only-serial", action="store_true", help="skip the worker and lake rows")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-folder-") as tmp:
        tmp = Path(tmp)
        folder = tmp / "traces"
        folder.mkdir()
        n, json_bytes = build_folder(folder, a.copies)
        rows = []
        cases = [
            ("serial (--workers 1)", ["--db", str(tmp / "serial.duckdb"), "--workers", "1"], False),
            (f"workers {a.workers} → DuckDB", ["--db", str(tmp / "par.duckdb"), "--workers", str(a.workers)], False),
            (f"workers {a.workers} → lake", ["--lake", str(tmp / "lake"), "--workers", str(a.workers)], True),
        ]
        if a.only_serial:
            cases = cases[:1]
        digests = {}
        for name, extra, lake in cases:
            store = Path(extra[1])
            wall = run(["ingest", str(folder), *extra, "--format", "csv"])
            digests[name] = tables_digest(store, lake)
            rows.append(
                {
                    "case": name,
                    "seconds": round(wall, 2),
                    "mb_per_s": round(json_bytes / 1e6 / wall, 1),
                    "traces_per_s": round(n / wall, 2),
                }
            )
        base = rows[0]["seconds"]
        for r in rows:
            r["speedup_vs_serial"] = round(base / r["seconds"], 2)
            r["same_tables_as_serial"] = digests[r["case"]] == digests[rows[0]["case"]]
        one = tmp / "one_trace.json.gz"
        one_bytes = build_one_trace(folder, one)
        serial_s, one_s = [rows[0]["seconds"]], []
        for k in range(a.repeat):
            if k:
                (tmp / "serial2.duckdb").unlink(missing_ok=True)
                serial_s.append(run(["ingest", str(folder), "--db", str(tmp / "serial2.duckdb"), "--workers", "1"]))
            (tmp / "one.duckdb").unlink(missing_ok=True)
            one_s.append(run(["ingest", str(one), "--db", str(tmp / "one.duckdb"), "--format", "csv"]))
        from statistics import median

        rows[0]["seconds_runs"] = [round(x, 2) for x in serial_s]
        rows[0]["seconds"] = round(median(serial_s), 2)  # the worker rows' ratios stay against the first run
        rows.append(
            {
                "case": "one trace, same events",
                "seconds": round(median(one_s), 2),
                "seconds_runs": [round(x, 2) for x in one_s],
                "mb_per_s": round(one_bytes / 1e6 / median(one_s), 1),
                "traces_per_s": round(1 / median(one_s), 2),
                "speedup_vs_serial": round(median(serial_s) / median(one_s), 2),
                "same_tables_as_serial": None,
            }
        )
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores "
        f"(this process may use), {platform.python_version()}",
        "traces": n,
        "json_mb": round(json_bytes / 1e6, 1),
        "rows": rows,
        "serial_over_one_trace": rows[-1]["speedup_vs_serial"],
    }
    print(f"{n} traces, {json_bytes / 1e6:.1f} MB of JSON; {result['machine']}")
    print(f"{'case':28} {'s':>7} {'MB/s':>7} {'traces/s':>9} {'× serial':>9}  same tables")
    for r in rows:
        print(
            f"{r['case']:28} {r['seconds']:7.2f} {r['mb_per_s']:7.1f} {r['traces_per_s']:9.2f} "
            f"{r['speedup_vs_serial']:9.2f}  {r['same_tables_as_serial']}"
        )
    print(f"folder serial / one trace holding the same events: {result['serial_over_one_trace']}x (target <= 1.5x)")
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
