"""Where `prune compare`'s peak-memory figure comes from (issue #11: physical r=0.25 at 4.94 GB vs 1.01 dense).

Runs `tracekit prune compare --phase collect` in this process with PyTorch's allocator history on
(`torch.cuda.memory._record_memory_history`, Python stacks) and wraps the collector's window marks
(`measure._reset_peak` / `measure._peak`). For every point it writes, as JSON: the bytes allocated
when the window opens, `max_memory_allocated()` at its end, the same peak rebuilt from the allocator's
alloc/free events (a check), and the live blocks before the window and at the peak grouped by where
they were allocated (weights, inference state, CUDA-graph pool, prompt, …, with the allocating frames).

GPU only (mamba-ssm for --cuda-graphs on). The same flags as `prune compare`, plus --json:

    python benchmarks/check_prune_memory.py --json mem.json --out runs -- --arch mamba2 --preset 130m \
        --variants physical --ratios 0.25,0.5,0.75 --batch 64 --seqlens 2048 --mode decode --cuda-graphs on
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from typing import Any

import torch

POINTS: list[dict[str, Any]] = []
_STATE: dict[str, Any] = {}

# (category, marker in a frame's function name or file) — first match wins, searched innermost first
CATEGORIES = (
    ("graph pool (capture_graph)", "capture_graph"),
    ("inference state (allocate_inference_cache)", "allocate_inference_cache"),
    ("weights (model build / load)", "to_backend"),
    ("weights (model build / load)", "build_model"),
    ("prompt prefill (_decoder)", "_decoder"),
    ("decode steps (_decode_run)", "_decode_run"),
    ("prefill forward", "prefill"),
)


def _frames(ev: dict[str, Any]) -> list[str]:
    return [f"{f['filename'].rsplit('/', 2)[-1]}:{f['line']}:{f['name']}" for f in ev.get("frames", [])]


def _category(ev: dict[str, Any]) -> str:
    names = [f["name"] for f in ev.get("frames", [])]
    for cat, marker in CATEGORIES:
        if marker in names:
            return cat
    return "other"


def _where(ev: dict[str, Any]) -> str:
    """The innermost frames outside torch itself: where the block was asked for."""
    fr = [f for f in ev.get("frames", []) if "/torch/" not in f["filename"]]
    return " < ".join(f"{f['filename'].rsplit('/', 1)[-1]}:{f['line']}:{f['name']}" for f in fr[:4])


def _events() -> list[dict[str, Any]]:
    snap = torch.cuda.memory._snapshot()
    traces = snap["device_traces"]
    return traces[torch.cuda.current_device()] if traces else []


def _replay(evs: list[dict[str, Any]], start: int) -> dict[str, Any]:
    """Allocated bytes over the events; the live blocks at `start` and at the maximum after it."""
    live: dict[int, dict[str, Any]] = {}
    cur = 0
    at_start: dict[int, dict[str, Any]] | None = None
    best, best_live, best_i = -1, {}, None
    for i, ev in enumerate(evs):
        if i == start:
            at_start = dict(live)
            best, best_live, best_i = cur, dict(live), i
        a = ev["action"]
        if a == "alloc":
            live[ev["addr"]] = {**ev, "index": i}
            cur += ev["size"]
        elif a == "free_completed" and ev["addr"] in live:
            cur -= live.pop(ev["addr"])["size"]
        if i >= start and cur > best:
            best, best_live, best_i = cur, dict(live), i
    if at_start is None:
        at_start, best, best_live = dict(live), cur, dict(live)
    return {"start": at_start, "peak": best, "peak_live": best_live, "peak_index": best_i, "end": cur}


def _variant_at(index: int) -> str:
    """The compare variant whose collect was running when event `index` happened."""
    name = "before first variant"
    for label, start in _STATE.get("starts", []):
        if index >= start:
            name = label
    return name


def _groups(blocks: dict[int, dict[str, Any]], top: int = 10) -> dict[str, Any]:
    cats: dict[str, int] = defaultdict(int)
    where: dict[str, int] = defaultdict(int)
    variant: dict[str, int] = defaultdict(int)
    for ev in blocks.values():
        cats[_category(ev)] += ev["size"]
        where[_where(ev)] += ev["size"]
        variant[_variant_at(ev.get("index", 0))] += ev["size"]
    return {
        "total_bytes": sum(cats.values()),
        "by_category": dict(sorted(cats.items(), key=lambda kv: -kv[1])),
        "by_variant_allocated_in": dict(variant),
        "by_site": dict(sorted(where.items(), key=lambda kv: -kv[1])[:top]),
    }


def _stats() -> dict[str, int]:
    keys = (
        "allocated_bytes.all.current",
        "allocated_bytes.all.peak",
        "active_bytes.all.current",
        "active_bytes.all.peak",
        "requested_bytes.all.peak",
        "reserved_bytes.all.current",
        "num_alloc_retries",
        "num_sync_all_streams",
        "num_device_alloc",
        "num_device_free",
    )
    st = torch.cuda.memory_stats()
    return {k: st.get(k) for k in keys}


def _install() -> None:
    from tracekit.collectors import measure

    orig_reset, orig_peak = measure._reset_peak, measure._peak

    def reset(cuda: bool) -> int | None:
        value = orig_reset(cuda)
        if cuda:
            _STATE["reset_index"] = len(_events())
            _STATE["alloc_at_reset"] = torch.cuda.memory_allocated()
            _STATE["reserved_at_reset"] = torch.cuda.memory_reserved()
            _STATE["stats_at_reset"] = _stats()
        return value

    def peak(cuda: bool) -> int | None:
        value = orig_peak(cuda)
        if not cuda:
            return value
        evs = _events()
        start = _STATE["reset_index"]
        r = _replay(evs, start)
        POINTS.append(
            {
                "label": _STATE.get("label"),
                "max_memory_allocated": value,
                "allocated_at_window_start": _STATE["alloc_at_reset"],
                "reserved_at_window_start": _STATE["reserved_at_reset"],
                "reserved_at_peak_read": torch.cuda.memory_reserved(),
                "rebuilt_peak": r["peak"],
                "rebuilt_at_window_start": sum(e["size"] for e in r["start"].values()),
                "events_in_window": len(evs) - _STATE["reset_index"],
                "live_before_window": _groups(r["start"]),
                "live_at_peak": _groups(r["peak_live"]),
                "new_in_window_at_peak": _groups(
                    {a: e for a, e in r["peak_live"].items() if a not in r["start"] or r["start"][a] is not e}
                ),
            }
        )
        if os.environ.get("TRACEKIT_MEM_EVENTS"):
            POINTS[-1]["window_events"] = [
                {"i": i - start, "action": e["action"], "size": e["size"], "addr": e["addr"], "where": _where(e)}
                for i, e in enumerate(evs[start:], start)
                if e["action"] in ("alloc", "free_requested", "free_completed")
            ]
            fate: dict[str, int] = defaultdict(int)
            for a, blk in r["start"].items():
                req = [
                    j - start
                    for j, e in enumerate(evs)
                    if e["addr"] == a and e["action"] == "free_requested" and j > blk["index"]
                ]
                comp = [
                    j - start
                    for j, e in enumerate(evs)
                    if e["addr"] == a and e["action"] == "free_completed" and j > blk["index"]
                ]
                key = f"requested@{req[0] if req else None} completed@{comp[0] if comp else None} {_category(blk)}"
                fate[key] += blk["size"]
            POINTS[-1]["fate_of_blocks_live_at_start"] = dict(fate)
            POINTS[-1]["stats_at_reset"] = _STATE["stats_at_reset"]
            POINTS[-1]["stats_at_peak_read"] = _stats()
        print(json.dumps({k: v for k, v in POINTS[-1].items() if not k.startswith("live")})[:3000], flush=True)
        return value

    measure._reset_peak, measure._peak = reset, peak

    # label each point with the variant being collected (compare imports run_collect at call time)
    from tracekit.collectors import sweep

    orig = sweep.run_collect

    def run_collect(spec, **kw):
        _STATE["label"] = label = spec.out_dir.rsplit("/", 1)[-1]
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            _STATE.setdefault("starts", []).append((label, len(_events())))
            _STATE.setdefault("allocated_at_collect_start", {})[label] = torch.cuda.memory_allocated()
        return orig(spec, **kw)

    sweep.run_collect = run_collect

    from tracekit.prune import compare

    orig_build = compare.to_backend

    def to_backend(*a, **kw):
        if torch.cuda.is_available():
            n = sum(1 for lab, _ in _STATE.get("starts", []) if lab.startswith("model build"))
            _STATE.setdefault("starts", []).append((f"model build #{n + 1}", len(_events())))
        return orig_build(*a, **kw)

    compare.to_backend = to_backend


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__)
        return 2
    own, rest = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
    path = own[own.index("--json") + 1]
    out = own[own.index("--out") + 1]
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.memory._record_memory_history(max_entries=4_000_000, stacks="python")
    _install()
    from tracekit.cli.main import cli

    try:
        cli.main(["prune", "compare", *rest, "--out", out, "--phase", "collect"], standalone_mode=False)
    finally:
        if cuda:
            torch.cuda.memory._record_memory_history(enabled=None)
        with open(path, "w") as f:
            dev = torch.cuda.get_device_name() if cuda else "cpu"
            doc = {"device": dev, "argv": rest, "points": POINTS}
            doc["allocated_at_collect_start"] = _STATE.get("allocated_at_collect_start")
            json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
