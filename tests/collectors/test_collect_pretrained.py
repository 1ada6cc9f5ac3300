"""--pretrained round trips, offline: save a tiny model to a temp dir and load it back (both formats)."""

from __future__ import annotations

import json

import pytest
import torch
from tracekit.collectors.backends import (
    build_model,
    config_from_model,
    load_pretrained,
    mamba_ssm_config_dict,
)
from tracekit.collectors.spec import CollectSpec
from tracekit.collectors.sweep import run_collect

from tracekit.errors import UsageError
from tracekit.model_config import preset


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _logits(model, ids):
    with torch.inference_mode():
        return model(ids).logits.float()


@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_hf_format_round_trip(tmp_path, arch):
    cfg = preset(arch, "tiny")
    model = build_model(cfg, "hf", "cpu", torch.float32, seed=123)
    model.save_pretrained(tmp_path)
    loaded, lcfg = load_pretrained(str(tmp_path), "hf", "cpu", torch.float32)
    assert lcfg.to_dict()["d_inner"] == cfg.d_inner and lcfg.d_state == cfg.d_state
    sd, lsd = model.state_dict(), loaded.state_dict()
    assert sd.keys() == lsd.keys()
    assert all(torch.equal(sd[k], lsd[k]) for k in sd)
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    assert torch.equal(_logits(model, ids), _logits(loaded, ids))
    # a fresh model with another seed differs: the comparison above can fail
    other = build_model(cfg, "hf", "cpu", torch.float32, seed=124)
    assert not torch.equal(_logits(model, ids), _logits(other, ids))


@pytest.mark.parametrize("arch", ["mamba1", "mamba2"])
def test_mamba_ssm_format_loads_into_hf(tmp_path, arch):
    """A checkpoint as MambaLMHeadModel.save_pretrained writes it (config.json + pytorch_model.bin with
    `backbone.embedding.*`) loads into the hf backend with identical outputs."""
    cfg = preset(arch, "tiny")
    model = build_model(cfg, "hf", "cpu", torch.float32, seed=7)
    sd = {k.replace("backbone.embeddings.", "backbone.embedding."): v for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps(mamba_ssm_config_dict(cfg)))
    loaded, lcfg = load_pretrained(str(tmp_path), "hf", "cpu", torch.float32)
    assert lcfg == cfg
    ids = torch.randint(0, cfg.vocab_size, (2, 12))
    assert torch.equal(_logits(model, ids), _logits(loaded, ids))


def test_config_from_model_matches_preset():
    for arch in ("mamba1", "mamba2"):
        cfg = preset(arch, "tiny")
        got = config_from_model(build_model(cfg, "hf", "cpu", torch.float32, 0))
        for k in (
            "d_model",
            "n_layer",
            "d_state",
            "d_conv",
            "expand",
            "d_inner",
            "in_proj_out",
            "conv_dim",
            "padded_vocab",
        ):
            assert got.to_dict()[k] == cfg.to_dict()[k], (arch, k)


def test_collect_pretrained_run(tmp_path):
    cfg = preset("mamba2", "tiny")
    ckpt = tmp_path / "ckpt"
    build_model(cfg, "hf", "cpu", torch.float32, seed=5).save_pretrained(ckpt)
    spec = CollectSpec(
        archs=(),
        device="cpu",
        seqlens=(16,),
        batch=1,
        modes=("prefill",),
        warmup=0,
        repeats=1,
        out_dir=str(tmp_path / "run"),
        pretrained=str(ckpt),
    )
    doc = run_collect(spec)
    assert doc["weights"] == str(ckpt)
    assert list(doc["models"]) == ["mamba2"] and doc["models"]["mamba2"]["d_state"] == cfg.d_state
    assert [e["status"] for e in doc["points"]] == ["ok"]


def test_pretrained_errors_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="missing: no such directory"):
        CollectSpec(device="cpu", archs=(), pretrained=str(tmp_path / "missing")).resolve()
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(UsageError, match="not mamba or mamba2"):
        CollectSpec(device="cpu", archs=(), pretrained=str(tmp_path)).resolve()
    build_model(preset("mamba1", "tiny"), "hf", "cpu", torch.float32, 0).save_pretrained(tmp_path)
    with pytest.raises(UsageError, match="holds a mamba1 model"):
        CollectSpec(device="cpu", archs=("mamba2",), pretrained=str(tmp_path)).resolve()
    with pytest.raises(UsageError, match="cannot change"):
        CollectSpec(device="cpu", archs=(), pretrained=str(tmp_path), overrides=("d_state=4",)).resolve()
