"""FLOPs: GEMM FLOPs from recorded shapes vs torch.utils.flop_counter.FlopCounterMode on tiny CPU models,
and the analytic per-layer formulas vs the config's own GEMM shapes."""

from __future__ import annotations

import polars as pl
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from tracekit.analyzers import flops as F
from tracekit.analyzers.attribution import attribute
from tracekit.analyzers.components import load_rules
from tracekit.analyzers.gemm_shapes import ROLE_COMPONENT, parse_gemm

import tracekit
from tests.analyzers.test_attribute_helpers import profile_cpu, tiny_config, tiny_hf_model
from tracekit.model_config import preset


@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_gemm_flops_match_flop_counter(tmp_path, arch):
    # Frozen, as for inference. FlopCounterMode's ModuleTracker hooks the inputs of every nn.Module call
    # that require grad; under no_grad a view of a parameter (transformers' `conv1d.weight.squeeze(1)`)
    # still says requires_grad but has no graph, and torch asserts "Expected gradient function to be set".
    # Since transformers 5.25 its kernel entry points are nn.Modules (kernels' Func) taking such views.
    model = tiny_hf_model(arch).requires_grad_(False)
    ids = torch.randint(0, 200, (2, 16))
    with torch.no_grad():
        path = profile_cpu(lambda: model(ids), tmp_path / "t.json", memory=False)
        with FlopCounterMode(display=False) as fc:
            model(ids)
    counts = fc.get_flop_counts()["Global"]
    aten = torch.ops.aten
    expected = sum(v for k, v in counts.items() if k in (aten.mm, aten.addmm, aten.bmm, aten.baddbmm))
    db = tracekit.open(tmp_path / "f.duckdb")
    att = attribute(
        db.con,
        db.ingest([path])[0].trace_id,
        load_rules(),
        config=tiny_config(arch),
        config_source="flags",
        infer=False,
    )
    ours = int(att.gemms["flops"].sum())
    assert expected > 0 and ours == expected
    # in_proj / out_proj GEMMs equal the analytic per-layer formulas for the same tokens
    cfg = tiny_config(arch)
    per_role = {r: int(f) for r, f in att.gemms.group_by("role").agg(pl.col("flops").sum()).rows() if r is not None}
    tokens = 2 * 16
    layer = F.layer_flops(cfg, tokens)
    assert per_role["in_proj"] == cfg.n_layer * layer["gated_mlp"]
    assert per_role["out_proj"] == cfg.n_layer * layer["final_linear"]
    assert per_role["lm_head"] == F.model_flops(cfg, tokens)["other"]
    # Mamba-1's x_proj / dt_proj, whichever aten op ran them (transformers 5.25: bmm under a linear / matmul)
    assert per_role.get("x_proj", 0) + per_role.get("dt_proj", 0) == cfg.n_layer * F.ssm_projection_flops(cfg, tokens)
    # an unscoped trace: each projection's GEMM goes to its role's component, tokens counted over the batch
    for role, component, n_tokens in (
        att.gemms.filter(pl.col("role").is_not_null()).select("role", "component", "tokens").rows()
    ):
        assert component == ROLE_COMPONENT[role] and n_tokens == tokens, role
    db.close()


def test_gemm_parsing_both_operand_orders():
    # mamba-ssm Mamba-1 in_proj: W (3072, 768) @ x^T (768, 16384)
    g = parse_gemm("aten::mm", [[3072, 768], [768, 16384]])
    assert g.flops == 2 * 3072 * 768 * 16384 and (768, 3072) in g.weights
    g = parse_gemm("aten::linear", [[8, 2048, 768], [3352, 768], []])
    assert g.weights == ((768, 3352),) and g.m == 8 * 2048
    g = parse_gemm("aten::addmm", [[64], [4, 32], [32, 64]])
    assert g.flops == 2 * 4 * 32 * 64
    # transformers' Mamba-1 dt_proj: W (d_inner, dt_rank) @ x (B, dt_rank, L)
    g = parse_gemm("aten::matmul", [[128, 8], [2, 8, 16]])
    assert g.weights == ((8, 128),) and g.flops == 2 * 2 * 128 * 8 * 16


def test_state_size_matches_notes():
    cfg = preset("mamba2", "130m")
    # NOTES.md: 24 layers x 24 heads x 64 x 128 elements per sequence = 9.4 MB in bf16
    assert F.state_bytes(cfg, 2)["ssm_state_bytes"] == 24 * 24 * 64 * 128 * 2
    m1 = preset("mamba1", "130m")
    assert F.state_bytes(m1, 2)["ssm_state_bytes"] == 24 * 1536 * 16 * 2
    assert F.state_bytes(m1, 2)["conv_state_bytes"] == 24 * 1536 * 4 * 2


def test_paper_final_linear_flops_is_whole_model():
    # NOTES.md: the paper's Final Linear (Mamba-1, L=64, B=8) = 28.99 G is out_proj over 24 layers
    cfg = preset("mamba1", "130m")
    assert F.model_flops(cfg, 8 * 64)["final_linear"] / 1e9 == pytest.approx(28.99, abs=0.01)
    # and its Gated MLP 2.42 G is in_proj of one layer
    assert F.layer_flops(cfg, 8 * 64)["gated_mlp"] / 1e9 == pytest.approx(2.42, abs=0.01)
