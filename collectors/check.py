"""Check a collect run directory with a plain gzip+json reader (no duckdb: runs on the GPU machine).

`python -m tracekit.collectors.check [--present-only] RUN_DIR` validates manifest.json against the
schema and opens every trace: it must be complete gzip'd Chrome-trace JSON whose scopes match its
point (one top scope, one `decode.step.{k}` per decode step, every `layer.{i}` except in CUDA-graph
decode, whose replays run no module code). `--present-only` skips traces not copied along (a partial
run directory). Exit code 1 if anything is wrong.
"""

from __future__ import annotations

import collections
import gzip
import json
import sys
from pathlib import Path
from typing import Any

from tracekit.collectors import manifest as mf


def trace_summary(path: Path) -> dict[str, Any]:
    """Counts of what a trace holds: events, kernels, user scopes by name."""
    with gzip.open(path, "rt") as f:
        doc = json.load(f)
    events = doc["traceEvents"]
    scopes = collections.Counter(e["name"] for e in events if e.get("cat") == "user_annotation")
    kernels = sum(1 for e in events if e.get("cat") == "kernel")
    return {"events": len(events), "kernels": kernels, "scopes": dict(scopes)}


def check_point(run_dir: Path, e: dict[str, Any], n_layer: int, present_only: bool = False) -> list[str]:
    """Problems of one finished point's trace (empty: fine)."""
    if e["status"] != "ok" or not e.get("trace"):
        return []
    if not (run_dir / e["trace"]).is_file():
        return [] if present_only else [f"{e['trace']}: trace file missing"]
    s = trace_summary(run_dir / e["trace"])["scopes"]
    name = e["trace"]
    problems = []
    if s.get(e["mode"]) != 1:
        problems.append(f"{name}: expected one '{e['mode']}' scope, found {s.get(e['mode'], 0)}")
    if e["mode"] == "decode":
        steps = sorted(k for k in s if k.startswith("decode.step."))
        if len(steps) != e["decode_steps"]:
            problems.append(f"{name}: {len(steps)} decode.step scopes for {e['decode_steps']} steps")
    if not e["cuda_graphs"]:
        per_pass = 1 if e["mode"] == "prefill" else e["decode_steps"]
        for i in range(n_layer):
            if s.get(f"layer.{i}") != per_pass:
                problems.append(f"{name}: layer.{i} appears {s.get(f'layer.{i}', 0)} times, expected {per_pass}")
                break
    return problems


def check_run(run_dir: Path, present_only: bool = False) -> list[str]:
    """Schema errors plus trace problems; `present_only` skips traces not copied along (a partial run dir)."""
    doc = mf.read(run_dir / mf.MANIFEST)
    problems = mf.validate(doc)
    for e in doc["points"]:
        problems += check_point(run_dir, e, doc["models"][e["arch"]]["n_layer"], present_only)
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    present_only = "--present-only" in args
    args = [a for a in args if a != "--present-only"]
    if len(args) != 1:
        print("usage: python -m tracekit.collectors.check [--present-only] RUN_DIR", file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    doc = mf.read(run_dir / mf.MANIFEST)
    for e in doc["points"]:
        if e.get("trace") and e["status"] == "ok" and (run_dir / e["trace"]).is_file():
            t = trace_summary(run_dir / e["trace"])
            size = (run_dir / e["trace"]).stat().st_size
            n_layers = sum(1 for k in t["scopes"] if k.startswith("layer."))
            print(
                f"{e['trace']}: {size / 2**20:.2f} MiB gz, {t['events']} events, {t['kernels']} kernels, "
                f"{n_layers} layer scopes, components {sorted(k for k in t['scopes'] if k.startswith('component.'))}"
            )
    problems = check_run(run_dir, present_only)
    for p in problems:
        print("PROBLEM", p)
    print(f"{len(doc['points'])} points, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
