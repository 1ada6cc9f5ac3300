"""tracekit: exact, SQL-queryable performance traces of selective state space models.

Public API::

    import tracekit
    db = tracekit.open("tracekit.duckdb")
    db.ingest(["run.json.gz"])
    df = db.sql("select name, sum(dur_ns) from kernels group by 1")   # polars.DataFrame
"""

from __future__ import annotations

import os as _os

__version__ = "0.1.0"

# In a source checkout (no install, e.g. on the GPU machine with PYTHONPATH=repo) the sub-packages
# collectors/, analyzers/ and reports/ live beside tracekit/. pyproject maps them to tracekit.*;
# mirror that mapping here so `import tracekit.collectors` works the same without an install.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isdir(_os.path.join(_root, "collectors")):
    __path__.append(_root)  # type: ignore[name-defined]


def open(path: str | None = None, *, read_only: bool = False):
    """Open (or create) a tracekit database; see `tracekit.store.Database`."""
    from tracekit.store.database import Database

    return Database(path, read_only=read_only)
