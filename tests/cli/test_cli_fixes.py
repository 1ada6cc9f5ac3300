"""Issue #9 "Also fix": duplicate names, read-only means no writes, one-line path errors, fast --pretrained
typos, prune eval checks inputs first, one exit code per failure kind, a waiting writer says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import tracekit
from tests.conftest import run_cli as _cli

GOOD = {"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "pid": 1, "tid": 1, "ts": 1.0, "dur": 2.0}]}
ROOT = Path(__file__).resolve().parents[2]


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("store")
    (d / "t.json").write_text(json.dumps(GOOD))
    db = tracekit.open(d / "t.duckdb")
    db.ingest([d / "t.json"])
    db.close()
    return d


# ---- 1. duplicate output names ------------------------------------------------------------------


def test_dedupe_names_matches_duckdbs_own_client() -> None:
    from tracekit.store.frames import dedupe_names

    names = ["a", "A", "a_1", "a", "name", "Name_1", "name"]
    sel = ", ".join(f'{i} AS "{n}"' for i, n in enumerate(names))
    expected = list(duckdb.connect().sql(f"SELECT {sel}").df().columns)  # DuckDB's DeduplicateColumns
    assert dedupe_names(names) == expected == ["a", "A_1", "a_1_1", "a_2", "name", "Name_1", "name_2"]


JOIN = "select k.name, t.name, k.name from kernels k join traces t using (trace_id)"


def test_duplicate_names_in_database_sql(store: Path) -> None:
    db = tracekit.open(store / "t.duckdb", read_only=True)
    try:
        df = db.sql(JOIN)
    finally:
        db.close()
    assert df.columns == ["name", "name_1", "name_2"]
    assert df.row(0) == ("k", "t.json", "k")


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_duplicate_names_in_every_format(store: Path, fmt: str) -> None:
    r = _cli("query", JOIN, "--db", str(store / "t.duckdb"), "--format", fmt, cwd=store)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    if fmt == "csv":
        assert r.stdout.splitlines() == ["name,name_1,name_2", "k,t.json,k"]
    elif fmt == "json":
        assert json.loads(r.stdout) == [{"name": "k", "name_1": "t.json", "name_2": "k"}]
    else:
        assert "name_1" in r.stdout and "t.json" in r.stdout


# ---- 2. read-only means no writes ---------------------------------------------------------------

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


def test_read_only_query_writes_nothing(store: Path, tmp_path: Path) -> None:
    dbp = store / "t.duckdb"
    before = dbp.read_bytes()
    for sql in WRITES:
        r = _cli("query", sql, "--db", str(dbp), cwd=tmp_path)
        assert r.returncode == 2, (sql, r.stderr)
        line = _one_line(r)
        assert "--write" in line and "read-only" in line, (sql, line)
    assert list(tmp_path.iterdir()) == []  # no file written anywhere
    assert dbp.read_bytes() == before


def test_read_statements_still_run(store: Path) -> None:
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
        r = _cli("query", sql, "--db", str(store / "t.duckdb"), "--format", "csv", cwd=store)
        assert r.returncode == 0, (sql, r.stderr)


def test_write_flag_allows_copy(store: Path, tmp_path: Path) -> None:
    dbp = tmp_path / "w.duckdb"
    tracekit.open(dbp).close()
    out = tmp_path / "x.csv"
    r = _cli("query", f"COPY (select 1 as a) TO '{out}'", "--db", str(dbp), "--write", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_text().splitlines() == ["a", "1"]


# ---- 3. output paths: one line, exit 2, before any work -----------------------------------------


def test_plot_and_export_paths(store: Path, tmp_path: Path) -> None:
    trace, dbp = str(store / "t.json"), str(store / "t.duckdb")
    cases = [
        (("attribute", "--trace", trace, "--db", dbp, "--plot", str(tmp_path / "missing" / "p.png")), "no such dir"),
        (("attribute", "--trace", trace, "--db", dbp, "--plot", str(tmp_path / "p.jpgx")), ".png"),
        (("export", "--parquet", "/dev/null/x", "--db", dbp), "not a directory"),
        (("export", "--parquet", trace, "--db", dbp), "not a directory"),
        (("ingest", trace, "--db", str(tmp_path / "missing" / "d.duckdb")), "no such directory"),
    ]
    for args, msg in cases:
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in _one_line(r), (args, r.stderr)
        assert r.stdout == "", args  # refused before any work: nothing attributed or exported
    assert list(tmp_path.iterdir()) == []


# ---- 4. --pretrained typos fail at once, without the network ------------------------------------


def test_pretrained_path_typo_is_no_such_directory(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    # a closed local port as the hub: a network attempt would show up as a connection error / retries
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    for value in ("./nope", "models/mqar-typo", "~/nope-tracekit", "a/b/c"):
        r = _cli("collect", "--pretrained", value, "--seqlens", "64", "--out", "r", cwd=tmp_path, env=env)
        assert r.returncode == 2, (value, r.stderr)
        assert _one_line(r).endswith(f"--pretrained {value}: no such directory"), r.stderr
    r = _cli("prune", "eval", "--model", "./nope", "--tasks", "mqar", cwd=tmp_path, env=env)
    assert r.returncode == 2 and "--model ./nope: no such directory" in _one_line(r)


def test_pretrained_hub_id_offline_or_unreachable(tmp_path: Path) -> None:
    base = {"HF_HOME": str(tmp_path / "hf")}
    r = _cli("collect", "--pretrained", "org/model", "--out", "r", cwd=tmp_path, env={**base, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2 and "not in the local Hugging Face cache (HF_HUB_OFFLINE" in _one_line(r)
    r = _cli(
        "collect",
        "--pretrained",
        "org/model",
        "--out",
        "r",
        cwd=tmp_path,
        env={**base, "HF_ENDPOINT": "http://127.0.0.1:9"},
    )
    assert r.returncode == 2 and "hub cannot be reached" in _one_line(r)


def test_looks_like_path_rule() -> None:
    from tracekit.collectors.backends import looks_like_path

    for hub in ("state-spaces/mamba-130m-hf", "gpt2", "org/name.v2", "org/name_1"):
        assert not looks_like_path(hub), hub
    for path in ("./x", "../x", "/x", "~/x", "a/b/c", "org/", "a\\b", "org/na me", "org--x/y", "a/../b"):
        assert looks_like_path(path), path


# ---- 5. prune eval: every task spec and file before the model -----------------------------------


def test_prune_eval_checks_tasks_before_loading(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()  # no config.json: loading it would fail with "not a model directory" -- it must not get there
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    cases = [
        ("mqar,mc:nope.jsonl", 2, "--tasks mc:nope.jsonl: no such file"),
        ("mqar,ppl:nope.txt", 2, "--tasks ppl:nope.txt: no such file"),
        ("mqar,foo", 2, "unknown task 'foo'"),
        ("mqar:bogus=1", 2, "bad task option"),
        (f"mqar,mc:{bad}", 1, "bad.jsonl:1: unrecognised fields"),
    ]
    for tasks, code, msg in cases:
        r = _cli("prune", "eval", "--model", str(model), "--tasks", tasks, cwd=tmp_path)
        assert r.returncode == code, (tasks, r.stderr)
        line = _one_line(r)
        assert msg in line and "not a model directory" not in line, (tasks, line)
    r = _cli("prune", "eval", "--model", str(model), "--tasks", "mqar", "--out", "/missing/r.json", cwd=tmp_path)
    assert r.returncode == 2 and "no such directory" in _one_line(r)


# ---- 6. same failure, same exit code ------------------------------------------------------------


def test_exit_codes_table(store: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"traceEvents": [')
    missing = str(tmp_path / "nope.json")
    db = str(store / "t.duckdb")
    table = [
        # missing input path -> 2
        (("ingest", missing, "--db", str(tmp_path / "a.duckdb")), 2),
        (("attribute", "--trace", missing, "--db", str(tmp_path / "a.duckdb")), 2),
        (("attribute", "--run", str(tmp_path / "norun"), "--db", str(tmp_path / "a.duckdb")), 2),
        (("query", "select 1", "--db", str(tmp_path / "none.duckdb")), 2),
        (("tables", "--db", str(tmp_path / "none.duckdb")), 2),
        (("export", "--parquet", str(tmp_path / "pq"), "--db", str(tmp_path / "none.duckdb")), 2),
        (
            (
                "prune",
                "apply",
                "--scores",
                str(tmp_path / "s.pt"),
                "--ratio",
                "0.5",
                "--variant",
                "masked",
                "--out",
                "o",
            ),
            2,
        ),
        (("prune", "eval", "--model", str(tmp_path / "nomodel"), "--tasks", "mqar"), 2),
        (("prune", "score", "--pretrained", str(tmp_path / "nomodel"), "--out", "s.pt"), 2),
        (("train", "--arch", "mamba2", "--task", f"bytes:{tmp_path / 'no.txt'}", "--out", "m"), 2),
        # unwritable output path -> 2
        (("collect", "--preset", "tiny", "--out", "/dev/null/r"), 2),
        (("demo", "--out", "/dev/null/d"), 2),
        (("train", "--arch", "mamba2", "--task", "mqar", "--out", "/dev/null/m"), 2),
        (("prune", "score", "--arch", "mamba2", "--method", "magnitude", "--out", "s.pt", "--heatmap", "h.jpgx"), 2),
        # usage -> 2
        (("attribute", "--db", db), 2),
        (("query", "copy (select 1) to 'x.csv'", "--db", db), 2),
        # bad content / runtime failure -> 1
        (("ingest", str(corrupt), "--db", str(tmp_path / "a.duckdb")), 1),
        (("attribute", "--trace", str(corrupt), "--db", str(tmp_path / "a.duckdb")), 1),
        (("query", "select * from no_such_table", "--db", db), 1),
    ]
    for args, code in table:
        r = _cli(*args, cwd=tmp_path)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        _one_line(r)


# ---- 7. a writer waiting for the lock says so ---------------------------------------------------


def test_waiting_writer_says_it_waits(tmp_path: Path) -> None:
    dbp = tmp_path / "lock.duckdb"
    tracekit.open(dbp).close()
    p = tmp_path / "g.json"
    p.write_text(json.dumps(GOOD))
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


def test_csv_writes_nested_values_as_json(store: Path) -> None:
    sql = "select [1, 2] l, {'a': 1} s, null::int[] n"
    r = _cli("query", sql, "--db", str(store / "t.duckdb"), "--format", "csv", cwd=store)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["l,s,n", '"[1, 2]","{""a"": 1}",']


def test_json_writes_integral_decimal_sums_as_exact_integers(store: Path) -> None:
    sql = "select sum(dur_ns) s, sum(dur_ns + 9223372036854775000) big, 1.50::decimal(5,2) d from kernels"
    r = _cli("query", sql, "--db", str(store / "t.duckdb"), "--format", "json", cwd=store)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [{"s": 2000, "big": 9223372036854777000, "d": "1.50"}]
