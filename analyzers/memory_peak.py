"""The memory peak of one trace, explained: live allocations rebuilt from its `[memory]` events.

Each allocation (`bytes > 0`, `addr`) is paired with the later free (`bytes < 0`) of the same address and
size on the same device; a free with no allocation in the trace releases memory allocated before it. At the
peak instant the live allocations are grouped by the op that allocated them and by component (the
component `breakdown._memory` gives each event). Definitions: docs/attribute.md, "Memory peak".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb
import polars as pl
from tracekit.analyzers.attribution import Attribution

from tracekit.store.frames import frame

TOP = 5  # largest single allocations listed
BEFORE = "before trace"  # the owner of frees of memory allocated before the trace (timeline)


@dataclasses.dataclass
class MemoryPeak:
    """The reconstruction of one device's live allocations and its peak."""

    device_type: int
    device_id: int | None
    source: str  # "total_allocated" (the allocator's max) or "reconstructed" (max of the rebuilt live sum)
    peak_bytes: int  # the allocator's Total Allocated at the peak, or the rebuilt live sum
    peak_ts_ns: int
    peak_at_ns: int | None  # from the trace start
    live_bytes: int  # bytes of the in-trace allocations live at the peak
    live_count: int
    before_trace_bytes: int | None  # allocated before the trace (Total Allocated - live, before the first event)
    before_trace_live_bytes: int | None  # of which still allocated at the peak
    before_trace_freed_bytes: int  # frees of memory allocated before the trace
    unmatched_frees: int  # frees whose address (and size) no in-trace allocation holds
    max_abs_mismatch: int | None  # max |Total Allocated - (live + before-trace still allocated)| over the events
    # per event, in order: ts_ns, bytes, total_allocated, component, live (in-trace allocations live after it),
    # before_live (memory allocated before the trace still live; null without totals), owner (the component of
    # the allocation the event adds or frees; BEFORE for a free of memory allocated before the trace)
    timeline: pl.DataFrame
    live: pl.DataFrame  # the allocations live at the peak: ts_ns, bytes, op, op_chain, component, layer
    notes: list[str]

    def by(self, key: str) -> list[dict[str, Any]]:
        """Live bytes at the peak per `key` ("op" or "component"), largest first, with count and top op."""
        g = (
            self.live.group_by(key)
            .agg(pl.col("bytes").sum().alias("bytes"), pl.len().alias("count"))
            .sort(["bytes", key], descending=[True, False])
        )
        rows = []
        for k, b, n in g.iter_rows():
            row: dict[str, Any] = {key: k, "bytes": int(b), "count": int(n)}
            if key == "component":
                ops = (
                    self.live.filter(pl.col("component") == k)
                    .group_by("op")
                    .agg(pl.col("bytes").sum())
                    .sort(["bytes", "op"], descending=[True, False])
                )
                row["top_op"] = ops["op"][0] if ops.height else None
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        largest = self.live.sort(["bytes", "ts_ns"], descending=[True, False]).head(TOP)
        return {
            "device_type": self.device_type,
            "device_id": self.device_id,
            "source": self.source,
            "peak_bytes": self.peak_bytes,
            "peak_ts_ns": self.peak_ts_ns,
            "peak_at_ns": self.peak_at_ns,
            "live_bytes": self.live_bytes,
            "live_count": self.live_count,
            "before_trace_bytes": self.before_trace_bytes,
            "before_trace_live_bytes": self.before_trace_live_bytes,
            "before_trace_freed_bytes": self.before_trace_freed_bytes,
            "unmatched_frees": self.unmatched_frees,
            "max_abs_mismatch": self.max_abs_mismatch,
            "by_component": self.by("component"),
            "by_op": self.by("op"),
            "largest": [
                {k: r[k] for k in ("bytes", "op", "component", "layer", "ts_ns")} for r in largest.iter_rows(named=True)
            ],
            "notes": self.notes,
        }


def op_label(chain: list[str] | None) -> str:
    """`outer > inner` for an allocation: the outermost aten op of the chain and the op that allocated.

    E.g. ["MambaSplitConv1dScanCombinedFn", "aten::linear", "aten::matmul", "aten::empty"] ->
    "aten::linear > aten::empty"; with no aten op above it, the parent's parent.
    """
    if not chain:
        return "(no op)"
    inner = chain[-1]
    outer = next((c for c in chain[:-1] if c.startswith("aten::")), chain[-2] if len(chain) > 1 else None)
    return inner if outer is None or outer == inner else f"{outer} > {inner}"


def memory_peak(
    con: duckdb.DuckDBPyConnection, att: Attribution, mem: pl.DataFrame, t0_ns: int | None = None
) -> tuple[MemoryPeak | None, str | None]:
    """(the peak, None) or (None, why not) from `mem` = `breakdown._memory(con, att)[0]` (the compute device).

    None without a note when there are no events (breakdown's notes already say so).
    """
    if mem.height == 0:
        return None, None
    raw = frame(
        con,
        """SELECT event_id AS mem_id, addr, total_allocated, device_type, device_id, parent_id
           FROM memory WHERE trace_id = $tid""",
        {"tid": att.trace_id},
    )
    ev = mem.join(raw, on="mem_id", how="left").sort(["ts_ns", "mem_id"])
    n_noaddr = ev["addr"].null_count()
    if n_noaddr:
        return None, (
            f"memory peak: {n_noaddr} of {ev.height} [memory] events carry no `Addr`: allocations cannot be paired "
            "with their frees, so the live allocations at the peak cannot be rebuilt (memory_peak is null)"
        )
    chains = att.walk.select(pl.col("event_id").alias("parent_id"), "chain")
    ev = ev.join(chains, on="parent_id", how="left").sort(["ts_ns", "mem_id"])
    devices = ev.select("device_type", "device_id").unique().sort(["device_type", "device_id"]).rows()
    peaks = [_one_device(ev.filter(_dev(dt, di)), dt, di, t0_ns) for dt, di in devices]
    best = max(peaks, key=lambda p: p.peak_bytes)
    if len(peaks) > 1:
        best.notes.append(
            f"{len(peaks)} devices have [memory] events: the one with the largest peak "
            f"(device {best.device_id}) is explained"
        )
    return best, None


def _dev(dt: int | None, di: int | None) -> pl.Expr:
    a = pl.col("device_type").is_null() if dt is None else pl.col("device_type") == dt
    b = pl.col("device_id").is_null() if di is None else pl.col("device_id") == di
    return a & b


def _one_device(ev: pl.DataFrame, dt: int, di: int | None, t0_ns: int | None) -> MemoryPeak:
    rows = ev.select("mem_id", "ts_ns", "bytes", "addr", "total_allocated", "component", "layer", "chain").rows()
    open_: dict[tuple[int, int], list[int]] = {}  # (addr, size) -> indices of live allocations, oldest first
    freed_at: dict[int, int] = {}  # allocation index -> index of its free
    live, freed_pre, unmatched = 0, 0, 0
    live_series, pre_freed_series, owner = [], [], []
    for i, (_mid, _ts, b, addr, _tot, comp, _l, _ch) in enumerate(rows):
        who = comp
        if b > 0:
            open_.setdefault((addr, b), []).append(i)
            live += b
        elif b < 0:
            stack = open_.get((addr, -b))
            if stack:
                j = stack.pop()
                freed_at[j] = i
                live += b
                who = rows[j][5]  # the free lowers the allocating event's component
            else:  # allocated before the trace (or the size differs: counted, see unmatched_frees)
                freed_pre += -b
                unmatched += 1
                who = BEFORE
        live_series.append(live)
        pre_freed_series.append(freed_pre)
        owner.append(who)
    totals = [r[4] for r in rows]
    has_totals = all(t is not None for t in totals)
    notes: list[str] = []
    if has_totals:
        before = int(totals[0] - rows[0][2])  # Total Allocated before the first event
        expect = [before - f + lv for f, lv in zip(pre_freed_series, live_series, strict=True)]
        mismatch = max(abs(t - e) for t, e in zip(totals, expect, strict=True))
        k = max(range(len(rows)), key=lambda i: (totals[i], -i))  # first instant of the allocator's max
        peak = int(totals[k])
        source = "total_allocated"
        if mismatch:
            notes.append(
                f"the rebuilt live sum departs from Total Allocated by up to {mismatch} bytes "
                "(allocations or frees not recorded in the trace)"
            )
    else:
        before, mismatch = None, None
        k = max(range(len(rows)), key=lambda i: (live_series[i], -i))
        peak = int(live_series[k])
        source = "reconstructed"
        notes.append(
            "[memory] events carry no `Total Allocated`: the peak is the rebuilt live sum "
            "(memory allocated before the trace is not seen)"
        )
    if unmatched:
        notes.append(
            f"{unmatched} frees ({freed_pre} bytes) match no allocation of the trace: memory allocated before it"
        )
    idx = [j for j in range(k + 1) if rows[j][2] > 0 and freed_at.get(j, len(rows)) > k]
    live_rows = [
        {
            "ts_ns": rows[j][1],
            "bytes": int(rows[j][2]),
            "op": op_label(rows[j][7]),
            "op_chain": " > ".join(rows[j][7] or []),
            "component": rows[j][5],
            "layer": rows[j][6],
        }
        for j in idx
    ]
    schema = {
        "ts_ns": pl.Int64,
        "bytes": pl.Int64,
        "op": pl.Utf8,
        "op_chain": pl.Utf8,
        "component": pl.Utf8,
        "layer": pl.Int64,
    }
    timeline = ev.select("ts_ns", "bytes", "total_allocated", "component").with_columns(
        pl.Series("live", live_series, dtype=pl.Int64),
        pl.Series("before_live", [None if before is None else before - f for f in pre_freed_series], dtype=pl.Int64),
        pl.Series("owner", owner, dtype=pl.Utf8),
    )
    return MemoryPeak(
        device_type=int(dt),
        device_id=None if di is None else int(di),
        source=source,
        peak_bytes=peak,
        peak_ts_ns=int(rows[k][1]),
        peak_at_ns=None if t0_ns is None else int(rows[k][1] - t0_ns),
        live_bytes=int(live_series[k]),
        live_count=len(idx),
        before_trace_bytes=before,
        before_trace_live_bytes=None if before is None else int(before - pre_freed_series[k]),
        before_trace_freed_bytes=int(freed_pre),
        unmatched_frees=unmatched,
        max_abs_mismatch=None if mismatch is None else int(mismatch),
        timeline=timeline,
        live=pl.DataFrame(live_rows, schema=schema),
        notes=notes,
    )
