"""Tables (reports/tables.py, reports/ingest_summary.py): query output fits 80/200 columns with whole headers,
cells cut in the middle, integer sums, the ingest summary's file names whole and dict rows rendered exactly as
their polars frame."""

from __future__ import annotations

import polars as pl
import pytest
from tracekit.reports.tables import write_frame

import tracekit
from tests.reports.conftest import M1, M2_130M, recording_console


@pytest.mark.parametrize("width", [80, 200])
def test_query_select_star_fits_and_headers_whole(h100_db, width):
    df = h100_db.sql("select * from kernels")
    c = recording_console(width)
    write_frame(df, "table", max_rows=5, console=c)
    lines = c.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    header = lines[0].split()
    assert header[:3] == ["trace_id", "event_id", "name"]  # not wrapped, not cut
    assert all(h in df.columns for h in header)
    more = [line for line in lines if "more rows" in line]
    assert len(more) == 1 and more[0].startswith(f"{df.height - 5} more rows")
    assert any(
        line.startswith(("1 more column", f"{len(df.columns) - len(header)} more column")) for line in lines
    ) or (len(header) == len(df.columns))


def test_query_max_width_cuts_cells_in_the_middle(h100_db):
    df = h100_db.sql("select name from kernels where name like 'void at::native%' limit 3")
    c = recording_console(200)
    write_frame(df, "table", max_width=20, console=c)
    rows = c.export_text().splitlines()[2:]
    assert rows and all(len(r.rstrip()) <= 20 and "…" in r for r in rows)
    assert all(r.startswith("void at::") for r in rows)


def test_sums_are_integers(h100_db):
    df = h100_db.sql("select sum(dur_ns) s, count(*) n, sum(dur_ns) / 2 half from kernels")
    assert df.schema["s"] == pl.Int64 and isinstance(df["s"].item(), int)
    assert df.schema["half"] == pl.Float64


def test_ingest_summary_file_names_whole(tmp_path):
    from tracekit.reports.ingest_summary import summary_records
    from tracekit.reports.tables import write_records

    with tracekit.open(tmp_path / "i.duckdb") as d:
        results = d.ingest([M1, M2_130M])
    c = recording_console(80)
    write_records(summary_records(results, compact=True), "table", keep=("file", "status"), console=c)
    text = c.export_text()
    assert M1.name in text and M2_130M.name in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_ingest_summary_records_render_as_their_frame(tmp_path, capsys):
    """`tracekit ingest` renders its summary from dict rows without polars: same output, in every format, as
    the polars frame of those rows (an error row's missing trace id included)."""
    from tracekit.reports.ingest_summary import summary_records
    from tracekit.reports.tables import write_records

    from tracekit.store.ingest import IngestResult

    with tracekit.open(tmp_path / "i.duckdb") as d:
        results = d.ingest([M1, M2_130M])
    results.append(IngestResult(path='/x/bad, "quoted".json', trace_id=None, skipped=False, error="not JSON"))
    for compact in (False, True):
        rows = summary_records(results, compact=compact)
        for fmt in ("csv", "json"):
            write_records(rows, fmt)
            ours = capsys.readouterr().out
            write_frame(pl.DataFrame(rows), fmt)
            assert ours == capsys.readouterr().out
        a, b = recording_console(200), recording_console(200)
        write_records(rows, "table", title="t", keep=("file",), console=a)
        write_frame(pl.DataFrame(rows), "table", title="t", keep=("file",), console=b)
        assert a.export_text() == b.export_text()
