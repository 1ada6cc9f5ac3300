"""An independent reader of Kineto traces: the standard json module with exact Decimal numbers.

Deliberately naive (the whole file in memory): it is the yardstick tracekit's ingest is checked against.
"""

from __future__ import annotations

import bz2
import collections
import dataclasses
import gzip
import io
import json
import lzma
from decimal import Decimal
from pathlib import Path
from typing import Any


def raw_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed by magic number: gzip, xz, bzip2, zstd (via `zstandard`) or none."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        return gzip.decompress(raw)
    if raw[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(raw)
    if raw[:3] == b"BZh":
        return bz2.decompress(raw)
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
        return b"".join(iter(lambda: reader.read(1 << 20), b""))
    return raw


def load(path: Path) -> dict[str, Any]:
    """The whole trace as a dict; the bare top-level array form becomes {"traceEvents": [...]}."""
    doc = json.loads(raw_bytes(path), parse_float=Decimal)
    return doc if isinstance(doc, dict) else {"traceEvents": doc}


def ns(x: Any) -> int:
    return int((Decimal(x) * 1000).to_integral_value())


def summary(path: Path) -> dict[str, Any]:
    events = load(path)["traceEvents"]
    x = [e for e in events if e.get("ph") == "X" and e.get("dur") is not None]  # without dur: unfinished, no slice
    kernels = [e for e in x if e.get("cat") == "kernel"]
    return {
        "events": len(events),
        "x_per_cat": collections.Counter(e.get("cat") for e in x),
        "kernels": len(kernels),
        "kernel_ns": sum(ns(e["dur"]) for e in kernels),
        "kernel_ts": sorted(ns(e["ts"]) for e in kernels),
        "memory": sum(1 for e in events if e.get("ph") in ("i", "I") and e.get("name") == "[memory]"),
        "memory_bytes": sum(
            int(e["args"]["Bytes"]) for e in events if e.get("ph") in ("i", "I") and e.get("name") == "[memory]"
        ),
        "flow_ids": len({(e.get("cat"), str(e["id"])) for e in events if e.get("ph") in ("s", "f", "t")}),
        "per_kernel_name_ns": collections.Counter({n: v for n, v in _sum_by(kernels, "name").items()}),
    }


def _sum_by(events: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = collections.defaultdict(int)
    for e in events:
        out[e[key]] += ns(e["dur"])
    return dict(out)


# ---- plain Chrome JSON: B/E and async pairing with an explicit stack (independent of tracekit's SQL) ----


def _track(e: dict[str, Any]) -> tuple[str | None, str | None]:
    pid, tid = e.get("pid"), e.get("tid")
    return (None if pid is None else str(pid), None if tid is None else str(tid))


def _pair(events: list[dict[str, Any]], begin: str, end: str, key: Any) -> tuple[list[tuple], list[int], list[int]]:
    """Stack pairing in (ts, file position) order: ([(begin index, end index, depth)], lost ends, open begins)."""
    stacks: dict[Any, list[int]] = collections.defaultdict(list)
    pairs, lost = [], []
    order = sorted((ns(e["ts"]), i) for i, e in enumerate(events) if e.get("ph") in (begin, end) and key(e) is not None)
    for _, i in order:
        st = stacks[key(events[i])]
        if events[i]["ph"] == begin:
            st.append(i)
        elif st:
            depth = len(st) - 1
            pairs.append((st.pop(), i, depth))
        else:
            lost.append(i)
    return pairs, sorted(lost), sorted(i for st in stacks.values() for i in st)


def _merged(b: dict[str, Any], e: dict[str, Any]) -> Any:
    if "args" not in e:
        return b.get("args")
    if "args" not in b:
        return e.get("args")
    return _merge_patch(b["args"], e["args"])


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge recursively, the patch's values win, a null in the patch removes the key."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out


def slices(path: Path) -> dict[str, Any]:
    """X events and B/E pairs with exact ts/dur, merged args and nesting; unmatched B and E positions."""
    events = load(path)["traceEvents"]
    pairs, lost, open_ = _pair(events, "B", "E", _track)
    rows = []
    for i, e in enumerate(events):
        if e.get("ph") == "X" and e.get("dur") is not None:  # without dur: unfinished, no slice
            rows.append(
                {
                    "event_id": i,
                    "ph": "X",
                    "name": e.get("name"),
                    "track": _track(e),
                    "ts_ns": ns(e["ts"]),
                    "dur_ns": ns(e["dur"]),
                    "args": e.get("args"),
                }
            )
    for b, end, _ in pairs:
        eb, ee = events[b], events[end]
        rows.append(
            {
                "event_id": b,
                "ph": "B",
                "name": eb.get("name"),
                "track": _track(eb),
                "ts_ns": ns(eb["ts"]),
                "dur_ns": ns(ee["ts"]) - ns(eb["ts"]),
                "args": _merged(eb, ee),
            }
        )
    # nesting: per track, starts by (ts, longer first, position); an event encloses what starts before its end
    stacks: dict[Any, list[dict[str, Any]]] = collections.defaultdict(list)
    for r in sorted(rows, key=lambda r: (r["ts_ns"], -r["dur_ns"], r["event_id"])):
        st = stacks[r["track"]]
        while st and st[-1]["ts_ns"] + st[-1]["dur_ns"] <= r["ts_ns"]:  # ended, or touches: a sibling
            st.pop()
        r["parent_id"] = st[-1]["event_id"] if st else None
        r["depth"] = len(st)
        st.append(r)
    return {"slices": sorted(rows, key=lambda r: r["event_id"]), "unmatched_E": lost, "unmatched_B": open_}


def async_id(e: dict[str, Any]) -> str | None:
    if e.get("id") is not None:
        return str(e["id"])
    id2 = e.get("id2") or {}
    if id2.get("global") is not None:
        return str(id2["global"])
    if id2.get("local") is not None:
        return f"local:{e.get('pid', '')}:{id2['local']}"
    return None


def async_slices(path: Path) -> list[dict[str, Any]]:
    """b/e pairs and legacy S/F pairs, per (cat, id, scope), each closed by the innermost open one."""
    events = load(path)["traceEvents"]
    out = []
    for begin, end in (("b", "e"), ("S", "F")):

        def key(e: dict[str, Any]) -> Any:
            i = async_id(e) if e.get("ph") in ("b", "e") else (None if e.get("id") is None else str(e["id"]))
            return None if i is None else (e.get("cat"), i, e.get("scope"))

        pairs, _, _ = _pair(events, begin, end, key)
        for b, e, depth in pairs:
            eb, ee = events[b], events[e]
            out.append(
                {
                    "event_id": b,
                    "end_event_id": e,
                    "ph": begin,
                    "name": eb.get("name"),
                    "id": key(eb)[1],
                    "ts_ns": ns(eb["ts"]),
                    "dur_ns": ns(ee["ts"]) - ns(eb["ts"]),
                    "depth": depth,
                    "args": _merged(eb, ee),
                }
            )
    return sorted(out, key=lambda r: r["event_id"])


# ---- Conformance (issue #9): what the store must hold, event for event ---------------------------------
# Written independently of tracekit's ingest: the standard json module, Decimal numbers, a plain Python
# stack per track for B/E pairs. Used by tests/store/test_conformance.py and tests/store/test_ingest_properties.py.

# Kernel categories in any spelling (compared lowercased): 'kernel' is what every Kineto generation writes
# for device kernels (PyTorch 1.8-1.13 'Kernel', today 'kernel'; ROCm's roctracer plugin and the XPU
# plugin log kernels as ActivityType::CONCURRENT_KERNEL -> 'kernel'); MTIA's device events are
# 'mtia_ccp_events', which HTA counts as kernels (hta/common/types.py).
KERNEL_CATS = frozenset({"kernel", "mtia_ccp_events"})
# Older Kineto spellings -> today's (lowercased keys); anything else is lower(cat) (common.md, decision 1).
# Written out here by hand from docs/schema.md#categories (not read from tracekit's alias table): host calls of every
# accelerator are runtime/driver calls, PyTorch 1.8's `User` is a GPU-side range.
_OLD_SPELLINGS = {
    "runtime": "cuda_runtime",
    "memcpy": "gpu_memcpy",
    "memset": "gpu_memset",
    "operator": "cpu_op",
    "python": "python_function",
    "user": "gpu_user_annotation",
    **dict.fromkeys(
        ("mtia_runtime", "xpu_runtime", "privateuse1_runtime", "hpu_op", "glow_runtime", "musa_runtime", "gcu_runtime"),
        "cuda_runtime",
    ),
    **dict.fromkeys(("xpu_driver", "privateuse1_driver", "musa_driver", "gcu_driver"), "cuda_driver"),
    **dict.fromkeys(("xpu_sync", "musa_sync", "gcu_sync"), "cuda_sync"),
    "gcu_memcpy": "gpu_memcpy",
    "gcu_memset": "gpu_memset",
    "gcu_user_annotation": "gpu_user_annotation",
    "mtia_ccp_events": "kernel",
}
INT64 = 2**63


# The pre-Kineto autograd export writes no cat: its pids say what an event is.
_LEGACY_PIDS = {"CUDA functions": "kernel", "CPU functions": "cpu_op"}


def canonical(cat: Any, pid: Any = None) -> str | None:
    """The canonical category this reader expects for a raw `cat` (None when absent and not a legacy pid)."""
    if cat is None:
        return _LEGACY_PIDS.get(pid) if isinstance(pid, str) else None
    if not isinstance(cat, str):
        return None
    low = cat.lower()
    return _OLD_SPELLINGS.get(low, low)


def is_kernel_cat(cat: Any) -> bool:
    return isinstance(cat, str) and cat.lower() in KERNEL_CATS


@dataclasses.dataclass
class Expected:
    """What ingesting one trace must give. `problems` non-empty: the trace is invalid (one clear error)."""

    slices: dict[int, tuple[int, int, str | None]] = dataclasses.field(default_factory=dict)  # X and B/E
    kernels: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)  # subset of slices
    memory: dict[int, tuple[int, int]] = dataclasses.field(default_factory=dict)  # event_id -> (ts_ns, bytes)
    # event_id -> note of an event kept in other_events although its phase has a table: 'unmatched B',
    # 'unmatched E', 'unfinished X' (a complete event without 'dur')
    unmatched: dict[int, str] = dataclasses.field(default_factory=dict)
    raw_cats: dict[int, Any] = dataclasses.field(default_factory=dict)  # event_id -> raw cat of each slice
    problems: list[str] = dataclasses.field(default_factory=list)  # invalid: must be refused
    ambiguous: list[str] = dataclasses.field(default_factory=list)  # refusing or reading is both acceptable
    n_events: int = 0

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def kernel_ns(self) -> int:
        return sum(d for _, d in self.kernels.values())


def _is_num(x: Any) -> bool:
    return isinstance(x, int | Decimal) and not isinstance(x, bool)


def _to_ns(x: int | Decimal, factor: int, out: Expected, where: str) -> int:
    v = Decimal(x) * factor
    if v != v.to_integral_value():
        out.ambiguous.append(f"{where}: not a whole number of ns")
    return int(v.to_integral_value())


def _pairs_hook(out: Expected) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            out.ambiguous.append("duplicated key in an object (json keeps the last)")
        return dict(pairs)

    return hook


def expected_from_bytes(raw: bytes) -> Expected:
    """Expected store contents for the (decompressed) bytes of a trace file."""
    out = Expected()
    try:
        doc = json.loads(raw, parse_float=Decimal, object_pairs_hook=_pairs_hook(out))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        out.problems.append(f"not JSON ({type(exc).__name__})")
        return out
    if isinstance(doc, list):
        events = doc
    elif isinstance(doc, dict) and isinstance(doc.get("traceEvents"), list):
        events = doc["traceEvents"]
    else:
        out.problems.append("no traceEvents array")
        return out
    out.n_events = len(events)
    if not events:
        out.problems.append("traceEvents is empty")
        return out
    # ts/dur are µs whatever displayTimeUnit says: the Trace Event Format spec makes it a display
    # preference only; Kineto writes "ms" beside µs timestamps and LLVM XRay "ns" beside µs timestamps.
    # (Perfetto's importer reads it as the unit of ts when it is near the start of the file; a file
    # relying on that reading is not what these writers produce.)
    factor = 1000

    begins_ends: list[tuple[int, int, int, str, Any, Any]] = []  # (ts_ns, i, _, ph, pid, tid)
    for i, e in enumerate(events):
        where = f"traceEvents[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("ph"), str):
            out.problems.append(f"{where}: not an event object with a string 'ph'")
            continue
        ph = e["ph"]
        # A null ts/dur is an absent one (tracekit: "lack 'ts' or 'dur' (missing or null)"): DuckDB's
        # reader gives both the same SQL NULL.
        e = {k: v for k, v in e.items() if not (k in ("ts", "dur") and v is None)}
        for key in ("ts", "dur"):
            if key in e and not _is_num(e[key]):
                out.problems.append(f"{where}: '{key}' is not a number")
        if out.problems:
            continue
        # timed phases of the Trace Event Format: durations, instants, async/flow-v1 steps, counters
        needs_ts = ph in ("X", "B", "E", "i", "I", "b", "e", "n", "S", "T", "p", "F", "C")
        if needs_ts and "ts" not in e:
            out.problems.append(f"{where}: lacks 'ts'")
            continue
        if ph == "X" and "dur" not in e:
            # still running when recording stopped (Chrome writes only 'tdur'): catapult shows it up to the
            # trace's end, Perfetto drops it; the store keeps it, as a B never closed, in other_events
            out.unmatched[i] = "unfinished X"
            continue
        ts = _to_ns(e["ts"], factor, out, where) if "ts" in e else None
        dur = _to_ns(e["dur"], factor, out, where) if "dur" in e else None
        for v in (ts, dur, None if ts is None or dur is None else ts + dur):
            if v is not None and not -INT64 <= v < INT64:
                out.problems.append(f"{where}: time out of range")
        if ph == "X" and dur is not None and dur < 0:
            out.problems.append(f"{where}: negative 'dur'")
        if out.problems:
            continue
        cat = e.get("cat")
        if "cat" in e and not isinstance(cat, str):
            out.ambiguous.append(f"{where}: 'cat' is not a string")
        if "args" in e and not isinstance(e["args"], dict):
            out.ambiguous.append(f"{where}: 'args' is not an object")
        if ph == "X":
            out.slices[i] = (ts, dur, canonical(cat, e.get("pid")))
            out.raw_cats[i] = cat
        elif ph in ("B", "E"):
            begins_ends.append((ts, i, 0, ph, e.get("pid"), e.get("tid")))
        elif ph in ("i", "I") and e.get("name") == "[memory]" and isinstance(e.get("args"), dict):
            b = e["args"].get("Bytes")
            if isinstance(b, int) and not isinstance(b, bool) and -INT64 <= b < INT64:
                out.memory[i] = (ts, b)
            elif b is not None:
                out.ambiguous.append(f"{where}: [memory] 'Bytes' is not an int64")
    if out.problems:
        return out
    # B/E: in (ts, file order); an E closes the latest open B of its track (pid, tid as the store writes them).
    stacks: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for ts, i, _, ph, pid, tid in sorted(begins_ends, key=lambda t: (t[0], t[1])):
        track = (str(pid), str(tid))
        if ph == "B":
            stacks[track].append(i)
        elif stacks[track]:
            b = stacks[track].pop()
            b_ts = _to_ns(events[b]["ts"], factor, out, f"traceEvents[{b}]")
            out.slices[b] = (b_ts, ts - b_ts, canonical(events[b].get("cat"), events[b].get("pid")))
            out.raw_cats[b] = events[b].get("cat")
        else:
            out.unmatched[i] = "unmatched E"
    for stack in stacks.values():
        for b in stack:
            out.unmatched[b] = "unmatched B"
    out.kernels = {i: (ts, d) for i, (ts, d, c) in out.slices.items() if c == "kernel"}
    return out


def expected(path: Path) -> Expected:
    """Expected store contents for a trace file (any container)."""
    return expected_from_bytes(raw_bytes(path))
