"""Bad input: one clear line, nonzero exit, no traceback, the database unchanged."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tracekit
from tests.conftest import run_cli as _cli
from tracekit.errors import TraceError
from tracekit.store import ingest as ingest_mod

GOOD = {"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0}]}


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    good = json.dumps(GOOD).encode()
    files = {
        "missing": (tmp / "nope.json", "no such file"),
        "empty": (tmp / "empty.json", "empty file"),
        "truncated": (tmp / "trunc.json", "truncated JSON: file ends inside traceEvents[0] at byte"),
        "corrupt_gzip": (tmp / "corrupt.json.gz", "corrupt gzip"),
        "truncated_gzip": (tmp / "tgz.json.gz", "truncated gzip"),
        "not_trace": (tmp / "obj.json", "not a Chrome/Kineto trace"),
        "not_json": (tmp / "bin.json", "not JSON"),
        "zero_events": (tmp / "zero.json", "no events"),
        "missing_fields": (tmp / "fields.json", "complete ('X') events lack 'ts'"),
        "malformed_event": (tmp / "malformed.json", "malformed JSON in traceEvents[0] at byte 45 of the file"),
    }
    files["empty"][0].write_bytes(b"")
    files["truncated"][0].write_bytes(good[: len(good) // 2])
    files["corrupt_gzip"][0].write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(64))
    files["truncated_gzip"][0].write_bytes(gzip.compress(good)[:-12])
    files["not_trace"][0].write_text(json.dumps({"hello": [1, 2]}))
    files["not_json"][0].write_bytes(b"\x00\x01binary")
    files["zero_events"][0].write_text(json.dumps({"traceEvents": []}))
    files["missing_fields"][0].write_text(json.dumps({"traceEvents": [{"ph": "X", "name": "a", "dur": 1}]}))
    files["malformed_event"][0].write_text('{"traceEvents": [{"ph": "X", "ts": 1, "dur": }]}')
    return files


def test_each_bad_file_raises_a_named_error_and_leaves_db_unchanged(tmp_path: Path) -> None:
    db = tracekit.open(tmp_path / "t.duckdb")
    for kind, (path, problem) in _bad_files(tmp_path).items():
        with pytest.raises(TraceError) as info:
            db.ingest_file(path)
        assert problem in str(info.value), kind
        assert str(path.name) in str(info.value), kind
    assert db.sql("select count(*) from traces").item() == 0
    assert db.sql("select count(*) from events").item() == 0


def test_cli_bad_file_is_one_line_nonzero(tmp_path: Path) -> None:
    files = _bad_files(tmp_path)
    for kind in ("truncated", "corrupt_gzip", "not_trace", "missing"):
        path, problem = files[kind]
        r = _cli("ingest", str(path), "--db", str(tmp_path / "c.duckdb"), cwd=tmp_path)
        assert r.returncode != 0, kind
        assert "Traceback" not in r.stderr, kind
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and problem in lines[0], (kind, r.stderr)


def test_folder_continues_past_bad_file(tmp_path: Path) -> None:
    d = tmp_path / "runs"
    d.mkdir()
    (d / "a_good.json").write_text(json.dumps(GOOD))
    (d / "b_bad.json").write_text('{"traceEvents": [')
    r = _cli("ingest", str(d), "--db", str(tmp_path / "f.duckdb"), "--format", "json", cwd=tmp_path)
    assert r.returncode == 1
    rows = json.loads(r.stdout)
    assert next(row["status"] for row in rows) == "ingested"
    assert rows[1]["status"].startswith("error: ")
    assert "1 of 2 files failed" in r.stderr


def test_failure_mid_ingest_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tracekit.open(tmp_path / "t.duckdb")
    p = tmp_path / "good.json"
    p.write_text(json.dumps(GOOD))
    real_insert = ingest_mod._insert

    def insert_then_fail(con, trace_id):
        real_insert(con, trace_id)  # rows are written to events, memory, flows ... then:
        raise KeyboardInterrupt  # Ctrl-C mid-ingest

    monkeypatch.setattr(ingest_mod, "_insert", insert_then_fail)
    with pytest.raises(KeyboardInterrupt):
        db.ingest_file(p)
    for table in ("traces", "events", "memory", "flows", "tracks", "instants", "other_events"):
        assert db.sql(f"select count(*) from {table}").item() == 0, table
    monkeypatch.setattr(ingest_mod, "_insert", real_insert)
    (r,) = db.ingest([p])  # and the database still works
    assert r.error is None and db.sql("select count(*) from events").item() == 1


def test_second_writer_waits_then_fails_clearly(tmp_path: Path) -> None:
    dbp = tmp_path / "lock.duckdb"
    tracekit.open(dbp).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys, time; c = duckdb.connect({str(dbp)!r}); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        p = tmp_path / "g.json"
        p.write_text(json.dumps(GOOD))
        r = _cli("ingest", str(p), "--db", str(dbp), "--wait", "0.5", cwd=tmp_path)
        assert r.returncode != 0
        assert "locked by another" in r.stderr and "Traceback" not in r.stderr
    finally:
        holder.kill()
        holder.wait()
    r = _cli("ingest", str(p), "--db", str(dbp), cwd=tmp_path)  # lock released: works, nothing corrupt
    assert r.returncode == 0, r.stderr


def test_query_is_read_only_unless_write(tmp_path: Path) -> None:
    dbp = tmp_path / "q.duckdb"
    tracekit.open(dbp).close()
    r = _cli("query", "create table x (a int)", "--db", str(dbp), cwd=tmp_path)
    assert r.returncode != 0 and "read-only" in r.stderr.lower() and "Traceback" not in r.stderr
    r = _cli("query", "create table x (a int)", "--db", str(dbp), "--write", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = _cli("query", "select count(*) as n from x", "--db", str(dbp), "--format", "csv", cwd=tmp_path)
    assert r.stdout.splitlines() == ["n", "0"]


def test_query_missing_database_is_clear(tmp_path: Path) -> None:
    r = _cli("query", "select 1", "--db", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert r.returncode != 0 and "no such database" in r.stderr and "Traceback" not in r.stderr


def test_folder_skips_collect_manifest(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"points": []}))
    (d / "t.json").write_text(json.dumps(GOOD))
    r = _cli("ingest", str(d), "--db", str(tmp_path / "m.duckdb"), "--format", "csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].startswith("t.json,1,ingested")
    assert len(r.stdout.splitlines()) == 2
