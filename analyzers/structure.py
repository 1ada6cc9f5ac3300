"""Layer structure of a Mamba kernel (or CPU op) stream, learned from the trace alone.

Why: most traces users bring carry no component scopes, no template step and often no shapes (HF
transformers, `generate(cg=True)`, profiler defaults, serving stacks). Names alone then leave much of a
layer in `other`: HF's unfused RMSNorms run as generic elementwise kernels, replayed SSM glue has no
launching op, GEMMs without shapes have no role. But a Mamba LM runs the same per-layer sequence for every
layer of every forward, so the sequence itself says where each unit sits in its layer:

* the per-layer period is found from the stream (the block whose back-to-back repetitions cover the most
  of it; a repeated decode step is descended into until the block holds one layer: at least two GEMM
  calls), and every exact occurrence of that layer is a layer;
* in the layer, the GEMM call before the conv is in_proj and the GEMM call after the SSM is out_proj (with
  neither anchor named, the layer is read from where its repetition starts: after the embedding);
* units between out_proj and the next in_proj are the block RMSNorm (and the residual add, which
  mamba-ssm fuses into it), except copies straight after out_proj (its result moved into the layer's
  output buffer: vLLM, SGLang), which are out_proj's;
* units between in_proj and out_proj are the mixer: SSM, except a trailing run that repeats the block
  norm's own units, which is Mamba-2's gated RMSNorm, and the data movement around a torch-path conv op,
  which is the conv; GEMM calls between in_proj and out_proj (Mamba-1's x_proj, dt_proj) are SSM;
* units outside every layer (embedding, final norm, lm_head, sampling, copies) stay as rules left them.

Structure only fills units nothing else decided (reason `default`): scopes, name rules and GEMM shapes
keep precedence, so traces that carry them are attributed as before. It applies only when the trace shows
a Mamba model (a config, or a conv / SSM unit), so a Transformer's layers are not read as Mamba's.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np
import polars as pl

# A layer has in_proj and out_proj at least; a repeated block with fewer GEMM calls is a loop inside a
# layer (Mamba-1's sequential scan on the torch path), not a layer.
MIN_GEMM_CALLS = 2
# A trailing mixer run is the gated RMSNorm only when it repeats at least this many units of the block norm.
GATED_NORM_MIN = 3
# A sub-period is the layer inside a repeated step when its repetitions cover at least this share of it.
DESCEND_COVER = 0.5
# Candidate periods tried per region (the most frequent distances between equal symbols).
CANDIDATES = 16

REASON = "layer structure"


@dataclasses.dataclass(frozen=True)
class LayerRun:
    """Layer instances found in one unit sequence: `n` layers of `period` units from `start`."""

    start: int
    period: int
    n: int


@dataclasses.dataclass(frozen=True)
class Structure:
    """What structure decided: layers found, template length, GEMM calls per layer, units and time given."""

    layers: int
    forwards: int
    template_units: tuple[int, ...]
    gemm_calls: tuple[int, ...]
    units: int
    time_ns: int


def _gemm_calls(is_gemm: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive GEMM units (a split-K GEMM and its reduction are one call)."""
    calls: list[tuple[int, int]] = []
    i, n = 0, len(is_gemm)
    while i < n:
        if is_gemm[i]:
            j = i
            while j < n and is_gemm[j]:
                j += 1
            calls.append((i, j))
            i = j
        else:
            i += 1
    return calls


def _candidates(sym: np.ndarray) -> list[int]:
    """Candidate periods: distances between consecutive occurrences of one symbol, those that could cover most."""
    if len(sym) < 4:
        return []
    order = np.argsort(sym, kind="stable")
    s = sym[order]
    same = s[1:] == s[:-1]
    gaps = (order[1:] - order[:-1])[same]
    gaps = gaps[(gaps > 0) & (gaps <= len(sym) // 2)]
    if not len(gaps):
        return []
    values, counts = np.unique(gaps, return_counts=True)
    # Ranked by the units they could cover: a layer's period is a long gap seen once per layer per symbol,
    # while a loop inside the layer gives many short ones.
    top = np.argsort(-(counts * values), kind="stable")[:CANDIDATES]
    return sorted(int(v) for v in values[top])


def _runs(sym: np.ndarray, period: int) -> list[tuple[int, int]]:
    """(start, blocks) of each maximal stretch where a block of `period` units repeats at least twice."""
    eq = np.concatenate(([False], sym[:-period] == sym[period:], [False]))
    edges = np.flatnonzero(np.diff(eq.astype(np.int8)))
    out = []
    for a, b in zip(edges[::2], edges[1::2], strict=True):
        if b - a >= period:
            out.append((int(a), int((b - a) // period + 1)))
    return out


def _best(sym: np.ndarray, ok) -> tuple[int, list[tuple[int, int]]] | None:
    """The period whose repeated blocks cover the most units (the shortest on a tie), among blocks `ok` accepts."""
    best: tuple[int, int, list[tuple[int, int]]] | None = None
    for p in _candidates(sym):
        runs = [(a, n) for a, n in _runs(sym, p) if ok(a, p)]
        cover = sum(n * p for _, n in runs)
        if cover and (best is None or cover > best[0]):
            best = (cover, p, runs)
    return (best[1], best[2]) if best else None


def find_layers(sym: np.ndarray, is_gemm: np.ndarray) -> list[LayerRun]:
    """Layer runs in one sequence of unit symbols (ints); `is_gemm` marks GEMM units.

    Templates are found by the period search (descending from a repeated decode step into its layers);
    then every exact occurrence of a template anywhere in the sequence is a layer, so a layer the period
    search framed badly (the first or last step of a run) is still found. Back-to-back occurrences form one
    run, numbered from 0 (the layer index within the forward).
    """
    n_sym = len(sym)
    starts = np.concatenate(([False], is_gemm[1:] & ~is_gemm[:-1])) | (np.arange(n_sym) == 0) & is_gemm
    cum = np.concatenate(([0], np.cumsum(starts)))

    def n_calls(a: int, p: int) -> int:
        """GEMM calls in [a, a+p): those starting there, and one running into the block from before."""
        return int(cum[a + p] - cum[a]) + int(bool(is_gemm[a]) and not bool(starts[a]))

    def layer_like(a: int, p: int) -> bool:
        return n_calls(a, p) >= MIN_GEMM_CALLS

    def descend(a: int, p: int, n: int) -> tuple[int, int] | None:
        """The layer inside a block [a, a+p) that repeats n times (a decode step): (start, period), or None.

        A block holds layers when a shorter layer-like block repeats inside it, covering at least
        DESCEND_COVER of it, and what the repetition leaves out of the block holds at most one GEMM call
        (lm_head): a loop inside one layer (Mamba-1's sequential scan) leaves in_proj, x_proj and out_proj
        out, so a layer is not descended into. The window is two blocks long when there are two, so layers
        that the block's start cuts in two (a step framed from mid-layer) are seen whole.
        """
        width = 2 * p if n >= 2 else p
        sub = _best(sym[a : a + width], lambda b, q: q < p and layer_like(a + b, q))
        if sub is None:
            return None
        q, runs = sub
        b, m = max(runs, key=lambda r: r[1])
        m = min(m, p // q)
        if m < 2 or m * q < DESCEND_COVER * p or n_calls(a, p) - n_calls(a + b, m * q) > 1:
            return None
        return descend(a + b, q, m) or (a + b, q)

    templates: dict[tuple[int, ...], None] = {}

    def search(lo: int, hi: int, depth: int) -> None:
        if hi - lo < 2 * MIN_GEMM_CALLS or depth > 8:
            return
        found = _best(sym[lo:hi], lambda a, p: layer_like(lo + a, p))
        if found is None:
            return
        p, runs = found
        covered: list[tuple[int, int]] = []
        for a, n in runs:
            start = lo + a
            s, q = descend(start, p, n) or (start, p)
            templates.setdefault(tuple(sym[s : s + q].tolist()))
            covered.append((start, start + n * p))
        # What the runs leave is searched again, one block into each neighbouring run: a run can start a few
        # units early, inside the previous forward's last layer (a prefill's last layer ends as a step's does).
        edge = lo
        for s, e in sorted(covered):
            search(edge, min(hi, s + p), depth + 1)
            edge = max(edge, e - p)
        search(edge, hi, depth + 1)

    search(0, n_sym, 0)
    taken = np.zeros(n_sym, dtype=bool)
    hits: list[tuple[int, int]] = []
    for t in sorted(templates, key=len, reverse=True):
        q = len(t)
        if q > n_sym:
            continue
        ok = np.ones(n_sym - q + 1, dtype=bool)
        for k, x in enumerate(t):
            ok &= sym[k : n_sym - q + 1 + k] == x
            if not ok.any():
                break
        i = 0
        for s in np.flatnonzero(ok).tolist():
            if s < i or taken[s : s + q].any():
                continue
            taken[s : s + q] = True
            hits.append((s, q))
            i = s + q
    runs: list[LayerRun] = []
    for s, q in sorted(hits):
        last = runs[-1] if runs else None
        if last is not None and last.period == q and last.start + last.n * q == s:
            runs[-1] = LayerRun(last.start, q, last.n + 1)
        else:
            runs.append(LayerRun(s, q, 1))
    return runs


# Around a conv that is not one fused kernel (transformers' torch path): the ops that assemble its input
# (conv state concat / copy / slice) and, after it, its causal trim, its activation and a dtype cast. CPU op
# names and GPU copy / cat kernel names.
_MOVE = re.compile(
    r"^aten::(cat|copy_|slice|to|_to_copy|unsqueeze|squeeze|narrow|pad|constant_pad_nd|roll|view|reshape|"
    r"transpose|contiguous|select|clone|expand|permute|t)$|(?i:copy|CatArray)"
)
_ACT = re.compile(r"(?i)silu|swish|sigmoid")
_CAST = re.compile(r"^aten::(to|_to_copy|copy_|contiguous)$|(?i:copy)")
# A copy into a preallocated buffer (`out[:n] = ...`): aten::copy_, or a GPU copy kernel (not a dtype cast op).
_OUT_COPY = re.compile(r"^aten::copy_$|^(?!aten::)(?i:.*copy)")


# Before the conv op: the ops that assemble its input (conv-state concat / copy, cast, slice, pad); the
# mixer's own layout ops (transpose, squeeze, view) before them stay SSM.
_CONV_INPUT = re.compile(
    r"^aten::(cat|copy_|slice|to|_to_copy|unsqueeze|narrow|pad|constant_pad_nd|roll)$|(?i:copy|CatArray)"
)


def _conv_extent(names: Sequence[str], first: int, last: int, stop: set[int]) -> list[int]:
    """Positions of the torch-path conv around the conv unit(s) [first, last]: input assembly, trim, activation.

    Only where the activation is a unit of its own after the conv (the torch path); a conv kernel that fuses
    its activation (causal-conv1d) stands alone, and the copies around it stay the mixer's.
    """
    out = []
    i = first - 1
    while i >= 0 and i not in stop and _CONV_INPUT.search(names[i]):
        out.append(i)
        i -= 1
    i, act = last + 1, False
    while i < len(names) and i not in stop:
        n = names[i]
        if not act and _ACT.search(n):
            act = True
        elif not (_CAST.search(n) if act else _MOVE.search(n)):
            break
        out.append(i)
        i += 1
    return out if act else []  # no separate activation: a fused conv kernel, which is the conv by itself


def template_components(
    sym: Sequence[int], is_gemm: Sequence[bool], anchor: Sequence[str | None], names: Sequence[str] = ()
) -> tuple[list[str], list[str | None]]:
    """(component, role) per position of one layer's unit sequence.

    `anchor` holds "conv" / "ssm" where a rule recognised the unit (None elsewhere); it fixes which GEMM
    call is in_proj when the block does not start at the layer's start.
    """
    p = len(sym)
    calls = _gemm_calls(np.asarray(is_gemm, dtype=bool))
    comps: list[str] = ["ssm"] * p
    roles: list[str | None] = [None] * p
    if len(calls) < MIN_GEMM_CALLS:
        return comps, roles
    starts = [c[0] for c in calls]
    convs = [i for i, a in enumerate(anchor) if a == "conv"]
    ssms = [i for i, a in enumerate(anchor) if a == "ssm"]
    if convs:  # in_proj: the last GEMM call before the conv, cyclically
        first_conv = convs[0]
        before = [k for k, s in enumerate(starts) if s < first_conv]
        i_in = before[-1] if before else len(calls) - 1
    elif ssms:  # out_proj: the first GEMM call after the last SSM unit; in_proj the call after it
        last_ssm = ssms[-1]
        after = [k for k, s in enumerate(starts) if s > last_ssm]
        i_out = after[0] if after else 0
        i_in = (i_out + 1) % len(calls)
    else:
        i_in = 0
    order = [calls[(i_in + k) % len(calls)] for k in range(len(calls))]
    c_in, c_out, middle = order[0], order[-1], order[1:-1]

    def span(a: int, b: int) -> list[int]:
        """Positions from a (inclusive) to b (exclusive), cyclically."""
        return [(a + k) % p for k in range((b - a) % p)]

    for i in range(*c_in):
        comps[i], roles[i] = "gated_mlp", "in_proj"
    for i in range(*c_out):
        comps[i], roles[i] = "final_linear", "out_proj"
    middle_roles = ["x_proj", "dt_proj"] if len(middle) == 2 else [None] * len(middle)
    for (a, b), role in zip(middle, middle_roles, strict=True):
        for i in range(a, b):
            roles[i] = role
    norm = span(c_out[1], c_in[0])
    # Copies straight after out_proj move its result into the layer's output buffer (vLLM, SGLang):
    # out_proj's own work. What follows is the residual add and the next block norm.
    out_copy = []
    for i in norm:
        if not (names and _OUT_COPY.search(names[i])):
            break
        out_copy.append(i)
    for i in norm:
        comps[i] = "rmsnorm"
    for i in out_copy:
        comps[i], roles[i] = "final_linear", "out_proj"
    norm = norm[len(out_copy) :]
    mixer = span(c_in[1], c_out[0])
    lo, hi = _gated_norm_tail(
        [sym[i] for i in mixer], [names[i] for i in mixer] if names else [""] * len(mixer), [sym[i] for i in norm]
    )
    for i in mixer[lo:hi]:
        comps[i] = "rmsnorm"
    for i, a in enumerate(anchor):  # a conv / SSM unit named by the rules is that, wherever it sits
        if a is not None and comps[i] not in ("gated_mlp", "final_linear"):
            comps[i] = a
    if convs and names:
        gemm_pos = {i for a, b in calls for i in range(a, b)}
        for i in _conv_extent(names, convs[0], convs[-1], gemm_pos):
            if comps[i] == "ssm":
                comps[i] = "conv"
    return comps, roles


_VIEW = re.compile(r"^aten::(view|reshape|_unsafe_view|unsqueeze|squeeze|expand|transpose|permute|t|alias)$")


def _gated_norm_tail(mixer: Sequence[int], mixer_names: Sequence[str], norm: Sequence[int]) -> tuple[int, int]:
    """[lo, hi) of the mixer's positions that are Mamba-2's gated RMSNorm ((0, 0) when there is none).

    Read back from out_proj: units whose symbol occurs in the block norm, views and the gate's activation.
    It is a norm only when it holds at least GATED_NORM_MIN, and at least half, of the units that occur once
    in the block norm's stretch (its reduction, rsqrt...; the stretch may also hold a padding mask's ops), so
    Mamba-1's `y * silu(z)` is not taken for one.
    """
    counts: dict[int, int] = {}
    for x in norm:
        counts[x] = counts.get(x, 0) + 1
    core = {x for x, c in counts.items() if c == 1}
    if len(core) < GATED_NORM_MIN:
        return 0, 0
    m = 0
    for x, name in zip(reversed(mixer), reversed(mixer_names), strict=True):
        if not (x in counts or _VIEW.search(name) or _ACT.search(name)):
            break
        m += 1
    # The mixer's own reshapes before the norm and its cast back to the model dtype after it stay SSM.
    lo, hi = len(mixer) - m, len(mixer)
    while hi > lo and (_CAST.search(mixer_names[hi - 1]) or _VIEW.search(mixer_names[hi - 1])):
        hi -= 1
    while lo < hi and _VIEW.search(mixer_names[lo]):
        lo += 1
    found = core & set(mixer[lo:hi])
    if len(found) < GATED_NORM_MIN or 2 * len(found) < len(core):
        return 0, 0
    return lo, hi


def apply(
    units: pl.DataFrame, elements: pl.DataFrame, *, overridable: Sequence[str], time_col: str
) -> tuple[pl.DataFrame, Structure | None]:
    """Fill `component`, `role` and `_struct_layer` of units nothing else decided, from the layer structure.

    `elements` has one row per element of a unit sequence: `_seq` (which sequence: a GPU stream, a graph
    launch, a CPU thread), `_pos` (order in it), `_elem` (id), `_name` (symbol), `_gemm` (a GEMM call's unit),
    `_anchor` ("conv"/"ssm" where a name rule recognised it). `units` carries `_elem` (a CPU op's whole
    subtree shares its top-level op's element). Units whose reason is `default` or in `overridable` (the
    fallback rules) take the structural component; `_struct_layer` is the layer index in its forward.
    """
    seqs = elements.sort("_seq", "_pos")
    codes = {n: i for i, n in enumerate(seqs["_name"].unique().to_list())}
    elem_ids: list[int] = []
    elem_comp: list[str] = []
    elem_role: list[str | None] = []
    elem_layer: list[int] = []
    n_layers = forwards = 0
    shapes: set[tuple[int, int]] = set()
    memo: dict[tuple, list[tuple[LayerRun, list[str], list[str | None]]]] = {}
    for _, grp in seqs.group_by("_seq", maintain_order=True):
        names = grp["_name"].to_list()
        gem = grp["_gemm"].fill_null(False).to_numpy().astype(bool)
        anc = grp["_anchor"].to_list()
        key = (tuple(names), tuple(anc))
        if key not in memo:
            sym = np.fromiter((codes[n] for n in names), dtype=np.int64, count=len(names))
            found = []
            for run in find_layers(sym, gem):
                s = slice(run.start, run.start + run.period)
                comps, roles = template_components(sym[s].tolist(), gem[s].tolist(), anc[s], names[s])
                found.append((run, comps, roles))
            memo[key] = found
        ids = grp["_elem"].to_list()
        for run, comps, roles in memo[key]:
            forwards += 1
            n_layers += run.n
            shapes.add((run.period, len(_gemm_calls(gem[run.start : run.start + run.period]))))
            for k in range(run.n):
                base = run.start + k * run.period
                elem_ids.extend(ids[base : base + run.period])
                elem_comp.extend(comps)
                elem_role.extend(roles)
                elem_layer.extend([k] * run.period)
    if not elem_ids:
        return units, None
    fix = pl.DataFrame(
        {"_elem": elem_ids, "_sc": elem_comp, "_sr": elem_role, "_sl": elem_layer},
        schema={"_elem": units.schema["_elem"], "_sc": pl.String, "_sr": pl.String, "_sl": pl.Int32},
    )
    out = units.join(fix, on="_elem", how="left")
    todo = pl.col("_sc").is_not_null() & pl.col("reason").is_in(["default", *overridable])
    given = out.filter(todo)
    out = out.with_columns(
        pl.when(todo).then(pl.col("_sc")).otherwise(pl.col("component")).alias("component"),
        pl.when(todo).then(pl.lit(REASON)).otherwise(pl.col("reason")).alias("reason"),
        pl.when(todo & pl.col("role").is_null()).then(pl.col("_sr")).otherwise(pl.col("role")).alias("role"),
        pl.col("_sl").alias("_struct_layer"),
    ).drop("_sc", "_sr", "_sl")
    summary = Structure(
        layers=n_layers,
        forwards=forwards,
        template_units=tuple(sorted({p for p, _ in shapes})),
        gemm_calls=tuple(sorted({c for _, c in shapes})),
        units=given.height,
        time_ns=int(given[time_col].sum() or 0),
    )
    return out, summary
