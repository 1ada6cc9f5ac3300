"""Typed results of attribution: `AttributeReport` (one trace), `RunAttribution` (a collect run), and the
statuses written into them as `str` enums (they serialise as their plain values, so JSON stays the same).

`AttributeReport.to_dict()` is the stable JSON document of `tracekit attribute --format json`
(docs/attribute.md); the properties are typed views of it.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

import polars as pl

from tracekit.model_config import ModelConfig


class TimeSource(enum.StrEnum):
    """What component times measure."""

    GPU = "gpu"  # kernel durations
    CPU_SELF = "cpu_self"  # CPU self time (no GPU kernels in the trace)


class ConfigSource(enum.StrEnum):
    """Where the model config came from."""

    MANIFEST = "manifest"  # the collect run's manifest.json
    FLAGS = "flags"  # --arch/--preset/--config, or a config given to the API
    INFERRED = "inferred"  # recorded GEMM/conv shapes
    NONE = "none"  # no config: analytic FLOPs and I/O are null


class LayerSource(enum.StrEnum):
    """How units got their layer index (null in the document when neither applies)."""

    SCOPE = "scope"  # layer.{i} record_function scopes
    INFERRED = "inferred"  # the launch order of in_proj GEMMs (GPU traces only)
    STRUCTURE = "structure"  # the repeated per-layer sequence of the stream (analyzers/structure.py)


@dataclasses.dataclass
class AttributeReport:
    """One trace's attribution: `doc` is the JSON document of `tracekit attribute --format json`.

    Properties: `trace` (file name), `trace_id`, `time_source`, `config_source`, `layer_source`,
    `config` (ModelConfig or None), `notes` (what could not be computed, one line each), `phases` and
    `host` (the phase split and the host-bound diagnosis), and
    `components`: the rows of `--by` as a polars frame (one column per row key of docs/attribute.md).
    """

    doc: dict[str, Any]
    # The MemoryPeak (analyzers/memory_peak.py) behind doc["memory_peak"], with its timeline; not in the JSON.
    memory: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document itself (json.dumps(..., indent=2) is byte-identical to the CLI's output)."""
        return self.doc

    @property
    def trace(self) -> str | None:
        return self.doc.get("trace")

    @property
    def trace_id(self) -> int:
        return self.doc["trace_id"]

    @property
    def notes(self) -> list[str]:
        return self.doc.get("notes", [])

    @property
    def time_source(self) -> TimeSource:
        return TimeSource(self.doc["time_source"])

    @property
    def config_source(self) -> ConfigSource:
        return ConfigSource(self.doc["model"]["config_source"])

    @property
    def layer_source(self) -> LayerSource | None:
        v = self.doc.get("layer_source")
        return LayerSource(v) if v is not None else None

    @property
    def config(self) -> ModelConfig | None:
        cfg = self.doc["model"]["config"]
        return ModelConfig.from_dict(cfg) if cfg is not None else None

    @property
    def phases(self) -> dict[str, Any] | None:
        """The prefill/decode split of a trace with several forwards (docs/attribute.md), else None."""
        return self.doc.get("phases")

    @property
    def host(self) -> dict[str, Any] | None:
        """The host-bound diagnosis (docs/attribute.md, "Host-bound verdict"); None on CPU-only traces."""
        return self.doc.get("host")

    @property
    def components(self) -> pl.DataFrame:
        return pl.DataFrame(self.doc["components"], infer_schema_length=None)


@dataclasses.dataclass
class RunAttribution:
    """Every present trace of a collect run, attributed; `missing` lists manifest traces not on disk."""

    run_dir: Path
    manifest: dict[str, Any]
    reports: list[AttributeReport]
    missing: list[str]

    def to_dict(self) -> list[dict[str, Any]]:
        """The documents in manifest order (what `tracekit attribute --run --format json` prints for 2+)."""
        return [r.to_dict() for r in self.reports]
