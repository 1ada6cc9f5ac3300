"""Minimal bytes each component must move per layer call: inputs and weights read once, outputs written once.

This is a lower bound on DRAM traffic (caches, re-reads and intermediate spills only add to it), so
achieved GB/s = io_bytes / GPU time is a lower bound on the bandwidth the kernels really used.
`e` = bytes per element of activations and weights; the residual stream is fp32 when
`residual_in_fp32`; A_log/D/dt_bias are read in fp32. Recurrent state is written once in prefill and read +
written once per decode step.
"""

from __future__ import annotations

from tracekit.model_config import ModelConfig


def layer_io_bytes(
    cfg: ModelConfig, tokens: int, batch: int, e: int, *, decode: bool, block_norm: bool = True
) -> dict[str, int]:
    """Minimal bytes moved by one Mamba block for `tokens` tokens of `batch` sequences, by component."""
    t, d, di, n, x = tokens, cfg.d_model, cfg.d_inner, cfg.d_state, cfg.in_proj_out
    res = 4 if cfg.residual_in_fp32 else e
    state_passes = 2 if decode else 1
    norm = (e * t * d + 2 * res * t * d + e * t * d + e * d) if block_norm else 0
    if cfg.arch == "mamba2":
        norm += e * (3 * t * di + di)  # gated norm: read y, z; write; weight
    conv = e * (2 * t * cfg.conv_dim + cfg.conv_dim * (cfg.d_conv + 1))
    conv += state_passes * e * batch * cfg.conv_dim * cfg.d_conv
    if cfg.arch == "mamba1":
        r = cfg.dt_rank_value
        ssm = e * (t * di + di * (r + 2 * n) + t * (r + 2 * n))  # x_proj
        ssm += e * (t * r + r * di + t * di)  # dt_proj
        ssm += e * (4 * t * di + 2 * t * n) + 4 * (di * n + 2 * di)  # scan: u, Δ, z, B, C in; y out; A, D, dt_bias
        ssm += state_passes * e * batch * di * n
    else:
        g = cfg.ngroups
        ssm = e * (2 * t * di + 2 * t * g * n + t * cfg.nheads) + 4 * 3 * cfg.nheads
        ssm += state_passes * e * batch * cfg.nheads * cfg.headdim * n
    return {
        "rmsnorm": norm,
        "gated_mlp": e * (t * d + d * x + t * x),
        "conv": conv,
        "ssm": ssm,
        "final_linear": e * (t * di + di * d + t * d),
        "other": 0,
    }


def lm_head_io_bytes(cfg: ModelConfig, tokens: int, e: int) -> int:
    """Embedding gather + lm_head of one forward (the `other` component of a whole model)."""
    d, v = cfg.d_model, cfg.padded_vocab
    return e * (2 * tokens * d) + e * (tokens * d + d * v + tokens * v)
