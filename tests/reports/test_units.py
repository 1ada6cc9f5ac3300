"""Units (reports/units.py): durations per magnitude, the next-step hint wrapped between words, the collect
summary's latency band in the unit of its magnitude."""

from __future__ import annotations

from tracekit.reports.units import command_lines, duration

from tests.reports.conftest import recording_console


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


def test_collect_summary_latency_unit_per_magnitude():
    from tracekit.reports.collect_summary import summary_table
    from tracekit.reports.units import ms_band

    assert (
        ms_band(28.87, 27.1, 30.2) == "28.9 ms (27.1–30.2)" and ms_band(0.005, 0.004, 0.0071) == "5.00 µs (4.00–7.10)"
    )
    point = {"arch": "mamba2", "mode": "decode", "batch": 1, "seqlen": 64, "status": "ok", "peak_mem_bytes": None}
    point["timing"] = {"median_ms": 0.005, "p10_ms": 0.004, "p90_ms": 0.0071}
    doc = {"backend": "hf", "dtype": "fp32", "device": "cpu", "weights": "random", "points": [point]}
    c = recording_console(80)
    c.print(summary_table(doc))
    text = c.export_text()
    assert "5.00 µs (4.00–7.10)" in text and "0.005" not in text
