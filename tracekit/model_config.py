"""The model config: `ModelConfig`, the published presets, --arch/--preset/--config flags, dtypes.

Shapes follow the state-spaces/mamba and mamba2 releases (config.json of each checkpoint).
Only shapes are needed for profiling: weights are random unless `--pretrained` is given.

Stdlib only: collectors/ (which runs on GPU machines without duckdb/polars) and analyzers/ both import it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from tracekit.errors import UsageError

ARCHS = ("mamba1", "mamba2")
MAMBA1_ONLY = ("dt_rank",)  # ModelConfig fields one arch has and the other does not
MAMBA2_ONLY = ("headdim", "ngroups", "chunk_size")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Everything that determines a Mamba LM's tensor shapes."""

    arch: str  # "mamba1" | "mamba2"
    d_model: int
    n_layer: int
    vocab_size: int = 50277
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    headdim: int = 64  # Mamba-2 only
    ngroups: int = 1  # Mamba-2 only
    chunk_size: int = 256  # Mamba-2 only
    dt_rank: int | None = None  # Mamba-1 only; None = ceil(d_model / 16)
    pad_vocab_size_multiple: int = 8
    rms_norm: bool = True
    residual_in_fp32: bool = True
    fused_add_norm: bool = True
    tie_embeddings: bool = True

    # ---- derived shapes -------------------------------------------------
    @property
    def d_inner(self) -> int:
        return self.expand * self.d_model

    @property
    def nheads(self) -> int:
        return self.d_inner // self.headdim

    @property
    def dt_rank_value(self) -> int:
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_model / 16)

    @property
    def padded_vocab(self) -> int:
        m = self.pad_vocab_size_multiple
        return ((self.vocab_size + m - 1) // m) * m if m > 1 else self.vocab_size

    @property
    def in_proj_out(self) -> int:
        """Rows of in_proj: Mamba-1 [x|z]; Mamba-2 [z|x|B|C|dt]."""
        if self.arch == "mamba1":
            return 2 * self.d_inner
        return 2 * self.d_inner + 2 * self.ngroups * self.d_state + self.nheads

    @property
    def conv_dim(self) -> int:
        if self.arch == "mamba1":
            return self.d_inner
        return self.d_inner + 2 * self.ngroups * self.d_state

    def validate(self) -> None:
        """Raise ValueError for shapes no Mamba implementation accepts."""
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, not {self.arch!r}")
        for name in ("d_model", "n_layer", "vocab_size", "d_state", "d_conv", "expand"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.arch == "mamba2":
            if self.d_inner % self.headdim:
                raise ValueError(f"d_inner={self.d_inner} is not a multiple of headdim={self.headdim}")
            if self.nheads % self.ngroups:
                raise ValueError(f"nheads={self.nheads} is not a multiple of ngroups={self.ngroups}")

    def to_dict(self) -> dict[str, Any]:
        """Fields and derived shapes of this arch only (a Mamba-1 dict has no headdim/ngroups/chunk_size,
        a Mamba-2 dict no dt_rank); `from_dict` fills the other arch's fields with their defaults."""
        d = dataclasses.asdict(self)
        d.update(
            d_inner=self.d_inner,
            dt_rank=self.dt_rank_value,
            padded_vocab=self.padded_vocab,
            in_proj_out=self.in_proj_out,
            conv_dim=self.conv_dim,
        )
        if self.arch == "mamba2":
            d["nheads"] = self.nheads
        for key in MAMBA2_ONLY if self.arch == "mamba1" else MAMBA1_ONLY:
            d.pop(key, None)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})

    def replace(self, **overrides: Any) -> ModelConfig:
        return dataclasses.replace(self, **overrides)


# name -> (mamba1 (d_model, n_layer), mamba2 (d_model, n_layer)); 790m/780m and 1.4b/1.3b are aliases.
_SIZES = {
    "130m": (768, 24),
    "370m": (1024, 48),
    "790m": (1536, 48),
    "780m": (1536, 48),
    "1.4b": (2048, 48),
    "1.3b": (2048, 48),
    "2.8b": (2560, 64),
    "2.7b": (2560, 64),
}

PRESETS = ("tiny", *_SIZES)


def preset_names(arch: str) -> tuple[str, ...]:
    """The preset names `preset(arch, name)` accepts (the same for both archs)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    return PRESETS


def preset(arch: str, name: str) -> ModelConfig:
    """The published shapes of `arch` at size `name` (e.g. ("mamba2", "130m"))."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {', '.join(ARCHS)}")
    if name == "tiny":
        if arch == "mamba1":
            return ModelConfig(arch, d_model=64, n_layer=2, vocab_size=256, d_state=8, dt_rank=8)
        return ModelConfig(arch, d_model=64, n_layer=2, vocab_size=256, d_state=16, headdim=16, chunk_size=64)
    if name not in _SIZES:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    d_model, n_layer = _SIZES[name]
    if arch == "mamba1":
        return ModelConfig(arch, d_model=d_model, n_layer=n_layer, d_state=16)
    return ModelConfig(arch, d_model=d_model, n_layer=n_layer, d_state=128, headdim=64, pad_vocab_size_multiple=16)


def apply_overrides(cfg: ModelConfig, items: list[str] | tuple[str, ...]) -> ModelConfig:
    """Apply `KEY=VALUE` overrides (e.g. `d_state=64`), typed by the field's default."""
    fields = {f.name: f for f in dataclasses.fields(ModelConfig)}
    changes: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or key not in fields or key == "arch":
            raise ValueError(
                f"bad --config {item!r}: expected KEY=VALUE with KEY one of "
                f"{', '.join(k for k in fields if k != 'arch')}"
            )
        current = getattr(cfg, key)
        try:
            if isinstance(current, bool):
                value: Any = raw.lower() in ("1", "true", "yes", "on")
            elif isinstance(current, int) or key == "dt_rank":
                value = int(raw)
            else:
                value = type(current)(raw)
        except ValueError as exc:
            raise ValueError(f"bad --config {item!r}: {exc}") from None
        changes[key] = value
    out = cfg.replace(**changes)
    out.validate()
    return out


def config_from_flags(
    arch: str | None,
    preset_name: str | None,
    overrides: Sequence[str],
    *,
    inferred: ModelConfig | None = None,
    default_preset: str | None = None,
) -> ModelConfig | None:
    """--arch/--preset/--config KEY=VALUE -> a config, or None where the flags (and `inferred`) give none.

    Commands that build a model (prune score/eval/compare, train) pass `default_preset` ("tiny"): --arch
    picks the family, --preset the shapes (default `default_preset`), --config overrides them; without
    --arch there is no config, and --preset/--config alone are an error.

    Commands that read a trace (attribute) pass the config `inferred` from it instead: --preset takes its
    arch from the inferred config when --arch is missing, --arch alone keeps the inferred shapes when the
    arch matches, and --config overrides the preset or else the inferred config.

    Raises UsageError (one line) for a bad combination or value.
    """
    try:
        if default_preset is not None:
            if arch is None:
                if preset_name or overrides:
                    raise UsageError("--preset/--config need --arch")
                return None
            return apply_overrides(preset(arch, preset_name or default_preset), list(overrides))
        if preset_name and not arch:
            if inferred is None:
                raise UsageError("--preset needs --arch (mamba1|mamba2): the trace's arch could not be inferred")
            arch = inferred.arch
        if arch and preset_name:
            base: ModelConfig | None = preset(arch, preset_name)
        elif arch:
            base = inferred if inferred is not None and inferred.arch == arch else None
            if base is None:
                raise UsageError(f"--arch {arch} needs --preset NAME (the shapes could not be inferred)")
        else:
            base = inferred
        if overrides:
            if base is None:
                raise UsageError("--config needs --arch/--preset: no model config could be inferred from the trace")
            base = apply_overrides(base, list(overrides))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return base


# ---- dtypes ---------------------------------------------------------------------------------------
# The one dtype table: canonical name -> (element bytes, torch attribute, other spellings). The other
# spellings are torch's ("float16", "torch.bfloat16" is read without its prefix) and the profiler's
# recorded `Input type` ("c10::BFloat16", "float", ...).
_DTYPES: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "bf16": (2, "bfloat16", ("c10::BFloat16",)),
    "fp16": (2, "float16", ("half", "c10::Half")),
    "fp32": (4, "float32", ("float",)),
    "fp64": (8, "float64", ("double",)),
    "fp8_e4m3": (1, "float8_e4m3fn", ("c10::Float8_e4m3fn",)),
}
DTYPE_BYTES: dict[str, int] = {name: v[0] for name, v in _DTYPES.items()}
# What `tracekit collect --dtype` builds models in: canonical name -> torch dtype attribute name.
MODEL_DTYPES: dict[str, str] = {name: _DTYPES[name][1] for name in ("bf16", "fp16", "fp32")}
_ALIASES: dict[str, str] = {
    alias: name for name, (_, torch_name, others) in _DTYPES.items() for alias in (name, torch_name, *others)
}


def dtype_name(name: str | None) -> str | None:
    """The canonical name of a dtype spelling ("torch.bfloat16", "bfloat16", "c10::BFloat16" -> "bf16")."""
    if not name:
        return None
    return _ALIASES.get(str(name).removeprefix("torch."))


def dtype_bytes(name: str | None) -> int | None:
    """Element size in bytes of a dtype spelling; None when unknown."""
    canonical = dtype_name(name)
    return DTYPE_BYTES[canonical] if canonical else None
