"""tracekit: exact, SQL-queryable performance traces of selective state space models.

Public API (`__all__`)::

    import tracekit
    db = tracekit.open("tracekit.duckdb")                 # a TraceDB
    lake = tracekit.open_lake("lake/")                    # a TraceLake: the same views over Parquet
    db.ingest(["run.json.gz"])
    df = db.sql("select name, sum(dur_ns) from kernels group by 1")   # polars.DataFrame
    report = db.attribute("run.json.gz")                  # AttributeReport; report.to_dict() is the JSON
    run = db.run("runs/collect")                          # RunAttribution

The names are imported on first use, so `import tracekit` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

import importlib as _importlib
import os as _os
from typing import Any as _Any

__version__ = "0.1.0"

# In a source checkout (no install, e.g. on the GPU machine with PYTHONPATH=repo) the sub-packages
# collectors/, analyzers/ and reports/ live beside tracekit/. pyproject maps them to tracekit.*;
# mirror that mapping here so `import tracekit.collectors` works the same without an install.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "collectors")):
    __path__.append(_root)  # type: ignore[name-defined]

# public name -> module that defines it
_EXPORTS = {
    "TraceDB": "tracekit.api",
    "TraceLake": "tracekit.api",
    "AttributeReport": "tracekit.analyzers.report_types",
    "RunAttribution": "tracekit.analyzers.report_types",
    "TimeSource": "tracekit.analyzers.report_types",
    "ConfigSource": "tracekit.analyzers.report_types",
    "LayerSource": "tracekit.analyzers.report_types",
    "PointStatus": "tracekit.collectors.manifest",
    "ConfigFlags": "tracekit.pipeline",
    "IngestResult": "tracekit.store.ingest",
    "ModelConfig": "tracekit.model_config",
    "TracekitError": "tracekit.errors",
    "TraceError": "tracekit.errors",
    "UsageError": "tracekit.errors",
}

__all__ = ["__version__", "open", "open_lake", *_EXPORTS]


def open(path: str | _os.PathLike[str] | None = None, *, read_only: bool = False):
    """Open (or create) a trace database: a `TraceDB` (default path: $TRACEKIT_DB or ./tracekit.duckdb)."""
    from tracekit.api import TraceDB

    return TraceDB(path, read_only=read_only)


def open_lake(path: str | _os.PathLike[str]):
    """Open a trace lake (a folder written by `tracekit ingest --lake`; docs/lake.md): a `TraceLake`, the same
    tables and views as `open` over Parquet, SQL read-only."""
    from tracekit.api import TraceLake

    return TraceLake(path)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tracekit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
