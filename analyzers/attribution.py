"""Attribute every kernel (or, on CPU-only traces, every CPU op's self time) to one block component.

Priority (docs/attribute.md, "How attribution works"):
  1. the innermost `component.*` scope enclosing the launching CPU op (or, for a kernel launched
     without a CPU op, the GPU annotation around it);
  2. rules from the data file (kernel name / launching op / enclosing ops), user rules first;
  3. GEMMs by the launching op's weight shape vs the model config (a bmm that runs an enclosing
     linear/matmul: by that op's weight, before 2), and small elementwise ops on the SSM's own parameters
     (A_log, D, dt_bias) by their shape;
  4. rules marked `fallback = true`;
  5. `other`.
Each unit gets exactly one component, so component times sum to the total exactly.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import numpy as np
import polars as pl
from tracekit.analyzers.components import COMPONENTS, Rule, first_match
from tracekit.analyzers.config_inference import infer_config
from tracekit.analyzers.gemm_shapes import (
    BATCHED_GEMM_OPS,
    GEMM_OPS,
    Gemm,
    GemmRoles,
    parse_dims,
    parse_gemm,
    projection_shapes,
)
from tracekit.analyzers.layers import infer_layers
from tracekit.analyzers.report_types import ConfigSource, LayerSource, TimeSource
from tracekit.analyzers.structure import Structure
from tracekit.analyzers.structure import apply as apply_structure

from tracekit import schema
from tracekit.model_config import ModelConfig, dtype_bytes
from tracekit.store.frames import frame


# The SQL of attribution (the event-forest walk, the units and their self time) is
# tracekit/schema/queries/attribution.sql.
@dataclasses.dataclass
class Attribution:
    """Per-unit attribution of one trace plus what it was resolved with."""

    trace_id: int
    time_source: TimeSource  # "gpu" (kernel durations) or "cpu_self" (CPU-only trace)
    units: pl.DataFrame  # one row per kernel / CPU event: component, layer, reason, times
    gemms: pl.DataFrame  # innermost GEMM ops that ran: component, layer, role, flops, tokens
    config: ModelConfig | None
    config_source: ConfigSource  # manifest | flags | inferred | none
    walk: pl.DataFrame  # event_id -> comp, layer, chain (for memory attribution)
    layer_source: LayerSource | None = None  # "scope" (layer.{i}), "inferred" (in_proj order, GPU only) or None
    # CUDA-graph traces: the eager template step (kernels held out of `units`), its CPU window, and how the
    # replays were attributed (GraphAlignment); None on traces without graph replays.
    template: pl.DataFrame | None = None
    template_window: tuple[int, int] | None = None
    graph: GraphAlignment | None = None
    structure: Structure | None = None  # what the layer structure decided (analyzers/structure.py), if anything


@dataclasses.dataclass
class GraphAlignment:
    """How the kernels of CUDA-graph replays got their component (docs/attribute.md, "CUDA-graph replays").

    `template`: the trace holds a template step; `replayed`/`replayed_ns`: kernels launched by
    `cudaGraphLaunch` and their time; `aligned`/`aligned_ns`: those given the component and layer of the
    template kernel they align with (reason "graph template"); the rest (`inferred`, `inferred_ns`) were
    attributed by graph position (GEMMs) and kernel-name rules, `inferred_other_ns` of it falling to `other`.
    """

    template: bool
    template_kernels: int
    template_ns: int
    replays: int
    replayed: int
    replayed_ns: int
    aligned: int
    aligned_ns: int
    inferred: int
    inferred_ns: int
    inferred_other_ns: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _ssm_param_shapes(cfg: ModelConfig | None) -> set[tuple[int, ...]]:
    if cfg is None:
        return set()
    if cfg.arch == "mamba1":
        return {(cfg.d_inner, cfg.d_state), (cfg.d_inner,)}
    return {(cfg.nheads,)}


def _state_component(cfg: ModelConfig, shape: Sequence[int]) -> str | None:
    """conv / ssm for an op on the decode cache (zeroing, copying conv_state or ssm_state), by its shape."""
    tail = tuple(shape[1:])
    if len(shape) == 3 and tail in ((cfg.conv_dim, cfg.d_conv), (cfg.d_conv, cfg.conv_dim)):
        return "conv"
    if cfg.arch == "mamba2" and len(shape) == 4 and tail == (cfg.nheads, cfg.headdim, cfg.d_state):
        return "ssm"
    if cfg.arch == "mamba1" and len(shape) == 3 and tail == (cfg.d_inner, cfg.d_state):
        return "ssm"
    return None


class _Classifier:
    """Resolves (kernel, op, chain, scope, shapes) -> (component, reason), memoised per distinct key."""

    def __init__(self, rules: Sequence[Rule], cfg: ModelConfig | None):
        self.rules = rules
        self.cfg = cfg
        self.roles = GemmRoles.from_config(cfg) if cfg is not None else None
        self.params = _ssm_param_shapes(cfg)

    def __call__(
        self,
        kernel: str | None,
        op: str | None,
        chain: Sequence[str],
        scope: str | None,
        gemm_op: str | None,
        gemm_dims: str | None,
        op_dims: str | None,
    ) -> tuple[str, str, str | None]:
        """(component, reason, GEMM role); the role is found from shapes whatever decided the component."""
        role_hit = None
        if gemm_op is not None and self.roles is not None:
            gemm = parse_gemm(gemm_op, parse_dims(gemm_dims))
            if gemm is not None:
                role_hit = self.roles.classify(gemm, prefer=scope)
        role = role_hit[1] if role_hit else None
        if scope is not None and scope in COMPONENTS:
            return scope, "scope", role
        if role_hit is not None and op in BATCHED_GEMM_OPS and gemm_op not in BATCHED_GEMM_OPS:
            # a bmm that runs an enclosing projection (read from its linear/matmul, `_gemm_shapes`): the
            # weight decides, not the rule that takes the hf path's other bmm for the SSM
            return role_hit[0], f"gemm {role}", role
        have_cfg = self.cfg is not None
        rule = first_match(self.rules, kernel, op, chain, have_cfg, fallback=False)
        if rule is not None:
            return rule.component, f"rule {rule.source}", role
        if role_hit is not None:
            return role_hit[0], f"gemm {role}", role
        if gemm_op is None and self.cfg is not None and op is not None:
            dims = parse_dims(op_dims)
            if dims and tuple(dims[0]) in self.params:
                return "ssm", "ssm parameter shape", None
            state = _state_component(self.cfg, dims[0]) if dims else None
            if state is not None:
                return state, f"{state} state shape", None
        rule = first_match(self.rules, kernel, op, chain, have_cfg, fallback=True)
        if rule is not None:
            return rule.component, f"rule {rule.source}", role
        return "other", "default", role


def _classify(frame: pl.DataFrame, clf: _Classifier) -> pl.DataFrame:
    keys = ["kernel", "op", "chain", "scope", "gemm_op", "gemm_dims", "op_dims"]
    distinct = frame.select(keys).unique()
    comps, reasons, roles = [], [], []
    for row in distinct.iter_rows():
        chain = tuple(n for n in (row[2] or ()) if n is not None)  # unnamed enclosing events match no rule
        c, r, role = clf(row[0], row[1], chain, row[3], row[4], row[5], row[6])
        comps.append(c)
        reasons.append(r)
        roles.append(role)
    distinct = distinct.with_columns(
        pl.Series("component", comps, dtype=pl.String),
        pl.Series("reason", reasons, dtype=pl.String),
        pl.Series("role", roles, dtype=pl.String),
    )
    return frame.join(distinct, on=keys, how="left", nulls_equal=True)


def attribute(
    con: duckdb.DuckDBPyConnection,
    trace_id: int,
    rules: Sequence[Rule],
    *,
    config: ModelConfig | None = None,
    config_source: str = ConfigSource.NONE,
    infer: bool = True,
) -> Attribution:
    """Attribute one ingested trace; `config` None + `infer` -> try to infer it from GEMM shapes."""
    p = {"tid": trace_id}
    n_kernels = con.sql("SELECT count(*) FROM kernels WHERE trace_id = $tid", params=p).fetchall()[0][0]
    time_source = TimeSource.GPU if n_kernels else TimeSource.CPU_SELF
    config_source = ConfigSource(config_source)
    q = {"tid": trace_id, "gemm_ops": list(GEMM_OPS), "gpu_only": time_source == "gpu"}
    walk = frame(con, schema.query("attribution", "walk"), q)
    ops = frame(con, schema.query("attribution", "ops"), q)
    gemm_ops = ops.filter(pl.col("name").is_in(GEMM_OPS))
    # Innermost GEMM ops: no GEMM op below them (linear -> matmul -> mm counts once, at mm).
    enclosing = walk.filter(pl.col("event_id") == pl.col("gemm_id"))["outer_gemm"].drop_nulls()
    innermost = gemm_ops.filter(~pl.col("event_id").is_in(enclosing.implode()))
    shapes = _gemm_shapes(walk, gemm_ops)
    innermost = innermost.join(shapes, left_on="event_id", right_on="gemm_id", how="left")

    if config is None and infer:
        parsed = [
            g
            for g in (parse_gemm(n, parse_dims(d)) for n, d in innermost.select("gemm_op", "gemm_dims").iter_rows())
            if g is not None
        ]
        distinct_dims = con.sql(
            "SELECT DISTINCT CAST(input_dims AS VARCHAR) FROM cpu_ops WHERE trace_id = $tid AND input_dims IS NOT NULL",
            params=p,
        ).fetchall()
        config = infer_config(parsed, _candidate_weight_dims([d for (d,) in distinct_dims]))
        config_source = ConfigSource.INFERRED if config is not None else ConfigSource.NONE
    clf = _Classifier(rules, config)

    units_of = _gpu_units if time_source == "gpu" else _cpu_units
    units = units_of(con, trace_id, walk, ops, shapes)
    units = _classify(units, clf)
    template, window = None, None
    if time_source == "gpu":
        units, template, window = _split_template(con, trace_id, units)
        units = _align_graph(units, template)
        if config is not None:
            units = _graph_gemm_roles(units, config)

    units, structure = _structure(units, time_source, rules, config is not None)

    g = innermost.join(walk.select("event_id", "comp", "layer", "chain"), on="event_id", how="left")
    g = g.select(
        pl.col("event_id").alias("gemm_id"),
        pl.lit(None, dtype=pl.String).alias("kernel"),
        pl.col("name").alias("op"),
        pl.col("chain"),
        pl.col("comp").alias("scope"),
        pl.col("gemm_op"),
        pl.col("gemm_dims"),
        pl.lit(None, dtype=pl.String).alias("op_dims"),
        pl.col("layer"),
        pl.col("types"),
    )
    g = _classify(g, clf)
    graph = None
    if time_source == "gpu":
        units = _graph_gemm_ids(units)
        ran = units.select("gemm_id").drop_nulls().unique()["gemm_id"]
        g = pl.concat([g.filter(pl.col("gemm_id").is_in(ran.implode())), _graph_gemms(units, g)])
        graph = _graph_summary(units, template)
    layer_source = LayerSource.SCOPE if units["layer"].drop_nulls().len() else None
    if layer_source is None and time_source == "gpu" and config is not None:
        inferred = infer_layers(units, config.n_layer)
        if inferred is not None and inferred.drop_nulls().len():
            units = units.with_columns(inferred)
            layer_source = LayerSource.INFERRED
    if layer_source is None and structure is not None:
        units = units.with_columns(pl.col("_struct_layer").cast(units.schema["layer"]).alias("layer"))
        layer_source = LayerSource.STRUCTURE
    if layer_source in (LayerSource.INFERRED, LayerSource.STRUCTURE):  # GEMM calls take their kernels' layer
        by_gemm = units.drop_nulls("gemm_id").group_by("gemm_id").agg(pl.col("layer").first().alias("_l"))
        g = g.join(by_gemm, on="gemm_id", how="left").with_columns(pl.col("_l").alias("layer")).drop("_l")
    units = units.drop("_struct_layer", "_elem", strict=False)
    shapes = [parse_gemm(o, parse_dims(d)) for o, d in g.select("gemm_op", "gemm_dims").iter_rows()]
    g = g.with_columns(
        pl.Series("flops", [s.flops if s else None for s in shapes], dtype=pl.Int64),
        pl.Series(
            "tokens", [_tokens(s, clf.roles, sc) for s, sc in zip(shapes, g["scope"], strict=True)], dtype=pl.Int64
        ),
    )
    units = units.drop("tmpl_gemm", strict=False)
    return Attribution(
        trace_id, time_source, units, g, config, config_source, walk, layer_source, template, window, graph, structure
    )


def _structure(
    units: pl.DataFrame, time_source: str, rules: Sequence[Rule], have_config: bool
) -> tuple[pl.DataFrame, Structure | None]:
    """Units left undecided take their component from their position in the layer (analyzers/structure.py).

    GPU: each stream's kernels in start order, each CUDA-graph launch's replay on its own. CPU-only: each
    thread's top-level CPU ops in start order, each standing for its whole subtree. Applied only when the
    trace shows a Mamba model: a config, a conv / SSM unit by name rules, or a conv op.
    """
    gpu = time_source == TimeSource.GPU
    fallback = [f"rule {r.source}" for r in rules if r.fallback]
    named = pl.col("reason").str.starts_with("rule") & ~pl.col("reason").is_in(fallback)
    if gpu:
        seq = (
            pl.when(pl.col("launcher") == GRAPH_LAUNCH)
            .then(pl.format("g{}", pl.col("launch_id")))
            .otherwise(pl.format("s{}:{}", pl.col("device"), pl.col("stream")))
        )
        units = units.with_columns(pl.col("event_id").alias("_elem"))
        elements = units.select(
            seq.alias("_seq"),
            pl.col("ts_ns").alias("_pos"),
            pl.col("_elem"),
            pl.col("kernel").alias("_name"),
            pl.col("op"),
            pl.col("kernel"),
            (
                (
                    pl.col("kernel").str.contains(GEMM_KERNEL)
                    | pl.col("gemm_id").is_not_null()
                    | pl.col("role").is_not_null()
                )
                & ~(named & pl.col("component").is_in(["conv", "ssm", "rmsnorm"]))
            ).alias("_gemm"),
        )
    else:
        units = units.with_columns(_top_cpu_op(units).alias("_elem"))
        elements = units.filter(pl.col("event_id") == pl.col("_elem")).select(
            pl.col("tid").cast(pl.String).alias("_seq"),
            pl.col("ts_ns").alias("_pos"),
            pl.col("_elem"),
            pl.col("op").alias("_name"),
            pl.col("op"),
            pl.lit(None, dtype=pl.String).alias("kernel"),
            pl.col("op").is_in(list(GEMM_OPS)).alias("_gemm"),
        )
    if elements.is_empty():
        return units, None
    anchors = {}
    for kernel, op in elements.select("kernel", "op").unique().iter_rows():
        rule = first_match(rules, kernel, op, (), True, fallback=False)
        anchors[(kernel, op)] = rule.component if rule is not None and rule.component in ("conv", "ssm") else None
    elements = elements.with_columns(
        pl.Series("_anchor", [anchors[(k, o)] for k, o in elements.select("kernel", "op").iter_rows()], dtype=pl.String)
    )
    mamba = (
        have_config
        or "conv" in anchors.values()
        or units.filter(pl.col("reason").str.starts_with("rule") & pl.col("component").is_in(["conv", "ssm"])).height
        > 0
    )
    if not mamba:
        return units, None
    return apply_structure(
        units, elements.drop("op", "kernel"), overridable=fallback, time_col="dur_ns" if gpu else "self_ns"
    )


def _top_cpu_op(units: pl.DataFrame) -> pl.Series:
    """Per unit: its outermost enclosing CPU op (itself when no CPU op encloses it); null for non-op events."""
    ids = units["event_id"].to_numpy()
    row_of = {int(e): i for i, e in enumerate(ids)}
    is_op = (units["cat"] == "cpu_op").to_numpy()
    parent = np.arange(len(ids))
    for i, p in enumerate(units["parent_id"].to_list()):
        j = row_of.get(p) if p is not None else None
        if is_op[i] and j is not None and is_op[j]:
            parent[i] = j
    while True:
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    top = pl.Series("_elem", ids[parent]).cast(units.schema["event_id"])
    return top.scatter(np.flatnonzero(~is_op), None) if (~is_op).any() else top


GRAPH_LAUNCH = "cudaGraphLaunch"
# The user annotation around the eager template step of a CUDA-graph decode trace (collectors/scopes.py).
TEMPLATE_SCOPE = "tracekit.template"
# GEMM kernels by name: cuBLAS/cuBLASLt (gemm, gemv, nvjet, splitKreduce), CUTLASS, xmma, ROCm Tensile/hipBLASLt
# (Cijk_), vLLM's ROCm skinny GEMM (wvSplitK), Triton matmuls.
GEMM_KERNEL = r"(?i)nvjet|gemm|gemv|cutlass|xmma|Cijk_|splitkreduce|wvsplitk|matmul"


def _graph_gemm_roles(units: pl.DataFrame, cfg: ModelConfig) -> pl.DataFrame:
    """Roles of GEMMs replayed from a CUDA graph, from their position in the step.

    A graph replay runs no Python, so its GEMM kernels have no launching aten op and no shapes. A decode
    step's GEMMs run in model order, so with the config their roles follow from position within each
    graph launch: per layer Mamba-1 [in_proj, x_proj, dt_proj, out_proj], Mamba-2 [in_proj, out_proj],
    then lm_head. Applied only to launches holding exactly that many unresolved GEMM kernels (a split-K
    or fused GEMM changes the count and leaves them in `other`); reason "graph position".
    """
    roles = (
        [("gated_mlp", "in_proj"), ("ssm", "x_proj"), ("ssm", "dt_proj"), ("final_linear", "out_proj")]
        if cfg.arch == "mamba1"
        else [("gated_mlp", "in_proj"), ("final_linear", "out_proj")]
    )
    expected = len(roles) * cfg.n_layer + 1
    cand = units.filter(
        (pl.col("launcher") == GRAPH_LAUNCH)
        & (pl.col("reason") == "default")
        & pl.col("kernel").str.contains(GEMM_KERNEL)
    ).sort("ts_ns")
    if cand.is_empty():
        return units
    cand = cand.with_columns(
        pl.int_range(pl.len()).over("launch_id").alias("_pos"), pl.len().over("launch_id").alias("_n")
    ).filter(pl.col("_n") == expected)
    if cand.is_empty():
        return units
    pos = cand["_pos"].to_list()
    last = expected - 1
    fix = pl.DataFrame(
        {
            "event_id": cand["event_id"],
            "_component": ["other" if p == last else roles[p % len(roles)][0] for p in pos],
            "_role": ["lm_head" if p == last else roles[p % len(roles)][1] for p in pos],
        }
    )
    out = units.join(fix, on="event_id", how="left")
    hit = pl.col("_component").is_not_null()
    return out.with_columns(
        pl.when(hit).then(pl.col("_component")).otherwise(pl.col("component")).alias("component"),
        pl.when(hit).then(pl.lit("graph position")).otherwise(pl.col("reason")).alias("reason"),
        pl.when(hit).then(pl.col("_role")).otherwise(pl.col("role")).alias("role"),
    ).drop("_component", "_role")


def _split_template(
    con: duckdb.DuckDBPyConnection, trace_id: int, units: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame | None, tuple[int, int] | None]:
    """(units without the template step, the template step's kernels or None, its CPU window or None).

    The template's kernels are those launched inside the `tracekit.template` annotation (by launch time, so
    Triton kernels launched without an aten op count too). They are not decode steps: they are held out of
    the units (and so of every total) and serve only as the pattern replays are aligned with.
    """
    wins = con.sql(schema.query("attribution", "template_windows"), params={"tid": trace_id, "name": TEMPLATE_SCOPE})
    rows = wins.fetchall()
    if not rows:
        return units, None, None
    lo, hi = rows[0]
    inside = pl.col("launch_ts").is_between(lo, hi) & pl.col("launch_ts").is_not_null()
    template = units.filter(inside).sort("ts_ns")
    if template.is_empty():
        return units, None, (lo, hi)
    return units.filter(~inside.fill_null(False)), template, (lo, hi)


def _alignment(template: Sequence[str], replay: Sequence[str]) -> list[int | None]:
    """For each replayed kernel, the index of the template kernel it aligns with (None: no counterpart).

    Identical sequences map one to one; otherwise the longest matching blocks of kernel names in order
    (difflib's SequenceMatcher, no junk heuristic), so a few extra, missing or renamed kernels leave the rest
    aligned.
    """
    if list(template) == list(replay):
        return list(range(len(replay)))
    out: list[int | None] = [None] * len(replay)
    sm = difflib.SequenceMatcher(None, list(template), list(replay), autojunk=False)
    for a, b, n in sm.get_matching_blocks():
        for i in range(n):
            out[b + i] = a + i
    return out


def _align_graph(units: pl.DataFrame, template: pl.DataFrame | None) -> pl.DataFrame:
    """Give each kernel of a CUDA-graph replay the component, layer and GEMM role of its template kernel.

    Replays are the kernels launched by `cudaGraphLaunch`, one sequence per launch in GPU start order; each
    is aligned with the template's kernel sequence by name and order (`_alignment`, memoised per distinct
    sequence: every replay of one graph is the same). Aligned kernels get reason "graph template" and
    `tmpl_gemm` (the template kernel's GEMM op, for FLOPs); the others keep what rules gave them.
    """
    units = units.with_columns(pl.lit(None, dtype=pl.Int64).alias("tmpl_gemm"))
    if template is None:
        return units
    rep = units.filter(pl.col("launcher") == GRAPH_LAUNCH).sort("launch_id", "ts_ns", "event_id")
    if rep.is_empty():
        return units
    t_names = template["kernel"].to_list()
    t_rows = template.select("component", "layer", "role", "gemm_id").rows()
    memo: dict[tuple[str, ...], list[int | None]] = {}
    ids, comps, layers, roles, gemms = [], [], [], [], []
    for (_launch,), grp in rep.group_by("launch_id", maintain_order=True):
        names = tuple(grp["kernel"].to_list())
        if names not in memo:
            memo[names] = _alignment(t_names, names)
        for eid, j in zip(grp["event_id"].to_list(), memo[names], strict=True):
            if j is None:
                continue
            c, layer, role, gid = t_rows[j]
            ids.append(eid)
            comps.append(c)
            layers.append(layer)
            roles.append(role)
            gemms.append(gid)
    if not ids:
        return units
    fix = pl.DataFrame(
        {"event_id": ids, "_c": comps, "_l": layers, "_r": roles, "_g": gemms},
        schema={"event_id": pl.Int64, "_c": pl.String, "_l": pl.Int32, "_r": pl.String, "_g": pl.Int64},
    ).with_columns(pl.col("event_id").cast(units.schema["event_id"]), pl.col("_l").cast(units.schema["layer"]))
    out = units.join(fix, on="event_id", how="left")
    hit = pl.col("_c").is_not_null()
    return out.with_columns(
        pl.when(hit).then(pl.col("_c")).otherwise(pl.col("component")).alias("component"),
        pl.when(hit).then(pl.col("_l")).otherwise(pl.col("layer")).alias("layer"),
        pl.when(hit).then(pl.col("_r")).otherwise(pl.col("role")).alias("role"),
        pl.when(hit).then(pl.lit("graph template")).otherwise(pl.col("reason")).alias("reason"),
        pl.when(hit).then(pl.col("_g")).otherwise(pl.col("tmpl_gemm")).alias("tmpl_gemm"),
    ).drop("_c", "_l", "_r", "_g")


def _graph_gemm_ids(units: pl.DataFrame) -> pl.DataFrame:
    """`gemm_id` for replayed GEMM kernels (which have no GEMM op): one id per GEMM call of a replay.

    Template-aligned: the kernels of one launch aligned with the same template GEMM op form one call (a
    split-K GEMM and its reduction count once), id = their first kernel's event id. Graph position: each
    kernel is one call (id = its event id).
    """
    first = pl.col("event_id").min().over("launch_id", "tmpl_gemm")
    return units.with_columns(
        pl.when(pl.col("tmpl_gemm").is_not_null())
        .then(first)
        .when(pl.col("reason") == "graph position")
        .then(pl.col("event_id"))
        .otherwise(pl.col("gemm_id"))
        .alias("gemm_id")
    )


def _graph_gemms(units: pl.DataFrame, gemm_ops: pl.DataFrame) -> pl.DataFrame:
    """Rows of the GEMM frame for replayed GEMM calls (same columns as `gemm_ops`).

    Template-aligned calls copy their template GEMM op's shapes (so FLOPs and tokens follow from them);
    position-inferred ones have a role but no shapes (FLOPs and tokens filled from the batch by
    `with_graph_gemms`).
    """
    calls = (
        units.filter(pl.col("reason").is_in(["graph template", "graph position"]) & pl.col("gemm_id").is_not_null())
        .sort("ts_ns")
        .group_by("gemm_id", maintain_order=True)
        .agg(pl.col("kernel", "tmpl_gemm", "layer", "component", "reason", "role").first())
    )
    cols = gemm_ops.columns
    if calls.is_empty():
        return gemm_ops.clear()
    tmpl = gemm_ops.drop("layer", "component", "reason", "role").rename({"gemm_id": "tmpl_gemm"})
    tmpl = tmpl.drop("kernel")
    out = calls.join(tmpl, on="tmpl_gemm", how="left")
    out = out.with_columns(
        *(pl.lit(None, dtype=gemm_ops.schema[c]).alias(c) for c in cols if c not in out.columns),
    )
    out = out.with_columns(pl.col("chain").fill_null([]))
    return out.select([pl.col(c).cast(gemm_ops.schema[c]) for c in cols])


def _graph_summary(units: pl.DataFrame, template: pl.DataFrame | None) -> GraphAlignment | None:
    rep = units.filter(pl.col("launcher") == GRAPH_LAUNCH)
    if rep.is_empty() and template is None:
        return None
    aligned = rep.filter(pl.col("reason") == "graph template")
    inferred = rep.filter(pl.col("reason") != "graph template")

    def ns(f: pl.DataFrame) -> int:
        return int(f["dur_ns"].sum() or 0)

    return GraphAlignment(
        template=template is not None,
        template_kernels=template.height if template is not None else 0,
        template_ns=ns(template) if template is not None else 0,
        replays=rep["launch_id"].n_unique(),
        replayed=rep.height,
        replayed_ns=ns(rep),
        aligned=aligned.height,
        aligned_ns=ns(aligned),
        inferred=inferred.height,
        inferred_ns=ns(inferred),
        inferred_other_ns=ns(inferred.filter(pl.col("component") == "other")),
    )


def with_graph_gemms(att: Attribution, batch: int | None) -> Attribution:
    """`att` with tokens and FLOPs of its position-inferred replay GEMMs, from the batch (a decode step: one
    token per sequence) and the weight shape of their role. Without a batch or config: `att` unchanged."""
    cfg = att.config
    g = att.gemms
    if cfg is None or not batch or g.is_empty():
        return att
    pairs = projection_shapes(cfg)
    todo = (pl.col("reason") == "graph position") & pl.col("tokens").is_null() & pl.col("role").is_in(list(pairs))
    flops = pl.col("role").replace_strict(
        {r: 2 * batch * i * o for r, (i, o) in pairs.items()}, default=None, return_dtype=pl.Int64
    )
    return dataclasses.replace(
        att,
        gemms=g.with_columns(
            pl.when(todo).then(pl.lit(batch, dtype=pl.Int64)).otherwise(pl.col("tokens")).alias("tokens"),
            pl.when(todo).then(flops).otherwise(pl.col("flops")).alias("flops"),
        ),
    )


def _tokens(g: Gemm | None, roles: GemmRoles | None, scope: str | None) -> int | None:
    """Rows of activations of a classified projection: the outer dim that is not the weight's out_features."""
    if g is None or roles is None:
        return None
    hit = roles.classify(g, prefer=scope)
    if hit is None:
        return None
    return g.batch * (g.m if hit[2] == (g.k, g.n) else g.n)


def _candidate_weight_dims(dims_json: Sequence[str | None]) -> list[list[int]]:
    out: list[list[int]] = []
    for raw in dims_json:
        for d in parse_dims(raw) or []:
            if 2 <= len(d) <= 3:
                out.append(d)
    return out


def _gemm_shapes(walk: pl.DataFrame, gemm_ops: pl.DataFrame) -> pl.DataFrame:
    """The shapes each GEMM op is read from: gemm_id, gemm_op, gemm_dims (its own, but see below).

    torch runs `x @ W.T` over a non-contiguous 3-D input, and `W @ x` over a batch, as an `aten::bmm` against
    the weight expanded per batch (transformers 5.25's Mamba-1 x_proj and out_proj linears, its dt_proj
    matmul): the bmm's shapes no longer tell the weight from the activation; the enclosing linear / matmul's
    do. A bmm / baddbmm is read from the nearest enclosing GEMM op that names a weight and has its FLOPs.
    """
    above = dict(walk.filter(pl.col("event_id") == pl.col("gemm_id")).select("event_id", "outer_gemm").iter_rows())
    own = {e: (n, d) for e, n, d in gemm_ops.select("event_id", "name", "dims").iter_rows()}
    read = dict(own)
    for event_id, (name, dims) in own.items():
        inner = parse_gemm(name, parse_dims(dims)) if name in BATCHED_GEMM_OPS else None
        up = above.get(event_id) if inner is not None else None
        while up is not None and up in own:
            outer = parse_gemm(own[up][0], parse_dims(own[up][1]))
            if outer is not None and outer.weights and outer.flops == inner.flops:
                read[event_id] = own[up]
                break
            up = above.get(up)
    return pl.DataFrame(
        {"gemm_id": list(read), "gemm_op": [n for n, _ in read.values()], "gemm_dims": [d for _, d in read.values()]},
        schema={"gemm_id": gemm_ops.schema["event_id"], "gemm_op": pl.String, "gemm_dims": pl.String},
    )


def _gpu_units(
    con: duckdb.DuckDBPyConnection, trace_id: int, walk: pl.DataFrame, ops: pl.DataFrame, shapes: pl.DataFrame
) -> pl.DataFrame:
    k = frame(con, schema.query("attribution", "kernel_units"), {"tid": trace_id})
    w_op = walk.drop("outer_gemm").rename({"event_id": "op_id", "comp": "op_comp", "layer": "op_layer"})
    w_gpu = walk.select(pl.col("event_id"), pl.col("comp").alias("gpu_comp"), pl.col("layer").alias("gpu_layer"))
    k = k.join(w_op, on="op_id", how="left").join(w_gpu, on="event_id", how="left")
    op_dims = ops.select(pl.col("event_id").alias("op_id"), pl.col("dims").alias("op_dims"))
    k = k.join(shapes, on="gemm_id", how="left").join(op_dims, on="op_id", how="left")
    return k.with_columns(
        pl.coalesce("op_comp", "gpu_comp").alias("scope"),
        pl.coalesce("op_layer", "gpu_layer").alias("layer"),
        pl.col("chain").fill_null([]),
    ).drop("op_comp", "gpu_comp", "op_layer", "gpu_layer")


def _cpu_units(
    con: duckdb.DuckDBPyConnection, trace_id: int, walk: pl.DataFrame, ops: pl.DataFrame, shapes: pl.DataFrame
) -> pl.DataFrame:
    """CPU events with their self time (duration minus direct CPU children on the same thread)."""
    e = frame(con, schema.query("attribution", "cpu_units"), {"tid": trace_id})
    e = e.join(walk.drop("outer_gemm"), on="event_id", how="left")
    op_dims = ops.select(pl.col("event_id"), pl.col("dims").alias("op_dims"))
    e = e.join(shapes, on="gemm_id", how="left").join(op_dims, on="event_id", how="left")
    return e.with_columns(
        pl.lit(None, dtype=pl.String).alias("kernel"),
        pl.col("comp").alias("scope"),
        pl.col("chain").fill_null([]),
    ).drop("comp")


def type_bytes(types_json: str | None) -> int | None:
    """Element size of the first tensor input from recorded `Input type` (bf16/half 2, float 4)."""
    if not types_json:
        return None
    try:
        types = json.loads(types_json)
    except ValueError:
        return None
    if not isinstance(types, list):
        return None
    for t in types:
        if isinstance(t, str) and (size := dtype_bytes(t)):
            return size
    return None
