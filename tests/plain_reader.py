"""An independent reader of Kineto traces: the standard json module with exact Decimal numbers.

Deliberately naive (the whole file in memory): it is the yardstick tracekit's ingest is checked against.
"""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import json
import lzma
from decimal import Decimal
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any]:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    elif raw[:6] == b"\xfd7zXZ\x00":
        raw = lzma.decompress(raw)
    elif raw[:3] == b"BZh":
        raw = bz2.decompress(raw)
    elif raw[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw), read_across_frames=True)
        raw = b"".join(iter(lambda: reader.read(1 << 20), b""))
    doc = json.loads(raw, parse_float=Decimal)
    return doc if isinstance(doc, dict) else {"traceEvents": doc}


def ns(x: Any) -> int:
    return int((Decimal(x) * 1000).to_integral_value())


def summary(path: Path) -> dict[str, Any]:
    events = load(path)["traceEvents"]
    x = [e for e in events if e.get("ph") == "X"]
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
        if e.get("ph") == "X":
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
