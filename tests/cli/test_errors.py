"""Failures across commands: output paths refused in one line (exit 2) before any work, and the same kind of
failure gives the same exit code everywhere (2 usage/paths, 1 bad content or runtime)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import one_line
from tests.conftest import run_cli as _cli


@pytest.mark.slow
def test_plot_and_export_paths(one_kernel_store: Path, tmp_path: Path) -> None:
    trace, dbp = str(one_kernel_store / "t.json"), str(one_kernel_store / "t.duckdb")
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
        assert msg in one_line(r), (args, r.stderr)
        assert r.stdout == "", args  # refused before any work: nothing attributed or exported
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_exit_codes_table(one_kernel_store: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"traceEvents": [')
    missing = str(tmp_path / "nope.json")
    db = str(one_kernel_store / "t.duckdb")
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
        one_line(r)
