"""Cross-check with HTA: per-kernel-name totals equal HTA's get_gpu_kernel_breakdown once HTA's µs rounding
(ceil ts, floor ts + dur) is applied to tracekit's exact ns; the exact totals are what HTA loses."""

from __future__ import annotations

import math
from collections import defaultdict

import duckdb
import pytest
from tracekit.analyzers.hta_check import hta_kernel_breakdown

import tracekit
from tests.conftest import shared_traces

pytest.importorskip("hta", reason="HTA not installed (pip install 'tracekit[hta]')")


def hta_rounded_us(con: duckdb.DuckDBPyConnection, trace_id: int) -> dict[str, int]:
    """Per-kernel-name µs as HTA computes it: floor(ts + dur) - ceil(ts), in float64 µs.

    ns / 1000 in Python is correctly rounded, which is exactly the double json.loads gives for Kineto's
    decimal µs text, so this reproduces HTA's arithmetic bit for bit.
    """
    # HTA 0.5 counts memsets ("Memset (Device)") as computation kernels too, so include GPU memory ops.
    rows = con.sql(
        "SELECT name, ts_ns, dur_ns FROM gpu_events WHERE trace_id = $tid", params={"tid": trace_id}
    ).fetchall()
    out: dict[str, int] = defaultdict(int)
    for name, ts_ns, dur_ns in rows:
        ts, dur = ts_ns / 1000, dur_ns / 1000
        out[name] += math.floor(ts + dur) - math.ceil(ts)
    return dict(out)


@pytest.mark.parametrize("path", shared_traces(), ids=lambda p: p.name)
def test_kernel_breakdown_matches_hta_up_to_its_rounding(tmp_path, path):
    db = tracekit.open(tmp_path / "h.duckdb")
    tid = db.ingest([path])[0].trace_id
    ours = hta_rounded_us(db.con, tid)
    theirs = hta_kernel_breakdown(path)
    assert theirs == ours  # every name, every µs
    exact = dict(db.sql(f"select name, sum(dur_ns) from kernels where trace_id = {tid} group by 1").rows())
    # the rounding only ever loses time: between 0 and 2 µs per kernel
    n = dict(db.sql(f"select name, count(*) from kernels where trace_id = {tid} group by 1").rows())
    for name, us in ours.items():
        if name not in exact:  # memsets: HTA's rounding can make them negative
            continue
        assert 0 <= exact[name] - us * 1000 <= 2000 * n[name]
    if path.name.startswith("mamba2-130m_generate"):
        # NOTES.md: HTA reports ~18,504 µs of 25,683.068 µs of kernel time (-28%)
        hta_us = sum(theirs[n] for n in exact)
        assert sum(exact.values()) == 25_683_068
        assert abs(hta_us - 18504) <= 2 and 0.27 < 1 - hta_us * 1000 / 25_683_068 < 0.29
    db.close()


# (On the 130m prefill traces HTA 0.5's temporal breakdown trips its own `non_compute_time >= 0` assertion:
# memsets shorter than 1 µs get negative durations from its rounding. tracekit reports that as a note.)
@pytest.mark.parametrize("name", ["mamba1-tiny_2layer_b2_l512_h100.json.gz", "mamba2-tiny_2layer_b2_l512_h100.json.gz"])
def test_busy_time_matches_hta_temporal_breakdown(tmp_path, name):
    """HTA's compute time (union of computation kernels, µs-rounded) vs tracekit's exact busy time."""
    from tracekit.analyzers.attribution import attribute
    from tracekit.analyzers.breakdown import union_ns
    from tracekit.analyzers.components import load_rules
    from tracekit.analyzers.hta_check import temporal_breakdown

    from tests.conftest import shared_trace

    path = shared_trace(name)
    db = tracekit.open(tmp_path / "b.duckdb")
    tid = db.ingest([path])[0].trace_id
    hta = temporal_breakdown(path)
    assert "note" not in hta, hta
    # HTA counts memsets as computation too: compare with the union over all GPU events
    gpu = db.sql(f"select ts_ns, end_ns from gpu_events where trace_id = {tid}")
    n = gpu.height
    assert abs(hta["compute_us"] * 1000 - union_ns(gpu)) <= 2000 * n
    busy = union_ns(attribute(db.con, tid, load_rules()).units)
    assert busy <= union_ns(gpu)
    db.close()
