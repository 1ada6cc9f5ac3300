"""Build Mamba-1/2 language models from a `ModelConfig`, for either backend, random or pretrained.

Two backends run the same shapes:

* ``mamba-ssm``: `MambaLMHeadModel` (the real CUDA kernels: fused selective scan / SSD, causal-conv1d,
  Triton RMSNorm), configured exactly like the shared H100 traces (rms_norm, fused_add_norm,
  residual_in_fp32).
* ``hf``: transformers' `MambaForCausalLM` / `Mamba2ForCausalLM`, whose torch fallback runs on CPU.

Both state dicts use the same parameter names except the embedding (`backbone.embedding` in mamba-ssm,
`backbone.embeddings` in transformers), so a checkpoint saved by either can be loaded into either
backend. Imports of mamba_ssm/transformers are local: this module must import on a machine that has
only one of them.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tracekit.errors import MissingPathError, UsageError
from tracekit.model_config import MODEL_DTYPES, ModelConfig

BACKENDS = ("mamba-ssm", "hf")
# torch dtypes by the canonical names of tracekit.model_config (bf16, fp16, fp32): --dtype's choices.
DTYPES = {name: getattr(torch, attr) for name, attr in MODEL_DTYPES.items()}


# ---- availability ---------------------------------------------------------------------------------
def mamba_ssm_available() -> bool:
    """True when mamba_ssm and causal_conv1d import (their CUDA extensions load only with a GPU build)."""
    try:
        import causal_conv1d  # noqa: F401
        import mamba_ssm  # noqa: F401
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel  # noqa: F401
    except Exception:
        return False
    return True


# ---- config mapping -------------------------------------------------------------------------------
def mamba_ssm_config_dict(cfg: ModelConfig) -> dict[str, Any]:
    """The `mamba_ssm.models.config_mamba.MambaConfig` fields for `cfg` (also its config.json)."""
    ssm_cfg: dict[str, Any] = {
        "layer": "Mamba1" if cfg.arch == "mamba1" else "Mamba2",
        "d_state": cfg.d_state,
        "d_conv": cfg.d_conv,
        "expand": cfg.expand,
    }
    if cfg.arch == "mamba1":
        ssm_cfg["dt_rank"] = cfg.dt_rank_value
    else:
        ssm_cfg.update(headdim=cfg.headdim, ngroups=cfg.ngroups, chunk_size=cfg.chunk_size)
    return {
        "d_model": cfg.d_model,
        "d_intermediate": 0,
        "n_layer": cfg.n_layer,
        "vocab_size": cfg.vocab_size,
        "ssm_cfg": ssm_cfg,
        "attn_layer_idx": [],
        "attn_cfg": {},
        "rms_norm": cfg.rms_norm,
        "residual_in_fp32": cfg.residual_in_fp32,
        "fused_add_norm": cfg.fused_add_norm,
        "pad_vocab_size_multiple": cfg.pad_vocab_size_multiple,
        "tie_embeddings": cfg.tie_embeddings,
    }


def hf_config(cfg: ModelConfig):
    """A transformers `MambaConfig` / `Mamba2Config` with the same tensor shapes as mamba-ssm's model.

    The vocabulary is the padded one (mamba-ssm pads internally; transformers does not), and Mamba-2's
    embeddings are tied as in mamba-ssm (transformers' Mamba2Config defaults to untied).
    """
    import transformers

    common = dict(
        vocab_size=cfg.padded_vocab,
        hidden_size=cfg.d_model,
        state_size=cfg.d_state,
        num_hidden_layers=cfg.n_layer,
        expand=cfg.expand,
        conv_kernel=cfg.d_conv,
        use_bias=False,
        use_conv_bias=True,
        residual_in_fp32=cfg.residual_in_fp32,
        tie_word_embeddings=cfg.tie_embeddings,
        layer_norm_epsilon=1e-5,
    )
    if cfg.arch == "mamba1":
        return transformers.MambaConfig(time_step_rank=cfg.dt_rank_value, **common)
    return transformers.Mamba2Config(
        num_heads=cfg.nheads, head_dim=cfg.headdim, n_groups=cfg.ngroups, chunk_size=cfg.chunk_size, **common
    )


def config_from_saved(d: dict[str, Any]) -> ModelConfig:
    """ModelConfig from a checkpoint's config.json, in mamba-ssm or transformers format."""
    if "model_type" in d:  # transformers
        if d["model_type"] not in ("mamba", "mamba2"):
            raise UsageError(f"--pretrained: model_type {d['model_type']!r} is not mamba or mamba2")
        common = dict(
            d_model=d["hidden_size"],
            n_layer=d["num_hidden_layers"],
            vocab_size=d["vocab_size"],
            d_state=d.get("state_size", 16),
            d_conv=d.get("conv_kernel", 4),
            expand=d.get("expand", 2),
            pad_vocab_size_multiple=1,
            residual_in_fp32=d.get("residual_in_fp32", True),
            tie_embeddings=d.get("tie_word_embeddings", True),
        )
        if d["model_type"] == "mamba":
            rank = d.get("time_step_rank", "auto")
            return ModelConfig("mamba1", dt_rank=None if rank == "auto" else int(rank), **common)
        return ModelConfig(
            "mamba2",
            headdim=d.get("head_dim", 64),
            ngroups=d.get("n_groups", 1),
            chunk_size=d.get("chunk_size", 256),
            **common,
        )
    if "d_model" in d and "n_layer" in d:  # mamba-ssm
        ssm = dict(d.get("ssm_cfg") or {})
        layer = ssm.get("layer", "Mamba1")
        if d.get("attn_layer_idx") or d.get("d_intermediate", 0):
            raise UsageError("--pretrained: hybrid attention/MLP checkpoints are not supported")
        common = dict(
            d_model=d["d_model"],
            n_layer=d["n_layer"],
            vocab_size=d.get("vocab_size", 50277),
            d_conv=ssm.get("d_conv", 4),
            expand=ssm.get("expand", 2),
            pad_vocab_size_multiple=d.get("pad_vocab_size_multiple", 8),
            rms_norm=d.get("rms_norm", True),
            residual_in_fp32=d.get("residual_in_fp32", True),
            fused_add_norm=d.get("fused_add_norm", True),
            tie_embeddings=d.get("tie_embeddings", True),
        )
        if layer == "Mamba1":
            rank = ssm.get("dt_rank", "auto")
            return ModelConfig(
                "mamba1", d_state=ssm.get("d_state", 16), dt_rank=None if rank == "auto" else int(rank), **common
            )
        return ModelConfig(
            "mamba2",
            d_state=ssm.get("d_state", 128),
            headdim=ssm.get("headdim", 64),
            ngroups=ssm.get("ngroups", 1),
            chunk_size=ssm.get("chunk_size", 256),
            **common,
        )
    raise UsageError("--pretrained: config.json is neither a mamba-ssm nor a transformers Mamba config")


def config_from_model(model: torch.nn.Module) -> ModelConfig:
    """ModelConfig of an already-built model of either backend (its config must describe its shapes)."""
    c = model.config
    d = c.to_dict() if hasattr(c, "to_dict") else dict(vars(c))
    return config_from_saved(d)


def backend_of(model: torch.nn.Module) -> str:
    return "hf" if hasattr(model.config, "model_type") else "mamba-ssm"


# ---- building -------------------------------------------------------------------------------------
# transformers 5.x calls mamba-ssm's / causal-conv1d's CUDA kernels from its Mamba modules' kernel entry
# points (`causal_conv1d_fn`, `mamba2_chunk_scan`, ...) whenever those packages import, whatever device the
# tensors are on (before 5.25; 5.25 checks the device itself): on a CUDA machine with `tracekit[cuda]`, an
# hf model on the CPU (prune score/eval, collect --device cpu) failed with "Expected x.is_cuda() to be
# true". Each entry point is a decorated PyTorch reference; we route calls with CPU tensors to that reference.
_HF_MODELING_MODULES = ("transformers.models.mamba.modeling_mamba", "transformers.models.mamba2.modeling_mamba2")


def pytorch_reference(entry: Callable[..., Any]) -> Callable[..., Any] | None:
    """The plain function a kernel entry point decorates, or None when `entry` decorates none.

    transformers' decorator keeps its reference as `__wrapped__` (functools.wraps); with the `kernels`
    package (an option before transformers 5.25, a requirement since) the decorated function becomes a
    `Func` nn.Module instance that calls it from its `forward`'s closure. Both are followed, so the
    reference is found whatever object transformers puts in between.
    """
    seen: set[int] = set()
    current: Any = entry
    while id(current) not in seen:
        seen.add(id(current))
        if inspect.isfunction(current) and not hasattr(current, "__wrapped__"):
            break
        if hasattr(current, "__wrapped__"):
            current = current.__wrapped__
            continue
        # A callable object: the one function its call closes over (kernels' Func.forward closes over `func`).
        call = getattr(type(current), "forward", None) or type(current).__call__
        inner = [f for f in _closure_values(call) if callable(f) and not inspect.isclass(f) and not inspect.ismodule(f)]
        if len(inner) != 1:
            return None
        current = inner[0]
    return current if current is not entry and inspect.isfunction(current) else None


def _closure_values(fn: Any) -> list[Any]:
    """The values `fn` closes over (empty cells left out)."""
    values = []
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # a cell not filled yet
            continue
    return values


def kernel_entry_points(module: Any) -> dict[str, Callable[..., Any]]:
    """`module`'s kernel entry points by name: the top-level functions its decorators replaced.

    An attribute counts when its `pytorch_reference` is `module`'s own function of that name: transformers
    decorates nothing else at the top level of its Mamba modules, while imported helpers (lru_cache'd
    checks, other modules' wrappers) do not qualify. transformers 4.x, which imports the kernels directly
    and picks them by device itself, has none.
    """
    entries = {}
    for name, obj in vars(module).items():
        if not callable(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
            continue
        ref = pytorch_reference(obj)
        if ref is not None and ref.__module__ == module.__name__ and ref.__name__ == name:
            entries[name] = obj
    return entries


def follow_device(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, except that calls whose first tensor is on the CPU go to its PyTorch reference.

    A function comes back as a new function. An nn.Module (kernels' `Func`) comes back itself with its
    `forward` replaced, since kernels routes a model's calls by that object's identity and pickles it by
    its module-level name; a replacement object would break both.
    """
    ref = pytorch_reference(fn)
    if ref is None or getattr(fn, "_tracekit_follows_device", False):
        return fn
    params = inspect.signature(ref).parameters
    takes_any_kwarg = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kernel_call = fn.forward if isinstance(fn, torch.nn.Module) else fn

    @functools.wraps(ref)
    def call(*args: Any, **kwargs: Any) -> Any:
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), None)
        if first is not None and first.device.type == "cpu":
            return ref(*args, **(kwargs if takes_any_kwarg else {k: v for k, v in kwargs.items() if k in params}))
        return kernel_call(*args, **kwargs)

    if isinstance(fn, torch.nn.Module):
        fn.forward = call
        fn._tracekit_follows_device = True
        return fn
    call.__wrapped__ = fn  # type: ignore[attr-defined]
    call._tracekit_follows_device = True  # type: ignore[attr-defined]
    return call


def hf_class(arch: str) -> type:
    """transformers' Mamba/Mamba2 causal-LM class, with its kernel entry points following the tensors' device."""
    import importlib

    import transformers

    for module_name in _HF_MODELING_MODULES:
        module = importlib.import_module(module_name)
        for name, entry in kernel_entry_points(module).items():
            setattr(module, name, follow_device(entry))
    return transformers.MambaForCausalLM if arch == "mamba1" else transformers.Mamba2ForCausalLM


def build_model(cfg: ModelConfig, backend: str, device: str, dtype: torch.dtype, seed: int) -> torch.nn.Module:
    """A randomly initialised model (seeded: the same seed gives the same weights), in eval mode."""
    cfg.validate()
    torch.manual_seed(seed)
    if backend == "mamba-ssm":
        from mamba_ssm.models.config_mamba import MambaConfig
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        model = MambaLMHeadModel(MambaConfig(**mamba_ssm_config_dict(cfg)), device=device, dtype=dtype)
    elif backend == "hf":
        hcfg = hf_config(cfg)
        model = hf_class(cfg.arch)(hcfg).to(device=device, dtype=dtype)
    else:
        raise UsageError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    return model.eval()


def _offline() -> bool:
    flags = (os.environ.get(k, "").lower() for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in ("1", "true", "yes", "on") for f in flags)


# A Hugging Face hub id: `name` or `org/name`; letters, digits, `-`, `_`, `.`, not starting with `-`/`.`
# (huggingface_hub's validate_repo_id also refuses `--` and `..` and more than 96 characters).
_HUB_ID_RE = re.compile(r"^[A-Za-z0-9_][\w.-]*(/[A-Za-z0-9_][\w.-]*)?$")


def looks_like_path(value: str) -> bool:
    """Whether a --pretrained value that is not an existing directory was meant as a local path.

    A path: starts with `.`, `/` or `~`; contains a backslash or the OS's separator other than `/`;
    ends with `/`; is not of the hub-id form `name` / `org/name` (one `/` at most, letters, digits,
    `-`, `_`, `.`, at most 96 characters, no `--` or `..`); or its first component is an existing local
    directory (`models/x` when ./models exists). Anything else (`state-spaces/mamba-130m-hf`) is a hub id.
    """
    if value.startswith((".", "/", "~")) or value.endswith("/") or "\\" in value:
        return True
    if os.sep != "/" and os.sep in value:
        return True
    if not _HUB_ID_RE.match(value) or len(value) > 96 or "--" in value or ".." in value:
        return True
    first = value.split("/", 1)[0]
    return "/" in value and Path(first).is_dir()


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the hub's host accepts a TCP connection (one try, so a missing network costs no retries)."""
    from urllib.parse import urlsplit

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    u = urlsplit(endpoint)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname or "huggingface.co", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_saved_config(path_or_id: str) -> dict[str, Any]:
    """config.json of a local checkpoint directory, or of a hub id (local cache first).

    Nothing waits on the network for a typo: a path-like value (see `looks_like_path`) that does not
    exist is "no such directory" at once; a hub id not in the local cache fails at once when
    HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set or the hub cannot be reached.
    """
    p = Path(path_or_id).expanduser()
    if p.is_dir():
        f = p / "config.json"
        if not f.is_file():
            raise UsageError(f"--pretrained {path_or_id}: no config.json in that directory")
        return json.loads(f.read_text())
    if p.exists():
        raise UsageError(f"--pretrained {path_or_id}: is a file, not a model directory")
    if looks_like_path(path_or_id):
        raise MissingPathError(f"--pretrained {path_or_id}: no such directory")
    from transformers.utils.hub import cached_file

    def fetch(local_only: bool) -> str | None:
        try:
            return cached_file(path_or_id, "config.json", local_files_only=local_only)
        except Exception as exc:  # missing repo, no network, not in cache
            if local_only:
                return None
            raise UsageError(
                f"--pretrained {path_or_id}: no such directory, and not loadable from the hub "
                f"({type(exc).__name__}: {str(exc).splitlines()[0]})"
            ) from None

    f = fetch(local_only=True)
    if f is None:
        if _offline():
            raise UsageError(
                f"--pretrained {path_or_id}: no such directory, and not in the local Hugging Face cache "
                "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set)"
            )
        if not _hub_reachable():
            raise UsageError(
                f"--pretrained {path_or_id}: no such directory, not in the local Hugging Face cache, "
                "and the hub cannot be reached (no network)"
            )
        f = fetch(local_only=False)
    if f is None:  # transformers may return None instead of raising
        raise UsageError(f"--pretrained {path_or_id}: no such directory, and no config.json on the hub")
    return json.loads(Path(f).read_text())


def saved_format(d: dict[str, Any]) -> str:
    return "hf" if "model_type" in d else "mamba-ssm"


def _rename(state: dict[str, torch.Tensor], to_backend: str) -> dict[str, torch.Tensor]:
    """Map parameter names between the two backends (only the embedding differs)."""
    src, dst = (
        ("backbone.embeddings.", "backbone.embedding.")
        if to_backend == "mamba-ssm"
        else ("backbone.embedding.", "backbone.embeddings.")
    )
    return {(dst + k[len(src) :] if k.startswith(src) else k): v for k, v in state.items()}


def load_pretrained(
    path_or_id: str, backend: str, device: str, dtype: torch.dtype
) -> tuple[torch.nn.Module, ModelConfig]:
    """Load real weights with the backend's own loader; a checkpoint of the other format is converted.

    Same format: mamba-ssm `MambaLMHeadModel.from_pretrained` / transformers `from_pretrained`
    (`local_files_only` when HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set). Other format: the model is
    built from the mapped config and the state dict loaded strictly after renaming the embedding.
    """
    saved = read_saved_config(path_or_id)
    cfg = config_from_saved(saved)
    fmt = saved_format(saved)
    if backend == "mamba-ssm" and fmt == "mamba-ssm":
        from mamba_ssm.models.mixer_seq_simple import MambaLMHeadModel

        model = MambaLMHeadModel.from_pretrained(path_or_id, device=device, dtype=dtype)
        return model.eval(), cfg
    if backend == "hf" and fmt == "hf":
        cls = hf_class(cfg.arch)
        model = cls.from_pretrained(path_or_id, local_files_only=_offline() or Path(path_or_id).is_dir(), dtype=dtype)
        return model.to(device).eval(), cfg
    # cross-format: read the other side's weights on the CPU, rename, load strictly
    if fmt == "mamba-ssm":
        from transformers.utils.hub import cached_file

        f = (
            Path(path_or_id) / "pytorch_model.bin"
            if Path(path_or_id).is_dir()
            else Path(cached_file(path_or_id, "pytorch_model.bin", local_files_only=_offline()))
        )
        state = torch.load(f, map_location="cpu", weights_only=True)
    else:
        cls = hf_class(cfg.arch)
        state = cls.from_pretrained(path_or_id, local_files_only=_offline() or Path(path_or_id).is_dir()).state_dict()
    model = build_model(cfg, backend, device, dtype, seed=0)
    state = _rename(state, backend)
    own = model.state_dict()
    # tied lm_head: one side may store it, the other not
    if "lm_head.weight" in own and "lm_head.weight" not in state and cfg.tie_embeddings:
        emb = "backbone.embedding.weight" if backend == "mamba-ssm" else "backbone.embeddings.weight"
        state["lm_head.weight"] = state[emb]
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UsageError(
            f"--pretrained {path_or_id}: weights do not fit the {backend} model "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})"
        )
    return model.eval(), cfg


def save_pretrained(model: torch.nn.Module, path: str | Path) -> None:
    """Save in the model's own backend format (mamba-ssm: config.json + pytorch_model.bin)."""
    model.save_pretrained(str(path))
