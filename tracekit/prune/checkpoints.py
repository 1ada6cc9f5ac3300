"""Build, load and save the transformers Mamba LMs that pruning works on (CPU, hf backend).

Pruning needs one model object whose weights it can read and slice; the transformers
`MambaForCausalLM` / `Mamba2ForCausalLM` classes run everywhere (pure PyTorch fallbacks on CPU) and
save to a directory that `from_pretrained` loads without network access. A saved directory also holds
`tracekit_model.json` (the ModelConfig, so shapes such as the un-padded vocabulary survive a round trip)
and, for pruned models, `tracekit_prune.json` (method, ratio, kept state indices).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tracekit.errors import TracekitError
from tracekit.model_config import ModelConfig

MODEL_META = "tracekit_model.json"
PRUNE_META = "tracekit_prune.json"
TASK_META = "tracekit_task.json"
SAVE_FORMATS = ("hf", "mamba-ssm")


def build_model(cfg: ModelConfig, seed: int = 0) -> nn.Module:
    """A randomly initialised fp32 CPU model with the shapes of `cfg` (same seed, same weights)."""
    from tracekit.collectors.backends import build_model as _build

    return _build(cfg, "hf", "cpu", torch.float32, seed).float().eval()


def load_model(path: str | os.PathLike) -> tuple[nn.Module, ModelConfig]:
    """Load a local model directory (transformers or mamba-ssm format) as an fp32 CPU hf model."""
    from tracekit.collectors.backends import load_pretrained

    p = Path(path)
    if not (p / "config.json").is_file():
        raise TracekitError(f"{p}: not a model directory (no config.json)")
    try:
        model, cfg = load_pretrained(str(p), "hf", "cpu", torch.float32)
    except TracekitError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise TracekitError(f"{p}: cannot load model: {str(exc).splitlines()[0]}") from None
    meta = read_meta(p, MODEL_META)
    if meta is not None:
        cfg = ModelConfig.from_dict(meta["model"])
    return model.float().eval(), cfg


def read_meta(path: str | os.PathLike, name: str) -> dict[str, Any] | None:
    """A tracekit side file of a model directory, or None when absent."""
    f = Path(path) / name
    return json.loads(f.read_text()) if f.is_file() else None


def save_model(
    model: nn.Module,
    cfg: ModelConfig,
    out: str | os.PathLike,
    extra: dict[str, dict[str, Any]] | None = None,
    writer: Callable[[Path], None] | None = None,
    fmt: str = "hf",
) -> Path:
    """Write a loadable model directory atomically: into a temp dir beside `out`, then rename.

    A failure at any point leaves no half-written `out`. `extra` maps side-file names to JSON
    payloads; `writer` may add further files into the temp dir. `fmt` "hf" is transformers'
    save_pretrained; "mamba-ssm" is mamba-ssm's own layout (config.json of its MambaConfig +
    pytorch_model.bin, embedding named `backbone.embedding`), which `MambaLMHeadModel.from_pretrained`
    reads; `tracekit collect --pretrained` loads either on either backend.
    """
    if fmt not in SAVE_FORMATS:
        raise TracekitError(f"unknown save format {fmt!r}; choose from {', '.join(SAVE_FORMATS)}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TracekitError(f"{out}: already exists and is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if fmt == "hf":
            model.save_pretrained(tmp)
        else:
            _save_mamba_ssm(model, cfg, tmp)
        (tmp / MODEL_META).write_text(json.dumps({"model": cfg.to_dict()}, indent=2))
        for name, payload in (extra or {}).items():
            (tmp / name).write_text(json.dumps(payload, indent=2))
        if writer is not None:
            writer(tmp)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _save_mamba_ssm(model: nn.Module, cfg: ModelConfig, d: Path) -> None:
    """mamba-ssm's checkpoint layout from an hf model: only the embedding's name differs.

    lm_head.weight stays even when tied: mamba-ssm's from_pretrained loads strictly and its state dict
    lists the tied head too.
    """
    from tracekit.collectors.backends import mamba_ssm_config_dict

    sd = {
        (
            "backbone.embedding." + k.removeprefix("backbone.embeddings.")
            if k.startswith("backbone.embeddings.")
            else k
        ): (v.detach().cpu().contiguous())
        for k, v in model.state_dict().items()
    }
    (d / "config.json").write_text(json.dumps(mamba_ssm_config_dict(cfg), indent=2))
    torch.save(sd, d / "pytorch_model.bin")


def default_save_format() -> str:
    """mamba-ssm's layout where mamba-ssm is installed (the CUDA machine), else transformers'."""
    from tracekit.collectors.backends import mamba_ssm_available

    return "mamba-ssm" if mamba_ssm_available() else "hf"


def mixers(model: nn.Module) -> list[nn.Module]:
    """The SSM mixer of every block, in layer order."""
    return [layer.mixer for layer in model.backbone.layers]


def shape_key(cfg: ModelConfig) -> dict[str, Any]:
    """The fields that must match for scores of one model to apply to another."""
    keys = ("arch", "d_model", "n_layer", "d_state", "expand", "headdim", "ngroups", "dt_rank")
    d = cfg.to_dict()
    return {k: d[k] for k in keys if k in d}  # to_dict holds only the arch's own fields
