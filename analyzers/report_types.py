"""Typed results of attribution: `AttributeReport` (one trace), `RunAttribution` (a collect run), and the
statuses written into them as `str` enums (they serialise as their plain values, so JSON stays the same).

`AttributeReport` is the attribution artifact: `to_json()` is the stable JSON document of
`tracekit attribute --format json` (docs/attribute.md), `from_json` reads it back; the fields are typed.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path
from typing import Any

import polars as pl

from tracekit.artifacts.manifest import Manifest
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


@dataclasses.dataclass(frozen=True)
class Totals:
    """`total` of the attribute document: whole-trace sums (docs/attribute.md, "Totals")."""

    time_ns: int
    gpu_time_ns: int | None
    busy_ns: int | None
    kernels: int
    flops: int | None
    gemm_flops: int | None
    bytes_allocated: int | None
    peak_bytes: int | None
    peak_source: str | None
    io_bytes: int | None
    memcpy_ns: int | None
    memcpy_count: int | None
    memset_ns: int | None
    memset_count: int | None
    gpu_events_busy_ns: int | None
    cpu_units: int


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """`model` of the attribute document: the config used, where it came from, and the run's shape."""

    config: ModelConfig | None
    config_source: ConfigSource
    mode: str | None
    batch: int | None
    seqlen: int | None
    dtype_bytes: int | None
    conv_state_bytes: int | None
    ssm_state_bytes: int | None
    state_bytes: int | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ModelInfo:
        cfg = doc["config"]
        config = ModelConfig.from_dict(cfg) if cfg is not None else None
        return cls(**{**doc, "config": config, "config_source": ConfigSource(doc["config_source"])})

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["config"] = self.config.to_dict() if self.config is not None else None
        return d


@dataclasses.dataclass(frozen=True)
class Timing:
    """`timing` of the attribute document: the manifest's unprofiled latencies (null without a manifest)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None
    median_ms: float | None = None


@dataclasses.dataclass(frozen=True)
class AttributeReport:
    """One trace's attribution: the document of `tracekit attribute --format json` (docs/attribute.md).

    `to_json()` is that document, key for key (json.dumps(..., indent=2) is byte-identical to the CLI's
    output); `from_json` reads it back. `rows` are the rows of `--by` (the document's `components`), also as
    a polars frame through `components`. The nested analyses (`peak`, `memory_peak`, `phases`, `graph`,
    `host`, `hta`) are their own analyzers' JSON documents.
    """

    trace: str | None  # file name
    trace_id: int
    device: str | None
    time_source: TimeSource
    span_ns: int | None
    layer_source: LayerSource | None
    gpu_busy: float | None
    gpu_busy_all: float | None
    mamba_found: bool
    total: Totals
    rows: list[dict[str, Any]]  # JSON key `components`: the rows of --by
    by_category: list[dict[str, Any]]
    by_stream: list[dict[str, Any]] | None
    model: ModelInfo
    peak: dict[str, Any] | None  # the device's peak FLOP/s and bandwidth (analyzers/devices.py)
    memory_peak: dict[str, Any] | None  # analyzers/memory_peak.py
    timing: Timing
    phases: dict[str, Any] | None  # the prefill/decode split of a trace with several forwards
    graph: dict[str, Any] | None  # how CUDA-graph replays were attributed
    host: dict[str, Any] | None  # the host-bound diagnosis (docs/attribute.md, "Host-bound verdict")
    notes: tuple[str, ...]  # what could not be computed, one line each
    hta: dict[str, Any] | None = None  # HTA's temporal breakdown (--hta only; absent from the JSON otherwise)
    # The MemoryPeak (analyzers/memory_peak.py) behind `memory_peak`, with its timeline; not in the JSON.
    memory: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The JSON document (docs/attribute.md), keys in the documented order."""
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "memory" or (f.name == "hta" and v is None):
                continue
            if isinstance(v, ModelInfo):
                v = v.to_json()
            elif isinstance(v, Totals | Timing):
                v = dataclasses.asdict(v)
            elif f.name == "notes":
                v = list(v)
            doc["components" if f.name == "rows" else f.name] = v
        return doc

    def to_dict(self) -> dict[str, Any]:
        """`to_json()` under the facade's name (README: `report.to_dict()`)."""
        return self.to_json()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> AttributeReport:
        """A document as `to_json` (or `tracekit attribute --format json`, one trace) writes it."""
        known = {f.name for f in dataclasses.fields(cls)} - {"rows", "memory"}
        layer = doc.get("layer_source")
        return cls(
            **{
                **{k: v for k, v in doc.items() if k in known},
                "rows": doc["components"],
                "time_source": TimeSource(doc["time_source"]),
                "layer_source": LayerSource(layer) if layer is not None else None,
                "total": Totals(**doc["total"]),
                "model": ModelInfo.from_json(doc["model"]),
                "timing": Timing(**doc["timing"]),
                "notes": tuple(doc.get("notes", ())),
            }
        )

    def with_(self, **changes: Any) -> AttributeReport:
        """A copy with `changes` (the report is frozen)."""
        return dataclasses.replace(self, **changes)

    @property
    def config_source(self) -> ConfigSource:
        return self.model.config_source

    @property
    def config(self) -> ModelConfig | None:
        return self.model.config

    @property
    def components(self) -> pl.DataFrame:
        """The rows of `--by` as a frame (one column per row key of docs/attribute.md)."""
        return pl.DataFrame(self.rows, infer_schema_length=None)

    def component_ns(self) -> dict[str, int]:
        """Time per component (rows of --by component): GPU kernel time, or CPU self time on CPU-only traces."""
        return {r["component"]: row_time_ns(r) for r in self.rows}


def row_time_ns(row: dict[str, Any]) -> int:
    """A row's time: GPU kernel time, or CPU self time on CPU-only traces (docs/attribute.md); 0 if neither."""
    v = row.get("gpu_time_ns")
    return int(v if v is not None else row.get("cpu_self_ns") or 0)


@dataclasses.dataclass(frozen=True)
class RunAttribution:
    """Every present trace of a collect run, attributed; `missing` lists manifest traces not on disk."""

    run_dir: Path
    manifest: Manifest
    reports: list[AttributeReport]
    missing: list[str]

    def to_json(self) -> list[dict[str, Any]]:
        """The documents in manifest order (what `tracekit attribute --run --format json` prints for 2+)."""
        return [r.to_json() for r in self.reports]

    def to_dict(self) -> list[dict[str, Any]]:
        """`to_json()` under the facade's name."""
        return self.to_json()
