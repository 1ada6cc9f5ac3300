"""CUDA-graph replays attributed by the template step, against the eager trace of the same point.

Fixtures: tests/data/h200_graph/b{8,64}/ — `tracekit collect --arch mamba1,mamba2 --preset 130m --seqlens 64
--mode decode --cuda-graphs both --decode-steps 6` on an NVIDIA H200 (device tool, single GPU), with their
manifests (benchmarks/h200_graph_collect.sh). The eager trace is attributed by scopes and rules, the graph
trace by aligning each replay with its template step: two independent paths to the same components.
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest
from tracekit.analyzers.attribution import _alignment
from tracekit.analyzers.components import COMPONENTS

import tracekit

DATA = Path(__file__).parents[1] / "data" / "h200_graph"
RUNS = sorted(p for p in DATA.glob("b*") if (p / "manifest.json").is_file())

# What `other` may hold in a decode trace: embedding, lm_head, sampling (argmax) and the copies around a step.
OTHER_KERNELS = re.compile(r"(?i)indexSelect|gather|gemm|nvjet|cutlass|xmma|ArgMax|copy|FillFunctor")


@pytest.fixture(scope="module")
def reports() -> dict[tuple, dict[bool, tuple]]:
    db = tracekit.open(":memory:")
    out: dict[tuple, dict[bool, tuple]] = {}
    for run_dir in RUNS:
        run = db.run(run_dir)
        by_trace = {r.trace: r for r in run.reports}
        for e in run.manifest.points:
            out.setdefault((e.arch, e.batch, e.seqlen), {})[e.cuda_graphs] = (by_trace[e.trace], db)
    return out


@pytest.mark.slow
def test_fixtures_cover_both_archs_at_two_batch_sizes(reports):
    assert {(a, b) for a, b, _ in reports} == {(a, b) for a in ("mamba1", "mamba2") for b in (8, 64)}
    assert all(set(v) == {False, True} for v in reports.values())


def test_every_replayed_kernel_is_aligned_with_the_template(reports):
    for key, d in reports.items():
        graph = d[True][0].to_dict()
        g = graph["graph"]
        assert g["template"] and g["template_kernels"] > 0, key
        assert g["replays"] == 6 and g["aligned"] == g["replayed"] and g["inferred_ns"] == 0, key
        # the template step counts in no total: kernels = replays + the eager ops around them
        assert graph["total"]["kernels"] + g["template_kernels"] == _kernel_count(d[True][1], graph["trace_id"])
        # span, by_category and GPU busy start after the template too: the kernel row equals the units' total
        [krow] = [r for r in graph["by_category"] if r["category"] == "kernel"]
        assert krow["gpu_time_ns"] == graph["total"]["gpu_time_ns"] and krow["count"] == graph["total"]["kernels"]
        assert graph["gpu_busy"] > 0.5, key  # replays keep the GPU busy (the eager template would not)
        assert not any("matches none" in n for n in graph["notes"])
        assert graph["model"]["mode"] == "decode" and graph["layer_source"] == "scope"


def _kernel_count(db, trace_id: int) -> int:
    return db.sql(f"select count(*) from kernels where trace_id = {trace_id}").item()


def test_graph_shares_within_one_point_of_eager(reports):
    for key, d in reports.items():
        eager = {r["component"]: r["share"] for r in d[False][0].to_dict()["components"]}
        graph = {r["component"]: r["share"] for r in d[True][0].to_dict()["components"]}
        for c in COMPONENTS:
            assert abs(graph[c] - eager[c]) * 100 <= 1.0, (key, c, graph[c], eager[c])


def test_other_holds_only_embedding_lm_head_sampling_and_copies(reports):
    """`other` is outside every layer, and its kernels are the embedding gather, the lm_head GEMM (one per
    step), the argmax of sampling and the fills/copies around a step; no kernel of a block is left there."""
    for key, d in reports.items():
        for graphs in (False, True):
            rep, db = d[graphs]
            by_layer = db.attribute(rep.trace_id, by="layer").to_dict()["components"]
            assert all(r["layer"] is None for r in by_layer if r["component"] == "other" and r["gpu_time_ns"]), key
            kernels = db.attribute(rep.trace_id, by="kernel").to_dict()["components"]
            other = [r for r in kernels if r["component"] == "other"]
            assert other, key
            bad = [r["kernel"] for r in other if not OTHER_KERNELS.search(r["kernel"])]
            assert not bad, (key, graphs, bad)
            gemms = [r for r in other if re.search(r"(?i)gemm|nvjet|cutlass|xmma", r["kernel"])]
            assert sum(r["count"] for r in gemms) == 6, (key, graphs)  # the lm_head, once per step


def test_graph_flops_and_io_match_the_eager_trace(reports):
    """FLOPs per component: same model, same batch, same number of steps -> the same analytic numbers."""
    for key, d in reports.items():
        eager = {r["component"]: r for r in d[False][0].to_dict()["components"]}
        graph = {r["component"]: r for r in d[True][0].to_dict()["components"]}
        for c in COMPONENTS:
            assert graph[c]["flops"] == eager[c]["flops"], (key, c)
            assert graph[c]["io_bytes"] == eager[c]["io_bytes"], (key, c)
            if c != "other":
                assert graph[c]["achieved_gbps"] and graph[c]["roofline_pct"], (key, c)


def test_alignment_survives_a_few_differing_kernels():
    t = ["emb", "norm", "gemm", "conv", "exp", "neg", "scan", "gemm", "norm", "gemm", "argmax"]
    assert _alignment(t, t) == list(range(len(t)))
    r = ["emb", "norm", "gemm", "conv", "scan", "gemm", "EXTRA", "norm", "gemm", "argmax"]  # exp/neg gone, one added
    m = _alignment(t, r)
    assert [t[j] if j is not None else None for j in m] == [
        "emb",
        "norm",
        "gemm",
        "conv",
        "scan",
        "gemm",
        None,
        "norm",
        "gemm",
        "argmax",
    ]
    assert pl.Series(m).drop_nulls().is_sorted()
