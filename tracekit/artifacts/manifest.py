"""A collect run's manifest.json, read: the run (device, dtype, models) and its points, typed.

collectors/manifest.py writes the file (point by point, atomically) and validates it against
manifest.schema.json; everything that reads a run reads it through `Manifest`. Standard library only.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tracekit.errors import UsageError
from tracekit.model_config import ModelConfig, dtype_bytes

MANIFEST = "manifest.json"


@dataclasses.dataclass(frozen=True)
class RunContext:
    """What the run was, for one trace (from its manifest point when there is one; else all unknown)."""

    mode: str | None = None  # prefill | decode (| generate, found in the trace)
    batch: int | None = None
    seqlen: int | None = None
    dtype_bytes: int | None = None
    device: str | None = None
    ttft_ms: float | None = None
    tpot_ms: float | None = None
    median_ms: float | None = None
    # Unprofiled ms per decode step of the same point with and without CUDA graphs (manifest), when known.
    graph_ms_per_step: float | None = None
    eager_ms_per_step: float | None = None


@dataclasses.dataclass(frozen=True)
class ManifestPoint:
    """One measured point (manifest.schema.json, `points[]`); `raw` is the entry as written."""

    arch: str | None
    mode: str | None
    batch: int | None
    seqlen: int | None
    decode_steps: int | None
    cuda_graphs: bool | None
    trace: str | None  # file name, relative to the run folder; None when the point failed
    status: str | None
    error: str | None
    timing: Mapping[str, Any] | None  # median_ms, p10_ms, p90_ms, ...
    ttft_ms: float | None
    tpot_ms: float | None
    peak_mem_bytes: int | None
    raw: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ManifestPoint:
        timing = doc.get("timing")
        return cls(
            arch=doc.get("arch"),
            mode=doc.get("mode"),
            batch=doc.get("batch"),
            seqlen=doc.get("seqlen"),
            decode_steps=doc.get("decode_steps"),
            cuda_graphs=doc.get("cuda_graphs"),
            trace=doc.get("trace") or None,
            status=doc.get("status"),
            error=doc.get("error"),
            timing=timing if isinstance(timing, dict) else None,
            ttft_ms=doc.get("ttft_ms"),
            tpot_ms=doc.get("tpot_ms"),
            peak_mem_bytes=doc.get("peak_mem_bytes"),
            raw=doc,
        )

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)

    def timing_ms(self, key: str) -> float | None:
        """`timing[key]` (median_ms, p10_ms, p90_ms) or None."""
        return (self.timing or {}).get(key)

    @property
    def key(self) -> tuple[Any, ...]:
        """How points of two runs are matched: arch, mode, batch, seqlen, cuda_graphs."""
        return (self.arch, self.mode, self.batch, self.seqlen, self.cuda_graphs)


@dataclasses.dataclass(frozen=True)
class Manifest:
    """A collect run's manifest.json: the run and its points (entries that are not objects are skipped)."""

    device: str | None
    dtype: str | None
    models: Mapping[str, Any]  # arch -> ModelConfig as a dict
    points: tuple[ManifestPoint, ...]
    state_kernel: str | None  # the decode state update of the mamba-ssm backend (`--state-kernel`), if recorded
    raw: Mapping[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def from_json(cls, doc: Any, where: str | Path = MANIFEST) -> Manifest:
        """UsageError (one line) when `doc` is not a manifest (no `points` list)."""
        if not isinstance(doc, dict) or not isinstance(doc.get("points"), list):
            raise UsageError(f"{where}: not a tracekit manifest (no `points` list)")
        models = doc.get("models")
        return cls(
            device=doc.get("device"),
            dtype=doc.get("dtype"),
            models=models if isinstance(models, dict) else {},
            points=tuple(ManifestPoint.from_json(p) for p in doc["points"] if isinstance(p, dict)),
            state_kernel=doc.get("state_kernel"),
            raw=doc,
        )

    @classmethod
    def read(cls, run_dir: str | Path) -> Manifest:
        """`run_dir`/manifest.json; UsageError when it is missing, unreadable or not a manifest."""
        path = Path(run_dir) / MANIFEST
        try:
            doc = read_json(path)
        except FileNotFoundError:
            raise UsageError(f"{run_dir}: no manifest.json (is this a `tracekit collect` run directory?)") from None
        except (OSError, ValueError) as exc:
            raise UsageError(f"{path}: cannot read manifest: {exc}") from None
        return cls.from_json(doc, path)

    def to_json(self) -> dict[str, Any]:
        return dict(self.raw)

    def config(self, arch: str | None) -> ModelConfig | None:
        """The model config the run used for `arch`, if the manifest records it."""
        cfg = self.models.get(arch) if arch is not None else None
        return ModelConfig.from_dict(cfg) if isinstance(cfg, dict) else None

    def context(self, point: ManifestPoint) -> RunContext:
        """What `point` was; decode points also get the unprofiled ms per step with and without CUDA graphs
        of the same (arch, batch, seqlen), from the run's other points."""
        decode = point.mode == "decode"

        def step_ms(graphs: bool) -> float | None:
            same = (point.arch, point.batch, point.seqlen, graphs)
            found = [
                float(p.tpot_ms)
                for p in self.points
                if p.mode == "decode"
                and isinstance(p.tpot_ms, int | float)
                and (p.arch, p.batch, p.seqlen, bool(p.cuda_graphs)) == same
            ]
            return found[-1] if found else None

        return RunContext(
            mode=point.mode,
            batch=point.batch,
            seqlen=point.seqlen,
            dtype_bytes=dtype_bytes(str(self.dtype or "")),
            device=self.device,
            ttft_ms=point.ttft_ms,
            tpot_ms=point.tpot_ms,
            median_ms=point.timing_ms("median_ms"),
            graph_ms_per_step=step_ms(True) if decode else None,
            eager_ms_per_step=step_ms(False) if decode else None,
        )


@dataclasses.dataclass(frozen=True)
class RunTrace:
    """A trace to attribute, with what its run's manifest says about it (all None for a bare trace file)."""

    trace: Path
    config: ModelConfig | None
    point: RunContext  # what the run was (mode, batch, seqlen, dtype, timing)
    label: str
    manifest_point: ManifestPoint | None = None  # the point as recorded (timing p10/p90, cuda_graphs, peak)

    @classmethod
    def bare(cls, trace: Path, label: str | None = None) -> RunTrace:
        """A trace outside any collect run."""
        return cls(trace, None, RunContext(), label if label is not None else trace.name)


def run_traces(run_dir: Path, manifest: Manifest | None = None) -> list[RunTrace]:
    """Every point of the run that has a trace file, with its config and point description."""
    manifest = manifest if manifest is not None else Manifest.read(run_dir)
    return [
        RunTrace(
            (run_dir / p.trace).resolve(),
            manifest.config(p.arch),
            manifest.context(p),
            f"{p.arch} {p.mode} b{p.batch} l{p.seqlen}",
            p,
        )
        for p in manifest.points
        if p.trace
    ]


def find_for_trace(trace: Path) -> RunTrace | None:
    """The manifest entry describing `trace`, if the trace sits in (a sub-folder of) a collect run."""
    trace = trace.resolve()
    for d in (trace.parent, trace.parent.parent):
        if (d / MANIFEST).is_file():
            try:
                entries = run_traces(d)
            except UsageError:
                return None
            for e in entries:
                if e.trace == trace:
                    return e
    return None


def is_run_dir(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def read_json(path: str | Path) -> Any:
    """A manifest file as JSON (collectors/manifest.py reads it so for validation and shard merging)."""
    return json.loads(Path(path).read_text())
