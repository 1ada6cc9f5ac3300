"""Property-based ingest tests (issue #9), checked against the independent reader tests/plain_reader.py.

* Generated VALID traces in every form (object or bare array; log arrays and other keys before or after
  traceEvents in random order; unicode names; brackets, braces, escaped quotes inside strings; nested
  args; random mixes of X/B/E/i/C/M/s/f events; ts/dur of whole ns written with 0-3 decimals, sometimes
  at epoch scale) must ingest exactly what the reader reads.
* Random CORRUPTIONS of valid traces (truncation at every structural point, a flipped byte, wrong types
  in ts/dur, duplicated keys) must either ingest exactly what the reader reads from the corrupted bytes
  (when they are still a valid trace) or raise one TraceError line naming the file and leave the store
  unchanged (trace count and every table's row count).

Bounded for CI: derandomized, fixed example counts, in-process Database; a few CLI runs check exit codes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

import tracekit
from tests import plain_reader
from tests.conftest import run_cli as _cli
from tracekit.errors import TraceError

REPO = Path(__file__).resolve().parents[2]
SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    # no shrinking: a failure is reported as first found, so a failing run stays as short as a passing one
    "phases": (Phase.explicit, Phase.reuse, Phase.generate),
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}

# ---- a tiny JSON writer that keeps key order, duplicate keys and the exact text of numbers --------------


@dataclasses.dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim (numbers with their exact digits)."""

    text: str


@dataclasses.dataclass
class Obj:
    """A JSON object as an ordered list of pairs (duplicates allowed)."""

    pairs: list[tuple[str, Any]]


def dumps(v: Any, ascii_only: bool = False) -> str:
    if isinstance(v, Raw):
        return v.text
    if isinstance(v, Obj):
        return (
            "{"
            + ", ".join(f"{json.dumps(k, ensure_ascii=ascii_only)}: {dumps(x, ascii_only)}" for k, x in v.pairs)
            + "}"
        )
    if isinstance(v, dict):
        return dumps(Obj(list(v.items())), ascii_only)
    if isinstance(v, list):
        return "[" + ", ".join(dumps(x, ascii_only) for x in v) + "]"
    return json.dumps(v, ensure_ascii=ascii_only)


# ---- strategies -------------------------------------------------------------------------------------------
TRICKY = st.sampled_from([*'ab]}[{"\\ :,é内🚀\n\t/', "\u2028", "]}", '"traceEvents": [', "\\u005d"])
texts = st.lists(TRICKY, max_size=6).map("".join)
big_ints = st.sampled_from([2**63, 2**64 - 1, -(2**63) - 1, 10**25, 2**53 + 1])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), big_ints, texts)
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(texts, st.sampled_from(["ts", "dur", "traceEvents", "ph"])), inner, max_size=3),
    ),
    max_leaves=6,
)
CATS = [
    "kernel",
    "Kernel",
    "KERNEL",
    "cpu_op",
    "Operator",
    "Runtime",
    "cuda_runtime",
    "gpu_memcpy",
    "Memcpy",
    "python_function",
    "user_annotation",
    "mtia_ccp_events",
    "xpu_runtime",
    "toplevel",
    "é]",
]
EPOCH_NS = 1_790_857_026_000_000_000  # 1.79e15 µs: well beyond 2^43 µs


@st.composite
def number(draw: st.DrawFn, lo: int, hi: int, base: int = 0) -> tuple[int, Raw]:
    """A whole number of ns written as µs with 0-3 decimals (the text is what the file holds)."""
    decimals = draw(st.integers(0, 3))
    step = 10 ** (3 - decimals)
    ns = base + draw(st.integers(lo // step, hi // step)) * step
    us, frac = divmod(ns, 1000)
    text = str(us) if decimals == 0 else f"{us}.{frac // step:0{decimals}d}"
    if ns < 0:  # divmod floors; write negatives from their absolute value
        a_us, a_frac = divmod(-ns, 1000)
        text = "-" + (str(a_us) if decimals == 0 else f"{a_us}.{a_frac // step:0{decimals}d}")
    return ns, Raw(text)


TODAY_CATS = ["kernel", "cpu_op", "cuda_runtime", "gpu_memcpy", "python_function", "user_annotation"]


@st.composite
def event(draw: st.DrawFn, base: int, today: bool = False) -> Obj:
    """One event; `today`: only what tracekit read before issue #9 (no B/E, today's category spellings)."""
    phases = ["X", "X", "X", "i", "C", "M", "s", "f"] if today else ["X", "X", "X", "B", "E", "i", "C", "M", "s", "f"]
    cats = TODAY_CATS if today else CATS
    ph = draw(st.sampled_from(phases))
    pairs: list[tuple[str, Any]] = [("ph", ph)]
    pid = draw(st.sampled_from([0, 1, "1", "Spans", 407]))
    tid = draw(st.sampled_from([0, 1, 7, "stream 7"]))
    _, ts = draw(number(0, 10**9, base))
    if ph == "X":
        _, dur = draw(number(0, 10**7))
        pairs += [
            ("cat", draw(st.sampled_from(cats))),
            ("name", draw(texts)),
            ("pid", pid),
            ("tid", tid),
            ("ts", ts),
            ("dur", dur),
        ]
        if draw(st.booleans()):
            pairs.append(("args", draw(st.dictionaries(texts, nested, max_size=3))))
    elif ph in ("B", "E"):
        pairs += [("pid", pid), ("tid", tid), ("ts", ts)]
        if ph == "B" or draw(st.booleans()):
            pairs += [("cat", draw(st.sampled_from(CATS))), ("name", draw(texts))]
    elif ph == "i":
        if draw(st.booleans()):
            args = {"Bytes": draw(st.integers(-(2**40), 2**40)), "Device Type": draw(st.sampled_from([0, 1]))}
            if draw(st.booleans()):
                args |= {"Total Allocated": draw(st.integers(0, 2**40)), "Addr": draw(st.integers(0, 2**64 - 1))}
            pairs += [("name", "[memory]"), ("pid", pid), ("tid", tid), ("ts", ts), ("s", "t"), ("args", args)]
        else:
            pairs += [
                ("name", draw(texts)),
                ("pid", pid),
                ("tid", tid),
                ("ts", ts),
                ("s", draw(st.sampled_from("tpg"))),
            ]
    elif ph == "C":
        pairs += [
            ("name", draw(texts)),
            ("pid", pid),
            ("ts", ts),
            ("args", draw(st.dictionaries(texts, st.integers(-1000, 1000), min_size=1, max_size=2))),
        ]
    elif ph == "M":
        pairs += [
            ("name", draw(st.sampled_from(["process_name", "thread_name"]))),
            ("pid", pid),
            ("tid", tid),
            ("args", {"name": draw(texts)}),
        ]
    else:  # s / f
        pairs += [
            ("id", draw(st.integers(0, 50))),
            ("cat", "ac2g"),
            ("name", "ac2g"),
            ("pid", pid),
            ("tid", tid),
            ("ts", ts),
        ]
        if ph == "f":
            pairs.append(("bp", "e"))
    order = draw(st.permutations(range(len(pairs))))
    return Obj([pairs[i] for i in order])


LOG_LINES = st.lists(
    st.sampled_from(["CuptiActivityProfiler.cpp:1058] Processed 12 GPU records [1 ms]", "x ] y", "[", "]]", "} {"]),
    max_size=20,
)


@st.composite
def trace_doc(draw: st.DrawFn, today: bool = False) -> Any:
    """A valid trace as a writer-level value (Obj / list). `today`: object form, traceEvents last, only
    the events and spellings tracekit read before issue #9."""
    base = EPOCH_NS if draw(st.integers(0, 4)) == 0 else 0
    events = draw(st.lists(event(base, today), min_size=1, max_size=14))
    if not today and draw(st.integers(0, 5)) == 0:
        return events  # the bare top-level array form
    extra: list[tuple[str, Any]] = []
    pool = {
        "schemaVersion": 1,
        "deviceProperties": [{"id": 0, "name": draw(texts), "numSms": 132}],
        "distributedInfo": {"backend": "nccl", "rank": 0, "pg_config": [{"ranks": [0, 1], "desc": "]"}]},
        "traceName": draw(texts),
        "displayTimeUnit": "ms",
        "baseTimeNanoseconds": 1790857026000000000,
        "INFO": draw(LOG_LINES),
        "WARNING": draw(LOG_LINES),
        "ERROR": draw(LOG_LINES),
        "otherData": draw(nested),
    }
    for k in draw(st.lists(st.sampled_from(sorted(pool)), unique=True, max_size=6)):
        extra.append((k, pool[k]))
    if today:
        return Obj([*extra, ("traceEvents", events)])
    extra.append(("traceEvents", events))
    order = draw(st.permutations(range(len(extra))))
    return Obj([extra[i] for i in order])


def to_bytes(doc: Any, ascii_only: bool = False) -> bytes:
    return dumps(doc, ascii_only).encode("utf-8")


# ---- the store ----------------------------------------------------------------------------------------------
class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = tracekit.open(str(root / "p.duckdb"))
        self.n = itertools.count()

    def write(self, raw: bytes) -> Path:
        p = self.root / f"gen_{next(self.n)}.json"
        p.write_bytes(raw)
        return p

    def counts(self) -> dict[str, int]:
        con = self.db.con
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'main' AND table_type = 'BASE TABLE' ORDER BY 1"
            ).fetchall()
        ]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchall()[0][0] for n in names}

    def check_exact(self, trace_id: int, exp: plain_reader.Expected) -> None:
        con = self.db.con
        got = {
            e: (t, d)
            for e, t, d in con.execute(
                "SELECT event_id, ts_ns, dur_ns FROM events WHERE trace_id = ?", [trace_id]
            ).fetchall()
        }
        assert got == {e: (t, d) for e, (t, d, _) in exp.slices.items()}
        mem = {
            e: (t, b)
            for e, t, b in con.execute(
                "SELECT event_id, ts_ns, bytes FROM memory WHERE trace_id = ?", [trace_id]
            ).fetchall()
        }
        assert mem == exp.memory
        kern = {
            e: (t, d)
            for e, t, d in con.execute(
                "SELECT event_id, ts_ns, dur_ns FROM kernels WHERE trace_id = ?", [trace_id]
            ).fetchall()
        }
        assert kern == exp.kernels

    def refused_cleanly(self, path: Path, exc: TraceError, before: dict[str, int]) -> None:
        msg = str(exc)
        assert "\n" not in msg, msg
        assert path.name in msg, msg
        assert "tracekit-" not in msg and "record/value" not in msg, msg
        assert self.counts() == before


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    s = Store(tmp_path_factory.mktemp("props"))
    yield s
    s.db.close()


# ---- valid traces -------------------------------------------------------------------------------------------
@pytest.mark.slow
@settings(max_examples=50, **SETTINGS)
@given(doc=trace_doc(), ascii_only=st.booleans())
def test_generated_valid_traces_ingest_exactly(store: Store, doc: Any, ascii_only: bool) -> None:
    raw = to_bytes(doc, ascii_only)
    exp = plain_reader.expected_from_bytes(raw)
    assert exp.valid and not exp.ambiguous, (exp.problems, exp.ambiguous)  # the generator makes valid traces
    res = store.db.ingest_file(store.write(raw))
    store.check_exact(res.trace_id, exp)


@pytest.mark.slow
@settings(max_examples=25, **SETTINGS)
@given(doc=trace_doc(today=True))
def test_generated_todays_forms_ingest_exactly(store: Store, doc: Any) -> None:
    """The subset tracekit read before issue #9 (a regression guard that holds on every branch)."""
    raw = to_bytes(doc)
    exp = plain_reader.expected_from_bytes(raw)
    assert exp.valid and not exp.ambiguous, (exp.problems, exp.ambiguous)
    res = store.db.ingest_file(store.write(raw))
    store.check_exact(res.trace_id, exp)


# ---- corruptions --------------------------------------------------------------------------------------------
STRUCTURAL = set(b'{}[],:"')


@st.composite
def corrupted(draw: st.DrawFn) -> tuple[str, bytes]:
    doc = draw(trace_doc())
    kind = draw(st.sampled_from(["truncate", "flip", "wrong_type", "duplicate_key"]))
    raw = to_bytes(doc)
    if kind == "truncate":
        points = [i for i, b in enumerate(raw) if b in STRUCTURAL]
        i = draw(st.sampled_from(points))
        return kind, raw[: i + draw(st.integers(0, 1))]
    if kind == "flip":
        i = draw(st.integers(0, len(raw) - 1))
        return kind, raw[:i] + bytes([raw[i] ^ draw(st.integers(1, 255))]) + raw[i + 1 :]
    events = doc if isinstance(doc, list) else next(v for k, v in doc.pairs if k == "traceEvents")
    ev = draw(st.sampled_from(events))
    if kind == "wrong_type":
        keys = [k for k, _ in ev.pairs if k in ("ts", "dur")] or ["ts"]
        key = draw(st.sampled_from(keys))
        bad = draw(st.sampled_from(['"12.5"', "true", "null", "[1]", "{}", '"NaN"', '""']))
        old = dict(ev.pairs).get(key)
        ev.pairs = (
            [(k, Raw(bad) if k == key else v) for k, v in ev.pairs] if old is not None else [*ev.pairs, (key, Raw(bad))]
        )
        return kind, to_bytes(doc)
    # duplicate_key: a second value for a key of an event, or a second top-level traceEvents
    if isinstance(doc, Obj) and draw(st.booleans()):
        doc.pairs.insert(draw(st.integers(0, len(doc.pairs))), ("traceEvents", [draw(event(0))]))
        return kind, to_bytes(doc)
    key = draw(st.sampled_from(["ph", "ts", "dur", "name", "cat", "pid", "args"]))
    val = {
        "ph": draw(st.sampled_from(["X", "i", "B", "M"])),
        "ts": Raw("5.5"),
        "dur": Raw("7"),
        "name": "[memory]",
        "cat": "kernel",
        "pid": 3,
        "args": {"Bytes": 9},
    }[key]
    ev.pairs.insert(draw(st.integers(0, len(ev.pairs))), (key, val))
    return kind, to_bytes(doc)


@pytest.mark.slow
@settings(max_examples=150, **SETTINGS)
@given(case=corrupted())
# found by hypothesis: a null ts is an absent one; a flow may lack it, a counter may not
@example(case=("null_ts_flow", b'{"traceEvents": [{"name": "f", "cat": "ac2g", "ts": null, "ph": "f", "id": 2}]}'))
@example(case=("null_ts_counter", b'{"traceEvents": [{"ph": "C", "name": "c", "pid": 0, "ts": null, "args": {}}]}'))
def test_corruptions_read_exactly_or_refused_cleanly(store: Store, case: tuple[str, bytes]) -> None:
    kind, raw = case
    exp = plain_reader.expected_from_bytes(raw)
    path = store.write(raw)
    before = store.counts()
    try:
        res = store.db.ingest_file(path)
    except TraceError as exc:
        assert not exp.valid or exp.ambiguous, f"{kind}: refused a valid trace: {exc}"
        store.refused_cleanly(path, exc, before)
        return
    assert exp.valid, f"{kind}: accepted an invalid trace ({exp.problems[:2]})"
    store.check_exact(res.trace_id, exp)


# ---- a few CLI runs: exit codes and one line -------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=2, **SETTINGS)
@given(doc=trace_doc(), case=corrupted())
def test_cli_exit_codes(tmp_path_factory: pytest.TempPathFactory, doc: Any, case: tuple[str, bytes]) -> None:
    tmp = tmp_path_factory.mktemp("cli")
    good = tmp / "good.json"
    good.write_bytes(to_bytes(doc))
    r = _cli("ingest", str(good), "--db", str(tmp / "c.duckdb"), cwd=tmp)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    bad = tmp / "bad.json"
    bad.write_bytes(case[1])
    r = _cli("ingest", str(bad), "--db", str(tmp / "c.duckdb"), cwd=tmp)
    assert "Traceback" not in r.stderr, r.stderr
    exp = plain_reader.expected_from_bytes(case[1])
    if not exp.valid:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode != 0 and len(lines) == 1 and "bad.json" in lines[0], r.stderr
    elif not exp.ambiguous:
        assert r.returncode == 0, r.stderr
