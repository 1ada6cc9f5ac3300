"""Shared by the renderer tests: two committed H100 traces ingested once, and a console that records."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

import tracekit

DATA = Path(__file__).resolve().parents[1] / "data" / "h100"
M1 = DATA / "mamba1-tiny_2layer_b2_l512_h100.json.gz"
M2_130M = DATA / "mamba2-130m_prefill_b8_l2048_h100.json.gz"


@pytest.fixture(scope="package")
def h100_db(tmp_path_factory):
    """A store holding M1 and M2_130M, shared by the table and plot tests."""
    with tracekit.open(tmp_path_factory.mktemp("polish") / "t.duckdb") as d:
        d.ingest([M1, M2_130M])
        yield d


def recording_console(width: int) -> Console:
    return Console(record=True, width=width, file=io.StringIO())
