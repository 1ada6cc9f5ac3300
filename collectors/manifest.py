"""The run directory's manifest.json: environment, models, one entry per finished point.

The manifest is rewritten atomically (temp file + os.replace) after every point, so an interrupted
sweep always leaves valid JSON holding every point finished so far. Its layout is the JSON Schema in
manifest.schema.json; `validate()` checks a document against that schema with a small validator for the
subset of JSON Schema the file uses (type, enum, required, properties, additionalProperties, items,
minimum) — jsonschema is not a dependency and the GPU machine must not need it.
"""

from __future__ import annotations

import datetime as _dt
import enum
import importlib.metadata
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from tracekit import __version__
from tracekit.artifacts.manifest import read_json

SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
MANIFEST = "manifest.json"


class PointStatus(enum.StrEnum):
    """A point's `status` in the manifest (manifest.schema.json's enum)."""

    OK = "ok"
    FAILED = "failed"  # `error` says why (OOM, a kernel error, a worker that died first, ...)
    INTERRUPTED = "interrupted"  # Ctrl-C during this point


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _driver() -> str | None:
    """NVIDIA driver release (e.g. 580.159.04); torch exposes only the CUDA driver API version."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return out.strip().splitlines()[0] or None
    except Exception:
        pass
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for tok in text.split():
            if tok.count(".") >= 1 and tok.replace(".", "").isdigit():
                return tok
    except OSError:
        pass
    return None


def environment(device: str) -> dict[str, Any]:
    """Software and hardware versions; deliberately hostname-free."""
    cuda = device.startswith("cuda")
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "driver": _driver() if cuda else None,
        "mamba_ssm": _version("mamba-ssm") or _version("mamba_ssm"),
        "causal_conv1d": _version("causal-conv1d") or _version("causal_conv1d"),
        "transformers": _version("transformers"),
        "triton": _version("triton"),
        "python": platform.python_version(),
        "gpu_name": torch.cuda.get_device_name(torch.device(device)) if cuda else None,
        "gpu_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
    }


def new_manifest(
    *,
    backend: str,
    dtype: str,
    device: str,
    weights: str,
    seed: int,
    models: dict[str, dict[str, Any]],
    spec: dict[str, Any],
) -> dict[str, Any]:
    env = environment(device)
    return {
        "tracekit_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "backend": backend,
        "dtype": dtype,
        "device": env["gpu_name"] or "cpu",
        "environment": env,
        "weights": weights,
        "seed": seed,
        "models": models,
        "spec": spec,
        "points": [],
    }


def write_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write JSON so that `path` is always either the old or the new complete file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any]:
    """The manifest as written (for validation and merging shards); readers use tracekit.artifacts.manifest."""
    return read_json(path)


def point_label(e: dict[str, Any]) -> str:
    """A manifest point for people: `mamba2 decode cg b8 l64`."""
    return f"{e['arch']} {e['mode']}{' cg' if e.get('cuda_graphs') else ''} b{e['batch']} l{e['seqlen']}"


# ---- validation -----------------------------------------------------------------------------------
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def validate(doc: Any, sch: dict[str, Any] | None = None) -> list[str]:
    """Errors of `doc` against the manifest schema (empty list: valid). Each error names its JSON path."""
    errors: list[str] = []
    _check(doc, sch if sch is not None else schema(), "$", errors)
    return errors


def _check(v: Any, s: dict[str, Any], path: str, errors: list[str]) -> None:
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_TYPES[t](v) for t in types):
            errors.append(f"{path}: expected {' or '.join(types)}, got {type(v).__name__}")
            return
    if "enum" in s and v not in s["enum"]:
        errors.append(f"{path}: {v!r} is not one of {s['enum']}")
    if "minimum" in s and _TYPES["number"](v) and v < s["minimum"]:
        errors.append(f"{path}: {v} is below the minimum {s['minimum']}")
    if isinstance(v, dict):
        for key in s.get("required", []):
            if key not in v:
                errors.append(f"{path}: missing required key {key!r}")
        props = s.get("properties", {})
        for key, sub in v.items():
            if key in props:
                _check(sub, props[key], f"{path}.{key}", errors)
            elif isinstance(s.get("additionalProperties"), dict):
                _check(sub, s["additionalProperties"], f"{path}.{key}", errors)
    if isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            _check(item, s["items"], f"{path}[{i}]", errors)
