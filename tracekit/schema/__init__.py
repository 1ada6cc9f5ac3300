"""The versioned DuckDB schema: numbered .sql files applied in order (see docs/schema.md), and the
analysis SQL in queries/<topic>.sql, one statement per `-- name: X` section, loaded by name."""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION = 3
# Tables ingest writes, one set of rows per trace (a lake holds each as one Parquet file per trace).
BASE_TABLES = (
    "traces",
    "events",
    "instants",
    "memory",
    "flows",
    "tracks",
    "other_events",
    "counters",
    "async_slices",
    "async_instants",
)
# Tables of analysis results (005_attribution.sql): written per trace when it is analysed, replacing earlier rows.
RESULT_TABLES = ("kernel_components",)

_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def schema_files() -> list[tuple[str, str]]:
    """(file name, SQL text) of every schema file, in the order they are applied."""
    root = resources.files(__name__)
    names = sorted(p.name for p in root.iterdir() if p.name.endswith(".sql"))
    return [(n, root.joinpath(n).read_text(encoding="utf-8")) for n in names]


def schema_digest() -> str:
    """sha256 of the schema files: a database of this version written by another tracekit build (older
    views or macros) has another digest, and opening it for writing re-applies the files."""
    h = hashlib.sha256()
    for name, sql in schema_files():
        h.update(name.encode() + b"\0" + sql.encode() + b"\0")
    return h.hexdigest()


@cache
def queries(topic: str) -> dict[str, str]:
    """The named sections of queries/<topic>.sql: name -> SQL text (its header comment included).

    A section runs from its `-- name: X` line to the next one; it holds one or more statements.
    """
    text = resources.files(__name__).joinpath(f"queries/{topic}.sql").read_text(encoding="utf-8")
    parts = _NAME.split(text)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


def query(topic: str, name: str) -> str:
    """One named section of queries/<topic>.sql (KeyError if the file has no such section)."""
    return queries(topic)[name]


def run(con: duckdb.DuckDBPyConnection, topic: str, name: str, params: dict | None = None) -> None:
    """Execute one named section of queries/<topic>.sql on `con` (with named parameters `$x`)."""
    con.execute(query(topic, name), params)
