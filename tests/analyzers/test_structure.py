"""Attribution from the layer structure of the stream alone (analyzers/structure.py, issue #19).

Checked three ways, each against something independent of the structural pass:
* the period search on synthetic streams (hypothesis): layers of any content, count and framing are found;
* HF transformers' torch path on the CPU, recorded with plain `torch.profiler` (no tracekit code in the
  recorded calls) and with tracekit's scopes around the very same calls: the plain trace's components,
  read from structure alone, give in-layer shares within 2 points of the scoped trace's, timed on the
  scoped trace's own op times (two recordings on a busy CPU differ by more than 2 points in time alone);
* the scoped trace with its scopes removed: the same split from structure as from the scopes.
"""

from __future__ import annotations

import gzip
import json
import random
import re
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tracekit.analyzers import structure
from tracekit.analyzers.attribution import _top_cpu_op, attribute
from tracekit.analyzers.components import COMPONENTS, first_match, load_rules

import tracekit

SCOPE = re.compile(r"^(layer\.\d+|component\..*|prefill|decode(\.step\.\d+)?|tracekit\..*)$")


# ---- the period search --------------------------------------------------------------------------------


@st.composite
def streams(draw):
    """A decode-like stream: [embedding] + n_layer × layer + [norm_f, lm_head, sampling], steps times."""
    body = draw(st.lists(st.integers(10, 40), min_size=3, max_size=25))
    gemm_at = sorted(draw(st.sets(st.integers(0, len(body)), min_size=2, max_size=4)))
    layer = list(body)
    for k, pos in enumerate(gemm_at):
        layer.insert(pos + k, 100 + k)  # GEMM symbols 100..103, each once per layer
    n_layer = draw(st.integers(2, 6))
    steps = draw(st.integers(1, 5))
    head = draw(st.lists(st.integers(50, 60), min_size=1, max_size=4))
    tail = [*draw(st.lists(st.integers(60, 70), min_size=0, max_size=4)), 200]  # ..., lm_head
    seq: list[int] = []
    for _ in range(steps):
        seq += head + layer * n_layer + tail
    return seq, layer, n_layer, steps


@settings(max_examples=150, deadline=None)
@given(streams())
def test_every_layer_of_a_repeated_stream_is_found(case):
    seq, layer, n_layer, steps = case
    sym = np.array(seq)
    gemm = sym >= 100
    runs = structure.find_layers(sym, gemm)
    found = {(r.start + k * r.period) for r in runs for k in range(r.n)}
    assert {r.period for r in runs} == {len(layer)}, (runs, len(layer))
    assert len(found) == n_layer * steps
    for s in found:
        assert list(sym[s : s + len(layer)]) == layer or len(set(layer)) < len(layer)
    assert [r.n for r in runs] == [n_layer] * steps


def test_a_loop_inside_a_layer_is_not_taken_for_layers():
    """Mamba-1's sequential scan on the torch path: a GEMM per timestep inside each layer."""
    loop = [1, 2, 100, 3] * 64
    layer = [4, 5, 101, 6, 7, 102, *loop, 8, 103]
    seq = [0, *layer, *layer, 9, 104]
    sym = np.array(seq)
    runs = structure.find_layers(sym, sym >= 100)
    assert [(r.start, r.period, r.n) for r in runs] == [(1, len(layer), 2)]


def test_template_regions():
    """norm | in_proj | conv glue, conv | SSM | gated norm (repeats the block norm) | out_proj | residual."""
    n = {"to": 1, "pow": 2, "mean": 3, "rsqrt": 4, "mul": 5, "lin": 6, "split": 7, "conv": 8, "exp": 9}
    block_norm = ["to", "pow", "mean", "rsqrt", "mul"]
    names = [*block_norm, "lin", "split", "conv", "exp", "mul", *block_norm, "lin"]
    sym = [n[x] for x in names]
    gemm = [x == "lin" for x in names]
    anchor = ["conv" if x == "conv" else None for x in names]
    comps, roles = structure.template_components(sym, gemm, anchor, [f"aten::{x}" for x in names])
    assert comps == [
        *["rmsnorm"] * 5,
        "gated_mlp",
        "ssm",
        "conv",
        "ssm",
        *["rmsnorm"] * 6,
        "final_linear",
    ]
    assert roles[5] == "in_proj" and roles[-1] == "out_proj"


# ---- HF transformers on the CPU: plain profiler vs tracekit's scopes ----------------------------------


def _model(arch: str) -> torch.nn.Module:
    from transformers import Mamba2Config, Mamba2ForCausalLM, MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    if arch == "mamba1":
        cfg = MambaConfig(vocab_size=256, hidden_size=64, state_size=8, num_hidden_layers=2, time_step_rank=8)
        return MambaForCausalLM(cfg).eval()
    cfg = Mamba2Config(
        vocab_size=256, hidden_size=64, state_size=16, num_hidden_layers=2, head_dim=16, num_heads=8, n_groups=1,
        chunk_size=64, expand=2,
    )  # fmt: skip
    return Mamba2ForCausalLM(cfg).eval()


def _record(model, mode: str, shapes: bool, scoped: bool, path: Path) -> Path:
    """One profiled call; with `scoped`, tracekit's layer/component scopes are installed around it."""
    import contextlib

    from torch.profiler import ProfilerActivity, profile
    from tracekit.collectors.scopes import scoped as scopes

    ids = torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))

    def call():
        if mode == "forward":
            return model(ids)
        return model.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()  # warm-up: first-call paths differ
        ctx = scopes(model, "hf") if scoped else contextlib.nullcontext()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=shapes) as prof, ctx:
            call()
    prof.export_chrome_trace(str(path))
    return path


def _top_units(db, path: Path):
    """(attribution, top-level ops in time order with their component, layer and the subtree's self time)."""
    [res] = db.ingest([path], keep_going=False)
    att = attribute(db.con, res.trace_id, load_rules())
    u = att.units.with_columns(_top_cpu_op(att.units).alias("top"))
    u = u.filter(pl.col("top").is_not_null() & ~pl.col("op").str.contains(SCOPE.pattern))
    time = u.group_by("top").agg(pl.col("self_ns").sum().alias("t"))
    tops = u.filter(pl.col("event_id") == pl.col("top")).join(time, on="top").sort("ts_ns")
    return att, tops.select("op", "component", "layer", "t", "reason")


def _shares(comps: list[str], layers: list[int | None], times: list[int]) -> dict[str, float]:
    total = sum(t for t, layer in zip(times, layers, strict=True) if layer is not None)
    out = dict.fromkeys(COMPONENTS, 0.0)
    for c, layer, t in zip(comps, layers, times, strict=True):
        if layer is not None:
            out[c] += 100 * t / total
    return out


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tracekit.open(tmp_path_factory.mktemp("structure") / "s.duckdb")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
@pytest.mark.parametrize("mode", ["forward", "generate"])
@pytest.mark.parametrize("shapes", [True, False], ids=["shapes", "noshapes"])
def test_plain_hf_trace_matches_the_scoped_one(tmp_path, db, arch, mode, shapes):
    model = _model(arch)
    _, ref = _top_units(db, _record(model, mode, shapes, True, tmp_path / "scoped.json"))
    att, plain = _top_units(db, _record(model, mode, shapes, False, tmp_path / "plain.json"))
    # The same calls ran: the same top-level ops in the same order (scopes are annotations, not ops).
    assert plain["op"].to_list() == ref["op"].to_list()
    assert att.structure is not None and att.layer_source == "structure"
    forwards = 1 if mode == "forward" else 4  # generate: the prompt's forward and 3 decode steps
    assert att.structure.layers == 2 * forwards
    # In-layer shares, both read on the scoped recording's op times.
    times = ref["t"].to_list()
    want = _shares(ref["component"].to_list(), ref["layer"].to_list(), times)
    got = _shares(plain["component"].to_list(), plain["layer"].to_list(), times)
    err = max(abs(want[c] - got[c]) for c in COMPONENTS)
    assert err <= 2.0, (want, got)
    assert want["other"] == 0 and got["other"] == 0
    # Outside the layers only: embedding, final norm, lm_head, sampling; everything in a layer is a component.
    assert plain.filter(pl.col("layer").is_null() & (pl.col("component") != "other")).height <= 12
    # The layers: ref's scopes and plain's structure agree op by op on which ops are in a layer.
    assert (ref["layer"].is_null() == plain["layer"].is_null()).all()


def _strip(src: Path, dst: Path) -> Path:
    with gzip.open(src, "rt") as f:
        data = json.load(f)
    events = data["traceEvents"]
    data["traceEvents"] = [
        e for e in events if not (e.get("cat") == "user_annotation" and SCOPE.match(str(e.get("name", ""))))
    ]
    assert len(data["traceEvents"]) < len(events)
    dst.write_text(json.dumps(data))
    return dst


@pytest.mark.slow
def test_collect_traces_without_their_scopes_split_the_same(tmp_path, db, demo_run):
    """`tracekit demo`'s collect traces (hf on CPU, scoped) vs the same files with every scope removed."""
    out, r = demo_run
    assert r.returncode == 0, r.stderr
    traces = sorted((out / "run").glob("*.json.gz"))
    assert traces
    for path in traces:
        _, ref = _top_units(db, path)
        att, plain = _top_units(db, _strip(path, tmp_path / path.name.replace(".gz", "")))
        assert att.layer_source == "structure", path.name
        assert plain["op"].to_list() == ref["op"].to_list()
        times = ref["t"].to_list()
        want = _shares(ref["component"].to_list(), ref["layer"].to_list(), times)
        got = _shares(plain["component"].to_list(), plain["layer"].to_list(), times)
        assert max(abs(want[c] - got[c]) for c in COMPONENTS) <= 0.1, (path.name, want, got)


def test_renamed_ops_keep_the_layers(tmp_path, db):
    """Renaming every non-GEMM op consistently (a vocabulary tracekit has never seen) keeps every layer
    and the GEMM roles: structure reads positions, not names."""
    model = _model("mamba2")
    path = _record(model, "forward", False, False, tmp_path / "plain.json")
    att0, base = _top_units(db, path)
    data = json.loads(path.read_text())
    rng = random.Random(0)
    names = sorted({e["name"] for e in data["traceEvents"] if e.get("cat") == "cpu_op"})
    keep = {"aten::linear", "aten::conv1d", "aten::embedding"}
    new = {n: n if n in keep else f"op_{rng.getrandbits(40):010x}" for n in names}
    for e in data["traceEvents"]:
        if e.get("cat") == "cpu_op":
            e["name"] = new[e["name"]]
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps(data))
    att1, got = _top_units(db, renamed)
    assert att1.structure is not None and att1.structure.layers == att0.structure.layers == 2
    assert got["layer"].to_list() == base["layer"].to_list()
    roles = ("gated_mlp", "final_linear")
    assert got["component"].is_in(roles).to_list() == base["component"].is_in(roles).to_list()


# ---- mamba-ssm on the GPU (real H100 / H200 traces): scopes, template step and shapes taken away --------

DATA = Path(__file__).parents[1] / "data"
GPU_TRACES = [
    DATA / "h100" / "mamba1-tiny_2layer_b2_l512_h100.json.gz",
    DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz",
    *sorted((DATA / "h200_graph").glob("*/*.json.gz")),
]


def _plain_copy(src: Path, dst: Path, rename: dict[str, str] | None = None) -> Path:
    """`src` as a plain `torch.profiler` recording of the same run would be: no tracekit scopes or template
    step, no recorded shapes (profiler defaults); kernels renamed by `rename`."""
    with gzip.open(src, "rt") as f:
        data = json.load(f)
    out = []
    for e in data["traceEvents"]:
        if e.get("cat") in ("user_annotation", "gpu_user_annotation") and SCOPE.match(str(e.get("name", ""))):
            continue
        args = e.get("args")
        if isinstance(args, dict):
            for key in ("Input Dims", "Input type", "Input Strides", "Concrete Inputs"):
                args.pop(key, None)
        if rename and e.get("cat") == "kernel":
            e["name"] = rename.get(e["name"], e["name"])
        out.append(e)
    data["traceEvents"] = out
    dst.write_text(json.dumps(data))
    return dst


def _kernels(db, path: Path):
    [res] = db.ingest([path], keep_going=False)
    att = attribute(db.con, res.trace_id, load_rules())
    # graph traces: the reference holds its template step out of the units; compare the replays
    return att, att.units.sort("ts_ns", "event_id")


def _gpu_shares(units: pl.DataFrame, times: pl.Series) -> dict[str, float]:
    inl = units.with_columns(times.alias("t")).filter(pl.col("layer").is_not_null())
    got = dict(inl.group_by("component").agg(pl.col("t").sum()).iter_rows())
    total = sum(got.values())
    return {c: 100 * got.get(c, 0) / total for c in COMPONENTS}


def _same_units(ref: pl.DataFrame, plain: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    if ref.height != plain.height:  # the template step is held out of the reference: compare the replays
        ref = ref.filter(pl.col("launcher") == "cudaGraphLaunch")
        plain = plain.filter(pl.col("launcher") == "cudaGraphLaunch")
    assert ref.height == plain.height and ref.height
    return ref, plain


@pytest.mark.parametrize("trace", GPU_TRACES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_gpu_trace_without_scopes_template_or_shapes_splits_the_same(tmp_path, db, trace):
    """tracekit's collect traces (scopes; graph ones with a template step) vs the same kernels as a plain
    profiler records them: every kernel in the same component, no flags, no config."""
    _, ref = _kernels(db, trace)
    att, plain = _kernels(db, _plain_copy(trace, tmp_path / "plain.json"))
    assert att.config is None and att.structure is not None and att.layer_source == "structure"
    ref, plain = _same_units(ref, plain)
    assert plain["kernel"].to_list() == ref["kernel"].to_list()
    assert plain["component"].to_list() == ref["component"].to_list()
    assert plain["layer"].is_null().to_list() == ref["layer"].is_null().to_list()
    assert plain["dur_ns"].sum() == ref["dur_ns"].sum()


@pytest.mark.slow
@pytest.mark.parametrize("trace", GPU_TRACES[:2] + [p for p in GPU_TRACES if "_cg" not in p.name][2:4])
def test_renamed_kernels_split_the_same(tmp_path, db, trace):
    """Every kernel that no Mamba name rule knows (GEMMs, elementwise, copies, reductions) renamed to a random
    name, consistently (another cuBLAS, ROCm, a new torch): the split comes from structure and the launching
    ops alone. (Graph replays have no launching op: a replayed GEMM is known by a GEMM-like name only.)"""
    rules = load_rules()
    with gzip.open(trace, "rt") as f:
        names = {e["name"] for e in json.load(f)["traceEvents"] if e.get("cat") == "kernel"}
    rng = random.Random(1)
    known = {
        n for n in names if (r := first_match(rules, n, None, (), True, fallback=False)) and r.component != "other"
    }
    rename = {n: f"k{rng.getrandbits(48):012x}" for n in sorted(names - known)}
    assert rename
    _, ref = _kernels(db, _plain_copy(trace, tmp_path / "plain.json"))
    _, got = _kernels(db, _plain_copy(trace, tmp_path / "renamed.json", rename))
    assert got["component"].to_list() == ref["component"].to_list()
    assert got["layer"].to_list() == ref["layer"].to_list()
