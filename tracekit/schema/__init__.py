"""The versioned DuckDB schema: numbered .sql files applied in order (see docs/schema.md)."""

from __future__ import annotations

from importlib import resources

SCHEMA_VERSION = 2


def schema_files() -> list[tuple[str, str]]:
    """(file name, SQL text) of every schema file, in the order they are applied."""
    root = resources.files(__name__)
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(n, root.joinpath(n).read_text(encoding="utf-8")) for n in names]
