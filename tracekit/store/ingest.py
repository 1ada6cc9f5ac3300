"""Load one Kineto trace into the store: parse with DuckDB, nest, link, insert — in one transaction.

Exact time (docs/schema.md, "Exact time"): Kineto writes `ts`/`dur` as µs with 3 decimals, i.e. integer
ns, and epoch-time traces (HTA's, TraceLens's) write 16 digits before the point. One regex scan of the
array's bytes (`_scan_times`) looks at every `"ts"`/`"dur"` value's text. When every value has at most 3
decimals, no exponent and at most 13 integer digits, the fast path reads them as binary64 and, after
checking every |value| < 2^43 µs, recovers the exact ns (the nearest binary64 of a 3-decimal value below
2^43 is within 0.49 ns of it): a proof for each value, not a sample. Otherwise DuckDB's JSON reader
converts the written digits straight to `DECIMAL(38, 9)` (never through a double): exact for any value.
The reader converts a string ("12.5") or a boolean silently, so a value that is no number (or null) sends
the trace to `diagnose`, which names the event (a key of that name nested in args is no problem).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from tracekit import __version__, schema
from tracekit.errors import TraceError
from tracekit.progress import ProgressEvent, Stage
from tracekit.store import chrome, kineto, nesting
from tracekit.store.kineto import PreparedTrace

# a "ts"/"dur" key whose value starts like no JSON number and no null: a string, boolean, array or object
# (or a key of that name inside args: diagnose looks at the events themselves). One pattern per key: a
# literal prefix lets the regex engine skip ahead (2.5x faster than one pattern with an alternation).
_NOT_A_NUMBER = [re.compile(rb'"%s"[ \t\r\n]*:[ \t\r\n]*[^-0-9 \t\r\nn]' % key) for key in (b"ts", b"dur")]
# ... or (group 1 empty) a number binary64 cannot be proven to hold exactly as ns: 14+ integer digits (>= 1e13
# µs, beyond 2^43), an exponent, or 4+ decimals. Atomic groups: no backtracking over a value's digits.
_TIME_VALUE = [
    re.compile(
        rb'"%s"[ \t\r\n]*:[ \t\r\n]*' % key
        + rb"(?:([^-0-9 \t\r\nn])|-?(?:[0-9]{14}|(?>[0-9]+)(?:\.[0-9]{4}|(?>\.[0-9]*)[eE]|[eE])))"
    )
    for key in (b"ts", b"dur")
]
EXACT_BOUND_US = 2**43
# The analysis SQL of ingest is tracekit/schema/queries/ingest.sql (sections run by name); its `macros` section
# defines typed_args(args), the args fields tracekit types (a[1] .. a[12]), used here when reading the array.


@dataclasses.dataclass
class IngestResult:
    """What happened to one file."""

    path: str
    trace_id: int | None
    skipped: bool  # same content already in the store: nothing was written
    events: int = 0
    kernels: int = 0
    json_bytes: int = 0
    seconds: float = 0.0
    time_parse: str = ""
    error: str | None = None
    notes: dict[str, int] = dataclasses.field(default_factory=dict)  # events kept in other_events, by note

    @property
    def mb_per_s(self) -> float:
        return self.json_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


def ingested(results: list[IngestResult], total: int) -> ProgressEvent:
    """The progress event of the trace that just landed (the last of `results`), one of `total` files."""
    last = results[-1]
    return ProgressEvent(Stage.INGEST, len(results), total, Path(last.path).name, last)


def sql_str(p: Path | str) -> str:
    """A SQL string literal (a file path in read_json/read_parquet/COPY)."""
    return "'" + str(p).replace("'", "''") + "'"


def memory_limit(json_bytes: int) -> int:
    """DuckDB's memory cap (bytes) while a trace of `json_bytes` of JSON is ingested into a database file (DuckDB
    spills beyond it to <db>.tmp): 512 MiB up to 256 MiB of JSON, the JSON's size above. A tighter cap costs CPU
    long before it spills (82 MB trace, 2-core machine: 3.5 -> 4.6 CPU s at 256 MiB), so small traces keep room;
    on large ones the cap keeps peak RSS (interpreter, numpy's nesting walk and what DuckDB holds outside its cap
    on top) near 1.4x the JSON: 408 MB synthetic trace 562-577 MB, against 650-700 MB at the former 1.25x /
    512 MiB, for about 5 % more CPU (a cap of 3/4 gave 518 MB but 40 % more CPU; issue #20)."""
    return json_bytes if json_bytes > 256 << 20 else 512 << 20


def _columns(time_type: str) -> str:
    return (
        "{'ph': 'VARCHAR', 'cat': 'VARCHAR', 'name': 'VARCHAR', 'pid': 'VARCHAR', 'tid': 'VARCHAR', "
        f"'ts': '{time_type}', 'dur': '{time_type}', 'id': 'VARCHAR', 's': 'VARCHAR', 'args': 'JSON', "
        "'id2': 'JSON', 'scope': 'VARCHAR'}"
    )


def _load_raw(con: duckdb.DuckDBPyConnection, prepared: PreparedTrace) -> str:
    """Create temp table `raw` (one row per array element). Returns the time-parse mode used.

    When DuckDB refuses the array, the problem is located in the user's terms (`diagnose`)."""
    scan = _ScanThread(prepared)  # the proof for every value, on the other core while DuckDB reads
    try:
        mode = _read_array(con, prepared, scan)
    except duckdb.Error as exc:
        scan.result()  # the files are about to change: the scan stops reading them first
        if prepared.end_from_tail:  # the end found from the tail is refused: find it by the structural scan
            prepared.rescan()
            return _load_raw(con, prepared)
        if not prepared.parts:
            raise TraceError(prepared.path, diagnose(prepared, exc)) from None
        prepared.join_parts()  # a cut inside a string or nested value, or a bad element: read it whole
        scan = _ScanThread(prepared)
        try:
            mode = _read_array(con, prepared, scan)
        except duckdb.Error as exc:
            raise TraceError(prepared.path, diagnose(prepared, exc)) from None
    _check_time_types(con, prepared, scan.result())
    return mode


@dataclasses.dataclass
class _TimeScan:
    non_number: bool = False  # some "ts"/"dur" key holds no number and no null (maybe a key inside args)
    decimal: bool = False  # some value binary64 cannot be proven to hold exactly (_TIME_VALUE)


class _ScanThread:
    """`_scan_times` in a thread (Python's regex engine holds the GIL, DuckDB's read releases it)."""

    def __init__(self, prepared: PreparedTrace):
        self._out: _TimeScan | BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(prepared,), daemon=True)
        self._thread.start()

    def _run(self, prepared: PreparedTrace) -> None:
        try:
            self._out = _scan_times(prepared)
        except BaseException as exc:  # handed to the caller of result()
            self._out = exc

    def result(self) -> _TimeScan:
        self._thread.join()
        if isinstance(self._out, BaseException):
            raise self._out
        assert self._out is not None
        return self._out


def _scan_times(prepared: PreparedTrace, limit: int | None = None) -> _TimeScan:
    """Look at the text of every "ts"/"dur" value in the array's bytes (regexes: ~0.1 s per 40 MB), or only in
    its first `limit` bytes (a sample, to choose how to read: never the proof)."""
    out = _TimeScan()
    seen = 0
    for f in prepared.parts or [prepared.array_file]:
        carry = b""
        with open(f, "rb") as src:
            while block := src.read(kineto.CHUNK if limit is None else min(kineto.CHUNK, limit - seen)):
                seen += len(block)
                data = carry + block
                if not out.decimal:
                    for m in (m for p in _TIME_VALUE for m in p.finditer(data)):
                        if m.group(1) is None:
                            out.decimal = True
                            break
                        out.non_number = True
                if out.decimal and not out.non_number:
                    out.non_number = any(p.search(data) for p in _NOT_A_NUMBER)
                if out.decimal and out.non_number:
                    return out
                carry = data[-64:]  # a key, its ':' and the value's text, split by the block's end
                if limit is not None and seen >= limit:
                    return out
    return out


def _check_time_types(con: duckdb.DuckDBPyConnection, prepared: PreparedTrace, times: _TimeScan) -> None:
    """DuckDB casts a JSON string or boolean `ts`/`dur` to a number without a word: refuse them, and
    events whose end (ts + dur) is beyond int64 ns."""
    if times.non_number:
        problem = diagnose(prepared, None, strict=True)
        if problem is not None:
            raise TraceError(prepared.path, problem)
    bad = con.execute(
        "SELECT min(event_id) FROM raw WHERE abs(CAST(ts_ns AS HUGEINT) + coalesce(dur_ns, 0)) > 9223372036854775807"
    ).fetchall()[0][0]
    if bad is not None:
        raise TraceError(prepared.path, diagnose(prepared, None, hint=bad))


_DUCK_FILE = re.compile(
    r'\s*in file "[^"]*"|"[^"]*tracekit-[^"]*"|, at byte \d+ in record/value \d+|in record/value \d+'
)
_DUCK_RECORD = re.compile(r"record/value (\d+)")
INT64_MAX = 2**63 - 1


def diagnose(
    prepared: PreparedTrace, exc: Exception | None, hint: int | None = None, strict: bool = False
) -> str | None:
    """What is wrong with the array, named by `traceEvents[i]` and the byte offset in the user's
    (decompressed) file: the first element Python's json refuses, or whose ts/dur has a wrong type, is out
    of int64 ns, or repeats a key. Falls back to DuckDB's message without its temporary file (or, when
    `strict`, None: nothing wrong)."""

    scanner, starts = kineto.element_spans(prepared.join_parts())
    n = starts.size
    end = scanner.end if scanner.end is not None else scanner.offset
    hints = [] if hint is None else [hint]
    if exc is not None and (m := _DUCK_RECORD.search(str(exc))):  # DuckDB's count is near the element:
        hints += [int(m.group(1)) + d for d in (-2, -1, 0)]  # look there first, then everywhere
    order = [*(h for h in hints if 0 <= h < n), *range(n)]
    with open(prepared.array_file, "rb") as f:
        for i in order:
            a = int(starts[i])
            b = int(starts[i + 1]) - 1 if i + 1 < n else end - 1  # the ',' or the ']'
            f.seek(a)
            problem = _element_problem(f.read(b - a), a, prepared)
            if problem:
                name = "the top-level array" if prepared.bare_array else "traceEvents"
                return problem.replace("ELEMENT", f"{name}[{i}]")
    if strict:
        return None
    msg = str(exc).splitlines()[0] if exc is not None else "unreadable"
    return f"unreadable traceEvents ({_DUCK_FILE.sub('', msg)})"


def _element_problem(raw: bytes, start: int, prepared: PreparedTrace) -> str | None:
    text = raw.decode("utf-8", "surrogateescape")
    stripped = text.strip()
    if not stripped:
        return f"malformed JSON in ELEMENT at byte {prepared.array_offset + start} of the file (decompressed): " + (
            "empty element (two commas in a row, or a trailing comma)"
        )
    objects: list[list[tuple[str, Any]]] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append(items)  # the event's own object comes last (innermost objects first)
        return dict(items)

    try:
        ev = json.loads(text, parse_float=_Number, parse_int=_Number, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        at = prepared.array_offset + start + len(text[: exc.pos].encode("utf-8", "surrogateescape"))
        return f"malformed JSON in ELEMENT at byte {at} of the file (decompressed): {exc.msg}"
    lead = len(text) - len(text.lstrip())
    at = prepared.array_offset + start + len(text[:lead].encode("utf-8", "surrogateescape"))
    if not isinstance(ev, dict):
        return f"ELEMENT (at byte {at}) is not an event object but {_json_kind(ev)}"
    keys = [k for k, _ in objects[-1]]
    if len(set(keys)) != len(keys):
        seen: set[str] = set()
        dup = next(k for k in keys if k in seen or seen.add(k))
        return f"ELEMENT (at byte {at}) repeats the key {dup!r} (an event may hold each key once)"
    ns = {}
    for key in ("ts", "dur"):
        v = ev.get(key)
        if v is None:
            continue
        if not isinstance(v, _Number):
            return f"ELEMENT (at byte {at}): {key!r} is {_json_kind(v)} ({_short(v)}), not a number"
        ns[key] = int((Decimal(v) * 1000).to_integral_value())
        if abs(ns[key]) > INT64_MAX:
            return f"ELEMENT (at byte {at}): {key!r} {_short(v)} µs is out of range (beyond int64 ns)"
    if len(ns) == 2 and abs(ns["ts"] + ns["dur"]) > INT64_MAX:
        return f"ELEMENT (at byte {at}): 'ts' + 'dur' (end of the event) is out of range (beyond int64 ns)"
    return None


class _Number(Decimal):
    """A JSON number, exact, that remembers how the file wrote it (for messages)."""

    text: str

    def __new__(cls, text: str) -> _Number:
        self = super().__new__(cls, text)
        self.text = text
        return self


def _json_kind(v: object) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, dict):
        return "an object"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, float):
        return "a non-finite number"
    return "a number"


def _short(v: object) -> str:
    text = _text(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(v: object) -> str:
    if isinstance(v, _Number):
        return v.text
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_text(x) for x in v) + "]"
    return json.dumps(v)


# event_id is the element's position: the row's position in raw_rows, which keeps the file's order (the
# parts' order, then each part's) as DuckDB preserves insertion order. A row_number() OVER () here would
# make everything computed per row (typed_args, the time conversion) run on one thread.
_RAW_VIEW = "CREATE OR REPLACE TEMP VIEW raw AS SELECT rowid AS event_id, * FROM raw_rows"
# µs as DECIMAL(38, 9) (the written digits, converted exactly) -> integer ns: DuckDB's cast of a decimal to an
# integer rounds half away from zero, as round() would
_US_TO_NS = "CAST({x} * 1000 AS BIGINT)"
# binary64 µs -> integer ns without rounding error of our own: floor() and the fraction are exact in binary64,
# and the fraction × 1000 is off by < 1e-13; only the parse's own error (< 0.49 ns below 2^43 µs for a value
# written with at most 3 decimals) remains, which rounding to the nearest ns removes.
_BINARY64_US_TO_NS = "(CAST(floor({x}) AS BIGINT) * 1000 + CAST(round(({x} - floor({x})) * 1000) AS BIGINT))"


SAMPLE_BYTES = 1 << 20  # the array's first MiB chooses the type DuckDB reads ts/dur as (the full scan decides)


def _read_array(con: duckdb.DuckDBPyConnection, prepared: PreparedTrace, scan: _ScanThread) -> str:
    """Read the array into temp table `raw_rows` with ts/dur as exact integer ns. The read's type is chosen
    from the first MiB; the scan of every value (`scan`, running meanwhile) decides: a binary64 read that it
    does not prove exact (or whose values reach 2^43 µs) is read again as DECIMAL(38, 9)."""
    # Parts (kineto.PreparedTrace.parts) are read in parallel, in order: event_id is the row's position.
    con.execute("SET preserve_insertion_order = true")  # event_id is the row's position (_RAW_VIEW)
    files = prepared.parts or [prepared.array_file]
    small = sum(f.stat().st_size for f in files) <= SAMPLE_BYTES  # the sample would be the whole array
    if not (scan.result() if small else _scan_times(prepared, limit=SAMPLE_BYTES)).decimal:
        _read_rows(con, prepared, "DOUBLE", _BINARY64_US_TO_NS, "greatest(abs(ts), abs(ts + coalesce(dur, 0)))")
        # proven: every value has <= 3 decimals, no exponent, <= 13 integer digits, and is below 2^43 µs
        bound = con.execute("SELECT coalesce(max(bound), 0) FROM raw_rows").fetchall()[0][0]
        if not scan.result().decimal and bound < EXACT_BOUND_US:
            con.execute("ALTER TABLE raw_rows DROP COLUMN bound")
            con.execute(_RAW_VIEW)
            return "binary64-exact"
    # ts/dur are declared DECIMAL(38, 9): DuckDB converts the number's text, exactly, for any magnitude.
    _read_rows(con, prepared, "DECIMAL(38, 9)", _US_TO_NS)
    con.execute(_RAW_VIEW)
    return "decimal"


def _read_rows(
    con: duckdb.DuckDBPyConnection, prepared: PreparedTrace, time_type: str, to_ns: str, *bound: str
) -> None:
    """Temp table `raw_rows`: the array's elements with their typed args and ts/dur as integer ns (and `bound`)."""
    files = prepared.parts or [prepared.array_file]
    src = "[" + ", ".join(sql_str(f) for f in files) + "]"
    read = f"read_json({src}, format='array', columns={_columns(time_type)}, maximum_object_size=67108864)"
    rows = (
        "SELECT ph, cat, name, pid, tid, id, s, args, id2, scope, typed_args(args) AS a, "
        f"{to_ns.format(x='ts')} AS ts_ns, {to_ns.format(x='dur')} AS dur_ns{''.join(f', {x} AS bound' for x in bound)}"
    )
    if prepared.parts or prepared.array_file.stat().st_size <= SAMPLE_BYTES:
        # several files, parsed by several threads (or a small one: two statements cost more than they save)
        con.execute(f"CREATE OR REPLACE TEMP TABLE raw_rows AS {rows} FROM {read}")
        return
    # one file is parsed by one thread: the typed args and the time conversion come after, on every thread
    con.execute(f"CREATE OR REPLACE TEMP TABLE raw_json AS SELECT * FROM {read}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE raw_rows AS {rows} FROM raw_json")
    con.execute("DROP TABLE raw_json")


def _validate(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, bool]:
    """(events, whether any has a phase chrome.py pairs) of a valid `raw`; raises on what is refused."""
    paired_phases = ", ".join(f"'{p}'" for p in chrome.PAIRED_PHASES)
    n, no_ph, bad_x, bad_i, paired = con.execute(
        f"""SELECT count(*),
                  count(*) FILTER (WHERE ph IS NULL),
                  count(*) FILTER (WHERE ph = 'X' AND ts_ns IS NULL),
                  count(*) FILTER (WHERE ph IN ('i', 'I') AND ts_ns IS NULL),
                  count(*) FILTER (WHERE ph IN ({paired_phases}))
           FROM raw"""
    ).fetchone()
    if n == 0:
        raise TraceError(path, "trace has no events (traceEvents is empty)")
    if no_ph:
        first = con.execute("SELECT min(event_id) FROM raw WHERE ph IS NULL").fetchall()[0][0]
        raise TraceError(path, f"{no_ph} events lack 'ph' (first: traceEvents[{first}])")
    if bad_x:  # an X without 'dur' (still running when recording stopped) is kept: chrome.sql, 'unfinished X'
        first = con.execute("SELECT min(event_id) FROM raw WHERE ph = 'X' AND ts_ns IS NULL").fetchall()[0][0]
        raise TraceError(
            path, f"{bad_x} complete ('X') events lack 'ts' (missing or null; first: traceEvents[{first}])"
        )
    if bad_i:
        first = con.execute("SELECT min(event_id) FROM raw WHERE ph IN ('i','I') AND ts_ns IS NULL").fetchall()[0][0]
        raise TraceError(path, f"{bad_i} instant events lack 'ts' (first: traceEvents[{first}])")
    no_ts, first, ph = chrome.missing_ts(con)
    if no_ts:
        raise TraceError(path, f"{no_ts} '{ph}' events lack 'ts' (first: traceEvents[{first}])")
    neg, first = con.execute("SELECT count(*), min(event_id) FROM raw WHERE ph = 'X' AND dur_ns < 0").fetchone()
    if neg:
        raise TraceError(path, f"{neg} complete ('X') events with negative 'dur' (first: traceEvents[{first}])")
    return n, paired > 0


def _insert(con: duckdb.DuckDBPyConnection, trace_id: int) -> None:
    p = {"trace_id": trace_id}
    for name in ("insert_events", "insert_memory", "insert_instants", "insert_flows"):
        schema.run(con, "ingest", name, p)
    chrome.insert(con, trace_id)  # counters, async_slices, async_instants, other_events
    schema.run(con, "ingest", "insert_tracks", p)


@dataclasses.dataclass
class Staged:
    """One trace parsed, nested and linked in the connection's temp relations (`raw` over `raw_rows`, `slices_src`,
    `nesting`, `cats`, `flow_corr`, `launches`, `ops_by_ext` and chrome.py's), not yet written anywhere:
    what a sink (the DuckDB tables, `write_staged`) turns into rows of the schema's tables."""

    prepared: PreparedTrace
    time_parse: str
    events: int
    kernels: int
    notes: dict[str, int]


def stage(con: duckdb.DuckDBPyConnection, prepared: PreparedTrace) -> Staged:
    """Parse, validate, pair, nest and link one prepared trace in temp relations (call `drop_staged`
    after, in a `finally`). Raises TraceError on what is refused; nothing persistent is touched."""
    schema.run(con, "ingest", "macros")
    mode = _load_raw(con, prepared)
    n_events, paired = _validate(con, prepared.path)
    chrome.prepare(con, paired=paired)
    nesting.nest(con)
    for name in ("cats", "flow_corr", "links"):
        schema.run(con, "ingest", name)
    kernels = con.execute(schema.query("ingest", "count_kernels")).fetchall()[0][0]
    return Staged(prepared, mode, n_events, kernels, chrome.note_counts(con))


def write_staged(con: duckdb.DuckDBPyConnection, staged: Staged) -> int:
    """Insert a staged trace into the persistent tables in one transaction; returns its new trace_id."""
    with write_transaction(con):
        return _store(con, staged.prepared, staged.time_parse, staged.events, staged.notes)


@contextlib.contextmanager
def write_transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction (committed, or rolled back on any exception) with the settings every insert of a
    trace into the persistent tables uses, whichever path staged it (`write_staged`, the parallel sink).

    Rows are inserted without keeping their order (every table has its key columns; readers sort) and
    compressed with zstd at the commit's checkpoint: measured on the 40 MB trace, commit 0.28 -> 0.16 s
    and the file 10.8 -> 9.4 MB (docs/schema.md, "Ingest performance")."""
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET force_compression = 'zstd'")
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("RESET preserve_insertion_order")
        con.execute("RESET force_compression")


STAGED_TABLES = ("raw_json", "raw_rows", "nesting", "cats", "flow_corr", "launches", "ops_by_ext", *chrome.TEMP_TABLES)


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Drop the temp relations of `stage` (views first: they read the tables)."""
    for v in (*chrome.TEMP_VIEWS, "raw"):
        con.execute(f"DROP VIEW IF EXISTS {v}")
    for t in STAGED_TABLES:
        con.execute(f"DROP TABLE IF EXISTS {t}")


def ingest_prepared(con: duckdb.DuckDBPyConnection, prepared: PreparedTrace) -> IngestResult:
    """Ingest one prepared trace: parse, nest and link in temp tables, then write in one transaction."""
    t0 = time.perf_counter()
    try:
        staged = stage(con, prepared)
        trace_id = write_staged(con, staged)
    finally:
        drop_staged(con)
    return IngestResult(
        path=str(prepared.path),
        trace_id=trace_id,
        skipped=False,
        events=staged.events,
        kernels=staged.kernels,
        json_bytes=prepared.json_bytes,
        seconds=time.perf_counter() - t0,
        time_parse=staged.time_parse,
        notes=staged.notes,
    )


def _store(
    con: duckdb.DuckDBPyConnection, prepared: PreparedTrace, mode: str, n_events: int, notes: dict[str, int]
) -> int:
    """Write the trace's rows (inside the caller's transaction); returns its new trace_id."""
    trace_id = con.execute("SELECT nextval('trace_id_seq')").fetchall()[0][0]
    _insert(con, trace_id)
    meta = dict(prepared.metadata)
    # Kineto writes deviceProperties; some exporters computeProperties. The one not used stays in metadata.
    device_properties = meta.pop("deviceProperties", None)
    if device_properties is None:
        device_properties = meta.pop("computeProperties", None)
    # how tracekit read the file (docs/schema.md, "Chrome JSON"): ts/dur are µs whatever displayTimeUnit says
    meta["tracekit"] = {"ts_unit": "us", "display_time_unit": meta.get("displayTimeUnit"), "notes": notes}
    base_time = meta.get("baseTimeNanoseconds")
    con.execute(
        """INSERT INTO traces (trace_id, name, path, sha256, file_bytes, json_bytes, base_time_ns,
                               span_start_ns, span_end_ns, device_properties, metadata, event_count,
                               time_parse, tracekit_version)
        SELECT ?, ?, ?, ?, ?, ?, ?,
               (SELECT min(ts_ns) FROM raw WHERE ts_ns IS NOT NULL AND ph IN ('X', 'i', 'I', 'B', 'E')),
               (SELECT max(ts_ns + CASE WHEN ph = 'X' THEN coalesce(dur_ns, 0) ELSE 0 END) FROM raw
                WHERE ph IN ('X', 'i', 'I', 'B', 'E')),
               ?::JSON, ?::JSON, ?, ?, ?""",
        [
            trace_id,
            prepared.name,
            str(prepared.path),
            prepared.sha256,
            prepared.file_bytes,
            prepared.json_bytes,
            int(base_time) if isinstance(base_time, int | float) else None,
            _dumps(device_properties),
            _dumps(meta),
            n_events,
            mode,
            __version__,
        ],
    )
    return trace_id


def _dumps(value: object) -> str | None:
    return None if value is None else json.dumps(value)
