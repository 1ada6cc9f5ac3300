"""The decode step's SSM state update (`selective_state_update`) for any number of kept states k.

mamba-ssm's kernel gives each program 4 rows of headdim × next_power_of_two(N) (2 KiB of bf16 state at
N = 128) under 4 warps: too few bytes in flight to stream the state, so it runs at 28-48% of the copy
bandwidth and N = 96 costs what N = 128 costs (issue #14). Here a program takes BLOCK_M = 32 rows under
2 warps and all its loads are issued before the first store; N is covered either by one masked block of
next_power_of_two(N) columns (the default: measured fastest on an H200) or by power-of-two column blocks
over N rounded up to 8 (96 = 64 + 32), selectable per launch. Arithmetic per element is mamba-ssm's, in the
same order: the new state matched mamba-ssm's bit for bit on the H200 at every k from 2 to 128 (fp32, bf16);
the output's sum may round differently.

`selective_state_update` keeps mamba-ssm's signature (Mamba-2 `(batch, nheads, headdim, dstate)` and Mamba-1
`(batch, dim, dstate)` states); on CPU tensors it runs the PyTorch `state_update_ref` unless
`TRITON_INTERPRET=1` is set and triton is installed. `use_state_kernel()` swaps it into mamba-ssm's (and
transformers') decode path.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import torch

try:  # triton is optional on CPU-only installs; the PyTorch reference then serves
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

# read once, as triton does when it decorates the kernels: interpreted kernels take CPU tensors
INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
GRANULE = 8  # N is covered in power-of-two column blocks of at least this many states
MAX_BLOCKS = 6
# (BLOCK_M rows of headdim, num_warps): the autotuned set; chosen from a sweep on an H200 (benchmarks/results)
# (BLOCK_M rows of headdim, num_warps, split N into blocks): the opt-in autotuning set (config="autotune").
# Not the default: triton times its candidates on the same state over and over, so the state sits in L2,
# and on an H200 it picked configs up to 24% slower than the best once states were cycled (benchmarks/results).
CONFIGS = [(16, 2, True), (32, 2, True), (64, 4, True), (16, 2, False), (32, 2, False), (64, 4, False)]


def column_blocks(dstate: int) -> list[int]:
    """Power-of-two column blocks, largest first, that cover `dstate` rounded up to GRANULE (96 → [64, 32])."""
    n = -(-dstate // GRANULE) * GRANULE
    blocks = [1 << b for b in range(n.bit_length() - 1, -1, -1) if n & (1 << b)]
    if len(blocks) > MAX_BLOCKS:  # very large odd N: one padded block, as mamba-ssm does
        blocks = [1 << (dstate - 1).bit_length()]
    return blocks


if triton is not None:

    @triton.jit
    def _softplus(dt):
        return tl.math.log(tl.math.exp(dt) + 1)  # mamba-ssm's (triton >= 3) form, for identical results

    @triton.jit
    def _load_block(
        state_ptr,
        B_ptr,
        C_ptr,
        offs_m,
        dim,
        dstate,
        stride_state_dim,
        stride_state_dstate,
        stride_B_dstate,
        stride_C_dstate,
        N0: tl.constexpr,
        NB: tl.constexpr,
    ):
        """Columns [N0, N0 + NB) of the state tile as stored, and of B and C (every block is loaded before
        any is written, so all of a program's loads are in flight together)."""
        offs_n = N0 + tl.arange(0, NB)
        mask = (offs_m[:, None] < dim) & (offs_n[None, :] < dstate)
        ptrs = state_ptr + offs_m[:, None] * stride_state_dim + offs_n[None, :] * stride_state_dstate
        state = tl.load(ptrs, mask=mask, other=0.0)
        B = tl.load(B_ptr + offs_n * stride_B_dstate, mask=offs_n < dstate, other=0.0).to(tl.float32)
        C = tl.load(C_ptr + offs_n * stride_C_dstate, mask=offs_n < dstate, other=0.0).to(tl.float32)
        return state, B, C

    @triton.jit
    def _column_block(
        state,
        B,
        C,
        state_ptr,
        A_ptr,
        offs_m,
        dim,
        dstate,
        stride_state_dim,
        stride_state_dstate,
        stride_A_dim,
        stride_A_dstate,
        x,
        dt,
        dA_tied,
        N0: tl.constexpr,
        NB: tl.constexpr,
        TIE_HDIM: tl.constexpr,
    ):
        """Update and store columns [N0, N0 + NB) of the state tile; return their share of the output rows."""
        offs_n = N0 + tl.arange(0, NB)
        mask = (offs_m[:, None] < dim) & (offs_n[None, :] < dstate)
        ptrs = state_ptr + offs_m[:, None] * stride_state_dim + offs_n[None, :] * stride_state_dstate
        if TIE_HDIM:
            dB = B * dt
            state = state * dA_tied + dB[None, :] * x[:, None]
        else:
            A_ptrs = A_ptr + offs_m[:, None] * stride_A_dim + offs_n[None, :] * stride_A_dstate
            A = tl.load(A_ptrs, mask=mask, other=0.0).to(tl.float32)
            dA = tl.exp(A * dt[:, None])
            dB = B[None, :] * dt[:, None]
            state = state * dA + dB * x[:, None]
        tl.store(ptrs, state, mask=mask)
        return tl.sum(state * C[None, :], axis=1)

    @triton.jit
    def _tk_selective_state_update_kernel(
        state_ptr,
        x_ptr,
        dt_ptr,
        dt_bias_ptr,
        A_ptr,
        B_ptr,
        C_ptr,
        D_ptr,
        z_ptr,
        out_ptr,
        state_batch_indices_ptr,
        batch,
        nheads,
        dim,
        dstate,
        nheads_ngroups_ratio,
        stride_state_batch,
        stride_state_head,
        stride_state_dim,
        stride_state_dstate,
        stride_x_batch,
        stride_x_head,
        stride_x_dim,
        stride_dt_batch,
        stride_dt_head,
        stride_dt_dim,
        stride_dt_bias_head,
        stride_dt_bias_dim,
        stride_A_head,
        stride_A_dim,
        stride_A_dstate,
        stride_B_batch,
        stride_B_group,
        stride_B_dstate,
        stride_C_batch,
        stride_C_group,
        stride_C_dstate,
        stride_D_head,
        stride_D_dim,
        stride_z_batch,
        stride_z_head,
        stride_z_dim,
        stride_out_batch,
        stride_out_head,
        stride_out_dim,
        DT_SOFTPLUS: tl.constexpr,
        TIE_HDIM: tl.constexpr,
        HAS_DT_BIAS: tl.constexpr,
        HAS_D: tl.constexpr,
        HAS_Z: tl.constexpr,
        HAS_STATE_BATCH_INDICES: tl.constexpr,
        NB0: tl.constexpr,
        NB1: tl.constexpr,
        NB2: tl.constexpr,
        NB3: tl.constexpr,
        NB4: tl.constexpr,
        NB5: tl.constexpr,
        NPAD: tl.constexpr,
        BLOCK_SIZE_M: tl.constexpr,
        SPLIT_N: tl.constexpr,
    ):
        pid_m = tl.program_id(axis=0)
        pid_b = tl.program_id(axis=1)
        pid_h = tl.program_id(axis=2)
        offs_m = pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)
        mask_m = offs_m < dim
        out_ptrs = out_ptr + pid_b * stride_out_batch + pid_h * stride_out_head + offs_m * stride_out_dim
        if HAS_STATE_BATCH_INDICES:
            state_batch_idx = tl.load(state_batch_indices_ptr + pid_b)
            if state_batch_idx < 0:  # padding slot: no state, zero output (as mamba-ssm)
                tl.store(out_ptrs, 0.0, mask=mask_m)
                return
            state_ptr += state_batch_idx * stride_state_batch + pid_h * stride_state_head
        else:
            state_ptr += pid_b * stride_state_batch + pid_h * stride_state_head
        x_ptr += pid_b * stride_x_batch + pid_h * stride_x_head
        dt_ptr += pid_b * stride_dt_batch + pid_h * stride_dt_head
        if HAS_DT_BIAS:
            dt_bias_ptr += pid_h * stride_dt_bias_head
        A_ptr += pid_h * stride_A_head
        group = pid_h // nheads_ngroups_ratio
        B_ptr += pid_b * stride_B_batch + group * stride_B_group
        C_ptr += pid_b * stride_C_batch + group * stride_C_group

        x = tl.load(x_ptr + offs_m * stride_x_dim, mask=mask_m, other=0.0).to(tl.float32)
        if not TIE_HDIM:
            dt = tl.load(dt_ptr + offs_m * stride_dt_dim, mask=mask_m, other=0.0).to(tl.float32)
            if HAS_DT_BIAS:
                dt += tl.load(dt_bias_ptr + offs_m * stride_dt_bias_dim, mask=mask_m, other=0.0).to(tl.float32)
            if DT_SOFTPLUS:
                dt = tl.where(dt <= 20.0, _softplus(dt), dt)
            dA_tied = 0.0
        else:
            dt = tl.load(dt_ptr).to(tl.float32)
            if HAS_DT_BIAS:
                dt += tl.load(dt_bias_ptr).to(tl.float32)
            if DT_SOFTPLUS:
                dt = tl.where(dt <= 20.0, _softplus(dt), dt)
            dA_tied = tl.exp(tl.load(A_ptr).to(tl.float32) * dt)

        if SPLIT_N:  # power-of-two column blocks covering dstate rounded up to GRANULE
            # every column block's loads are issued before the first store: more bytes in flight per program
            s0, B0, C0 = _load_block(
                state_ptr,
                B_ptr,
                C_ptr,
                offs_m,
                dim,
                dstate,
                stride_state_dim,
                stride_state_dstate,
                stride_B_dstate,
                stride_C_dstate,
                0,
                NB0,
            )
            if NB1 > 0:
                s1, B1, C1 = _load_block(
                    state_ptr,
                    B_ptr,
                    C_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_B_dstate,
                    stride_C_dstate,
                    NB0,
                    NB1,
                )
            if NB2 > 0:
                s2, B2, C2 = _load_block(
                    state_ptr,
                    B_ptr,
                    C_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_B_dstate,
                    stride_C_dstate,
                    NB0 + NB1,
                    NB2,
                )
            if NB3 > 0:
                s3, B3, C3 = _load_block(
                    state_ptr,
                    B_ptr,
                    C_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_B_dstate,
                    stride_C_dstate,
                    NB0 + NB1 + NB2,
                    NB3,
                )
            if NB4 > 0:
                s4, B4, C4 = _load_block(
                    state_ptr,
                    B_ptr,
                    C_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_B_dstate,
                    stride_C_dstate,
                    NB0 + NB1 + NB2 + NB3,
                    NB4,
                )
            if NB5 > 0:
                s5, B5, C5 = _load_block(
                    state_ptr,
                    B_ptr,
                    C_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_B_dstate,
                    stride_C_dstate,
                    NB0 + NB1 + NB2 + NB3 + NB4,
                    NB5,
                )
            out = _column_block(
                s0,
                B0,
                C0,
                state_ptr,
                A_ptr,
                offs_m,
                dim,
                dstate,
                stride_state_dim,
                stride_state_dstate,
                stride_A_dim,
                stride_A_dstate,
                x,
                dt,
                dA_tied,
                0,
                NB0,
                TIE_HDIM,
            )
            if NB1 > 0:
                out += _column_block(
                    s1,
                    B1,
                    C1,
                    state_ptr,
                    A_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_A_dim,
                    stride_A_dstate,
                    x,
                    dt,
                    dA_tied,
                    NB0,
                    NB1,
                    TIE_HDIM,
                )
            if NB2 > 0:
                out += _column_block(
                    s2,
                    B2,
                    C2,
                    state_ptr,
                    A_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_A_dim,
                    stride_A_dstate,
                    x,
                    dt,
                    dA_tied,
                    NB0 + NB1,
                    NB2,
                    TIE_HDIM,
                )
            if NB3 > 0:
                out += _column_block(
                    s3,
                    B3,
                    C3,
                    state_ptr,
                    A_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_A_dim,
                    stride_A_dstate,
                    x,
                    dt,
                    dA_tied,
                    NB0 + NB1 + NB2,
                    NB3,
                    TIE_HDIM,
                )
            if NB4 > 0:
                out += _column_block(
                    s4,
                    B4,
                    C4,
                    state_ptr,
                    A_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_A_dim,
                    stride_A_dstate,
                    x,
                    dt,
                    dA_tied,
                    NB0 + NB1 + NB2 + NB3,
                    NB4,
                    TIE_HDIM,
                )
            if NB5 > 0:
                out += _column_block(
                    s5,
                    B5,
                    C5,
                    state_ptr,
                    A_ptr,
                    offs_m,
                    dim,
                    dstate,
                    stride_state_dim,
                    stride_state_dstate,
                    stride_A_dim,
                    stride_A_dstate,
                    x,
                    dt,
                    dA_tied,
                    NB0 + NB1 + NB2 + NB3 + NB4,
                    NB5,
                    TIE_HDIM,
                )
        else:  # one masked block of NPAD = next_power_of_2(dstate) columns (mamba-ssm's layout)
            s0, B0, C0 = _load_block(
                state_ptr, B_ptr, C_ptr, offs_m, dim, dstate, stride_state_dim, stride_state_dstate,
                stride_B_dstate, stride_C_dstate, 0, NPAD,
            )  # fmt: skip
            out = _column_block(
                s0, B0, C0, state_ptr, A_ptr, offs_m, dim, dstate, stride_state_dim, stride_state_dstate,
                stride_A_dim, stride_A_dstate, x, dt, dA_tied, 0, NPAD, TIE_HDIM,
            )  # fmt: skip
        if HAS_D:
            D = tl.load(D_ptr + pid_h * stride_D_head + offs_m * stride_D_dim, mask=mask_m, other=0.0)
            out += x * D.to(tl.float32)
        if HAS_Z:
            z_ptrs = z_ptr + pid_b * stride_z_batch + pid_h * stride_z_head + offs_m * stride_z_dim
            z = tl.load(z_ptrs, mask=mask_m, other=0.0).to(tl.float32)
            out *= z * tl.sigmoid(z)
        tl.store(out_ptrs, out, mask=mask_m)

    _tuned_kernel = triton.autotune(
        configs=[triton.Config({"BLOCK_SIZE_M": m, "SPLIT_N": sp}, num_warps=w) for m, w, sp in CONFIGS],
        key=["batch", "nheads", "dim", "dstate"],
        restore_value=["state_ptr"],  # tuning runs the update several times: put the state back each time
    )(_tk_selective_state_update_kernel)


def default_config(dim: int, dstate: int) -> tuple[int, int, bool]:
    """(BLOCK_M, num_warps, split N): 32 rows of headdim, two warps, one masked block of next_power_of_2(N).

    Measured on an H200 (benchmarks/results/h200_state_update_sweep.json, 12 configs × 21 shapes): within 2%
    of the best config at every batch >= 64 and N; for N not a power of two the padded block beat the split
    blocks by 2-16% at batch 64 (the narrow 16- and 32-column blocks cost more than the masked lanes).
    """
    return min(32, max(8, triton.next_power_of_2(dim))), 2, False


def _heads_form(state, x, dt, A, B, C, D, z, dt_bias):
    """mamba-ssm's argument forms made 4-d; A/dt/dt_bias/D given per head only are broadcast (stride 0)."""
    if state.dim() == 3:
        state = state.unsqueeze(1)
    batch, nheads, dim, dstate = state.shape
    if x.dim() == 2:
        x = x.unsqueeze(1)
    if dt.dim() == 2:
        dt = dt.unsqueeze(1) if dt.shape[-1] == dim and nheads == 1 else dt.unsqueeze(-1).expand(batch, nheads, dim)
    if A.dim() == 1:
        A = A[:, None, None].expand(nheads, dim, dstate)
    elif A.dim() == 2:
        A = A.unsqueeze(0)
    if B.dim() == 2:
        B = B.unsqueeze(1)
    if C.dim() == 2:
        C = C.unsqueeze(1)
    if D is not None and D.dim() == 1:
        D = D.unsqueeze(0) if nheads == 1 else D[:, None].expand(nheads, dim)
    if z is not None and z.dim() == 2:
        z = z.unsqueeze(1)
    if dt_bias is not None and dt_bias.dim() == 1:
        dt_bias = dt_bias.unsqueeze(0) if nheads == 1 else dt_bias[:, None].expand(nheads, dim)
    ngroups = B.shape[1]
    if x.shape != (batch, nheads, dim) and x.shape[1:] != (nheads, dim):
        raise ValueError(f"x has shape {tuple(x.shape)}, the state {tuple(state.shape)}")
    batch = x.shape[0]
    shapes = {
        "dt": (dt, x.shape),
        "A": (A, (nheads, dim, dstate)),
        "B": (B, (batch, ngroups, dstate)),
        "C": (C, (batch, ngroups, dstate)),
        "D": (D, (nheads, dim)),
        "z": (z, x.shape),
        "dt_bias": (dt_bias, (nheads, dim)),
    }
    for name, (t, want) in shapes.items():
        if t is not None and tuple(t.shape) != tuple(want):
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {tuple(want)}")
    if nheads % ngroups:
        raise ValueError(f"nheads {nheads} is not a multiple of ngroups {ngroups}")
    return state, x, dt, A, B, C, D, z, dt_bias


def state_update_ref(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False, state_batch_indices=None):
    """PyTorch reference with the kernel's semantics (fp32 arithmetic; the output reads the unrounded new
    state, as mamba-ssm's kernel does); also the CPU path. Updates `state` in place, returns the output."""
    has_heads = state.dim() > 3
    s4, x, dt, A, B, C, D, z, dt_bias = _heads_form(state, x, dt, A, B, C, D, z, dt_bias)
    nheads = s4.shape[1]
    rows = (
        torch.arange(x.shape[0], device=x.device)
        if state_batch_indices is None
        else state_batch_indices.to(device=x.device, dtype=torch.long)
    )
    valid = rows >= 0
    idx = rows.clamp(min=0)
    dtf = dt.float()
    if dt_bias is not None:
        dtf = dtf + dt_bias.float()
    if dt_softplus:
        dtf = torch.where(dtf <= 20.0, torch.log(torch.exp(dtf) + 1), dtf)
    rep = nheads // B.shape[1]
    Bh = B.float().repeat_interleave(rep, dim=1)  # (batch, nheads, dstate)
    Ch = C.float().repeat_interleave(rep, dim=1)
    old = s4[idx].float()
    new = old * torch.exp(A.float() * dtf[..., None]) + (Bh[:, :, None, :] * dtf[..., None]) * x.float()[..., None]
    out = (new * Ch[:, :, None, :]).sum(-1)
    if D is not None:
        out = out + x.float() * D.float()
    if z is not None:
        zf = z.float()
        out = out * (zf * torch.sigmoid(zf))
    out = torch.where(valid[:, None, None], out, torch.zeros_like(out))
    s4[idx[valid]] = new[valid].to(s4.dtype)
    out = out.to(x.dtype)
    return out if has_heads else out.squeeze(1)


def _use_triton(t: torch.Tensor) -> bool:
    if triton is None:
        return False
    return t.is_cuda or INTERPRET


def selective_state_update(
    state,
    x,
    dt,
    A,
    B,
    C,
    D=None,
    z=None,
    dt_bias=None,
    dt_softplus=False,
    state_batch_indices=None,
    *,
    config: tuple[int, int, bool] | str | None = None,
):
    """Drop-in for mamba-ssm's `selective_state_update` (same arguments, same in-place update, same output).

    `config=(BLOCK_M, num_warps, split_n)` fixes the launch (default: `default_config`); `config="autotune"`
    lets triton choose among CONFIGS on CUDA (restoring the state after each trial).
    """
    if not _use_triton(state):
        return state_update_ref(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus, state_batch_indices)
    has_heads = state.dim() > 3
    state, x, dt, A, B, C, D, z, dt_bias = _heads_form(state, x, dt, A, B, C, D, z, dt_bias)
    _, nheads, dim, dstate = state.shape
    batch = x.shape[0]
    if state_batch_indices is not None and state_batch_indices.shape != (batch,):
        raise ValueError(f"state_batch_indices has shape {tuple(state_batch_indices.shape)}, expected ({batch},)")
    out = torch.empty_like(x)
    tie_hdim = (
        A.stride(-1) == 0 and A.stride(-2) == 0 and dt.stride(-1) == 0 and (dt_bias is None or dt_bias.stride(-1) == 0)
    )
    nb = column_blocks(dstate) + [0] * MAX_BLOCKS
    args = (
        state,
        x,
        dt,
        dt_bias,
        A,
        B,
        C,
        D,
        z,
        out,
        state_batch_indices,
        batch,
        nheads,
        dim,
        dstate,
        nheads // B.shape[1],
        *state.stride(),
        *x.stride(),
        *dt.stride(),
        *(dt_bias.stride() if dt_bias is not None else (0, 0)),
        *A.stride(),
        *B.stride(),
        *C.stride(),
        *(D.stride() if D is not None else (0, 0)),
        *(z.stride() if z is not None else (0, 0, 0)),
        *out.stride(),
    )
    flags = {
        "DT_SOFTPLUS": bool(dt_softplus),
        "TIE_HDIM": bool(tie_hdim),
        "HAS_DT_BIAS": dt_bias is not None,
        "HAS_D": D is not None,
        "HAS_Z": z is not None,
        "HAS_STATE_BATCH_INDICES": state_batch_indices is not None,
        **{f"NB{i}": nb[i] for i in range(MAX_BLOCKS)},
        "NPAD": max(GRANULE, triton.next_power_of_2(dstate)),
    }
    if config == "autotune" and state.is_cuda and not INTERPRET:
        grid = lambda meta: (triton.cdiv(dim, meta["BLOCK_SIZE_M"]), batch, nheads)  # noqa: E731
        with torch.cuda.device(state.device):
            _tuned_kernel[grid](*args, **flags)
    else:
        block_m, warps, split = default_config(dim, dstate) if config in (None, "autotune") else config
        grid = (triton.cdiv(dim, block_m), batch, nheads)
        with torch.cuda.device(state.device) if state.is_cuda else contextlib.nullcontext():
            _tk_selective_state_update_kernel[grid](
                *args, **flags, BLOCK_SIZE_M=block_m, SPLIT_N=split, num_warps=warps
            )
    return out if has_heads else out.squeeze(1)


# ---- using it in place of mamba-ssm's kernel -------------------------------------------------------------

# modules whose decode step calls a module-level `selective_state_update`
DECODE_MODULES = (
    "mamba_ssm.modules.mamba2",
    "mamba_ssm.modules.mamba_simple",
    "transformers.models.mamba2.modeling_mamba2",
    "transformers.models.mamba.modeling_mamba",
)
KINDS = ("tracekit", "mamba-ssm")


@contextlib.contextmanager
def use_state_kernel(kind: str = "tracekit") -> Iterator[list[str]]:
    """Within the block, mamba-ssm's (and transformers') decode step use `kind`'s state update.

    Patches the name each decode module looked up at import (only modules already imported that hold a
    non-None `selective_state_update`); yields the patched module names; restores them on exit.
    `kind="mamba-ssm"` patches nothing.
    """
    if kind not in KINDS:
        raise ValueError(f"state kernel {kind!r}: choose from {', '.join(KINDS)}")
    saved = []
    if kind == "tracekit":
        for name in DECODE_MODULES:
            mod = sys.modules.get(name)
            if mod is None and name.startswith("mamba_ssm"):
                with contextlib.suppress(Exception):  # absent, or unusable on this machine
                    mod = __import__(name, fromlist=["_"])
            if mod is not None and getattr(mod, "selective_state_update", None) is not None:
                saved.append((mod, mod.selective_state_update))
                mod.selective_state_update = selective_state_update
    try:
        yield [m.__name__ for m, _ in saved]
    finally:
        for mod, fn in saved:
            mod.selective_state_update = fn


__all__ = ["CONFIGS", "KINDS", "column_blocks", "selective_state_update", "state_update_ref", "use_state_kernel"]
