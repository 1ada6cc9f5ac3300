"""`tracekit query` (cli/store_cmds.py): duplicate column names in every format, read-only unless --write,
CSV and JSON writers keep nested values and exact integer sums."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tracekit
from tests.conftest import one_line
from tests.conftest import run_cli as _cli
from tests.store.test_frames import JOIN


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_duplicate_names_in_every_format(one_kernel_store: Path, fmt: str) -> None:
    r = _cli("query", JOIN, "--db", str(one_kernel_store / "t.duckdb"), "--format", fmt, cwd=one_kernel_store)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    if fmt == "csv":
        assert r.stdout.splitlines() == ["name,name_1,name_2", "k,t.json,k"]
    elif fmt == "json":
        assert json.loads(r.stdout) == [{"name": "k", "name_1": "t.json", "name_2": "k"}]
    else:
        assert "name_1" in r.stdout and "t.json" in r.stdout


# ---- read-only means no writes ---------------------------------------------------------------------

WRITES = [
    "COPY (select 1) TO 'out.csv'",
    "COPY kernels TO 'out.parquet' (FORMAT parquet)",
    "EXPORT DATABASE 'out_dir'",
    "ATTACH 'out.duckdb' AS o",
    "select 1; COPY (select 2) TO 'out.csv'",
    "EXPLAIN ANALYZE COPY (select 1) TO 'out.csv'",
    "SET log_query_path = 'out.log'",
    "PRAGMA profile_output = 'out.txt'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "create table x (a int)",
    "insert into traces select * from traces",
    "VACUUM",
    "BEGIN TRANSACTION",
    "IMPORT DATABASE 'somewhere'",
    "CHECKPOINT; DETACH t",
]


@pytest.mark.slow
def test_read_only_query_writes_nothing(one_kernel_store: Path, tmp_path: Path) -> None:
    dbp = one_kernel_store / "t.duckdb"
    before = dbp.read_bytes()
    for sql in WRITES:
        r = _cli("query", sql, "--db", str(dbp), cwd=tmp_path)
        assert r.returncode == 2, (sql, r.stderr)
        line = one_line(r)
        assert "--write" in line and "read-only" in line, (sql, line)
    assert list(tmp_path.iterdir()) == []  # no file written anywhere
    assert dbp.read_bytes() == before


@pytest.mark.slow
def test_read_statements_still_run(one_kernel_store: Path) -> None:
    for sql in [
        "select count(*) n from kernels",
        "with a as (select 1 n) select * from a",
        "explain select * from kernels",
        "explain analyze select * from kernels",
        "pragma version",
        "describe kernels",
        "show tables",
        "summarize kernels",
        "pivot kernels on name using count(*)",
    ]:
        r = _cli("query", sql, "--db", str(one_kernel_store / "t.duckdb"), "--format", "csv", cwd=one_kernel_store)
        assert r.returncode == 0, (sql, r.stderr)


def test_write_flag_allows_copy(one_kernel_store: Path, tmp_path: Path) -> None:
    dbp = tmp_path / "w.duckdb"
    tracekit.open(dbp).close()
    out = tmp_path / "x.csv"
    r = _cli("query", f"COPY (select 1 as a) TO '{out}'", "--db", str(dbp), "--write", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ["a", "1"]


# ---- writers -----------------------------------------------------------------------------------------


def test_csv_writes_nested_values_as_json(one_kernel_store: Path) -> None:
    sql = "select [1, 2] l, {'a': 1} s, null::int[] n"
    r = _cli("query", sql, "--db", str(one_kernel_store / "t.duckdb"), "--format", "csv", cwd=one_kernel_store)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["l,s,n", '"[1, 2]","{""a"": 1}",']


def test_json_writes_integral_decimal_sums_as_exact_integers(one_kernel_store: Path) -> None:
    sql = "select sum(dur_ns) s, sum(dur_ns + 9223372036854775000) big, 1.50::decimal(5,2) d from kernels"
    r = _cli("query", sql, "--db", str(one_kernel_store / "t.duckdb"), "--format", "json", cwd=one_kernel_store)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"s": 2000, "big": 9223372036854777000, "d": "1.50"}]
