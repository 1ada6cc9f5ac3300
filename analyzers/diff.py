"""`tracekit diff`: what changed between two traces (or two runs' matching points), exactly.

Input: two `DiffSide`s — the attributed documents (by component and by layer) of each trace, its kernel
instances (`kernel_instances`: one row per kernel, with its decode step and its position within the step),
and the manifest's repeated timings where the trace sits in a collect run. A side may also be a `prune
compare` row (component times, median and peak only, when its trace file is gone).

Output: a `TraceDiff` whose `to_dict()` is the stable JSON document (docs/diff.md, format
`tracekit-diff` version 1):

* **components** and **layers**: time A, time B, Δ (integer ns, B − A), ratio (B / A), FLOPs, bytes
  allocated and peak bytes of each side and their Δ; `significant`: |B / A − 1| ≥ `threshold` (a single
  profiled pass per side carries no run-to-run spread of component times; the threshold stands in for it).
* **kernels**: matched by name AND position: the k-th launch of a kernel name within a decode step
  (`decode.step.{k}` scopes, step k of A against step k of B) or within the whole trace when it has no
  step scopes. Per kernel name: launches in A and B, how many were matched, time A, time B, Δ, ratio, and
  `status`: `same` (every launch matched), `changed` (launch counts differ), `new` (only in B), `gone`
  (only in A).
* **timing**: the manifests' repeated timings (median, p10, p90 of `timing.*_ms`); `within_noise` is true
  when the two p10–p90 intervals overlap (the rule of docs/diff.md), null without repeated timings.
* **totals**: time, FLOPs, bytes allocated, peak bytes, and the manifests' CUDA peak allocated.

Beyond HTA's `TraceDiff` (which compares per-op counts and summed durations by name across two sets of
traces): exact integer-ns deltas, kernels matched by position within the step (so a fused or split kernel
shows up as new/gone rather than averaging away), per-component and per-layer attribution, FLOPs and
memory deltas, and a noise verdict from repeated timings.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import duckdb
import polars as pl
from tracekit.analyzers.components import COMPONENTS

from tracekit.store.frames import frame

FORMAT = "tracekit-diff"
VERSION = 1
DEFAULT_THRESHOLD = 0.10

_STEPS_SQL = r"""
SELECT CAST(regexp_extract(name, '^decode\.step\.(\d+)$', 1) AS BIGINT) AS step, ts_ns AS step_ts, end_ns AS step_end
FROM events WHERE trace_id = $tid AND regexp_matches(name, '^decode\.step\.\d+$') ORDER BY ts_ns
"""


@dataclasses.dataclass
class DiffSide:
    """One side of a diff. `components`/`layers`: rows of the attribute document (docs/attribute.md);
    `kernels`: `kernel_instances` (None for a compare row without its trace); `timing`: the manifest's
    `timing` dict (median_ms, p10_ms, p90_ms) or None; `point`: arch, mode, batch, seqlen, cuda_graphs."""

    label: str
    components: list[dict[str, Any]]
    layers: list[dict[str, Any]] | None = None
    kernels: pl.DataFrame | None = None
    totals: dict[str, Any] | None = None
    timing: dict[str, Any] | None = None
    peak_mem_bytes: int | None = None
    point: dict[str, Any] = dataclasses.field(default_factory=dict)
    trace: str | None = None
    device: str | None = None
    steps: int = 0  # decode.step.{k} scopes found (0: the whole trace is one step)
    time_source: str | None = None  # "gpu" (kernel time) or "cpu_self" (CPU-only trace); None for a compare row


@dataclasses.dataclass
class TraceDiff:
    a: DiffSide
    b: DiffSide
    threshold: float
    components: list[dict[str, Any]]
    layers: list[dict[str, Any]] | None
    kernels: list[dict[str, Any]] | None
    totals: dict[str, Any]
    timing: dict[str, Any] | None
    step_rule: str
    notes: list[str]

    @property
    def new(self) -> list[str]:
        return [k["kernel"] for k in self.kernels or [] if k["status"] == "new"]

    @property
    def gone(self) -> list[str]:
        return [k["kernel"] for k in self.kernels or [] if k["status"] == "gone"]

    @property
    def significant(self) -> list[str]:
        return [c["component"] for c in self.components if c["significant"]]

    def rows(self, by: str) -> list[dict[str, Any]]:
        """The rows of one view: component, layer or kernel ([] when the sides lack that detail)."""
        return {"component": self.components, "layer": self.layers, "kernel": self.kernels}[by] or []

    def to_dict(self) -> dict[str, Any]:
        def side(s: DiffSide) -> dict[str, Any]:
            return {
                "label": s.label,
                "trace": s.trace,
                "device": s.device,
                "point": s.point,
                "steps": s.steps,
                "time_source": s.time_source,
            }

        return {
            "a": side(self.a),
            "b": side(self.b),
            "threshold": self.threshold,
            "step_rule": self.step_rule,
            "timing": self.timing,
            "totals": self.totals,
            "components": self.components,
            "layers": self.layers,
            "kernels": self.kernels,
            "new": self.new,
            "gone": self.gone,
            "significant": self.significant,
            "notes": self.notes,
        }


def document(diffs: list[TraceDiff]) -> dict[str, Any]:
    """The JSON document of `tracekit diff --format json`: one entry per compared pair."""
    return {"format": FORMAT, "version": VERSION, "pairs": [d.to_dict() for d in diffs]}


# ---- kernel instances -----------------------------------------------------------------------------
def kernel_instances(con: duckdb.DuckDBPyConnection, trace_id: int, units: pl.DataFrame, gpu: bool) -> pl.DataFrame:
    """One row per kernel (GPU traces) or CPU op (CPU-only traces): name, component, layer, time_ns, step, pos.

    `step`: the `decode.step.{k}` scope whose host-side span holds the kernel's launch (the launching
    runtime call's start; the op's or the event's own start when there is none); -1 outside every step
    scope and for traces without them. `pos`: 0 for the first launch of that name within its step, 1 for
    the second, ... in GPU start order.
    """
    steps = frame(con, _STEPS_SQL, {"tid": trace_id})
    name = pl.col("kernel") if gpu else pl.col("op")
    time_col = "dur_ns" if gpu else "self_ns"
    u = units.select(
        "event_id", name.alias("name"), "component", "layer", pl.col(time_col).cast(pl.Int64).alias("time_ns"), "ts_ns"
    )
    if gpu:
        host = frame(
            con,
            """SELECT k.event_id, coalesce(r.ts_ns, o.ts_ns, k.ts_ns) AS host_ts FROM kernels k
               LEFT JOIN events r ON r.trace_id = k.trace_id AND r.event_id = k.launch_id
               LEFT JOIN events o ON o.trace_id = k.trace_id AND o.event_id = k.op_id
               WHERE k.trace_id = $tid""",
            {"tid": trace_id},
        )
        u = u.join(host, on="event_id", how="left").with_columns(pl.coalesce("host_ts", "ts_ns").alias("host_ts"))
    else:
        u = u.with_columns(pl.col("ts_ns").alias("host_ts"))
    if steps.height:
        u = (
            u.sort("host_ts")
            .join_asof(steps.sort("step_ts"), left_on="host_ts", right_on="step_ts", strategy="backward")
            .with_columns(
                pl.when(pl.col("step").is_not_null() & (pl.col("host_ts") < pl.col("step_end")))
                .then(pl.col("step"))
                .otherwise(-1)
                .alias("step")
            )
        )
    else:
        u = u.with_columns(pl.lit(-1, dtype=pl.Int64).alias("step"))
    u = u.sort("ts_ns", "event_id").with_columns(pl.int_range(pl.len()).over("step", "name").alias("pos"))
    return u.select("name", "component", "layer", "time_ns", "step", "pos")


def count_steps(con: duckdb.DuckDBPyConnection, trace_id: int) -> int:
    return frame(con, _STEPS_SQL, {"tid": trace_id}).height


# ---- the diff -------------------------------------------------------------------------------------
def _time(row: dict[str, Any]) -> int | None:
    v = row.get("gpu_time_ns")
    if v is None:
        v = row.get("cpu_self_ns")
    if v is None:
        v = row.get("time_ns")
    return None if v is None else int(v)


def _ratio(a: int | float | None, b: int | float | None) -> float | None:
    return (b / a) if a and b is not None else None


def _delta(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else int(b) - int(a)


def _pair_fields(ra: dict[str, Any], rb: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields:
        va, vb = ra.get(f), rb.get(f)
        out[f"{f}_a"], out[f"{f}_b"], out[f"delta_{f}"] = va, vb, _delta(va, vb)
    return out


def _significant(a: int | None, b: int | None, threshold: float) -> bool:
    if a is None or b is None:
        return False
    if a == 0:
        return b != 0
    return abs(b / a - 1) >= threshold


def _row_diff(key: dict[str, Any], ra: dict[str, Any], rb: dict[str, Any], threshold: float) -> dict[str, Any]:
    ta, tb = (_time(ra) if ra else 0), (_time(rb) if rb else 0)  # a row missing on one side: no time there
    return {
        **key,
        "time_a_ns": ta,
        "time_b_ns": tb,
        "delta_ns": _delta(ta, tb),
        "ratio": _ratio(ta, tb),
        "significant": _significant(ta, tb, threshold),
        **_pair_fields(ra, rb, ("flops", "bytes_allocated", "peak_bytes")),
    }


def component_rows(a: list[dict[str, Any]], b: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    """One row per component (the fixed order of COMPONENTS, then any other name)."""
    ia = {r["component"]: r for r in a}
    ib = {r["component"]: r for r in b}
    names = [c for c in COMPONENTS if c in ia or c in ib] + sorted((set(ia) | set(ib)) - set(COMPONENTS))
    return [_row_diff({"component": c}, ia.get(c, {}), ib.get(c, {}), threshold) for c in names]


def layer_rows(a: list[dict[str, Any]], b: list[dict[str, Any]], threshold: float) -> list[dict[str, Any]]:
    ia = {(r["layer"], r["component"]): r for r in a}
    ib = {(r["layer"], r["component"]): r for r in b}
    order = {c: i for i, c in enumerate(COMPONENTS)}
    keys = sorted(set(ia) | set(ib), key=lambda k: (k[0] is None, k[0] or 0, order.get(k[1], len(order)), k[1]))
    return [
        _row_diff({"layer": lay, "component": c}, ia.get((lay, c), {}), ib.get((lay, c), {}), threshold)
        for lay, c in keys
    ]


def kernel_rows(a: pl.DataFrame, b: pl.DataFrame) -> list[dict[str, Any]]:
    """Per kernel name: launches and times of each side, matched by (step, name, position in step)."""
    keys = ["step", "name", "pos"]
    m = a.select(*keys, pl.col("time_ns").alias("ta"), pl.col("component").alias("ca")).join(
        b.select(*keys, pl.col("time_ns").alias("tb"), pl.col("component").alias("cb")),
        on=keys,
        how="full",
        coalesce=True,
    )
    g = (
        m.group_by("name")
        .agg(
            pl.col("ta").is_not_null().sum().alias("count_a"),
            pl.col("tb").is_not_null().sum().alias("count_b"),
            (pl.col("ta").is_not_null() & pl.col("tb").is_not_null()).sum().alias("matched"),
            pl.col("ta").sum().alias("time_a_ns"),
            pl.col("tb").sum().alias("time_b_ns"),
            pl.col("ca").drop_nulls().first().alias("ca"),
            pl.col("cb").drop_nulls().first().alias("cb"),
        )
        .sort("name")
    )
    rows = []
    for r in g.iter_rows(named=True):
        ca, cb = int(r["count_a"]), int(r["count_b"])
        ta, tb = int(r["time_a_ns"]), int(r["time_b_ns"])
        status = "new" if ca == 0 else "gone" if cb == 0 else "same" if ca == cb == r["matched"] else "changed"
        rows.append(
            {
                "kernel": r["name"],
                "component": r["ca"] or r["cb"],
                "status": status,
                "count_a": ca,
                "count_b": cb,
                "matched": int(r["matched"]),
                "time_a_ns": ta,
                "time_b_ns": tb,
                "delta_ns": tb - ta,
                "ratio": _ratio(ta, tb),
            }
        )
    rows.sort(key=lambda r: (-abs(r["delta_ns"]), r["kernel"]))
    return rows


def _interval(t: dict[str, Any] | None) -> tuple[float, float, float] | None:
    if not t or t.get("median_ms") is None:
        return None
    med = float(t["median_ms"])
    lo, hi = t.get("p10_ms"), t.get("p90_ms")
    return (med, float(lo) if lo is not None else med, float(hi) if hi is not None else med)


def timing_diff(a: dict[str, Any] | None, b: dict[str, Any] | None) -> dict[str, Any] | None:
    """Medians with p10–p90 of both sides; within_noise: the two [p10, p90] intervals overlap.

    Null when neither side has a median; within_noise null unless both sides have p10 and p90.
    """
    ia, ib = _interval(a), _interval(b)
    if ia is None and ib is None:
        return None
    spread = all(t and t.get("p10_ms") is not None and t.get("p90_ms") is not None for t in (a, b))
    out: dict[str, Any] = {
        "median_a_ms": ia[0] if ia else None,
        "p10_a_ms": (a or {}).get("p10_ms"),
        "p90_a_ms": (a or {}).get("p90_ms"),
        "median_b_ms": ib[0] if ib else None,
        "p10_b_ms": (b or {}).get("p10_ms"),
        "p90_b_ms": (b or {}).get("p90_ms"),
        "delta_ms": (ib[0] - ia[0]) if ia and ib else None,
        "ratio": _ratio(ia[0], ib[0]) if ia and ib else None,
        "within_noise": None,
    }
    if spread and ia and ib:
        out["within_noise"] = ia[1] <= ib[2] and ib[1] <= ia[2]
    return out


def _sum(rows: list[dict[str, Any]], f: str) -> int | None:
    vals = [r.get(f) for r in rows]
    return None if not vals or any(v is None for v in vals) else int(sum(vals))


def _totals(s: DiffSide) -> dict[str, Any]:
    t = s.totals or {}
    time = t.get("time_ns")
    return {
        "time_ns": int(time) if time is not None else _sum([{"x": _time(r)} for r in s.components], "x"),
        "flops": t.get("flops") if s.totals else _sum(s.components, "flops"),
        "bytes_allocated": t.get("bytes_allocated"),
        "peak_bytes": t.get("peak_bytes"),
        "peak_mem_bytes": s.peak_mem_bytes,
        "kernels": t.get("kernels"),
    }


def diff(a: DiffSide, b: DiffSide, *, threshold: float = DEFAULT_THRESHOLD) -> TraceDiff:
    """Compare side B against side A (Δ = B − A, ratio = B / A)."""
    notes: list[str] = []
    ta, tb = _totals(a), _totals(b)
    totals: dict[str, Any] = {"time_a_ns": ta["time_ns"], "time_b_ns": tb["time_ns"]}
    totals["delta_ns"] = _delta(ta["time_ns"], tb["time_ns"])
    for f in ("flops", "bytes_allocated", "peak_bytes", "peak_mem_bytes", "kernels"):
        totals[f"{f}_a"], totals[f"{f}_b"], totals[f"delta_{f}"] = ta[f], tb[f], _delta(ta[f], tb[f])
    totals["ratio"] = _ratio(ta["time_ns"], tb["time_ns"])
    layers = None
    if a.layers is not None and b.layers is not None:
        layers = layer_rows(a.layers, b.layers, threshold)
    kernels = None
    if a.kernels is not None and b.kernels is not None:
        kernels = kernel_rows(a.kernels, b.kernels)
    else:
        notes.append("kernel and layer detail need both traces: only component times compared")
    if a.steps and b.steps:
        step_rule = (
            f"kernels matched by name and position within each decode.step.{{k}} scope "
            f"({a.steps} steps in A, {b.steps} in B)"
        )
        if a.steps != b.steps:
            notes.append(f"A has {a.steps} decode steps, B {b.steps}: launches of the extra steps are new/gone")
    else:
        step_rule = "kernels matched by name and position within the whole trace (no decode.step.{k} scopes)"
        if a.steps or b.steps:
            notes.append("only one side has decode.step.{k} scopes: both matched over the whole trace")
    if a.time_source and b.time_source and a.time_source != b.time_source:
        notes.append(
            f"A's times are {a.time_source} time, B's {b.time_source} time (one trace has no GPU kernels): "
            "not comparable"
        )
    if a.device and b.device and a.device != b.device:
        notes.append(f"different devices: A ran on {a.device}, B on {b.device}")
    timing = timing_diff(a.timing, b.timing)
    if timing is not None and timing["within_noise"] is None:
        notes.append("no p10–p90 timings on both sides: the noise verdict is not available")
    return TraceDiff(
        a,
        b,
        threshold,
        component_rows(a.components, b.components, threshold),
        layers,
        kernels,
        totals,
        timing,
        step_rule,
        notes,
    )


# ---- sides from data that is already at hand ----------------------------------------------------------
def side_from_compare_row(row: dict[str, Any], label: str) -> DiffSide:
    """A side from one row of a `prune compare` compare.json (component times, median, peak; no kernels)."""
    comps = [{"component": c, "time_ns": int(ns)} for c, ns in (row.get("component_ns") or {}).items()]
    med = row.get("median_ms")
    return DiffSide(
        label=label,
        components=comps,
        timing={"median_ms": med} if med is not None else None,
        peak_mem_bytes=row.get("peak_mem_bytes"),
        point={k: row.get(k) for k in ("mode", "batch", "seqlen", "cuda_graphs")},
        trace=row.get("trace"),
    )


POINT_KEYS = ("arch", "mode", "batch", "seqlen", "cuda_graphs")


def point_key(point: dict[str, Any]) -> tuple[Any, ...]:
    """How run points are matched: arch, mode, batch, seqlen and cuda_graphs (absent keys match absent)."""
    return tuple(point.get(k) for k in POINT_KEYS)


__all__ = [
    "DEFAULT_THRESHOLD",
    "DiffSide",
    "TraceDiff",
    "count_steps",
    "diff",
    "document",
    "kernel_instances",
    "point_key",
    "side_from_compare_row",
    "timing_diff",
]
