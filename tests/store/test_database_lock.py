"""A writer waiting for the store's lock (store/database.py, `--wait`) says so once, then proceeds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tracekit
from tests.conftest import ONE_KERNEL_TRACE

ROOT = Path(__file__).resolve().parents[2]


def test_waiting_writer_says_it_waits(tmp_path: Path) -> None:
    dbp = tmp_path / "lock.duckdb"
    tracekit.open(dbp).close()
    p = tmp_path / "g.json"
    p.write_text(json.dumps(ONE_KERNEL_TRACE))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.readline()",
            str(dbp),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = subprocess.Popen(
            [sys.executable, "-m", "tracekit.cli.main", "ingest", str(p), "--db", str(dbp), "--wait", "120"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        first = waiter.stderr.readline()  # blocks until the waiter says something: no sleep, no timing
        assert f"locked by process {holder.pid}; waiting up to 120 s (--wait)" in first, first
        holder.stdin.write("\n")  # release the lock: the waiter proceeds
        holder.stdin.flush()
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0, err
        assert "locked" not in err  # said once
        assert "ingested" in out
    finally:
        holder.kill()
        holder.wait()
