"""Terminal and plot polish (issue 12): tables fit 80/200 columns, units per magnitude, integer sums, plots."""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from tracekit.reports.attribute_table import render
from tracekit.reports.tables import write_frame
from tracekit.reports.units import command_lines, duration

import tracekit

DATA = Path(__file__).resolve().parent / "data" / "h100"
M1 = DATA / "mamba1-tiny_2layer_b2_l512_h100.json.gz"
M2_130M = DATA / "mamba2-130m_prefill_b8_l2048_h100.json.gz"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    with tracekit.open(tmp_path_factory.mktemp("polish") / "t.duckdb") as d:
        d.ingest([M1, M2_130M])
        yield d


def _console(width: int) -> Console:
    return Console(record=True, width=width, file=io.StringIO())


@pytest.mark.parametrize("width", [80, 200])
def test_query_select_star_fits_and_headers_whole(db, width):
    df = db.sql("select * from kernels")
    c = _console(width)
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


def test_query_max_width_cuts_cells_in_the_middle(db):
    df = db.sql("select name from kernels where name like 'void at::native%' limit 3")
    c = _console(200)
    write_frame(df, "table", max_width=20, console=c)
    rows = c.export_text().splitlines()[2:]
    assert rows and all(len(r.rstrip()) <= 20 and "…" in r for r in rows)
    assert all(r.startswith("void at::") for r in rows)


def test_sums_are_integers(db):
    df = db.sql("select sum(dur_ns) s, count(*) n, sum(dur_ns) / 2 half from kernels")
    assert df.schema["s"] == pl.Int64 and isinstance(df["s"].item(), int)
    assert df.schema["half"] == pl.Float64


def test_attribute_by_kernel_keeps_names_readable(db):
    doc = db.attribute(M1, by="kernel")
    c = _console(80)
    render(doc, "kernel", console=c)
    text = c.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    names = [line.split()[0] for line in text.splitlines()[3:] if "µs" in line]
    assert "elementwise_kernel<…>" in " ".join(names)  # the at::native:: kernels by their own name
    assert not any(n.startswith("at::native") for n in names)


def test_attribute_by_layer_keeps_roofline_at_80(db):
    doc = db.attribute(M2_130M, by="layer")
    c = _console(80)
    render(doc, "layer", console=c)
    text = c.export_text()
    lines = text.splitlines()
    header = next(line for line in lines if "component" in line and "time" in line)
    assert header.split()[-1] == "roof" and max(len(line) for line in lines) <= 80
    assert "µs" in text  # sub-ms times in µs, not 0.085


def test_ingest_summary_file_names_whole(tmp_path):
    from tracekit.reports.ingest_summary import summary_records
    from tracekit.reports.tables import write_records

    with tracekit.open(tmp_path / "i.duckdb") as d:
        results = d.ingest([M1, M2_130M])
    c = _console(80)
    write_records(summary_records(results, compact=True), "table", keep=("file", "status"), console=c)
    text = c.export_text()
    assert M1.name in text and M2_130M.name in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_duration_units():
    assert [duration(x) for x in (5, 5_057, 85_300, 1_234_567, 2.5e9)] == [
        "5 ns",
        "5.06 µs",
        "85.3 µs",
        "1.23 ms",
        "2.50 s",
    ]


def test_next_hint_never_breaks_a_word():
    words = ["tracekit", "attribute", "--run", "/tmp/" + "x" * 40 + "/run", "--db", "/tmp/db.duckdb", "--by", "layer"]
    lines = command_lines(words, 60)
    assert len(lines) > 1 and all(line.endswith(" \\") for line in lines[:-1])
    assert " ".join(line.removesuffix(" \\").strip() for line in lines).split() == words
    assert command_lines(words[:3], 60) == ["tracekit attribute --run"]


def test_plot_has_title_and_times(db, tmp_path):
    from tracekit.reports import attribute_plot

    texts: list[str] = []
    import matplotlib.axes

    orig = matplotlib.axes.Axes.text

    def spy(self, x, y, s, *a, **k):
        texts.append(s)
        return orig(self, x, y, s, *a, **k)

    doc = db.attribute(M2_130M)
    try:
        matplotlib.axes.Axes.text = spy
        out = attribute_plot.plot_shares([doc], tmp_path / "p.png", title="my run")
    finally:
        matplotlib.axes.Axes.text = orig
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert any("ms" in t and "%" in t for t in texts)


def test_plot_cli_prints_wrote(tmp_path):
    from click.testing import CliRunner

    from tracekit.cli.main import cli

    png = tmp_path / "s.png"
    r = CliRunner().invoke(
        cli, ["attribute", "--trace", str(M1), "--db", str(tmp_path / "c.duckdb"), "--plot", str(png)]
    )
    assert r.exit_code == 0, r.output
    assert f"wrote {png}" in r.output and png.stat().st_size > 0


def test_collect_summary_latency_unit_per_magnitude():
    from tracekit.reports.collect_summary import summary_table
    from tracekit.reports.units import ms_band

    assert (
        ms_band(28.87, 27.1, 30.2) == "28.9 ms (27.1–30.2)" and ms_band(0.005, 0.004, 0.0071) == "5.00 µs (4.00–7.10)"
    )
    point = {"arch": "mamba2", "mode": "decode", "batch": 1, "seqlen": 64, "status": "ok", "peak_mem_bytes": None}
    point["timing"] = {"median_ms": 0.005, "p10_ms": 0.004, "p90_ms": 0.0071}
    doc = {"backend": "hf", "dtype": "fp32", "device": "cpu", "weights": "random", "points": [point]}
    c = _console(80)
    c.print(summary_table(doc))
    text = c.export_text()
    assert "5.00 µs (4.00–7.10)" in text and "0.005" not in text


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
        a, b = _console(200), _console(200)
        write_records(rows, "table", title="t", keep=("file",), console=a)
        write_frame(pl.DataFrame(rows), "table", title="t", keep=("file",), console=b)
        assert a.export_text() == b.export_text()
