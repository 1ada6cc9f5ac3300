"""Recompute a mixer's SSM signals (Δ, B_t, C_t and the state h_t) from its input, in plain PyTorch.

Why recompute instead of hooking inside transformers: the conv and scan run as functions, not modules,
so module hooks cannot see B_t, C_t or h_t; and the fused kernels hide them entirely. A forward hook on
each mixer captures its input; this module replays the mixer with a sequential scan written from the
Mamba equations (h_t = exp(Δ_t·A)·h_{t-1} + Δ_t·B_t·x_t, y_t = C_t·h_t + D·x_t). The replayed output
is checked against the library's output in tests, so the captured signals are the ones the model uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StateStats:
    """Per-state sums over (batch, time) of one layer: each (groups, d_state), plus the token count.

    Mamba-1 has one group. For Mamba-2, "mean over heads" means over the heads of the group that
    shares B and C; for Mamba-1 it means over the d_inner channels (Δ is per channel).
    """

    tokens: int
    delta: torch.Tensor  # Σ mean_heads(Δ)·|B_s|
    delta_bc: torch.Tensor  # Σ mean_heads(Δ)·|B_s|·|C_s|
    delta_literal: torch.Tensor  # Σ mean_heads(Δ), the same for every state of a group
    energy: torch.Tensor | None  # Σ mean_{heads,headdim}((C_s·h_s)²)

    def __add__(self, other: StateStats) -> StateStats:
        energy = None
        if self.energy is not None and other.energy is not None:
            energy = self.energy + other.energy
        return StateStats(
            self.tokens + other.tokens,
            self.delta + other.delta,
            self.delta_bc + other.delta_bc,
            self.delta_literal + other.delta_literal,
            energy,
        )


@dataclass
class Replay:
    """What a replayed mixer yields: its output (to check against the library) and the state stats."""

    output: torch.Tensor | None  # None when replayed for statistics only
    stats: StateStats


def _causal_conv(mixer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Depthwise causal conv + SiLU over (batch, L, channels), as both mixers apply it."""
    L = x.shape[1]
    w = mixer.conv1d.weight  # (channels, 1, K)
    y = F.conv1d(x.transpose(1, 2), w, mixer.conv1d.bias, padding=w.shape[-1] - 1, groups=w.shape[0])
    return F.silu(y[..., :L]).transpose(1, 2)


def _scan(
    x: torch.Tensor,  # (b, L, H, P)
    delta: torch.Tensor,  # (b, L, H)
    A: torch.Tensor,  # (H, P, N) decay rates (negative)
    B: torch.Tensor,  # (b, L, H, N)
    C: torch.Tensor,  # (b, L, H, N)
    want_energy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sequential selective scan; returns y without the D term, and Σ_{b,t} mean_P (C_s·h_s)² per (H, N)."""
    b, L, H, P = x.shape
    N = B.shape[-1]
    h = x.new_zeros(b, H, P, N)
    ys = []
    energy = x.new_zeros(H, N) if want_energy else None
    for t in range(L):
        d = delta[:, t, :, None, None]  # (b, H, 1, 1)
        h = torch.exp(d * A) * h + (d * x[:, t, :, :, None]) * B[:, t, :, None, :]
        contrib = h * C[:, t, :, None, :]  # (b, H, P, N): state s's share of y
        ys.append(contrib.sum(-1))
        if energy is not None:
            energy += contrib.pow(2).mean(2).sum(0)
    return torch.stack(ys, dim=1), energy


def _stats(
    delta: torch.Tensor,  # (b, L, H)
    B: torch.Tensor,  # (b, L, G, N)
    C: torch.Tensor,  # (b, L, G, N)
    energy_hn: torch.Tensor | None,  # (H, N)
) -> StateStats:
    b, L, H = delta.shape
    G = B.shape[2]
    d_g = delta.reshape(b, L, G, H // G).mean(-1, keepdim=True)  # mean Δ over the heads of each group
    absB, absC = B.abs(), C.abs()
    energy = None
    if energy_hn is not None:
        energy = energy_hn.reshape(G, H // G, -1).mean(1)
    return StateStats(
        tokens=b * L,
        delta=(d_g * absB).sum((0, 1)),
        delta_bc=(d_g * absB * absC).sum((0, 1)),
        delta_literal=d_g.sum((0, 1)).expand(G, B.shape[-1]).clone(),
        energy=energy,
    )


@torch.no_grad()
def replay_mamba2(mixer: nn.Module, u: torch.Tensor, want_energy: bool = True, with_output: bool = True) -> Replay:
    """Replay a transformers `Mamba2Mixer` on its input u (b, L, d_model)."""
    b, L, _ = u.shape
    H, P, N, G = mixer.num_heads, mixer.head_dim, mixer.ssm_state_size, mixer.n_groups
    di = mixer.intermediate_size
    u = u.float()
    z, xBC, dt = mixer.in_proj(u).split([di, mixer.conv_dim, H], dim=-1)
    xBC = _causal_conv(mixer, xBC)
    x, B, C = xBC.split([di, G * N, G * N], dim=-1)
    lo, hi = mixer.time_step_limit
    delta = F.softplus(dt + mixer.dt_bias).clamp(lo, hi)  # (b, L, H)
    A = -torch.exp(mixer.A_log.float())[:, None, None]  # (H, 1, 1)
    B, C = B.reshape(b, L, G, N), C.reshape(b, L, G, N)
    Bh = B.repeat_interleave(H // G, dim=2)
    Ch = C.repeat_interleave(H // G, dim=2)
    xh = x.reshape(b, L, H, P)
    if not (want_energy or with_output):  # Δ, B and C are all the Δ-based scores need
        return Replay(None, _stats(delta, B, C, None))
    y, energy = _scan(xh, delta, A, Bh, Ch, want_energy)
    y = y + mixer.D[:, None] * xh
    out = mixer.out_proj(mixer.norm(y.reshape(b, L, di), z))
    return Replay(out, _stats(delta, B, C, energy))


@torch.no_grad()
def replay_mamba1(mixer: nn.Module, u: torch.Tensor, want_energy: bool = True, with_output: bool = True) -> Replay:
    """Replay a transformers `MambaMixer` on its input u (b, L, d_model); channels act as heads, P = 1."""
    N, R = mixer.ssm_state_size, mixer.time_step_rank
    u = u.float()
    x, z = mixer.in_proj(u).chunk(2, dim=-1)
    x = _causal_conv(mixer, x)  # (b, L, di)
    dt, B, C = mixer.x_proj(x).split([R, N, N], dim=-1)
    delta = F.softplus(mixer.dt_proj(dt))  # (b, L, di): dt_proj carries the Δ bias
    A = -torch.exp(mixer.A_log.float())[:, None, :]  # (di, 1, N)
    Bh, Ch = B[:, :, None, :], C[:, :, None, :]
    if not (want_energy or with_output):
        return Replay(None, _stats(delta, Bh, Ch, None))
    y, energy = _scan(x[..., None], delta, A, Bh, Ch, want_energy)
    y = y[..., 0] + mixer.D * x
    out = mixer.out_proj(y * F.silu(z))
    return Replay(out, _stats(delta, B[:, :, None, :], C[:, :, None, :], energy))


def replay(mixer: nn.Module, u: torch.Tensor, want_energy: bool = True, with_output: bool = True) -> Replay:
    """Replay either mixer kind; without energy or output the sequential scan is skipped."""
    if hasattr(mixer, "x_proj"):
        return replay_mamba1(mixer, u, want_energy, with_output)
    return replay_mamba2(mixer, u, want_energy, with_output)
