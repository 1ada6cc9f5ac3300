"""The analysis SQL files (tracekit/schema/queries/*.sql): loaded by name, documented, and busy time exact."""

from __future__ import annotations

import random
import re
from importlib import resources

import polars as pl
import pytest
from tracekit.analyzers.intervals import union_ns, union_ns_by

from tracekit import schema

TOPICS = sorted(
    p.name[:-4] for p in resources.files("tracekit.schema").joinpath("queries").iterdir() if p.name.endswith(".sql")
)


@pytest.mark.parametrize("topic", TOPICS)
def test_sections_are_unique_and_documented(topic: str) -> None:
    text = resources.files("tracekit.schema").joinpath(f"queries/{topic}.sql").read_text(encoding="utf-8")
    names = re.findall(r"^-- name: (\w+)\s*$", text, re.MULTILINE)
    assert names and len(set(names)) == len(names)
    for name, sql in schema.queries(topic).items():
        assert sql.splitlines()[0].startswith("-- "), f"{topic}.{name} has no header comment"


def test_query_by_name() -> None:
    assert schema.query("intervals", "union_by_group").startswith("-- Busy time")
    with pytest.raises(KeyError):
        schema.query("intervals", "nope")


def _brute(ts: list[int], end: list[int]) -> int:
    return len({t for a, b in zip(ts, end, strict=True) for t in range(a, b)})


def test_union_is_exact_on_ties_touching_and_nesting() -> None:
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(1, 40)
        ts = [rng.randint(0, 40) for _ in range(n)]
        end = [t + rng.choice([0, 0, 1, 2, 5, 20]) for t in ts]
        k = [rng.choice([None, 1, 2]) for _ in range(n)]
        df = pl.DataFrame(
            {"ts_ns": ts, "end_ns": end, "k": k}, schema={"ts_ns": pl.Int64, "end_ns": pl.Int64, "k": pl.Int64}
        )
        assert union_ns(df) == _brute(ts, end)
        by = union_ns_by(df, ["k"])
        for key in set(k):
            idx = [i for i in range(n) if k[i] == key]
            assert by[(key,)] == _brute([ts[i] for i in idx], [end[i] for i in idx])
    assert union_ns(pl.DataFrame({"ts_ns": [], "end_ns": []}, schema={"ts_ns": pl.Int64, "end_ns": pl.Int64})) == 0
