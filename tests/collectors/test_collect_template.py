"""The template step of CUDA-graph decode traces (collectors/measure.py), on the CPU with a stand-in mamba-ssm.

CPU torch has no CUDA graphs and the CI machine no mamba-ssm, so `mamba_ssm.utils.generation` is replaced by a
stand-in whose "graph" runs the model eagerly without module hooks firing scopes (as a replay runs no module
code), and the model by a small module laid out like `MambaLMHeadModel`. What is checked is tracekit's side:
one `tracekit.template` annotation before `decode`, scoped like an eager step, on a copy of the decode state.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import sys
import types

import pytest
import torch
from tracekit.analyzers.attribution import TEMPLATE_SCOPE as ANALYZER_TEMPLATE
from tracekit.collectors.measure import PointRunner
from tracekit.collectors.scopes import TEMPLATE_SCOPE
from tracekit.collectors.spec import Point

D, V, L = 8, 32, 2


class _Mixer(torch.nn.Module):
    def __init__(self, i: int):
        super().__init__()
        self.layer_idx = i
        self.in_proj = torch.nn.Linear(D, 2 * D)
        self.out_proj = torch.nn.Linear(D, D)

    def forward(self, x, inference_params=None):
        h, z = self.in_proj(x).chunk(2, dim=-1)
        cache = inference_params.key_value_memory_dict  # allocated on first use, as mamba-ssm's mixers do
        conv, ssm = cache.setdefault(self.layer_idx, (torch.zeros(x.shape[0], D, 4), torch.zeros(x.shape[0], D)))
        ssm.mul_(0.5).add_(h[:, -1])  # the decode state advances in place, as mamba-ssm's step does
        conv.add_(1)
        return self.out_proj(ssm.unsqueeze(1) * torch.sigmoid(z))


class _Block(torch.nn.Module):
    def __init__(self, i: int):
        super().__init__()
        self.norm = torch.nn.LayerNorm(D)
        self.mixer = _Mixer(i)

    def forward(self, x, inference_params=None):
        return x + self.mixer(self.norm(x), inference_params=inference_params)


class _LM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Module()
        self.backbone.embedding = torch.nn.Embedding(V, D)
        self.backbone.layers = torch.nn.ModuleList(_Block(i) for i in range(L))
        self.backbone.norm_f = torch.nn.LayerNorm(D)
        self.lm_head = torch.nn.Linear(D, V)

    def forward(self, input_ids, position_ids=None, inference_params=None, num_last_tokens=0):
        h = self.backbone.embedding(input_ids)
        for b in self.backbone.layers:
            h = b(h, inference_params=inference_params)
        logits = self.lm_head(self.backbone.norm_f(h))[:, -num_last_tokens:]
        return types.SimpleNamespace(logits=logits)

    def allocate_inference_cache(self, batch, max_seqlen, dtype=None):
        return {i: (torch.zeros(batch, D, 4), torch.zeros(batch, D)) for i in range(L)}


@dataclasses.dataclass
class _IP:
    max_seqlen: int
    max_batch_size: int
    seqlen_offset: int = 0
    batch_size_offset: int = 0
    key_value_memory_dict: dict = dataclasses.field(default_factory=dict)
    lengths_per_sample: object = None

    def reset(self, max_seqlen, max_batch_size):
        self.max_seqlen, self.max_batch_size, self.seqlen_offset = max_seqlen, max_batch_size, 0


def _update_graph_cache(model, cache, batch, seqlen_og, max_seqlen):
    ip = _IP(max_seqlen, batch, key_value_memory_dict=model.allocate_inference_cache(batch, max_seqlen))
    states: list[dict] = []

    def run(tok, pos, seqlen):
        states.append({i: (c.clone(), s.clone()) for i, (c, s) in ip.key_value_memory_dict.items()})
        with torch.profiler.record_function("replay"), _hooks_silenced(model):
            return model(tok, inference_params=ip, num_last_tokens=1).logits.clone()

    return types.SimpleNamespace(inference_params=ip, run=run, states=states)


class _hooks_silenced:
    """A replay runs no module code: forward hooks (the scopes) must not fire inside it."""

    def __init__(self, model):
        self.mods = list(model.modules())

    def __enter__(self):
        self.saved = [(m, m._forward_pre_hooks.copy(), m._forward_hooks.copy()) for m in self.mods]
        for m in self.mods:
            m._forward_pre_hooks.clear()
            m._forward_hooks.clear()

    def __exit__(self, *exc):
        for m, pre, post in self.saved:
            m._forward_pre_hooks.update(pre)
            m._forward_hooks.update(post)


@pytest.fixture
def fake_mamba_ssm(monkeypatch):
    gen = types.ModuleType("mamba_ssm.utils.generation")
    gen.InferenceParams = _IP
    caches: list = []

    def update(*args, **kwargs):
        caches.append(_update_graph_cache(*args, **kwargs))
        return caches[-1]

    gen.update_graph_cache = update
    for name in ("mamba_ssm", "mamba_ssm.utils"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "mamba_ssm.utils.generation", gen)
    return caches


def _events(path):
    with gzip.open(path, "rt") as f:
        return [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]


def test_scope_names_agree():
    assert TEMPLATE_SCOPE == ANALYZER_TEMPLATE == "tracekit.template"


def test_graph_decode_trace_has_one_scoped_template_before_the_replays(fake_mamba_ssm, tmp_path):
    torch.manual_seed(0)
    model = _LM().eval()
    runner = PointRunner(model, "mamba-ssm", "cpu", V, seed=0)
    p = Point("mamba2", "decode", 2, 5, 3, True)
    m = runner.decode(p, warmup=1, repeats=1, trace_path=tmp_path / p.trace_name)
    assert m.graph_template
    ev = _events(tmp_path / p.trace_name)
    [tmpl] = [e for e in ev if e["name"] == TEMPLATE_SCOPE]
    [decode] = [e for e in ev if e["name"] == "decode"]
    assert tmpl["ts"] + tmpl["dur"] <= decode["ts"]
    inside = [e for e in ev if tmpl["ts"] <= e["ts"] and e["ts"] + e["dur"] <= tmpl["ts"] + tmpl["dur"]]
    names = {e["name"] for e in inside}
    assert {f"layer.{i}" for i in range(L)} <= names
    assert {"component.gated_mlp", "component.final_linear", "component.rmsnorm", "component.other"} <= names
    # the replays are not scoped (no module code runs in a graph replay)
    in_decode = {e["name"] for e in ev if decode["ts"] <= e["ts"] <= decode["ts"] + decode["dur"]}
    assert not any(n.startswith(("layer.", "component.")) for n in in_decode)
    # the template ran on a copy: each replay (and the prompt) adds 1 to conv_state, the template nothing
    cache = fake_mamba_ssm[-1]
    assert len(cache.states) == p.decode_steps * 3  # warm-up, one timed repeat, the profiled pass
    for j, st in enumerate(cache.states):
        assert torch.equal(st[0][0], torch.full_like(st[0][0], 1 + j))


def test_eager_decode_has_no_template(fake_mamba_ssm, tmp_path):
    model = _LM().eval()
    runner = PointRunner(model, "mamba-ssm", "cpu", V, seed=0)
    p = Point("mamba2", "decode", 2, 5, 2, False)
    m = runner.decode(p, warmup=0, repeats=1, trace_path=tmp_path / p.trace_name)
    assert not m.graph_template
    assert not [e for e in _events(tmp_path / p.trace_name) if e["name"] == TEMPLATE_SCOPE]
