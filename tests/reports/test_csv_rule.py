"""One CSV rule for every command (reports/tables.py): dict rows and polars frames write the same cells."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import polars as pl
from tracekit.reports.attribute_export import to_csv
from tracekit.reports.tables import records_to_csv, write_frame

ROWS = [
    {"name": "a,b", "n": 1, "x": 0.5, "s": "", "missing": None, "nested": {"k": [1, 2]}, "q": 'say "hi"'},
    {"name": "c", "n": None, "x": None, "s": "t", "missing": None, "nested": [1, "µ"], "q": "line\nbreak"},
]


def test_the_rule() -> None:
    text = records_to_csv(ROWS)
    assert text.splitlines()[:2] == [
        "name,n,x,s,missing,nested,q",
        '"a,b",1,0.5,"",,"{""k"": [1, 2]}","say ""hi"""',
    ]
    back = list(csv.DictReader(io.StringIO(text)))
    assert back[1]["nested"] == '[1, "\\u00b5"]' and back[1]["q"] == "line\nbreak" and back[1]["n"] == ""
    assert records_to_csv([]) == ""


def test_a_row_without_a_column_leaves_it_empty() -> None:
    assert records_to_csv([{"a": 1, "b": 2}, {"a": 3}]) == "a,b\n1,2\n3,\n"


def test_frames_follow_the_same_rule(capsys) -> None:
    """Nested values, missing values, empty strings and quoting: polars' CSV of the frame equals ours."""
    rows = [{k: v for k, v in r.items() if k not in ("n", "x", "nested")} for r in ROWS]
    rows = [{**r, "nested": {"k": [i, i + 1]}} for i, r in enumerate(rows)]
    write_frame(pl.DataFrame(rows), "csv")
    assert capsys.readouterr().out == records_to_csv(rows)


def test_attribute_csv_is_the_same_writer() -> None:
    report = SimpleNamespace(trace="t1.json", rows=[{"component": "ssm", "layer": None, "gpu_time_ns": 5}])
    assert to_csv([report]) == "trace,component,layer,gpu_time_ns\nt1.json,ssm,,5\n"
