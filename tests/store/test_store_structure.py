"""traceEvents found by the JSON structure, every container, and errors in the user's terms.

Every accepted file is checked event by event against tests/plain_reader.py (json + Decimal); every
refused one must give one line naming the file and the place (traceEvents[i] / byte offset), never a
temporary path, and leave the database unchanged.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import random
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tracekit
from tests import plain_reader
from tracekit.errors import TraceError
from tracekit.store import kineto
from tracekit.store.database import expand_paths

EVENTS = [
    {"ph": "X", "cat": "cpu_op", "name": 'aten::mm "q" ]}[{', "pid": 1, "tid": 1, "ts": 10.5, "dur": 2.25,
     "args": {"Input Dims": [[8, 512], []], "note": "a \\\"] b\\\\"}},
    {"ph": "X", "cat": "kernel", "name": "k\\\\]", "pid": 0, "tid": 7, "ts": 11.001, "dur": 1.999,
     "args": {"grid": [1, 2, 3], "correlation": 5}},
    {"ph": "i", "cat": "cpu_instant_event", "name": "[memory]", "pid": 1, "tid": 1, "ts": 12.0, "s": "t",
     "args": {"Bytes": 512, "Total Allocated": 512}},
    {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel ✓ ünïcode", "pid": 1, "tid": 1, "ts": 10.75,
     "dur": 0.5, "args": {"correlation": 5}},
]  # fmt: skip
KINETO_TAIL = {
    "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": 1, "pg_config": [{"ranks": [0]}]},
    "INFO": ["CuptiActivityProfiler.cpp:1058] Traces to be collected: [1]", "]", "[", "}{"],
    "WARNING": ["ActivityProfilerController.cpp:322] no GPU ] found"],
    "ERROR": [],
    "traceName": "/tmp/x.json",
}


@pytest.fixture
def db(tmp_path: Path):
    d = tracekit.open(tmp_path / "t.duckdb")
    yield d
    d.close()


def _x_rows(db, trace_id: int) -> list[tuple[int, str, int, int]]:
    return db.sql(
        "select event_id, name, ts_ns, dur_ns from events where trace_id = ? order by event_id", [trace_id]
    ).rows()


def _expected(events: list[dict]) -> list[tuple[int, str, int, int]]:
    return [
        (i, e["name"], plain_reader.ns(e["ts"]), plain_reader.ns(e["dur"]))
        for i, e in enumerate(events)
        if e["ph"] == "X"
    ]


def _check_exact(db, path: Path, events: list[dict] | None = None) -> int:
    """Ingest `path`; its X events (ts_ns, dur_ns), event count and metadata match the plain reader."""
    (r,) = db.ingest([path], keep_going=False)
    assert r.error is None and not r.skipped
    doc = plain_reader.load(path) if events is None else {"traceEvents": events}
    events = doc["traceEvents"]
    assert _x_rows(db, r.trace_id) == _expected(events)
    assert db.sql("select event_count from traces where trace_id = ?", [r.trace_id]).item() == len(events)
    meta = json.loads(db.sql("select metadata::VARCHAR from traces where trace_id = ?", [r.trace_id]).item())
    assert meta.pop("tracekit")["ts_unit"] == "us"  # how tracekit read the file (docs/schema.md)
    plain_meta = {k: v for k, v in doc.items() if k not in ("traceEvents", "deviceProperties")}
    assert meta == json.loads(json.dumps(plain_meta, default=float))
    return r.trace_id


def _refused(db, path: Path, *needles: str) -> str:
    """The file is refused with one line naming it and each needle; no temp path; the DB unchanged."""
    before = db.sql("select count(*) from traces").item(), db.sql("select count(*) from events").item()
    with pytest.raises(TraceError) as info:
        db.ingest_file(path)
    msg = str(info.value)
    assert "\n" not in msg and path.name in msg, msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    for leak in ("tracekit-", "events.json", "events-quoted", "record/value"):
        assert leak not in msg, msg
    after = db.sql("select count(*) from traces").item(), db.sql("select count(*) from events").item()
    assert after == before
    return msg


def _object(events: list[dict], before: dict | None = None, after: dict | None = None, indent: int | None = None):
    parts = []
    for k, v in (before or {}).items():
        parts.append(f"{json.dumps(k)}: {json.dumps(v, indent=indent)}")
    parts.append(f'"traceEvents": {json.dumps(events, indent=indent, ensure_ascii=False)}')
    for k, v in (after or {}).items():
        parts.append(f"{json.dumps(k)}: {json.dumps(v, indent=indent)}")
    return "{" + ",\n".join(parts) + "}\n"


# ---- structure ---------------------------------------------------------------------------------------

STRUCTURES = {
    "kineto_logs_after": lambda: _object(EVENTS, {"schemaVersion": 1, "deviceProperties": [{"id": 0}]}, KINETO_TAIL),
    "keys_after_indented": lambda: _object(EVENTS, None, {"deviceProperties": [{"id": 0, "name": "]"}], "x": "["}, 2),
    "keys_before_mention_traceEvents": lambda: _object(
        EVENTS,
        {
            "note": 'the "traceEvents": [ key comes later \\" ] }',
            "traceEvents_": [1, [2]],
            "nested": {"traceEvents": [{"ph": "X"}], "s": "]]]"},
            'esc\\"traceEvents': "\\\\",
        },
        {"WARNING": ["]"]},
    ),
    "only_key": lambda: json.dumps({"traceEvents": EVENTS}),
    "compact_no_spaces": lambda: json.dumps(
        {"a": ["]"], "traceEvents": EVENTS, "b": {"c": "]"}}, separators=(",", ":")
    ),
    "bare_array": lambda: json.dumps(EVENTS),
    "bare_array_pretty_bom": lambda: "\ufeff" + json.dumps(EVENTS, indent=1) + "\n\n",
}


@pytest.mark.parametrize("kind", sorted(STRUCTURES))
def test_structures_match_plain_reader(db, tmp_path: Path, kind: str) -> None:
    p = tmp_path / f"{kind}.json"
    p.write_bytes(STRUCTURES[kind]().encode())
    _check_exact(db, p, None if "bom" not in kind else EVENTS)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 64])
def test_tiny_chunks_straddle_every_escape_and_bracket(db, tmp_path: Path, monkeypatch, chunk: int) -> None:
    monkeypatch.setattr(kineto, "CHUNK", chunk)
    monkeypatch.setattr(kineto, "PACKED_READ", chunk)
    text = STRUCTURES["keys_before_mention_traceEvents"]().replace('"tid": 7', '"tid": 7, "e": "\\\\\\\\\\\\\\""')
    p = tmp_path / "tiny.json"
    p.write_bytes(text.encode())
    _check_exact(db, p)
    gz = tmp_path / "tiny2.json.gz"  # decompressed pieces of arbitrary sizes too
    gz.write_bytes(gzip.compress(STRUCTURES["kineto_logs_after"]().encode()))
    _check_exact(db, gz)


def test_bare_array_without_closing_bracket_is_accepted(db, tmp_path: Path) -> None:
    # The Trace Event Format lets the JSON Array Format omit its ']' (a writer killed mid-trace).
    for i, tail in enumerate(["", ",", ",\n  ", "\n"]):
        p = tmp_path / f"open{i}.json"
        p.write_text(json.dumps(EVENTS, indent=1)[:-1].rstrip() + tail)
        _check_exact(db, p, EVENTS)


def test_bare_array_cut_inside_an_event_is_truncated(db, tmp_path: Path) -> None:
    text = json.dumps(EVENTS)
    p = tmp_path / "cut.json"
    p.write_text(text[: text.index('"kernel"')])
    _refused(db, p, "truncated JSON", "top-level array[1]", f"byte {len(p.read_bytes())}")


def test_traceevents_key_in_nested_object_only_is_not_a_trace(db, tmp_path: Path) -> None:
    p = tmp_path / "nested.json"
    p.write_text(json.dumps({"a": {"traceEvents": EVENTS}}))
    _refused(db, p, "not a Chrome/Kineto trace")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 4096])
def test_array_scanner_finds_the_end_like_json(chunk: int) -> None:
    rnd = random.Random(chunk)
    pieces = ['"\\\\"', '"\\""', '"]"', '"["', "[]", "[[1],[2]]", '{"a":"}"}', '"\\\\\\""', "1", '"x\\\\\\\\"']
    for _ in range(200):
        arr = "[" + ",".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 8))) + "]"
        json.loads(arr)
        after = rnd.choice(['], "INFO": ["a]"]}', "", ' , "k": "]"}', "]]"])
        data = arr[1:] + after  # the scanner starts after '['
        sc = kineto.ArrayScanner(boundaries=True)
        end = None
        for i in range(0, len(data), chunk):
            r = sc.feed(data[i : i + chunk].encode())
            if r is not None:
                end = i + r
                break
        assert end == len(arr) - 1, (arr, after)
        # the depth-1 commas separate exactly the elements json sees
        starts = [0, *sc.element_starts().tolist()]
        elems = json.loads(arr)
        assert len(starts) == max(1, len(elems))
        if elems:
            bounds = [*starts, len(arr) - 1]
            for k, e in enumerate(elems):
                assert json.loads(data[bounds[k] : bounds[k + 1] - 1]) == e


_string = st.text(alphabet=st.sampled_from(list('ab"\\[]{},: ü\n')), max_size=12)
_value = st.recursive(
    st.one_of(st.integers(-(10**20), 10**20), _string, st.booleans(), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_string, inner, max_size=3)),
    max_leaves=6,
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(_string, min_size=1, max_size=4),
    ts=st.lists(st.integers(0, 2**50), min_size=1, max_size=4),
    before=st.dictionaries(_string.filter(lambda k: k != "traceEvents"), _value, max_size=3),
    after=st.dictionaries(_string.filter(lambda k: k != "traceEvents"), _value, max_size=3),
    bare=st.booleans(),
    chunk=st.sampled_from([1, 3, 17, 1 << 20]),
)
def test_generated_structures_ingest_exactly(tmp_path_factory, names, ts, before, after, bare, chunk) -> None:
    body = (
        "["
        + ", ".join(
            f'{{"ph": "X", "cat": "cpu_op", "name": {json.dumps(n, ensure_ascii=False)}, "pid": 1, "tid": 1, '
            f'"ts": {t // 1000}.{t % 1000:03d}, "dur": 1.5, "args": {json.dumps({"k": before})}}}'
            for n, t in zip(names, ts, strict=False)
        )
        + "]"
    )
    text = (
        body
        if bare
        else "{"
        + "".join(f"{json.dumps(k)}: {json.dumps(v)}, " for k, v in before.items())
        + (f'"traceEvents": {body}' + "".join(f", {json.dumps(k)}: {json.dumps(v)}" for k, v in after.items()) + "}")
    )
    d = tmp_path_factory.mktemp("gen")
    p = d / "g.json"
    p.write_bytes(text.encode())
    old = kineto.CHUNK
    kineto.CHUNK = chunk
    try:
        with tracekit.open(d / "g.duckdb") as gdb:
            _check_exact(gdb, p)
    finally:
        kineto.CHUNK = old


# ---- containers ----------------------------------------------------------------------------------------

COMPRESS = {
    "gz": gzip.compress,
    "xz": lzma.compress,
    "bz2": bz2.compress,
    "zst": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_each_container_by_magic(db, tmp_path: Path, ext: str) -> None:
    raw = STRUCTURES["kineto_logs_after"]().encode()
    p = tmp_path / f"t.json.{ext}"
    p.write_bytes(COMPRESS[ext](raw[:100]) + COMPRESS[ext](raw[100:]))  # two members/streams/frames
    tid = _check_exact(db, p)
    assert db.sql("select json_bytes from traces where trace_id = ?", [tid]).item() == len(raw)
    odd = tmp_path / f"misnamed_{ext}.json"  # the magic bytes decide, not the suffix
    odd.write_bytes(COMPRESS[ext](raw.replace(b"x.json", b"y.json")))
    _check_exact(db, odd)


@pytest.mark.parametrize("ext", sorted(COMPRESS))
def test_truncated_and_corrupt_streams(db, tmp_path: Path, ext: str) -> None:
    name = {"gz": "gzip", "xz": "xz", "bz2": "bz2", "zst": "zstd"}[ext]
    packed = COMPRESS[ext](STRUCTURES["kineto_logs_after"]().encode() * 1)
    cut = tmp_path / f"cut.json.{ext}"
    cut.write_bytes(packed[: len(packed) - 9])
    msg = _refused(db, cut)
    assert f"truncated {name} stream" in msg or "truncated JSON" in msg, msg
    bad = tmp_path / f"bad.json.{ext}"
    flipped = bytearray(packed)
    for i in range(len(flipped) // 3, len(flipped) // 3 + 24):
        flipped[i] ^= 0x5A
    bad.write_bytes(bytes(flipped))
    msg = _refused(db, bad)
    assert any(s in msg for s in (f"corrupt {name} data", f"truncated {name} stream", "malformed", "truncated")), msg


@pytest.mark.parametrize(
    ("magic", "name"),
    [
        (b"PK\x03\x04", "zip"),
        (b"7z\xbc\xaf\x27\x1c\x00\x04", "7z"),
        (b"\x04\x22\x4d\x18", "lz4"),
        (b"\xff\x06\x00\x00sNaPpY", "snappy"),
    ],
)
def test_unsupported_compression_is_named(db, tmp_path: Path, magic: bytes, name: str) -> None:
    p = tmp_path / "t.json.other"
    p.write_bytes(magic + bytes(range(256)))
    _refused(db, p, f"unsupported compression ({name})")


def test_binary_garbage_is_not_json(db, tmp_path: Path) -> None:
    p = tmp_path / "bin.json"
    p.write_bytes(b"\x00\x01\x02binary\xff\xfe")
    _refused(db, p, "not JSON")


def test_folder_discovery_takes_every_container(tmp_path: Path) -> None:
    for ext in ("json", "json.gz", "json.xz", "json.bz2", "json.zst", "txt", "json.zip"):
        (tmp_path / f"a.{ext}").write_bytes(b"")
    found = sorted(p.name for p in expand_paths([tmp_path]))
    assert found == ["a.json", "a.json.bz2", "a.json.gz", "a.json.xz", "a.json.zst"]


# ---- errors ---------------------------------------------------------------------------------------------


def _events_text(
    events_json: list[str], before: str = '{"schemaVersion": 1, "traceEvents": ['
) -> tuple[str, list[int]]:
    """A trace whose events are given as raw JSON texts; returns it and each event's byte offset."""
    text = before
    offsets = []
    for i, e in enumerate(events_json):
        if i:
            text += ", "
        offsets.append(len(text.encode()))
        text += e
    return text + '], "INFO": ["x.cpp:1] y"]}', offsets


GOOD_EVENT = '{"ph": "X", "cat": "cpu_op", "name": "ü", "pid": 1, "tid": 1, "ts": 1.5, "dur": 2}'


@pytest.mark.parametrize(
    ("bad", "needles"),
    [
        ('{"ph": "X", "ts": 1, "dur": }', ["malformed JSON in traceEvents[2] at byte", "of the file (decompressed)"]),
        ('{"ph": "X", "ts": 1, "dur": 1},,', ["malformed JSON in traceEvents[3]"]),
        ('{"ph": "X", "ts": NaN, "dur": 1}', ["traceEvents[2]", "'ts' is a non-finite number (NaN)"]),
        ('{"ph": "X", "ts": 1e30, "dur": 1}', ["traceEvents[2]", "'ts' 1e30 µs is out of range (beyond int64 ns)"]),
        (
            '{"ph": "X", "ts": 1, "dur": 9300000000000000}',
            ["traceEvents[2]", "'dur' 9300000000000000 µs is out of range"],
        ),
        ('{"ph": "X", "ts": -9300000000000000.5, "dur": 1}', ["traceEvents[2]", "out of range (beyond int64 ns)"]),
        ('{"ph": "X", "ts": 9000000000000000, "dur": 900000000000000}', ["traceEvents[2]", "out of range"]),
        ('{"ph": "X", "ts": "12.5", "dur": 1}', ["traceEvents[2]", "'ts' is a string (\"12.5\"), not a number"]),
        ('{"ph": "X", "ts": "abc", "dur": 1}', ["traceEvents[2]", "'ts' is a string"]),
        ('{"ph": "X", "ts": true, "dur": 1}', ["traceEvents[2]", "'ts' is a boolean (true)"]),
        ('{"ph": "X", "ts": 1, "dur": {"us": 1}}', ["traceEvents[2]", "'dur' is an object"]),
        ('{"ph": "X", "ts": [1], "dur": 1}', ["traceEvents[2]", "'ts' is an array"]),
        ('{"ph": "X", "ts": null, "dur": 1}', ["complete ('X') events lack 'ts'", "traceEvents[2]"]),
        ('{"ph": "X", "ts": 1, "ts": 2, "dur": 1}', ["traceEvents[2]", "repeats the key 'ts'"]),
        ("7", ["traceEvents[2]", "is not an event object but a number"]),
    ],
)
def test_bad_event_is_named_by_index_and_byte(db, tmp_path: Path, bad: str, needles: list[str]) -> None:
    text, offsets = _events_text([GOOD_EVENT, GOOD_EVENT, bad, GOOD_EVENT])
    p = tmp_path / "bad.json"
    p.write_text(text)
    msg = _refused(db, p, *needles)
    if "at byte" in msg and "malformed" not in msg:
        assert f"(at byte {offsets[2]})" in msg
    if "malformed" in msg:
        at = int(msg.split("at byte ")[1].split()[0])
        assert offsets[2] <= at < offsets[2] + len(bad)
    # the same problem in a file on the exact (DECIMAL) path, and compressed
    big = text.replace('"ts": 1.5', '"ts": 1732612345678901.234')
    gz = tmp_path / "bad_epoch.json.gz"
    gz.write_bytes(gzip.compress(big.encode()))
    _refused(db, gz, *[n for n in needles if "at byte" not in n])


def test_trailing_comma_inside_an_event_is_tolerated(db, tmp_path: Path) -> None:
    # DuckDB's reader (yyjson) accepts `{"a": 1,}` inside an element; Python's json does not. The values
    # are unambiguous, so tracekit keeps DuckDB's leniency here (documented in docs/schema.md).
    text, _ = _events_text([GOOD_EVENT.replace('"dur": 2}', '"dur": 2, "args": {"a": [1,],},}')])
    p = tmp_path / "comma.json"
    p.write_text(text)
    (r,) = db.ingest([p], keep_going=False)
    assert r.error is None
    assert _x_rows(db, r.trace_id) == [(0, "ü", 1500, 2000)]


def test_duplicate_key_decision_matches_nothing_silently(db, tmp_path: Path) -> None:
    # DuckDB refuses an event with a repeated key while Python's json keeps the last: tracekit refuses
    # (never picks a value the plain reader would not) — also for a repeated 'ph' or 'name'.
    for key, dup in (("ph", '"ph": "X", "ph": "i"'), ("name", '"name": "a", "name": "b"')):
        text, _ = _events_text([GOOD_EVENT, "{" + dup + ', "ts": 1, "dur": 1}'])
        p = tmp_path / f"dup_{key}.json"
        p.write_text(text)
        _refused(db, p, "traceEvents[1]", f"repeats the key '{key}'")
    # a repeated key nested in args is no event field: kept as it is (json's last value)
    text, _ = _events_text([GOOD_EVENT.replace('"dur": 2', '"dur": 2, "args": {"a": 1, "a": 2}')])
    p = tmp_path / "dup_args.json"
    p.write_text(text)
    (r,) = db.ingest([p], keep_going=False)
    assert r.error is None


@pytest.mark.parametrize(
    ("cut_at", "needles"),
    [
        ('"ts": 1.5, "dur": 2}, {"ph": "X", "cat": "cpu_op", "name": "ü", "pid": 1, "tid": 1, "ts"',
         ["truncated JSON: file ends inside traceEvents[1] at byte"]),
        ('"name": "ü', ["truncated JSON: file ends inside traceEvents[0] at byte"]),
        ("[", ["truncated JSON: file ends inside traceEvents"]),
        ('"INFO": ["x.cpp', ["truncated JSON: file ends after traceEvents, inside the top-level object at byte"]),
        ('"schemaVer', ["truncated", "at byte"]),
    ],
)  # fmt: skip
def test_truncated_file_names_where_it_ends(db, tmp_path: Path, cut_at: str, needles: list[str]) -> None:
    text, _ = _events_text([GOOD_EVENT, GOOD_EVENT])
    cut = text[: text.index(cut_at) + len(cut_at)]
    for name, data in (("cut.json", cut.encode()), ("cut.json.gz", gzip.compress(cut.encode()))):
        p = tmp_path / name
        p.write_bytes(data)
        msg = _refused(db, p, *needles)
        if "at byte" in needles[0]:
            assert f"at byte {len(cut.encode())}" in msg


def test_data_after_the_object_and_second_traceevents(db, tmp_path: Path) -> None:
    p = tmp_path / "after.json"
    p.write_text(json.dumps({"traceEvents": EVENTS}) + " {}")
    _refused(db, p, "data after the top-level object at byte")
    p2 = tmp_path / "twice.json"
    p2.write_text('{"traceEvents": [], "x": 1, "traceEvents": []}')
    _refused(db, p2, "a second traceEvents key")
    p3 = tmp_path / "notarray.json"
    p3.write_text('{"traceEvents": {"a": 1}}')
    _refused(db, p3, "traceEvents is not an array")


# ---- exactness ------------------------------------------------------------------------------------------


def test_epoch_microseconds_with_ns_digits_and_huge_args_ints(db, tmp_path: Path) -> None:
    events = [
        {"ph": "X", "cat": "kernel", "name": f"k{i}", "pid": 0, "tid": 7, "ts": ts, "dur": dur,
         "args": {"External id": 2**64 + i, "correlation": 10**30, "stream": 7, "device": 0}}
        for i, (ts, dur) in enumerate([("1732612345678901.234", "0.001"), ("1732612345678902.999", "12345.678"),
                                       ("1732612345678903", "1e0")])
    ]  # fmt: skip
    body = (
        json.dumps(events)
        .replace('"ts": "', '"ts": ')
        .replace('", "dur": "', ', "dur": ')
        .replace('", "args"', ', "args"')
    )
    p = tmp_path / "epoch.json"
    p.write_text('{"traceEvents": ' + body + ', "INFO": ["a] b"]}')
    tid = _check_exact(db, p)
    assert db.sql("select time_parse from traces where trace_id = ?", [tid]).item() == "decimal"
    got = db.sql("select ts_ns, external_id, correlation, stream from events order by event_id").rows()
    assert got == [(1732612345678901234, None, None, 7), (1732612345678902999, None, None, 7),
                   (1732612345678903000, None, None, 7)]  # fmt: skip


@pytest.mark.parametrize("block", [5, 64, 1 << 20])
def test_time_type_scan_in_bounded_blocks(tmp_path: Path, monkeypatch, block: int) -> None:
    """The scan for a non-number ts/dur reads the array in blocks: a "ts" key in args is no problem (the events
    are looked at), a string ts is refused wherever the block boundaries fall."""
    from tracekit.store import kineto

    monkeypatch.setattr(kineto, "CHUNK", block)
    events = [
        {"ph": "X", "cat": "kernel", "name": f"k{i}}}", "pid": 0, "tid": 7, "ts": f"{1732612345678901 + i}.{i:03d}",
         "dur": f"{i}.5", "args": {"ts": "not a time", "Input Dims": [[i]]}}
        for i in range(40)
    ]  # fmt: skip
    body = ", ".join(
        json.dumps(e)
        .replace(f'"ts": "{e["ts"]}"', f'"ts": {e["ts"]}')
        .replace(f'"dur": "{e["dur"]}"', f'"dur": {e["dur"]}')
        for e in events
    )
    p = tmp_path / "epoch_blocks.json"
    p.write_text('{"traceEvents": [' + body + '], "INFO": ["x] y"]}')
    with tracekit.open(tmp_path / "b.duckdb") as bdb:
        tid = _check_exact(bdb, p)
        assert bdb.sql("select time_parse from traces where trace_id = ?", [tid]).item() == "decimal"
        bad = p.read_text().replace('"dur": 39.5', '"dur": "39.5"')
        assert bad != p.read_text()
        p.write_text(bad)
        with pytest.raises(TraceError, match=r"traceEvents\[39\].*'dur' is a string"):
            bdb.ingest_file(p)


def test_unbalanced_quote_in_a_complete_file_is_malformed_not_truncated(db, tmp_path: Path) -> None:
    text, offsets = _events_text([GOOD_EVENT, GOOD_EVENT.replace('"name": "ü"', '"name": "ü", "x'), GOOD_EVENT])
    p = tmp_path / "quote.json"
    p.write_text(text)
    # the stray quote flips string state: the ']' inside the INFO line now looks like the array's end
    _refused(db, p, "malformed JSON in traceEvents[1] at byte")
    text, offsets = _events_text([GOOD_EVENT, GOOD_EVENT.replace('"name": "ü"', '"name": "ü", "x'), GOOD_EVENT])
    p2 = tmp_path / "quote2.json"
    p2.write_text(text.replace('"INFO": ["x.cpp:1] y"]', '"INFO": []'))  # no ']' in a string after it
    _refused(db, p2, "malformed JSON: traceEvents[1]", f"(at byte {offsets[1]}) never closes")
