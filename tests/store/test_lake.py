"""The trace lake and parallel folder ingest (docs/lake.md) against the serial DuckDB store.

The reference is today's serial ingest into a DuckDB file: a lake of the same traces, and a folder ingested
by worker processes, must hold the same rows with the same types in every base table (only `ingested_at`,
the clock at ingest, differs). Every SQL example of the docs runs on both and gives the same result.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import tracekit
from tests.conftest import REPO, _missing, run_cli
from tracekit.errors import TracekitError, UsageError
from tracekit.store import driver, lake
from tracekit.store.database import BASE_TABLES, Database

DATA = REPO / "tests" / "data"
CORPUS = [*sorted((DATA / "conformance").glob("*.json")), DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _rows(con, table: str) -> list[tuple]:
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall() if r[0] != "ingested_at"]
    sel = ", ".join(f'"{c}"' for c in cols)
    return con.execute(f"SELECT {sel} FROM {table} ORDER BY ALL").fetchall()


def _rows_or_error(con, table: str) -> list[tuple] | str:
    """The rows, or DuckDB's message (a typed view casts args fields, e.g. 'N/A' in a DOUBLE column, and
    refuses such a trace the same way on both stores)."""
    try:
        return _rows(con, table)
    except duckdb.Error as exc:
        return str(exc)


def _types(con, table: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {table}").fetchall()]


def _same_tables(a, b) -> None:
    for table in BASE_TABLES:
        assert _types(a, table) == _types(b, table), table
        assert _rows(a, table) == _rows(b, table), table


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("corpus")
    for f in CORPUS:
        shutil.copy(f, d / f.name)
    return d


@pytest.fixture(scope="module")
def serial_db(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serial") / "serial.duckdb"
    with Database(path) as db:
        results = db.ingest([corpus], workers=1)
    assert all(r.error is None and not r.skipped for r in results)
    return path


@pytest.fixture(scope="module")
def lake_dir(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake") / "lake"
    results = _into_lake(sorted(corpus.iterdir()), root, workers=1)
    assert all(r.error is None and not r.skipped for r in results)
    return root


@pytest.mark.slow
def test_lake_round_trip_equals_db(serial_db: Path, lake_dir: Path) -> None:
    """Every base table: same columns, types and rows (trace ids too: one writer commits in file order)."""
    with Database(serial_db, read_only=True) as db, tracekit.open_lake(lake_dir) as lk:
        _same_tables(db.con, lk.con)
        assert db.con.execute("SELECT count(*) FROM counters").fetchone()[0] > 0  # the corpus fills every table
        assert db.con.execute("SELECT count(*) FROM async_slices").fetchone()[0] > 0
        views = "SELECT table_name FROM information_schema.tables WHERE table_type = 'VIEW' ORDER BY 1"
        db_views = [r[0] for r in db.con.execute(views).fetchall()]
        assert set(db_views) <= {
            r[0] for r in lk.con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        for view in db_views:
            assert _types(db.con, view) == _types(lk.con, view), view
            assert _rows_or_error(db.con, view) == _rows_or_error(lk.con, view), view


@pytest.mark.slow
def test_folder_ingest_in_workers_equals_serial(corpus: Path, serial_db: Path, tmp_path: Path) -> None:
    with Database(tmp_path / "par.duckdb") as par:
        results = par.ingest([corpus], workers=2)
        assert [Path(r.path).name for r in results] == sorted(f.name for f in CORPUS)
        assert [r.trace_id for r in results] == list(range(1, len(CORPUS) + 1))
        with Database(serial_db, read_only=True) as db:
            _same_tables(db.con, par.con)
        again = par.ingest([corpus], workers=2)  # idempotent: the content hash is checked before parsing
        assert all(r.skipped for r in again)
        assert [r.trace_id for r in again] == [r.trace_id for r in results]
        twins = [tmp_path / "a.json", tmp_path / "b.json"]  # one new content twice in one batch: stored once
        for t in twins:
            t.write_text(CORPUS[0].read_text().replace("{", '{"twin": 1, ', 1))
        first, second = par.ingest(twins, workers=2)
        assert (first.skipped, second.skipped) == (False, True) and first.trace_id == second.trace_id


def test_lake_is_idempotent(lake_dir: Path, corpus: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in lake_dir.iterdir())
    renamed = tmp_path / "renamed.json"  # same content, another name
    shutil.copy(CORPUS[0], renamed)
    results = _into_lake([*sorted(corpus.iterdir()), renamed], lake_dir, workers=1)
    assert all(r.skipped for r in results)
    assert results[-1].trace_id == results[0].trace_id
    assert sorted(p.name for p in lake_dir.iterdir()) == before
    assert not any((lake_dir / lake.STAGING).iterdir())


@pytest.mark.slow
def test_concurrent_writers_one_lake(corpus: Path, tmp_path: Path) -> None:
    """Two processes ingest the same folder into one lake at once: every content lands exactly once."""
    root = tmp_path / "lake"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tracekit.cli.main", "ingest", str(corpus), "--lake", str(root), "--workers", "2"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    dirs = lake.trace_dirs(root)
    assert sorted(dirs) == list(range(1, len(CORPUS) + 1))  # dense ids, no duplicate content
    assert len(lake.shas_of(dirs.values())) == len(CORPUS)
    assert not any((root / lake.STAGING).iterdir())


@pytest.mark.slow
def test_bad_trace_leaves_nothing(corpus: Path, tmp_path: Path) -> None:
    """One truncated trace in a folder: one line for it, the others land, nothing of it is written."""
    folder = tmp_path / "in"
    folder.mkdir()
    good = CORPUS[:3]
    for f in good:
        shutil.copy(f, folder / f.name)
    (folder / "zz_truncated.json").write_bytes(CORPUS[1].read_bytes()[:300])
    for target in (["--lake", "lake"], ["--db", "t.duckdb"]):
        r = run_cli("ingest", str(folder), *target, "--workers", "2", "--format", "csv", cwd=tmp_path)
        assert r.returncode == 1
        assert "zz_truncated.json" in r.stdout and "truncated JSON" in r.stdout
        assert "1 of 4 files failed" in r.stderr and "Traceback" not in r.stderr
    with tracekit.open_lake(tmp_path / "lake") as lk, Database(tmp_path / "t.duckdb", read_only=True) as db:
        for store in (lk, db):
            names = [n for (n,) in store.con.execute("SELECT name FROM traces").fetchall()]
            assert sorted(names) == [f.name for f in good]
    assert not any((tmp_path / "lake" / lake.STAGING).iterdir())


@pytest.mark.slow
def test_query_and_tables_on_a_lake(serial_db: Path, lake_dir: Path, tmp_path: Path) -> None:
    sql = "select category, count(*) n, sum(dur_ns) ns from events group by 1 order by 1"
    a = run_cli("query", sql, "--db", str(serial_db), "--format", "csv", cwd=tmp_path)
    b = run_cli("query", sql, "--lake", str(lake_dir), "--format", "csv", cwd=tmp_path)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and "kernel" in b.stdout
    r = run_cli("query", "create table x (a int)", "--lake", str(lake_dir), cwd=tmp_path)
    assert r.returncode == 2 and "read-only" in r.stderr
    t = run_cli("tables", "--lake", str(lake_dir), "--format", "csv", cwd=tmp_path)
    assert t.returncode == 0 and "events,table," in t.stdout and "kernels,view," in t.stdout
    missing = run_cli("query", "select 1", "--lake", str(tmp_path / "nope"), cwd=tmp_path)
    assert missing.returncode != 0 and "no such lake" in missing.stderr


def _doc_sql() -> list[str]:
    """Every SQL example of the docs: ```sql blocks (statement by statement) and `tracekit query "..."`."""
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```sql\n(.*?)```", text, re.S):
            body = "\n".join(line for line in block.splitlines() if not line.strip().startswith("--"))
            out += [s.strip() for s in body.split(";") if s.strip()]
        out += [m.replace('\\"', '"') for m in re.findall(r'tracekit query (?:--\S+ \S+ )*"((?:[^"\\]|\\.)+)"', text)]
        out += re.findall(r"`((?:select|with) [^`]+)`", text, re.I)  # inline examples
    return [q for q in out if q.split()[0].lower() in ("select", "with", "from")]


def test_docs_sql_runs_the_same_on_a_lake(serial_db: Path, lake_dir: Path) -> None:
    queries = _doc_sql()
    assert len(queries) >= 5
    with Database(serial_db, read_only=True) as db, tracekit.open_lake(lake_dir) as lk:
        for q in queries:
            if "kernel_components" in q:  # the lake's own table (docs/lake.md): tested below
                continue
            assert sorted(db.sql(q).rows()) == sorted(lk.sql(q).rows()), q


@pytest.mark.slow
def test_attribute_on_a_lake_stores_kernel_components(tmp_path: Path) -> None:
    """`attribute --lake` gives the report a DuckDB store gives, and the documented per-component SQL over the
    stored kernel_components sums to the report's gpu_time_ns exactly."""
    trace = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
    a = run_cli("attribute", "--trace", str(trace), "--db", "t.duckdb", "--format", "csv", cwd=tmp_path)
    b = run_cli("attribute", "--trace", str(trace), "--lake", "lake", "--format", "csv", cwd=tmp_path)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout
    with tracekit.open_lake(tmp_path / "lake") as lk:
        [sql] = [q for q in _doc_sql() if "kernel_components" in q and "group by" in q.lower()]
        got = dict(lk.sql(sql).select("component", "gpu_time_ns").iter_rows())
    report = {row.split(",")[1]: int(row.split(",")[3]) for row in a.stdout.splitlines()[1:]}
    assert got == {c: ns for c, ns in report.items() if ns}


def test_ray_missing_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"pip install 'tracekit\[ray\]'"):
        driver.connect_ray("local")


def test_not_a_lake(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(TracekitError, match="not a tracekit lake"):
        tracekit.open_lake(tmp_path)
    with pytest.raises(UsageError, match="not empty and not a tracekit lake"):
        lake.init_lake(tmp_path)


@pytest.mark.ray
def test_ray_ingest_equals_serial(corpus: Path, serial_db: Path, tmp_path: Path) -> None:
    """--ray against a local Ray cluster started here: into a DuckDB file and into a lake."""
    if importlib.util.find_spec("ray") is None:
        _missing("ray not installed (pip install 'tracekit[ray]')")
    files = sorted(corpus.iterdir())
    try:
        with Database(tmp_path / "ray.duckdb") as db:
            results = db.ingest(files, ray_address="local")
            assert all(r.error is None for r in results)
            with Database(serial_db, read_only=True) as ref:
                _same_tables(ref.con, db.con)
        results = _into_lake(files, tmp_path / "lake", ray_address="local")
        assert all(r.error is None for r in results) and len(lake.trace_dirs(tmp_path / "lake")) == len(files)
    finally:
        import ray

        ray.shutdown()


SPARK_SQL_TABLES = ("events", "kernel_components")


@pytest.mark.spark
def test_spark_sums_per_component_like_duckdb(tmp_path: Path) -> None:
    """The documented per-component SQL, run by Spark SQL (local mode) over the lake's Parquet, gives the
    numbers DuckDB gives."""
    if importlib.util.find_spec("pyspark") is None or shutil.which("java") is None:
        _missing("needs pyspark and a Java runtime (benchmarks/results/lake_spark.md has a recorded run)")
    from pyspark.sql import SparkSession

    trace = DATA / "h100" / "mamba2-tiny_2layer_b2_l512_h100.json.gz"
    assert run_cli("attribute", "--trace", str(trace), "--lake", "lake", cwd=tmp_path).returncode == 0
    root = tmp_path / "lake"
    [sql] = [q for q in _doc_sql() if "kernel_components" in q and "group by" in q.lower()]
    with tracekit.open_lake(root) as lk:
        want = sorted(lk.sql(sql).iter_rows())
    spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
    try:
        for table in SPARK_SQL_TABLES:
            spark.read.option("basePath", str(root)).parquet(
                f"{root}/trace_id=*/{table}.parquet"
            ).createOrReplaceTempView(table)
        got = sorted(tuple(r) for r in spark.sql(sql).collect())
    finally:
        spark.stop()
    assert got == want


def _into_lake(files: list[Path], root: Path, workers: int | None = 1, ray_address: str | None = None) -> list:
    """`tracekit ingest --lake`'s call: the one ingest path with the lake sink (created if needed)."""
    engine = driver.engine_for(files, workers, ray_address)
    return driver.ingest(files, lake.LakeSink(root), engine=engine)
