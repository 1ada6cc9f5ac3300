"""Scoring and pruning on CPU (hf backend): signals match the library, masked == physical, errors are clean."""

from __future__ import annotations

import pytest
import torch

from tracekit.errors import TracekitError, UsageError
from tracekit.model_config import ModelConfig, preset
from tracekit.prune import apply as variants
from tracekit.prune.checkpoints import build_model, mixers, shape_key
from tracekit.prune.scoring import (
    METHODS,
    ScoreSet,
    compute_scores,
    keep_indices,
    kept_count,
    legal_k,
    load_scores,
    save_scores,
)
from tracekit.prune.signals import replay

CFGS = {
    "mamba1": preset("mamba1", "tiny"),
    # two groups, so per-group selection and the group offsets in in_proj/conv are exercised
    "mamba2": preset("mamba2", "tiny").replace(ngroups=2),
}


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module", params=sorted(CFGS))
def case(request):
    cfg = CFGS[request.param]
    model = build_model(cfg, seed=0)
    # transformers initialises conv biases to zero; trained models' are not, and a zero bias would hide
    # a masked variant that forgets them
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in mixers(model):
            m.conv1d.bias.copy_(0.5 * torch.randn(m.conv1d.bias.shape, generator=g))
    ids = torch.randint(0, 256, (2, 80), generator=torch.Generator().manual_seed(0))
    scores = compute_scores(model, cfg, METHODS, [ids], seed=3)
    return cfg, model, ids, scores


def test_replay_matches_library_mixer(case):
    """The captured Δ/B/C/h come from a replay; it must reproduce the library's mixer output."""
    _cfg, model, ids, _ = case
    seen = {}

    def hook(mod, args, kwargs, out):
        seen["u"], seen["out"] = args[0], out

    h = mixers(model)[1].register_forward_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
    h.remove()
    r = replay(mixers(model)[1], seen["u"])
    assert _rel(r.output, seen["out"]) < 1e-5


def test_score_shapes_and_semantics(case):
    cfg, model, _ids, scores = case
    groups = 1 if cfg.arch == "mamba1" else cfg.ngroups
    for m, s in scores.items():
        assert s.shape == (cfg.n_layer, groups, cfg.d_state), m
        assert torch.isfinite(s).all(), m
    lit = scores["delta-literal"]
    assert torch.allclose(lit, lit[..., :1].expand_as(lit)), "delta-literal must tie within a group"
    for m in ("delta", "delta-bc", "energy", "magnitude"):
        assert scores[m].std(-1).min() > 0, f"{m} should distinguish states"
    again = compute_scores(model, cfg, ["random"], None, seed=3)["random"]
    assert torch.equal(again, scores["random"])
    assert not torch.equal(compute_scores(model, cfg, ["random"], None, seed=4)["random"], scores["random"])


def test_delta_score_against_direct_formula():
    """Independent check of `delta` on Mamba-1: E_t[mean_c Δ_tc · |B_ts|] computed by hand."""
    cfg = CFGS["mamba1"]
    model = build_model(cfg, seed=1)
    ids = torch.randint(0, 256, (1, 40), generator=torch.Generator().manual_seed(1))
    got = compute_scores(model, cfg, ["delta"], [ids])["delta"]
    seen = {}
    m0 = mixers(model)[0]
    h = m0.register_forward_hook(lambda mod, a, out: seen.setdefault("u", a[0]))
    with torch.no_grad():
        model(input_ids=ids, use_cache=False)
        h.remove()
        x = m0.in_proj(seen["u"]).chunk(2, -1)[0]
        x = torch.nn.functional.silu(m0.conv1d(x.transpose(1, 2))[..., :40]).transpose(1, 2)
        dt, B, _ = m0.x_proj(x).split([cfg.dt_rank_value, cfg.d_state, cfg.d_state], -1)
        delta = torch.nn.functional.softplus(m0.dt_proj(dt))
    want = (delta.mean(-1, keepdim=True) * B.abs()).mean((0, 1))
    assert torch.allclose(got[0, 0], want, rtol=1e-5, atol=1e-8)


def test_topk_selection():
    assert kept_count(16, 0.0) == 16
    assert kept_count(16, 0.3) == 11
    assert kept_count(128, 0.5) == 64
    assert kept_count(16, 0.99) == 1
    for bad in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(UsageError):
            kept_count(16, bad)
    s = torch.tensor([[[0.1, 0.5, 0.5, 0.9, 0.2]]])
    assert keep_indices(s, 3).tolist() == [[[1, 2, 3]]]
    assert keep_indices(torch.zeros(1, 1, 5), 2).tolist() == [[[0, 1]]], "ties keep the lowest indices"
    m2 = preset("mamba2", "130m")
    assert legal_k(m2, 89) == 92  # 1536 + 2*92 = 1720 = 8*215
    assert (m2.d_inner + 2 * legal_k(m2, 89)) % 8 == 0
    assert legal_k(preset("mamba1", "130m"), 11) == 11


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.75])
def test_masked_equals_physical(case, ratio):
    """The exactness claim: zeroed states and removed states give the same logits (fp32, CPU)."""
    cfg, model, ids, scores = case
    keep = keep_indices(scores["delta"], kept_count(cfg.d_state, ratio))
    masked = variants.masked(model, cfg, keep)
    small, small_cfg = variants.physical(model, cfg, keep)
    assert small_cfg.d_state == keep.shape[-1]
    with torch.no_grad():
        dense = model(input_ids=ids, use_cache=False).logits
        ym = masked(input_ids=ids, use_cache=False).logits
        yp = small(input_ids=ids, use_cache=False).logits
    assert _rel(yp, ym) <= 1e-5
    assert _rel(ym, dense) > 1e-4, "pruning must change the output, else the comparison proves nothing"


def test_wrong_slices_do_not_agree(case):
    """The equivalence test can fail: slicing other states, or forgetting the conv bias, breaks it."""
    cfg, model, ids, scores = case
    k = kept_count(cfg.d_state, 0.5)
    keep = keep_indices(scores["delta"], k)
    wrong = keep_indices(-scores["delta"], k)  # the complementary states
    masked = variants.masked(model, cfg, keep)
    bad, _ = variants.physical(model, cfg, wrong)
    with torch.no_grad():
        ym = masked(input_ids=ids, use_cache=False).logits
        assert _rel(bad(input_ids=ids, use_cache=False).logits, ym) > 1e-3
    if cfg.arch == "mamba2":
        # zero only the in_proj rows: silu(conv bias) still drives the pruned states
        partial = variants.masked(model, cfg, keep)
        ref = mixers(model)
        with torch.no_grad():
            for m, r in zip(mixers(partial), ref, strict=True):
                m.conv1d.weight.copy_(r.conv1d.weight)
                m.conv1d.bias.copy_(r.conv1d.bias)
            assert _rel(partial(input_ids=ids, use_cache=False).logits, ym) > 1e-4


def test_scores_file_roundtrip_and_errors(tmp_path, case):
    cfg, _, _, scores = case
    s = ScoreSet(cfg, "delta", scores["delta"], {"seed": 0}, {"data": "x"})
    p = save_scores(s, tmp_path / "s.pt")
    back = load_scores(p)
    assert back.method == "delta" and torch.equal(back.scores, s.scores) and shape_key(back.model) == shape_key(cfg)
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    with pytest.raises(TracekitError, match="not a readable scores file"):
        load_scores(tmp_path / "corrupt.pt")
    bad = s.to_payload()
    bad["scores"] = torch.zeros(cfg.n_layer + 1, 1, cfg.d_state)
    torch.save(bad, tmp_path / "shape.pt")
    with pytest.raises(TracekitError, match="shape"):
        load_scores(tmp_path / "shape.pt")
    torch.save({"x": 1}, tmp_path / "foreign.pt")
    with pytest.raises(TracekitError, match="not a tracekit scores file"):
        load_scores(tmp_path / "foreign.pt")
    with pytest.raises(TracekitError, match="no such"):
        load_scores(tmp_path / "missing.pt")


def test_physical_config_is_a_plain_smaller_model():
    cfg = ModelConfig("mamba2", d_model=64, n_layer=1, vocab_size=256, d_state=32, headdim=16, chunk_size=32)
    model = build_model(cfg)
    keep = torch.arange(0, 32, 2)[None, None]
    small, small_cfg = variants.physical(model, cfg, keep)
    m = mixers(small)[0]
    assert m.in_proj.out_features == small_cfg.in_proj_out
    assert m.conv1d.weight.shape[0] == small_cfg.conv_dim == 128 + 2 * 16
