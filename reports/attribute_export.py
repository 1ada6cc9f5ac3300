"""`tracekit attribute` documents as JSON or CSV on stdout (the stable machine formats, docs/attribute.md)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from tracekit.analyzers.report_types import AttributeReport

from tracekit.reports.tables import records_to_csv


def to_json(reports: list[AttributeReport]) -> str:
    """One document as an object, several as a list; indented, newline-terminated."""
    docs = [r.to_json() for r in reports]
    out = docs[0] if len(docs) == 1 else docs
    return json.dumps(out, indent=2) + "\n"


def to_csv(reports: list[AttributeReport]) -> str:
    """One row per (trace, row of its view): the trace's file name first, then the view's columns (tables.py's
    CSV rule)."""
    return records_to_csv([{"trace": rep.trace, **r} for rep in reports for r in rep.rows])


def write(reports: list[AttributeReport], by: str, fmt: str, out: TextIO | None = None) -> None:
    """Write `reports` in `fmt`: json / csv to `out` (stdout), table through tracekit.reports.attribute_table."""
    if fmt in ("json", "csv"):
        (out or sys.stdout).write(to_json(reports) if fmt == "json" else to_csv(reports))
        return
    from tracekit.reports.attribute_table import render

    for rep in reports:
        render(rep, by)
