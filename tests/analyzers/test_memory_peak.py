"""The memory peak (analyzers/memory_peak.py): live allocations rebuilt from [memory] events, docs/attribute.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.analyzers.test_attribute_robust import cpu, launched, mem, write
from tests.conftest import REPO_TRACES, run_cli
from tracekit.cli.attribute_cmd import attribute as attribute_cli

# ---------------------------------------------------------------- a synthetic trace with a known answer
# Before the trace: 1000 B at addr 0xA (freed during the trace) + 500 B never freed -> 1500 B allocated before.
BEFORE = 1500
# (ts µs, bytes, addr, parent op at that time); Total Allocated follows from BEFORE and the bytes.
ALLOCS: list[tuple[int, int, int]] = [
    (1012, 4096, 0x1),  # ssm: aten::empty
    (1052, 8192, 0x2),  # gated_mlp: aten::linear > aten::mm
    (1100, -1000, 0xA),  # ssm: frees memory allocated before the trace
    (1110, 2048, 0x3),  # ssm: aten::empty -> the peak (1500 - 1000 + 4096 + 8192 + 2048 = 14836)
    (1150, -8192, 0x2),  # gated_mlp: aten::linear > aten::mm frees its output
    (1152, 16, 0x2),  # same address, other size: a new allocation
    (1154, -16, 0x2),
    (1180, -4096, 0x1),
]


def _events(*, addr: bool = True, totals: bool = True) -> list[dict[str, Any]]:
    ev: list[dict[str, Any]] = [
        cpu("component.ssm", 1000, 40, cat="user_annotation"),
        cpu("aten::empty", 1010, 5),
        cpu("component.gated_mlp", 1050, 40, cat="user_annotation"),
        cpu("aten::linear", 1051, 30),
        cpu("aten::mm", 1052, 5),
        cpu("component.ssm", 1095, 30, cat="user_annotation"),
        cpu("aten::empty", 1099, 3),
        cpu("aten::empty", 1109, 3),
        cpu("component.gated_mlp", 1145, 20, cat="user_annotation"),
        cpu("aten::linear", 1146, 15),
        cpu("aten::mm", 1149, 10),
        cpu("component.ssm", 1175, 10, cat="user_annotation"),
        cpu("aten::empty", 1178, 5),
    ]
    total = BEFORE
    for ts, b, a in ALLOCS:
        total += b
        ev.append(mem(ts, b, total=total if totals else None, addr=a if addr else None))
    ev += launched([("aten::add", "elementwise_kernel", None)], t0=2000.0)
    return ev


@pytest.fixture(scope="module")
def dbfile(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("mempeak_db") / "m.duckdb")


def doc_of(trace: Path, db: str) -> dict[str, Any]:
    r = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", db, "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_synthetic_peak_exact(tmp_path, dbfile):
    doc = doc_of(write(tmp_path / "mem.json", _events()), dbfile)
    mp = doc["memory_peak"]
    assert mp["source"] == "total_allocated"
    assert mp["peak_bytes"] == doc["total"]["peak_bytes"] == 14836
    assert mp["peak_at_ns"] == 110_000  # 1110 µs, the trace starts at 1000 µs
    assert mp["live_bytes"] == 4096 + 8192 + 2048 and mp["live_count"] == 3
    assert mp["before_trace_bytes"] == 1500
    assert mp["before_trace_live_bytes"] == 500 and mp["before_trace_freed_bytes"] == 1000
    assert mp["unmatched_frees"] == 1 and mp["max_abs_mismatch"] == 0
    assert mp["by_component"] == [
        {"component": "gated_mlp", "bytes": 8192, "count": 1, "top_op": "aten::linear > aten::mm"},
        {"component": "ssm", "bytes": 6144, "count": 2, "top_op": "aten::empty"},
    ]
    assert mp["by_op"] == [
        {"op": "aten::linear > aten::mm", "bytes": 8192, "count": 1},
        {"op": "aten::empty", "bytes": 6144, "count": 2},
    ]
    assert [(r["bytes"], r["op"], r["component"], r["ts_ns"]) for r in mp["largest"]] == [
        (8192, "aten::linear > aten::mm", "gated_mlp", 1_052_000),
        (4096, "aten::empty", "ssm", 1_012_000),
        (2048, "aten::empty", "ssm", 1_110_000),
    ]
    assert any("match no allocation" in n for n in mp["notes"])


def test_synthetic_table_line(tmp_path, dbfile):
    trace = write(tmp_path / "mem.json", _events())
    r = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", dbfile], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if x.startswith("memory peak"))
    assert line == (
        "memory peak 14.8 kB at 110 µs: gated_mlp 8.19 kB (aten::linear > aten::mm), ssm 6.14 kB (aten::empty); "
        "500 B allocated before the trace"
    )


def test_without_totals_the_rebuilt_sum_is_the_peak(tmp_path, dbfile):
    mp = doc_of(write(tmp_path / "mem_nt.json", _events(totals=False)), dbfile)["memory_peak"]
    assert mp["source"] == "reconstructed" and mp["peak_bytes"] == mp["live_bytes"] == 14336
    assert mp["before_trace_bytes"] is None and mp["before_trace_live_bytes"] is None
    assert mp["max_abs_mismatch"] is None
    assert any("no `Total Allocated`" in n for n in mp["notes"])


def test_without_addr_the_reconstruction_is_impossible(tmp_path, dbfile):
    trace = write(tmp_path / "mem_na.json", _events(addr=False))
    doc = doc_of(trace, dbfile)
    assert doc["memory_peak"] is None
    assert doc["total"]["peak_bytes"] == 14836  # the allocator's peak is still reported
    assert any("carry no `Addr`" in n and "memory_peak is null" in n for n in doc["notes"])
    out = tmp_path / "m.png"
    r = CliRunner().invoke(attribute_cli, ["--trace", str(trace), "--db", dbfile, "--memory-plot", str(out)])
    assert r.exit_code == 0 and not out.exists()
    assert "--memory-plot" in r.output and "not written" in r.output


def test_memory_plot_checks_its_path_first(tmp_path):
    trace = write(tmp_path / "mem.json", _events())
    db = str(tmp_path / "p.duckdb")
    for bad, msg in ((tmp_path / "m.txt", "unsupported file type"), (tmp_path / "missing" / "m.png", "no such dir")):
        r = run_cli("attribute", "--trace", str(trace), "--db", db, "--memory-plot", str(bad), cwd=tmp_path)
        assert r.returncode == 2 and "--memory-plot" in r.stderr and msg in r.stderr, r.stderr
        assert r.stdout == ""  # refused before any work
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.json"]


def test_plot_layers_add_up_to_total_allocated(tmp_path, dbfile):
    from tracekit.reports.memory_plot import stacks

    import tracekit
    from tracekit import pipeline

    trace = write(tmp_path / "mem.json", _events())
    with tracekit.open(dbfile) as db:
        rep = pipeline.attribute_traces(db, [pipeline.trace_item(trace)])[0]
    mp = rep.memory
    xs, layers = stacks(mp)
    assert list(layers) == ["before trace", "gated_mlp", "ssm"]
    sums = [sum(col) for col in zip(*layers.values(), strict=True)]
    assert sums == mp.timeline["total_allocated"].to_list()
    assert xs[0] == pytest.approx(0.012) and max(sums) == 14836


# ---------------------------------------------------------------- the real H100 traces

REAL = sorted(REPO_TRACES.glob("*.json.gz"))


@pytest.fixture(scope="module")
def real_docs(tmp_path_factory) -> dict[str, dict[str, Any]]:
    db = str(tmp_path_factory.mktemp("mempeak_real") / "r.duckdb")
    return {p.name: doc_of(p, db) for p in REAL}


@pytest.mark.parametrize("name", [p.name for p in REAL])
def test_real_traces_reconstruction_matches_total_allocated(real_docs, name):
    doc = real_docs[name]
    mp = doc["memory_peak"]
    assert mp is not None and mp["source"] == "total_allocated"
    # The rebuilt live sum + memory allocated before the trace equals Total Allocated at every event.
    assert mp["max_abs_mismatch"] == 0
    assert mp["peak_bytes"] == doc["total"]["peak_bytes"]
    assert mp["live_bytes"] + mp["before_trace_live_bytes"] == mp["peak_bytes"]
    assert sum(r["bytes"] for r in mp["by_component"]) == mp["live_bytes"]
    assert sum(r["bytes"] for r in mp["by_op"]) == mp["live_bytes"]
    assert sum(r["count"] for r in mp["by_component"]) == mp["live_count"]


def test_real_mamba2_prefill_peak_is_the_logits(real_docs):
    mp = real_docs["mamba2-130m_prefill_b8_l2048_h100.json.gz"]["memory_peak"]
    assert mp["peak_bytes"] == 1_970_419_200
    assert mp["before_trace_bytes"] == mp["before_trace_live_bytes"] == 296_891_904
    assert mp["before_trace_freed_bytes"] == 0 and mp["unmatched_frees"] == 0
    top = mp["largest"][0]
    # lm_head's logits: B 8 x L 2048 x vocab 50304 (padded) x 2 bytes, attributed to `other`.
    assert top["bytes"] == 8 * 2048 * 50304 * 2 and top["op"] == "aten::linear > aten::mm"
    assert top["component"] == "other"


def test_cli_memory_plot_writes_png(tmp_path):
    trace = REPO_TRACES / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
    out = tmp_path / "plots" / "mem.png"
    out.parent.mkdir()
    r = run_cli(
        "attribute", "--trace", str(trace), "--db", str(tmp_path / "c.duckdb"), "--memory-plot", str(out), cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "memory peak" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_graph_decode_peak_is_memory_allocated_before_the_trace(tmp_path):
    # The 1.01 GB dense peak of issue 11's decode --cuda-graphs point: all but the logits' clones was
    # allocated before the trace (weights, caches, the graph pool), so the trace cannot place it.
    doc = doc_of(REPO_TRACES.parent / "h100_mamba2-130m_decode_b64_l2048_cg.json.gz", str(tmp_path / "g.duckdb"))
    mp = doc["memory_peak"]
    assert mp["peak_bytes"] == doc["total"]["peak_bytes"] == 1_009_184_256 and mp["max_abs_mismatch"] == 0
    assert mp["before_trace_live_bytes"] == 996_310_016 and mp["live_bytes"] == 12_874_240
    assert mp["by_component"] == [
        {"component": "other", "bytes": 12_874_240, "count": 3, "top_op": "aten::clone > aten::empty_strided"}
    ]
