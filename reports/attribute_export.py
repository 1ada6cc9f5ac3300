"""`tracekit attribute` documents as JSON or CSV on stdout (the stable machine formats, docs/attribute.md)."""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from tracekit.reports.tables import records_to_csv


def to_json(docs: list[dict[str, Any]]) -> str:
    """One document as an object, several as a list; indented, newline-terminated."""
    out = docs[0] if len(docs) == 1 else docs
    return json.dumps(out, indent=2) + "\n"


def to_csv(docs: list[dict[str, Any]]) -> str:
    """One row per (trace, row of its view): the trace's file name first, then the view's columns (tables.py's
    CSV rule)."""
    return records_to_csv([{"trace": d["trace"], **r} for d in docs for r in d["components"]])


def write(docs: list[dict[str, Any]], by: str, fmt: str, out: TextIO | None = None) -> None:
    """Write `docs` in `fmt`: json / csv to `out` (stdout), table through tracekit.reports.attribute_table."""
    if fmt in ("json", "csv"):
        (out or sys.stdout).write(to_json(docs) if fmt == "json" else to_csv(docs))
        return
    from tracekit.reports.attribute_table import render

    for d in docs:
        render(d, by)
