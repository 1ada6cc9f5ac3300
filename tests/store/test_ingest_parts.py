"""The events array read in parts (kineto.PART_BYTES, parsed in parallel) gives the same store as read whole.

Parts are cut at candidate boundaries (',' then '{') without proving them: a cut inside a string or a nested
args value leaves a part that is not valid JSON, and ingest then joins the parts and reads the array whole.
With tiny parts every conformance fixture is cut many times, some cuts inside nested values (fallback),
some only between events (a real parallel read); both must store exactly what the whole read stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracekit.store import database, kineto

FIXTURES = sorted((Path(__file__).parents[1] / "data" / "conformance").glob("*.json"))


def _tables(db: database.Database) -> dict[str, list]:
    out = {}
    for t in database.BASE_TABLES:
        cols = "* EXCLUDE (ingested_at)" if t == "traces" else "*"
        out[t] = db.con.execute(f"SELECT {cols} FROM {t} ORDER BY ALL").fetchall()
    return out


@pytest.mark.slow
def test_parts_store_what_the_whole_array_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = database.Database(":memory:")
    for f in FIXTURES:
        whole.ingest_file(f)
    split, joined = [], []
    real_join = kineto.PreparedTrace.join_parts
    real_stage = database.ingest_prepared

    def join(self: kineto.PreparedTrace) -> Path:
        if self.parts:
            joined.append(self.path.name)
        return real_join(self)

    def ingest_prepared(con, prepared):
        n = len(prepared.parts)
        result = real_stage(con, prepared)
        if n > 1 and prepared.parts:
            split.append(prepared.path.name)
        return result

    monkeypatch.setattr(kineto, "PART_BYTES", 48)
    monkeypatch.setattr(kineto, "SPLIT_BYTES", 0)  # split whatever the size
    monkeypatch.setattr(kineto.PreparedTrace, "join_parts", join)
    monkeypatch.setattr(database, "ingest_prepared", ingest_prepared)
    parts = database.Database(":memory:")
    for f in FIXTURES:
        parts.ingest_file(f)
    assert split, "no fixture was read in parts"
    assert joined, "no cut fell inside a nested value (the fallback went untested)"
    assert _tables(parts) == _tables(whole)


def test_small_arrays_stay_one_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An array of at most SPLIT_BYTES is one file (parts cost more than they gain there); a bigger one is
    cut, the bytes held back before the decision included, and its parts rebuild the array exactly."""
    small = FIXTURES[0]  # chrome_bare_array.json: 425 bytes
    big = next(f for f in FIXTURES if f.stat().st_size > 3000)
    monkeypatch.setattr(kineto, "PART_BYTES", 48)
    monkeypatch.setattr(kineto, "SPLIT_BYTES", 1000)
    monkeypatch.setattr(kineto, "CHUNK", 100)  # several writes, so the held bytes are written in pieces
    (tmp_path / "a").mkdir()
    one = kineto.prepare(small, tmp_path / "a")
    assert one.parts == []
    (tmp_path / "b").mkdir()
    cut = kineto.prepare(big, tmp_path / "b")
    assert len(cut.parts) > 1
    (tmp_path / "c").mkdir()
    monkeypatch.setattr(kineto, "SPLIT_BYTES", 1 << 20)
    whole = kineto.prepare(big, tmp_path / "c")
    assert whole.parts == []
    assert cut.join_parts().read_bytes() == whole.array_file.read_bytes()


@pytest.mark.slow
def test_end_from_tail_stores_what_the_structural_scan_stores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The array's end found from the file's tail (kineto._end_from_tail) gives the same store as the structural
    scan; where the tail's candidate is wrong (an array of objects after traceEvents: catapult's `samples`),
    DuckDB refuses the cut array and the trace is prepared again with the scan."""
    tail = database.Database(":memory:")
    rescans = []
    real_rescan = kineto.PreparedTrace.rescan

    def rescan(self: kineto.PreparedTrace) -> None:
        rescans.append(self.path.name)
        real_rescan(self)

    monkeypatch.setattr(kineto.PreparedTrace, "rescan", rescan)
    for f in FIXTURES:
        tail.ingest_file(f)
    assert rescans == ["chrome_catapult.json"]
    real_prepare = kineto.prepare
    monkeypatch.setattr(kineto, "prepare", lambda path, workdir, scan=False: real_prepare(path, workdir, scan=True))
    scan = database.Database(":memory:")
    for f in FIXTURES:
        scan.ingest_file(f)
    assert _tables(tail) == _tables(scan)
