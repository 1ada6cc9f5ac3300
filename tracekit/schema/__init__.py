"""The versioned DuckDB schema: numbered .sql files applied in order (see docs/schema.md)."""

from __future__ import annotations

from importlib import resources

SCHEMA_VERSION = 2

# The alias-table key of an event: its raw cat; the pre-Kineto autograd export writes none, and its pids
# "CUDA functions" / "CPU functions" say what the event is (rows '(cuda functions)', '(cpu functions)' of 004).
CAT_KEY = (
    "coalesce({cat}, CASE {pid} WHEN 'CUDA functions' THEN '(cuda functions)' "
    "WHEN 'CPU functions' THEN '(cpu functions)' END)"
)


def schema_files() -> list[tuple[str, str]]:
    """(file name, SQL text) of every schema file, in the order they are applied."""
    root = resources.files(__name__)
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(n, root.joinpath(n).read_text(encoding="utf-8")) for n in names]
