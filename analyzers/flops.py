"""Analytic FLOPs and inference-state size of a Mamba block, per layer and per model.

Conventions (docs/attribute.md, "FLOPs"): a multiply-add is 2 FLOPs; GEMM = 2·m·k·n (what
torch.utils.flop_counter counts); activations (silu, softplus, exp) are not counted. T = tokens processed
by the layer call (batch·seqlen in prefill, batch per decode step).

SSM FLOPs are the *recurrent-form* minimum: Mamba-1 9·T·d_inner·N + 2·T·d_inner (mamba_ssm's own
estimate, state-spaces/mamba issue #110: 9·B·L·D·N, plus D skip and z gate); Mamba-2
T·(5·d_inner·N + 3·d_inner) (dA·h + (Δx)⊗B: 3·P·N, y = h·C: 2·P·N, Δ·x and D·x: 3·P, per head).
The chunked SSD kernels of Mamba-2 do more work than that (an intra-chunk quadratic term), so achieved
FLOP/s over these counts is a lower bound on what the hardware executed.
"""

from __future__ import annotations

from tracekit.model_config import ModelConfig


def gemm_flops(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def layer_flops(cfg: ModelConfig, tokens: int) -> dict[str, int]:
    """FLOPs of one Mamba block (norm + mixer) for `tokens` tokens, by component."""
    t, d, di = tokens, cfg.d_model, cfg.d_inner
    out = {
        "rmsnorm": block_norm_flops(cfg, t) + gated_norm_flops(cfg, t),
        "gated_mlp": gemm_flops(t, d, cfg.in_proj_out),
        "conv": conv_flops(cfg, t),
        "ssm": ssm_projection_flops(cfg, t) + scan_flops(cfg, t),
        "final_linear": gemm_flops(t, di, d),
        "other": 0,
    }
    return out


def model_flops(cfg: ModelConfig, tokens: int) -> dict[str, int]:
    """FLOPs of the whole LM forward for `tokens` tokens: n_layer blocks + final norm + lm_head."""
    per = layer_flops(cfg, tokens)
    out = {k: v * cfg.n_layer for k, v in per.items()}
    out["rmsnorm"] += block_norm_flops(cfg, tokens)  # norm_f
    out["other"] += gemm_flops(tokens, cfg.d_model, cfg.padded_vocab)  # lm_head
    return out


def block_norm_flops(cfg: ModelConfig, tokens: int) -> int:
    """RMSNorm with fused residual add: add 1, square+sum 2, scale 1, weight 1 per element."""
    return 5 * tokens * cfg.d_model


def gated_norm_flops(cfg: ModelConfig, tokens: int) -> int:
    """Mamba-2's gated RMSNorm over y·silu(z): gate multiply 1 + norm 4 per element (silu not counted)."""
    return 5 * tokens * cfg.d_inner if cfg.arch == "mamba2" else 0


def conv_flops(cfg: ModelConfig, tokens: int) -> int:
    """Depthwise causal conv: d_conv multiply-adds per channel and token, plus the bias."""
    return 2 * tokens * cfg.conv_dim * cfg.d_conv + tokens * cfg.conv_dim


def ssm_projection_flops(cfg: ModelConfig, tokens: int) -> int:
    """Mamba-1's x_proj and dt_proj GEMMs (part of the ssm component); Mamba-2 has none."""
    if cfg.arch != "mamba1":
        return 0
    r, n = cfg.dt_rank_value, cfg.d_state
    return gemm_flops(tokens, cfg.d_inner, r + 2 * n) + gemm_flops(tokens, r, cfg.d_inner)


def scan_flops(cfg: ModelConfig, tokens: int) -> int:
    """The selective scan / SSD state recurrence in recurrent form (module docstring)."""
    di, n = cfg.d_inner, cfg.d_state
    if cfg.arch == "mamba1":
        return 9 * tokens * di * n + 2 * tokens * di
    return tokens * (5 * di * n + 3 * di)


def state_bytes(cfg: ModelConfig, dtype_bytes: int) -> dict[str, int]:
    """Inference state per sequence over all layers: conv_state + ssm_state (mamba-ssm's cache layout)."""
    conv = cfg.n_layer * cfg.conv_dim * cfg.d_conv * dtype_bytes
    if cfg.arch == "mamba1":
        ssm = cfg.n_layer * cfg.d_inner * cfg.d_state * dtype_bytes
    else:
        ssm = cfg.n_layer * cfg.nheads * cfg.headdim * cfg.d_state * dtype_bytes
    return {"conv_state_bytes": conv, "ssm_state_bytes": ssm, "state_bytes": conv + ssm}
