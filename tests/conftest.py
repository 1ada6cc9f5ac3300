"""Shared fixtures: the real H100 traces in ../shared/traces (skipped cleanly when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_TRACES = Path(__file__).resolve().parents[2] / "shared" / "traces"


def shared_traces() -> list[Path]:
    return sorted(SHARED_TRACES.glob("*.json.gz")) if SHARED_TRACES.is_dir() else []


@pytest.fixture(scope="session")
def traces_dir() -> Path:
    if not shared_traces():
        pytest.skip(f"real H100 traces not found at {SHARED_TRACES}")
    return SHARED_TRACES


def shared_trace(name: str) -> Path:
    p = SHARED_TRACES / name
    if not p.exists():
        pytest.skip(f"real H100 trace {p} not found")
    return p
