"""Turn kept-state indices into a `masked` or a `physical` model.

Why no bridging linear (the paper's W_bridge) is needed: the SSM output is y = Σ_s C_s·h_s + D·x and
nothing mixes across the state dimension (the conv is depthwise, the gated norm acts on y, not on h).
A pruned state with zero input B_s (h_s stays 0 from its zero initial state) or zero read-out C_s adds
exactly nothing to y, so a model whose d_state is simply k, with the kept rows sliced out, computes the
same function as the masked one, and the layers after it see the same d_inner-wide y as before.

Mamba-2 subtlety: B and C pass through the depthwise conv and SiLU *after* in_proj, so zeroing their
in_proj rows is not enough — silu(conv bias) ≠ 0 would still feed the state. The conv weight and bias
channels of pruned states are zeroed too. Mamba-1's B and C come straight out of x_proj (no bias).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tracekit.model_config import ModelConfig
from tracekit.prune.checkpoints import build_model, mixers

VARIANTS = ("dense", "masked", "physical")


def _rows(cfg: ModelConfig, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(layer-local) row indices of the B and C entries of states `keep` (groups, k), flattened.

    Offsets are relative to the start of the B block; C follows B with an offset of groups·N.
    """
    G, N = keep.shape[0], cfg.d_state
    base = torch.arange(G)[:, None] * N
    b = (base + keep).reshape(-1)
    return b, b + G * N


def _complement(keep: torch.Tensor, n: int) -> torch.Tensor:
    """The pruned indices per group, (groups, n - k)."""
    mask = torch.ones(keep.shape[0], n, dtype=torch.bool)
    mask.scatter_(1, keep, False)
    return torch.stack([torch.nonzero(m).flatten() for m in mask])


@torch.no_grad()
def masked(model: nn.Module, cfg: ModelConfig, keep: torch.Tensor) -> nn.Module:
    """A copy of `model` whose pruned states are zeroed (same shapes, same memory)."""
    out = copy.deepcopy(model)
    for layer, m in enumerate(mixers(out)):
        drop = _complement(keep[layer], cfg.d_state)
        if drop.numel() == 0:
            continue
        b, c = _rows(cfg, drop)
        if cfg.arch == "mamba1":
            R = cfg.dt_rank_value
            m.x_proj.weight[R + b] = 0
            m.x_proj.weight[R + c] = 0
        else:
            di = cfg.d_inner
            m.in_proj.weight[2 * di + b] = 0
            m.in_proj.weight[2 * di + c] = 0
            if m.in_proj.bias is not None:
                m.in_proj.bias[2 * di + b] = 0
                m.in_proj.bias[2 * di + c] = 0
            m.conv1d.weight[di + b] = 0
            m.conv1d.weight[di + c] = 0
            if m.conv1d.bias is not None:
                m.conv1d.bias[di + b] = 0
                m.conv1d.bias[di + c] = 0
    return out


def sliced_state_dict(model: nn.Module, cfg: ModelConfig, keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """The dense state dict with every state-indexed tensor sliced to the kept states."""
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for layer in range(cfg.n_layer):
        p = f"backbone.layers.{layer}.mixer."
        b, c = _rows(cfg, keep[layer])
        if cfg.arch == "mamba1":
            R = cfg.dt_rank_value
            rows = torch.cat([torch.arange(R), R + b, R + c])
            sd[p + "x_proj.weight"] = sd[p + "x_proj.weight"][rows]
            sd[p + "A_log"] = sd[p + "A_log"][:, keep[layer][0]]
        else:
            di, G, N, H = cfg.d_inner, cfg.ngroups, cfg.d_state, cfg.nheads
            dt = 2 * di + 2 * G * N + torch.arange(H)
            rows = torch.cat([torch.arange(2 * di), 2 * di + b, 2 * di + c, dt])
            for name in ("in_proj.weight", "in_proj.bias"):
                if p + name in sd:
                    sd[p + name] = sd[p + name][rows]
            chans = torch.cat([torch.arange(di), di + b, di + c])
            for name in ("conv1d.weight", "conv1d.bias"):
                if p + name in sd:
                    sd[p + name] = sd[p + name][chans]
    return sd


@torch.no_grad()
def physical(model: nn.Module, cfg: ModelConfig, keep: torch.Tensor) -> tuple[nn.Module, ModelConfig]:
    """A smaller model with d_state = k holding the kept states' weights."""
    k = keep.shape[-1]
    small_cfg = cfg.replace(d_state=k)
    small = build_model(small_cfg)
    small.load_state_dict(sliced_state_dict(model, cfg, keep), strict=True)
    return small.eval(), small_cfg
