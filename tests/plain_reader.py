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
