"""What a collect run measures: `CollectSpec` (the whole sweep) and `Point` (one trace + timing).

`CollectSpec.resolve()` checks everything that can be checked without running a model (backend vs
device, dtype, presets, overrides, pretrained config) so bad input fails with one line before any work.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from tracekit.errors import UsageError
from tracekit.model_config import ARCHS, PRESETS, ModelConfig, apply_overrides, preset

MODES = ("prefill", "decode")
CUDA_GRAPHS = ("off", "on", "both")


@dataclasses.dataclass(frozen=True)
class Point:
    """One measurement: a model, a mode and a shape; one trace file."""

    arch: str
    mode: str  # prefill | decode
    batch: int
    seqlen: int
    decode_steps: int  # 0 for prefill
    cuda_graphs: bool

    @property
    def name(self) -> str:
        return f"{self.arch}_{self.mode}_b{self.batch}_l{self.seqlen}" + ("_cg" if self.cuda_graphs else "")

    @property
    def trace_name(self) -> str:
        return self.name + ".json.gz"

    @property
    def tokens(self) -> int:
        """Tokens produced by one timed unit: the whole prompt (prefill) or one per sequence (decode step)."""
        return self.batch * self.seqlen if self.mode == "prefill" else self.batch


@dataclasses.dataclass
class CollectSpec:
    """A collect sweep. Every field has the CLI's default; `resolve()` fills the device-dependent ones.

    `pretrained` is a local checkpoint directory (mamba-ssm or transformers format, e.g. a pruned model
    saved with `save_pretrained`) or a hub id already in the local cache; it fixes the architecture, so
    `archs` must then be empty (inferred) or name that one arch, and `preset`/`overrides` are not allowed.
    """

    archs: tuple[str, ...] = ("mamba1", "mamba2")
    preset: str = "130m"
    overrides: tuple[str, ...] = ()
    backend: str | None = None  # None: mamba-ssm on CUDA when importable, else hf
    dtype: str | None = None  # None: bf16 on CUDA, fp32 on CPU
    device: str | None = None  # "cuda", "cuda:1", "cpu"; None: cuda when available
    devices: tuple[str, ...] = ()  # >1 entries: one worker process per device ("0", "1", or "cpu")
    seqlens: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
    batch: int = 8
    modes: tuple[str, ...] = MODES
    decode_steps: int = 32
    cuda_graphs: str = "off"  # off | on | both (decode points with and without graphs)
    warmup: int = 3
    repeats: int = 10
    profile: bool = True  # False: timing only, no trace files
    out_dir: str = "runs/collect"
    pretrained: str | None = None
    seed: int = 0
    # the decode step's SSM state update on the mamba-ssm backend: mamba-ssm's own kernel or tracekit's
    # (tracekit/kernels/state_update.py); mamba-ssm by default so runs stay comparable with older ones
    state_kernel: str = "mamba-ssm"

    # ---- resolution ------------------------------------------------------------------------------
    def resolve(self) -> ResolvedSpec:
        """Validate and fill defaults; raise UsageError (one line) for anything that cannot run here."""
        from tracekit.collectors.backends import (
            BACKENDS,
            DTYPES,
            config_from_saved,
            mamba_ssm_available,
            read_saved_config,
        )

        from tracekit.kernels.state_update import KINDS

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
            raise UsageError(f"--device must be cpu, cuda or cuda:N, not {device!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available on this machine")
        on_cuda = device.startswith("cuda")
        backend = self.backend or ("mamba-ssm" if on_cuda and mamba_ssm_available() else "hf")
        if backend not in BACKENDS:
            raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        if backend == "mamba-ssm" and not on_cuda:
            raise UsageError(
                "--backend mamba-ssm needs a CUDA device (its kernels are CUDA-only); use --backend hf on CPU"
            )
        if backend == "mamba-ssm" and not mamba_ssm_available():
            raise UsageError("--backend mamba-ssm: mamba_ssm / causal_conv1d cannot be imported here")
        dtype = self.dtype or ("bf16" if on_cuda else "fp32")
        if dtype not in DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
        bad_modes = [m for m in self.modes if m not in MODES]
        if bad_modes or not self.modes:
            raise UsageError(f"--mode must be a list of {', '.join(MODES)}, not {','.join(self.modes)!r}")
        if self.cuda_graphs not in CUDA_GRAPHS:
            raise UsageError(f"--cuda-graphs must be one of {', '.join(CUDA_GRAPHS)}")
        if self.cuda_graphs != "off" and (backend != "mamba-ssm" or "decode" not in self.modes):
            raise UsageError("--cuda-graphs needs --backend mamba-ssm (CUDA) and decode in --mode")
        if self.state_kernel not in KINDS:
            raise UsageError(f"--state-kernel must be one of {', '.join(KINDS)}, not {self.state_kernel!r}")
        if self.state_kernel != "mamba-ssm" and backend != "mamba-ssm":
            raise UsageError(f"--state-kernel {self.state_kernel} needs --backend mamba-ssm (CUDA)")
        for name, value, low in (
            ("--batch", self.batch, 1),
            ("--decode-steps", self.decode_steps, 1),
            ("--warmup", self.warmup, 0),
            ("--repeats", self.repeats, 1),
        ):
            if value < low:
                raise UsageError(f"{name} must be at least {low}, not {value}")
        if not self.seqlens or any(s < 1 for s in self.seqlens):
            raise UsageError("--seqlens must be positive integers")

        configs: dict[str, ModelConfig] = {}
        if self.pretrained:
            if self.overrides:
                raise UsageError("--config cannot change a --pretrained model's shapes")
            cfg = config_from_saved(read_saved_config(self.pretrained))
            if self.archs and tuple(self.archs) != (cfg.arch,):
                raise UsageError(
                    f"--pretrained {self.pretrained} holds a {cfg.arch} model; "
                    f"--arch {','.join(self.archs)} does not match"
                )
            configs[cfg.arch] = cfg
        else:
            if not self.archs:
                raise UsageError("--arch is required (mamba1, mamba2 or both)")
            for arch in self.archs:
                if arch not in ARCHS:
                    raise UsageError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
                if self.preset not in PRESETS:
                    raise UsageError(f"unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}")
                try:
                    configs[arch] = apply_overrides(preset(arch, self.preset), list(self.overrides))
                except ValueError as exc:
                    raise UsageError(str(exc)) from None
        if backend == "mamba-ssm":
            for cfg in configs.values():
                if cfg.arch == "mamba2" and cfg.conv_dim % 8:
                    raise UsageError(
                        f"mamba2 with conv_dim={cfg.conv_dim}: causal-conv1d needs a multiple "
                        f"of 8 (d_state must be a multiple of 4 for ngroups=1)"
                    )
        devices = tuple(self.devices)
        if len(devices) > 1:
            for d in devices:
                if d != "cpu" and not d.isdigit():
                    raise UsageError(f"--devices takes GPU indices (0,1) or cpu, not {d!r}")
                if d.isdigit() and int(d) >= torch.cuda.device_count():
                    raise UsageError(f"--devices {d}: this machine has {torch.cuda.device_count()} GPU(s)")
            if any(d == "cpu" for d in devices) and backend == "mamba-ssm":
                raise UsageError("--devices cpu cannot run --backend mamba-ssm")
        return ResolvedSpec(spec=self, device=device, backend=backend, dtype=dtype, configs=configs)


@dataclasses.dataclass
class ResolvedSpec:
    """A validated spec: concrete device, backend, dtype and the model configs per arch."""

    spec: CollectSpec
    device: str
    backend: str
    dtype: str
    configs: dict[str, ModelConfig]

    def points(self) -> list[Point]:
        """The sweep in run order: per arch, prefill then decode (graphs after plain), by seqlen."""
        s = self.spec
        graphs = {"off": (False,), "on": (True,), "both": (False, True)}[s.cuda_graphs]
        out: list[Point] = []
        for arch in self.configs:
            for mode in MODES:
                if mode not in s.modes:
                    continue
                for cg in graphs if mode == "decode" else (False,):
                    for L in s.seqlens:
                        out.append(Point(arch, mode, s.batch, L, s.decode_steps if mode == "decode" else 0, cg))
        return out


def spec_from_json(text: str) -> CollectSpec:
    d: dict[str, Any] = json.loads(text)
    for k in ("archs", "overrides", "devices", "seqlens", "modes"):
        d[k] = tuple(d[k])
    return CollectSpec(**d)
