"""docs/schema.md against the schema's .sql files: every table and column documented, types as declared, and
the column comments of fully commented tables (kernel_components, and each new table) word for word.

The .sql files are the source of truth (applied to a scratch DuckDB for names and types; the `-- comment` after
a column is its comment, the house style of tracekit/schema). A column is documented when a block of
docs/schema.md (text between blank lines) that names its table in backticks names the column too; `trace_id`
is documented once, in the conventions ("Every row carries `trace_id`").
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from tracekit.schema import schema_files

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\n\);", re.S)
_COLUMN = re.compile(r"^\s*(\w+)\s+[A-Z][^-\n]*?--\s*(.+?)\s*$", re.M)


def _columns() -> dict[str, list[tuple[str, str]]]:
    """table -> (column, type) in order, as DuckDB declares them from the schema files."""
    con = duckdb.connect()
    try:
        for _, sql in schema_files():
            con.execute(sql)
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE schema_name = 'main' "
            "AND table_name IN (SELECT table_name FROM duckdb_tables()) ORDER BY table_name, column_index"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, type_ in rows:
        out.setdefault(table, []).append((column, type_))
    return out


def sql_comments() -> dict[str, dict[str, str]]:
    """table -> column -> its `-- comment` in the .sql file."""
    out: dict[str, dict[str, str]] = {}
    for _, sql in schema_files():
        for table, body in _TABLE.findall(sql):
            out[table] = dict(_COLUMN.findall(body))
    return out


def _blocks(text: str, table: str) -> list[str]:
    """The blocks of `text` (between blank lines) that name `table` in backticks (`t`, `t(...)`, `t.col`)."""
    pattern = re.compile(rf"`{table}(?:`|\(|\.)")
    return [b for b in re.split(r"\n\s*\n", text) if pattern.search(b)]


def doc_rows(block: str) -> dict[str, tuple[str, str]]:
    """column -> (type, meaning) of the markdown table rows `| column(s) | type | meaning |` in a block."""
    out = {}
    lines = [line for line in block.splitlines() if line.startswith("|")]
    if not lines or "type" not in lines[0].lower():
        return out
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        for name in re.split(r"\s*[,/]\s*", cells[0].replace("`", "")):
            out[name] = (cells[1], " | ".join(cells[2:]))
    return out


TABLES = _columns()


def test_trace_id_is_documented_once_for_all() -> None:
    assert "Every row carries `trace_id`" in DOC.read_text()


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_column_is_documented(table: str) -> None:
    blocks = _blocks(DOC.read_text(), table)
    assert blocks, f"docs/schema.md never names `{table}`"
    text = "\n".join(blocks)
    missing = [c for c, _ in TABLES[table] if c != "trace_id" and not re.search(rf"\b{c}\b", text)]
    assert not missing, f"{table}: columns not in docs/schema.md: {missing}"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_documented_types_and_columns_are_the_schemas(table: str) -> None:
    declared = dict(TABLES[table])
    for block in _blocks(DOC.read_text(), table):
        for column, (type_, _) in doc_rows(block).items():
            assert column in declared, f"docs/schema.md documents {table}.{column}, which the schema lacks"
            if type_:
                assert type_ == declared[column], f"{table}.{column}: docs say {type_}, the schema {declared[column]}"


@pytest.mark.parametrize("table", sorted(t for t, cols in sql_comments().items() if len(cols) == len(TABLES[t])))
def test_fully_commented_tables_match_their_comments(table: str) -> None:
    """A table whose every column has a comment in the .sql (the style for new tables) is documented in a
    `| column | type | meaning |` table whose meanings are those comments word for word (backticks aside)."""
    rows: dict[str, tuple[str, str]] = {}
    for block in _blocks(DOC.read_text(), table):
        rows.update(doc_rows(block))
    for column, comment in sql_comments()[table].items():
        assert column in rows, f"{table}.{column} has no row in docs/schema.md"
        assert rows[column][1].replace("`", "") == comment, f"{table}.{column}: docs and .sql comment differ"


def test_the_checks_can_fail() -> None:
    block = "### `t`\n| column | type | meaning |\n| --- | --- | --- |\n| a, b | BIGINT | the `x` |"
    assert doc_rows(block) == {"a": ("BIGINT", "the `x`"), "b": ("BIGINT", "the `x`")}
    assert _blocks(f"intro\n\n{block}\n\nother `u`", "t") == [block]
    assert sql_comments()["kernel_components"]["phase"] == "generate traces: prefill or decode"
    assert "kernel_components" in TABLES and ("time_ns", "BIGINT") in TABLES["kernel_components"]
