"""Helpers (no tests) for the attribute tests: CPU traces of tiny models, recorded here (no downloads)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from tracekit.collectors.backends import build_model

from tracekit.model_config import preset


def tiny_config(arch: str):
    """The tiny preset with a vocab (200) that differs from in_proj's width (256 for tiny Mamba-1), so the
    lm_head and in_proj GEMMs have distinguishable shapes."""
    return preset(arch, "tiny").replace(vocab_size=200)


def tiny_hf_model(arch: str) -> torch.nn.Module:
    return build_model(tiny_config(arch), "hf", "cpu", torch.float32, seed=0)


def profile_cpu(fn, out: Path, *, memory: bool = True) -> Path:
    """Run `fn` under torch.profiler (CPU, shapes, memory) and export a Kineto trace to `out`."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, profile_memory=memory) as prof:
        fn()
    prof.export_chrome_trace(str(out))
    return out


def scoped_prefill_trace(arch: str, out: Path, batch: int = 2, seqlen: int = 32) -> Path:
    """A CPU prefill trace of the tiny hf model with the collect contract's layer/component scopes."""
    from tracekit.collectors.scopes import scoped

    model = tiny_hf_model(arch)
    ids = torch.randint(0, 200, (batch, seqlen))

    def run() -> None:
        with torch.no_grad(), scoped(model, "hf"), torch.profiler.record_function("prefill"):
            model(ids)

    with contextlib.suppress(Exception):
        model(ids)  # warm up outside the profile
    return profile_cpu(run, out)
