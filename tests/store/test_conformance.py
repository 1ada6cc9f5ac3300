"""Conformance suite (issue #9): every trace variant in tests/data/conformance, in every container, ingests
exactly what the independent reader (tests/plain_reader.py: json + Decimal) reads, event for event; the
`kernels` view holds every kernel-category event in any spelling; `tracekit attribute` gives the exact
kernel total or one clear line; invalid traces get one line naming the file and leave the store unchanged.

The fixtures and what each models are listed in tests/data/conformance/README.md.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import tracekit
from tests import plain_reader
from tests.conftest import run_cli as _cli
from tracekit.errors import TraceError

CONF = Path(__file__).parents[1] / "data" / "conformance"
FIXTURES = sorted(p.name for p in CONF.glob("*.json"))
REPO = Path(__file__).resolve().parents[2]


def _zstd(raw: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(raw)


CONTAINERS: dict[str, Callable[[bytes], bytes]] = {
    "json": lambda raw: raw,
    "json.gz": gzip.compress,
    "json.xz": lzma.compress,
    "json.bz2": bz2.compress,
    "json.zst": _zstd,
}
CASES = [(f, c) for f in FIXTURES for c in CONTAINERS]
CASE_IDS = [f"{f.removesuffix('.json')}.{c}" for f, c in CASES]


class _Stores:
    """One database per container (the same content twice in one store is a no-op re-ingest); each
    (fixture, container) is ingested once and its trace_id or its error is remembered."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dbs: dict[str, Any] = {}
        self.done: dict[tuple[str, str], int | BaseException] = {}

    def file(self, fixture: str, container: str) -> Path:
        out = self.root / "files" / f"{fixture.removesuffix('.json')}.{container}"
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(CONTAINERS[container]((CONF / fixture).read_bytes()))
        return out

    def ingest(self, fixture: str, container: str) -> tuple[Any, int]:
        if container not in self.dbs:
            self.dbs[container] = tracekit.open(str(self.root / f"{container.replace('.', '_')}.duckdb"))
        db = self.dbs[container]
        key = (fixture, container)
        if key not in self.done:
            try:
                self.done[key] = db.ingest_file(self.file(fixture, container)).trace_id
            except Exception as exc:  # remembered and re-raised by every test of this case
                self.done[key] = exc
        got = self.done[key]
        if isinstance(got, BaseException):
            raise AssertionError(f"{fixture} ({container}) was refused: {got}") from got
        return db, got

    def close(self) -> None:
        for db in self.dbs.values():
            db.close()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory):
    s = _Stores(tmp_path_factory.mktemp("conformance"))
    yield s
    s.close()


def _rows(db: Any, sql: str, tid: int) -> list[tuple[Any, ...]]:
    return db.con.execute(sql, [tid]).fetchall()


# ---- the fixtures themselves -------------------------------------------------------------------------------
def test_fixtures_are_valid_small_and_listed() -> None:
    readme = (CONF / "README.md").read_text()
    assert len(FIXTURES) >= 15
    for f in FIXTURES:
        assert f in readme, f"{f} is not described in tests/data/conformance/README.md"
        assert (CONF / f).stat().st_size < 8192, f
        exp = plain_reader.expected(CONF / f)
        assert exp.valid and not exp.ambiguous, (f, exp.problems, exp.ambiguous)


def test_plain_reader_reads_every_container(tmp_path: Path) -> None:
    f = CONF / "kineto_current_logs_after.json"
    want = plain_reader.expected(f)
    for ext, pack in CONTAINERS.items():
        p = tmp_path / f"t.{ext}"
        p.write_bytes(pack(f.read_bytes()))
        assert plain_reader.expected(p) == want, ext


def test_plain_reader_pairs_begin_end_per_track() -> None:
    raw = json.dumps(
        [
            {"ph": "B", "pid": 1, "tid": 1, "ts": 1, "cat": "a"},
            {"ph": "B", "pid": 1, "tid": 2, "ts": 2, "cat": "b"},
            {"ph": "B", "pid": 1, "tid": 1, "ts": 3, "cat": "c"},
            {"ph": "E", "pid": 1, "tid": 1, "ts": 4.5},
            {"ph": "E", "pid": 1, "tid": 1, "ts": 6},
            {"ph": "E", "pid": 1, "tid": 3, "ts": 7},
        ]
    ).encode()
    exp = plain_reader.expected_from_bytes(raw)
    assert exp.slices == {0: (1000, 5000, "a"), 2: (3000, 1500, "c")}
    assert exp.unmatched == {1: "unmatched B", 5: "unmatched E"}


# ---- ingest: exact, event for event ------------------------------------------------------------------------
@pytest.mark.parametrize(("fixture", "container"), CASES, ids=CASE_IDS)
def test_slices_exact(stores: _Stores, fixture: str, container: str) -> None:
    """Every X event and every B/E pair: event_id -> (ts_ns, dur_ns), nothing more, nothing less."""
    exp = plain_reader.expected(CONF / fixture)
    db, tid = stores.ingest(fixture, container)
    got = {
        e: (ts, dur) for e, ts, dur in _rows(db, "SELECT event_id, ts_ns, dur_ns FROM events WHERE trace_id = ?", tid)
    }
    assert got == {e: (ts, dur) for e, (ts, dur, _) in exp.slices.items()}


@pytest.mark.parametrize(("fixture", "container"), CASES, ids=CASE_IDS)
def test_memory_exact(stores: _Stores, fixture: str, container: str) -> None:
    exp = plain_reader.expected(CONF / fixture)
    db, tid = stores.ingest(fixture, container)
    got = {e: (ts, b) for e, ts, b in _rows(db, "SELECT event_id, ts_ns, bytes FROM memory WHERE trace_id = ?", tid)}
    assert got == exp.memory


@pytest.mark.parametrize(("fixture", "container"), CASES, ids=CASE_IDS)
def test_kernels_view_holds_every_kernel(stores: _Stores, fixture: str, container: str) -> None:
    """Issue #9: for every fixture, `kernels` holds every event whose category is a kernel category in
    any spelling (and nothing else), with exact times."""
    exp = plain_reader.expected(CONF / fixture)
    db, tid = stores.ingest(fixture, container)
    got = {e: (ts, d) for e, ts, d in _rows(db, "SELECT event_id, ts_ns, dur_ns FROM kernels WHERE trace_id = ?", tid)}
    assert got == exp.kernels


@pytest.mark.parametrize("fixture", FIXTURES)
def test_categories_canonical_and_raw_kept(stores: _Stores, fixture: str) -> None:
    """`category` is the canonical spelling (common.md decision 1); `cat` keeps the raw one."""
    exp = plain_reader.expected(CONF / fixture)
    db, tid = stores.ingest(fixture, "json")
    rows = _rows(db, "SELECT event_id, cat, category FROM events WHERE trace_id = ?", tid)
    for event_id, cat, category in rows:
        assert cat == exp.raw_cats[event_id], event_id
        want = exp.slices[event_id][2]
        if plain_reader.is_kernel_cat(cat):  # a kernel alias may be canonicalised to 'kernel'
            assert category in (want, "kernel"), (event_id, cat, category)
        else:
            assert category == want, (event_id, cat, category)


@pytest.mark.parametrize("fixture", [f for f in FIXTURES if plain_reader.expected(CONF / f).unmatched])
def test_unmatched_begin_end_kept_and_flagged(stores: _Stores, fixture: str) -> None:
    exp = plain_reader.expected(CONF / fixture)
    db, tid = stores.ingest(fixture, "json")
    got = dict(_rows(db, "SELECT event_id, note FROM other_events WHERE trace_id = ? AND note IS NOT NULL", tid))
    assert got == exp.unmatched


def test_compressed_forms_are_one_trace(stores: _Stores, tmp_path: Path) -> None:
    """The same content in any container is the same trace (sha256 of the decompressed bytes)."""
    db = tracekit.open(str(tmp_path / "one.duckdb"))
    try:
        fixture = "kineto_current_logs_before.json"
        ids = {db.ingest_file(stores.file(fixture, c)).trace_id for c in CONTAINERS}
        assert len(ids) == 1
        assert db.sql("SELECT count(*) FROM traces").item() == 1
    finally:
        db.close()


# ---- the CLI: exact kernel total or one clear line, never a traceback --------------------------------------


def _has_totals(path: Path) -> bool:
    events = plain_reader.load(path)["traceEvents"]
    return any(e.get("name") == "[memory]" and "Total Allocated" in (e.get("args") or {}) for e in events)


@pytest.mark.parametrize("fixture", FIXTURES)
def test_attribute_cli_exact_kernel_total_or_one_line(tmp_path: Path, fixture: str) -> None:
    exp = plain_reader.expected(CONF / fixture)
    r = _cli(
        "attribute",
        "--trace",
        str(CONF / fixture),
        "--db",
        str(tmp_path / "a.duckdb"),
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert "Traceback" not in r.stderr, r.stderr
    if exp.kernels:  # a GPU trace: attribute must work and give the exact kernel total
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["time_source"] == "gpu", doc["time_source"]
        assert doc["total"]["gpu_time_ns"] == exp.kernel_ns
        assert doc["total"]["kernels"] == len(exp.kernels)
        if not _has_totals(CONF / fixture):  # memory events without totals: no allocator peak; the running sum
            # of Bytes (relative to the trace start, said in a note) or null
            assert doc["total"]["peak_bytes"] is None or doc["total"]["peak_source"] == "running_sum"
            assert doc["total"]["peak_bytes"] is None or any("relative to the trace start" in n for n in doc["notes"])
    elif r.returncode == 0:  # no kernels: CPU self time, never a made-up GPU total
        doc = json.loads(r.stdout)
        assert doc["time_source"] != "gpu"
        assert not doc["total"]["gpu_time_ns"]
    else:  # or one clear line naming what is missing
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, r.stderr


# ---- invalid traces: one line naming the file, nonzero exit, store unchanged --------------------------------
def _invalid(tmp: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (file, words of which the one-line message must hold at least one, besides the file's name).

    Event-level problems sit in traceEvents[0] (the first `"dur": 20.5`): the message names that event or
    a byte offset (common.md, decision 4)."""
    good = (CONF / "kineto_current_logs_before.json").read_bytes()
    cut = good.index(b'"traceEvents"') + 200
    at_event = ("traceEvents[0]", "byte")
    files = {
        "truncated_mid_event": (good[:cut], ("",)),
        "truncated_after_array": (good[: good.rindex(b"}")], ("",)),
        "bad_number": (good.replace(b'"dur": 20.5', b'"dur": 20.5.1', 1), at_event),
        "ts_not_a_number": (good.replace(b'"dur": 20.5', b'"dur": "20.5x"', 1), at_event),
        "ts_out_of_range": (good.replace(b'"dur": 20.5', b'"dur": 1e30', 1), ("out of range",)),
        "negative_dur": (good.replace(b'"dur": 20.5', b'"dur": -20.5', 1), at_event),
        "not_json": (b"\x00\x01\x02 binary", ("",)),
        "html_page": (b"<!DOCTYPE html><html><body>404</body></html>", ("",)),
    }
    assert all(raw != good for raw, _ in files.values())
    out: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for name, (raw, words) in files.items():
        p = tmp / f"{name}.json"
        p.write_bytes(raw)
        assert not plain_reader.expected(p).valid, name  # the yardstick agrees: not a valid trace
        out[name] = (p, words)
    lz4 = tmp / "frame.json.lz4"
    lz4.write_bytes(b"\x04\x22\x4d\x18" + bytes(range(40)))
    out["unsupported_compression"] = (lz4, ("unsupported compression",))
    return out


INVALID = [
    "truncated_mid_event",
    "truncated_after_array",
    "bad_number",
    "ts_not_a_number",
    "ts_out_of_range",
    "negative_dur",
    "not_json",
    "html_page",
    "unsupported_compression",
]


def _counts(db: Any) -> dict[str, int]:
    names = [
        r[0]
        for r in db.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' AND table_type = 'BASE TABLE'"
        ).fetchall()
    ]
    return {n: db.con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}


@pytest.mark.parametrize("kind", INVALID)
def test_invalid_trace_one_line_store_unchanged(tmp_path: Path, kind: str) -> None:
    path, words = _invalid(tmp_path)[kind]
    db = tracekit.open(str(tmp_path / "t.duckdb"))
    try:
        db.ingest_file(CONF / "cpu_only.json")
        before = _counts(db)
        with pytest.raises(TraceError) as info:
            db.ingest_file(path)
        msg = str(info.value)
        assert "\n" not in msg and path.name in msg and any(w in msg for w in words), msg
        assert "tracekit-" not in msg and "record/value" not in msg, msg  # no temp file, no DuckDB record
        assert _counts(db) == before
    finally:
        db.close()


@pytest.mark.parametrize("kind", INVALID)
def test_invalid_trace_cli_nonzero_one_line(tmp_path: Path, kind: str) -> None:
    path, words = _invalid(tmp_path)[kind]
    r = _cli("ingest", str(path), "--db", str(tmp_path / "c.duckdb"), cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and path.name in lines[0] and any(w in lines[0] for w in words), r.stderr
    assert "tracekit-" not in lines[0] and "record/value" not in lines[0], r.stderr
