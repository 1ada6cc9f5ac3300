"""`record_function` scopes added by module hooks during the profiled pass only.

Scope names (the cross-team contract, documented in docs/collect.md):

* ``layer.{i}``: one per block, 0-based, from forward pre/post hooks on each block. Hooks fire on the
  fused mamba-ssm paths too, because the block module itself is always called.
* ``component.{rmsnorm|gated_mlp|conv|ssm|final_linear|other}``: on sub-modules whose forward is
  actually called. The innermost scope wins, so on the hf backend the mixer carries ``component.ssm``
  (what is left of the mixer outside its called sub-modules is the selective scan / SSD and its
  discretisation) and its in_proj / conv / norm / out_proj override it.

  - in_proj → gated_mlp; conv1d → conv; x_proj, dt_proj, rest of the hf mixer → ssm;
    out_proj → final_linear; block norm, Mamba-2 gated norm, and the final ``norm_f`` → rmsnorm;
    embedding, lm_head → other.
  - ``norm_f`` is an RMSNorm computation whose kernel (`_layer_norm_fwd_1pass_kernel` on mamba-ssm) the
    kernel-name rules cannot tell from a block norm; labelling it rmsnorm keeps scope-based and
    kernel-based attribution consistent. It lies outside every ``layer.{i}``, so it stays separable.

On mamba-ssm the mixer gets no component scope: its fused Function runs conv, scan, gated norm and
out_proj together, so only the leaf modules that are really called (in_proj on Mamba-2 prefill; in_proj
and out_proj in decode steps) get scopes, and the analyzer attributes the rest by kernel rules.

transformers' mixers call the causal conv as a module-level function (`causal_conv1d_fn` /
`causal_conv1d_update`) with `self.conv1d.weight`, so a hook on `conv1d` never fires there; while
scopes are installed those two functions are wrapped in ``component.conv`` too (restored on exit).
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator

import torch
from torch.autograd.profiler import record_function

# User annotation around the one eager decode step recorded before the replays of a CUDA-graph decode trace
# (collectors/measure.py); analyzers/attribution.py aligns every replay with it (same string there).
TEMPLATE_SCOPE = "tracekit.template"

COMPONENTS = ("rmsnorm", "gated_mlp", "conv", "ssm", "final_linear", "other")

# leaf sub-module name inside a mixer / block -> component
_MIXER_LEAVES = {
    "in_proj": "gated_mlp",
    "conv1d": "conv",
    "x_proj": "ssm",
    "dt_proj": "ssm",
    "out_proj": "final_linear",
    "norm": "rmsnorm",
}
_HF_MODULES = ("transformers.models.mamba.modeling_mamba", "transformers.models.mamba2.modeling_mamba2")
_HF_CONV_FUNCS = ("causal_conv1d_fn", "causal_conv1d_update")


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The residual blocks in order (both backends keep them at backbone.layers)."""
    return list(model.backbone.layers)


def _embedding(model: torch.nn.Module) -> torch.nn.Module:
    bb = model.backbone
    return bb.embedding if hasattr(bb, "embedding") else bb.embeddings


class _ScopeHooks:
    """Pre/post forward hooks that open and close one record_function range per module call."""

    def __init__(self) -> None:
        self._open: list[record_function] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def add(self, module: torch.nn.Module, name: str) -> None:
        def pre(_mod, _args):
            rf = record_function(name)
            rf.__enter__()
            self._open.append(rf)

        def post(_mod, _args, _out):
            if self._open:
                self._open.pop().__exit__(None, None, None)

        self._handles.append(module.register_forward_pre_hook(pre))
        self._handles.append(module.register_forward_hook(post))

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        while self._open:  # a forward that raised never ran its post hook
            self._open.pop().__exit__(None, None, None)


@contextlib.contextmanager
def _wrap_hf_conv_functions() -> Iterator[None]:
    saved: list[tuple[object, str, object]] = []
    for modname in _HF_MODULES:
        try:
            mod = importlib.import_module(modname)
        except Exception:
            continue
        for fname in _HF_CONV_FUNCS:
            fn = getattr(mod, fname, None)
            if fn is None:
                continue

            def wrapped(*args, __fn=fn, **kwargs):
                with record_function("component.conv"):
                    return __fn(*args, **kwargs)

            saved.append((mod, fname, fn))
            setattr(mod, fname, wrapped)
    try:
        yield
    finally:
        for mod, fname, fn in reversed(saved):
            setattr(mod, fname, fn)


@contextlib.contextmanager
def scoped(model: torch.nn.Module, backend: str, components: bool = True) -> Iterator[None]:
    """Install layer (and component) scopes on `model` for the duration of the block."""
    hooks = _ScopeHooks()
    with contextlib.ExitStack() as stack:
        for i, block in enumerate(blocks(model)):
            hooks.add(block, f"layer.{i}")
            if not components:
                continue
            if hasattr(block, "norm") and isinstance(block.norm, torch.nn.Module):
                hooks.add(block.norm, "component.rmsnorm")
            mixer = block.mixer
            if backend == "hf":
                # What the block runs outside its norm and mixer is the residual add (and its fp32 cast), which
                # mamba-ssm fuses into the block RMSNorm kernel: rmsnorm on both backends.
                hooks.add(block, "component.rmsnorm")
                hooks.add(mixer, "component.ssm")
            for leaf, comp in _MIXER_LEAVES.items():
                sub = getattr(mixer, leaf, None)
                if isinstance(sub, torch.nn.Module):
                    hooks.add(sub, f"component.{comp}")
        if components:
            hooks.add(_embedding(model), "component.other")
            hooks.add(model.lm_head, "component.other")
            hooks.add(model.backbone.norm_f, "component.rmsnorm")
            if backend == "hf":
                stack.enter_context(_wrap_hf_conv_functions())
        try:
            yield
        finally:
            hooks.remove()
