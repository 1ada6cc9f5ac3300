"""Find the `traceEvents` array of a Chrome/Kineto trace by its JSON structure, streaming.

A Kineto trace is one JSON object whose `traceEvents` array holds nearly all of its bytes. Parsing the
object whole costs several times its size in memory, so instead we stream the (possibly compressed) file
once: hash it, parse the top-level keys before the array exactly (Python's json, one value at a time),
copy the array's bytes to a temporary file that DuckDB's `read_json(format='array')` then reads, and
parse the keys after it exactly too. The array's closing `]` is looked for from the file's tail
(`_end_from_tail`), DuckDB's parse of the array proving the cut; when it refuses, or no candidate fits, the
file is prepared again with a structural scan (string state with backslash escapes, bracket depth)
vectorised over each chunk with numpy, its state carried from one chunk to the next, so memory stays
bounded whatever the file's size.

Accepted forms (the Trace Event Format's two): a JSON object with a `traceEvents` array anywhere among its
keys, and a bare top-level array of events, whose closing `]` may be missing (the spec allows it, for a
writer that was killed mid-trace). Containers are recognised by their magic bytes: gzip, xz, bz2, zstd
or plain JSON.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import json
import lzma
import os
import queue
import re
import sys
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tracekit.errors import TraceError

CHUNK = 8 << 20
PACKED_READ = 256 << 10  # compressed bytes per inflate step: ~4 MiB pieces at Kineto's ~15x, so the
# reader thread and the hash/scan/copy loop overlap instead of taking turns on 30 MiB pieces
HEAD_LIMIT = 64 << 20  # top-level keys before traceEvents beyond this: not a Kineto trace
TAIL_LIMIT = 64 << 20  # top-level keys after traceEvents beyond this: refused (Kineto writes a few KB)
GZIP_MAGIC = b"\x1f\x8b"
PART_BYTES = int(float(os.environ.get("TRACEKIT_PART_MB", "16")) * (1 << 20))  # the events array is written
# in parts of about this size, cut between elements, so DuckDB's JSON reader (one thread per file) parses
# them in parallel (PreparedTrace.parts); 0: one file. docs/schema.md, "Ingest performance".
SPLIT_BYTES = int(float(os.environ.get("TRACEKIT_SPLIT_MB", "64")) * (1 << 20))  # an array of at most this
# size stays one file: on small traces the parts cost more CPU in DuckDB's reader than the second thread gains
# (40 MB trace on the 2-core machine, loaded: parse 0.45 CPU s as one file, 0.51-0.57 in 3 parts)
_CUT = re.compile(rb",[ \t\r\n]*\{")  # a candidate boundary between two elements (checked by the parse)

# (magic, name): streams we decompress
_CODECS: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]
# (magic, name): containers/codecs we recognise but do not read
_UNSUPPORTED: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\xff\x06\x00\x00sNaPpY", "snappy"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x5d\x00\x00", "lzma-alone"),
    (b"\x1f\x9d", "compress (.Z)"),
    (b"\x89LZO", "lzo"),
    (b"\x89HDF", "hdf5"),
    (b"PAR1", "parquet"),
]


def container_of(magic: bytes) -> str:
    """'json' (plain), a codec we read ('gzip', 'xz', 'bz2', 'zstd'), or 'unsupported:<name>'."""
    for m, name in _CODECS:
        if magic.startswith(m):
            return name
    if magic[:3] == b"BZh" and magic[3:4] in b"123456789" and len(magic) > 3:
        return "bz2"
    for m, name in _UNSUPPORTED:
        if magic.startswith(m):
            return f"unsupported:{name}"
    if len(magic) >= 262 and magic[257:262] == b"ustar":
        return "unsupported:tar"
    return "json"


def _gzip() -> Any:
    """python-isal's inflate when installed (`tracekit[fast]`: ~3.5x less CPU than zlib, same stream API
    and output), else zlib's."""
    try:
        from isal import isal_zlib
    except ImportError:
        return zlib.decompressobj(wbits=31)
    return isal_zlib.decompressobj(wbits=31)


_DECOMPRESSORS: dict[str, Callable[[], Any]] = {
    "gzip": _gzip,
    "xz": lambda: lzma.LZMADecompressor(),
    "bz2": lambda: bz2.BZ2Decompressor(),
}


def _zstd() -> Any:
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj()


_DECOMPRESSORS["zstd"] = _zstd


@dataclasses.dataclass
class PreparedTrace:
    """A trace file split into its metadata and a temporary file holding exactly its events array."""

    path: Path
    sha256: str
    file_bytes: int
    json_bytes: int
    metadata: dict[str, Any]
    array_file: Path
    array_offset: int = 0  # byte offset of the array's '[' in the (decompressed) file
    container: str = "json"
    bare_array: bool = False
    closed: bool = True  # False: a bare array whose ']' was missing (added to array_file)
    # When the array was written in several parts: their files, each a JSON array ('[' + elements + ']'); the
    # cuts are candidates (a ',' then '{'), not proven boundaries: a cut inside a string or nested value leaves
    # a part that is not valid JSON, so a parse that fails joins them (join_parts) and reads array_file.
    # Empty: array_file holds the array.
    parts: list[Path] = dataclasses.field(default_factory=list)
    # True: the array's end was found from the file's tail (`_end_from_tail`), not proven by the structural
    # scan; a read that refuses the array calls `rescan` (the proven path, with its messages) before anything else
    end_from_tail: bool = False

    def rescan(self) -> None:
        """Prepare the file again with the structural scan (the end found from the tail was refused)."""
        fresh = prepare(self.path, self.array_file.parent, scan=True)
        self.__dict__.update(fresh.__dict__)

    def join_parts(self) -> Path:
        """Rebuild array_file, the array's exact bytes, from the parts (error paths and the exact-decimal
        path); afterwards `parts` is empty."""
        if self.parts:
            _join(self.parts, self.array_file)
            self.parts = []
        return self.array_file

    @property
    def name(self) -> str:
        """The file's own name: Kineto's `traceName` (kept in metadata) is often the exporter's temp path."""
        return self.path.name


# ---- reading ------------------------------------------------------------------------------------


def _raw_chunks(path: Path, kind: str, stop: threading.Event) -> Iterator[bytes]:
    """Decompressed chunks. Each codec's stream objects are used directly (the file classes' Python-level
    buffering costs more than the inflate itself); concatenated members/streams/frames are followed."""
    with open(path, "rb") as f:
        if kind == "json":
            while not stop.is_set() and (chunk := f.read(CHUNK)):
                yield chunk
            return
        make = _DECOMPRESSORS[kind]
        d = None  # the member being inflated; None between members
        while not stop.is_set() and (packed := f.read(PACKED_READ)):
            while packed:
                if d is None:
                    if not packed.strip(b"\x00"):  # zero padding after the last member
                        break
                    d = make()
                if out := d.decompress(packed):
                    yield out
                packed, d = (d.unused_data, None) if d.eof else (b"", d)
        if d is not None and not stop.is_set():
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _chunks(path: Path, kind: str) -> Iterator[bytes]:
    """The file's decompressed bytes in chunks, read ahead by a thread (decompressors and I/O release the
    GIL, so decompression overlaps the caller's hashing, scanning and writing)."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def reader() -> None:
        try:
            for chunk in _raw_chunks(path, kind, stop):
                q.put(chunk)
            q.put(None)
        except BaseException as exc:  # handed to the consumer, which raises it
            q.put(exc)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        while (item := q.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a reader waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


def _read_chunks(path: Path, kind: str) -> Iterator[bytes]:
    try:
        yield from _chunks(path, kind)
    except EOFError:
        raise TraceError(path, f"truncated {kind} stream (file ends before the end-of-stream marker)") from None
    except IsADirectoryError:
        raise TraceError(path, "is a directory") from None
    except PermissionError:
        raise TraceError(path, "permission denied") from None
    except (zlib.error, lzma.LZMAError, OSError, ValueError) as exc:
        raise TraceError(path, f"corrupt {kind} data ({exc})") from None
    except Exception as exc:  # zstandard.ZstdError, isal's IsalError
        if type(exc).__name__ in ("ZstdError", "IsalError"):
            raise TraceError(path, f"corrupt {kind} data ({exc})") from None
        raise


# ---- the structural scan ------------------------------------------------------------------------

_QUOTE, _BACKSLASH, _OPEN, _CLOSE = 0x22, 0x5C, 0x5B, 0x5D


class ArrayScanner:
    """Finds the `]` closing a JSON array whose `[` precedes the first byte fed, chunk by chunk.

    Exact for valid JSON: a `"` delimits a string unless an odd run of backslashes precedes it (runs
    may straddle chunks); `[`/`]` count only outside strings. Braces need no tracking to find the
    array's end (in valid JSON they nest within the brackets); `boundaries=True` tracks them too and
    records the offset of every depth-1 `,` (the separators between the array's elements) — the hook
    for locating an element (error messages) and for any later parallel split.
    """

    def __init__(self, boundaries: bool = False):
        self.in_string = False
        self.backslashes = 0  # length of the backslash run that ended the previous chunk
        self.depth = 1
        self.offset = 0  # bytes fed so far
        self.end: int | None = None  # offset just past the closing ']' once found
        self.boundaries = boundaries
        self.commas: list[np.ndarray] = []
        self.last_open = 0  # offset of the last depth-1 '{' or '[' (element start), boundaries only
        self._scratch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def _buffers(self, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Reused scratch masks (fresh 8 MiB arrays per chunk cost page faults as much as the work)."""
        if self._scratch is None or self._scratch[0].size < n:
            self._scratch = (np.empty(n, bool), np.empty(n, bool), np.empty(n, bool))
        q, m1, m2 = self._scratch
        return q[:n], m1[:n], m2[:n]

    def feed(self, chunk: bytes | bytearray | memoryview) -> int | None:
        """Scan `chunk`; returns the offset within it just past the closing ']' (and stops), or None."""
        if self.end is not None:
            return None
        n = len(chunk)
        if n == 0:
            return None
        b = np.frombuffer(chunk, np.uint8)
        quotes, m1, m2 = self._buffers(n)
        np.equal(b, _QUOTE, out=quotes)
        carry = self.backslashes
        if carry or _has_backslash(chunk):
            self.backslashes = _clear_escaped_quotes(b, quotes, carry)
        np.equal(b, _OPEN, out=m1)
        np.logical_or(m1, np.equal(b, _CLOSE, out=m2), out=m1)
        if self.boundaries:
            for code in (0x7B, 0x7D, 0x2C):
                np.logical_or(m1, np.equal(b, code, out=m2), out=m1)
        marks = np.flatnonzero(m1)
        strings = _string_bits(quotes, self.in_string)  # bit i: byte i is inside a string (or its opening quote)
        ends_in_string = bool((strings[(n - 1) >> 3] >> ((n - 1) & 7)) & 1)
        if marks.size == 0:
            self.in_string = ends_in_string
            self.offset += n
            return None
        inside = (strings[marks >> 3] >> (marks & 7)) & 1
        real = marks[inside == 0]
        codes = b[real]
        if self.boundaries:
            delta = np.zeros(real.size, np.int64)
            delta[(codes == _OPEN) | (codes == 0x7B)] = 1
            delta[(codes == _CLOSE) | (codes == 0x7D)] = -1
        else:
            delta = np.subtract(92, codes, dtype=np.int16)  # '[' (91) -> +1, ']' (93) -> -1
        depth = np.cumsum(delta, dtype=np.int64)
        depth += self.depth
        closed = np.flatnonzero(depth == 0)
        if self.boundaries:
            k = closed[0] if closed.size else real.size
            at1 = (codes[:k] == 0x2C) & (depth[:k] == 1)
            self.commas.append(real[:k][at1] + self.offset)
            opens = np.flatnonzero((delta[:k] == 1) & (depth[:k] == 2))
            if opens.size:
                self.last_open = int(real[opens[-1]]) + self.offset
        if closed.size:
            end = int(real[closed[0]]) + 1
            self.end = self.offset + end
            self.depth = 0
            self.offset += end
            return end
        if depth.size:
            self.depth = int(depth[-1])
        self.in_string = ends_in_string
        self.offset += n
        return None

    def element_starts(self) -> np.ndarray:
        """Offsets (relative to the first byte fed) just past each depth-1 ',' seen (boundaries=True)."""
        return np.concatenate(self.commas) + 1 if self.commas else np.zeros(0, np.int64)


_SHIFTS = [np.uint64(k) for k in (1, 2, 4, 8, 16, 32)]
_LITTLE = sys.byteorder == "little"


def _string_bits(quotes: np.ndarray, in_string: bool) -> np.ndarray:
    """Packed bits (little bit order, 1 byte per 8 input bytes): 1 where an odd number of quotes has been
    seen up to and including that byte (plus `in_string`), i.e. inside a string or on its opening quote."""
    n = quotes.size
    words = (n + 63) // 64
    packed = np.zeros(words * 8, np.uint8)
    packed[: (n + 7) // 8] = np.packbits(quotes, bitorder="little")
    x = packed.view(np.uint64) if _LITTLE else packed.view(np.dtype("<u8"))
    for k in _SHIFTS:  # prefix xor within each 64-bit word
        x ^= x << k
    parity = (x >> np.uint64(63)).astype(np.uint8)  # each word's own parity
    before = np.bitwise_xor.accumulate(parity)  # inclusive; make it exclusive and add the carried state
    before[1:] = before[:-1].copy()
    before[0] = 0
    before ^= np.uint8(in_string)
    x ^= np.uint64(0) - before.astype(np.uint64)
    return packed


def _has_backslash(chunk: bytes | bytearray | memoryview) -> bool:
    return (chunk if isinstance(chunk, bytes | bytearray) else bytes(chunk)).find(b"\\") >= 0


def _clear_escaped_quotes(b: np.ndarray, quotes: np.ndarray, carry: int) -> int:
    """Unmark quotes escaped by an odd backslash run (a run may continue the previous chunk's `carry`).
    Returns the length of the backslash run ending this chunk."""
    n = b.size
    bs = np.flatnonzero(b == _BACKSLASH)
    if bs.size == 0:
        if carry & 1:
            quotes[0] = False
        return 0
    brk = np.flatnonzero(np.diff(bs) != 1)
    starts = bs[np.concatenate(([0], brk + 1))]
    ends = bs[np.concatenate((brk, [bs.size - 1]))]
    lengths = ends - starts + 1
    if starts[0] == 0:
        lengths[0] += carry
    elif carry & 1:
        quotes[0] = False
    escaped = ends[(lengths & 1) == 1] + 1
    quotes[escaped[escaped < n]] = False
    return int(lengths[-1]) if ends[-1] == n - 1 else 0


# ---- the top-level object, exactly ----------------------------------------------------------------

_DECODER = json.JSONDecoder()
_WS = " \t\n\r"


class _NeedMore(Exception):
    pass


def _skip_ws(text: str, i: int) -> int:
    n = len(text)
    while i < n and text[i] in _WS:
        i += 1
    return i


def _char(text: str, i: int, eof: bool) -> str:
    if i >= len(text):
        if eof:
            raise _Malformed(i, "truncated JSON: file ends inside the top-level object")
        raise _NeedMore
    return text[i]


class _Malformed(Exception):
    def __init__(self, pos: int, problem: str):
        self.pos = pos
        self.problem = problem


def _members(text: str, i: int, eof: bool, meta: dict[str, Any], first: bool) -> tuple[int, str | None]:
    """Parse `"key": value` members of the top-level object from text[i] (just after '{' when `first`,
    else just after a value) into `meta`, up to the traceEvents array or the closing '}'.

    Returns (index, 'traceEvents') with index at the array's '[', or (index past '}', None).
    """
    expect_key = first
    while True:
        i = _skip_ws(text, i)
        c = _char(text, i, eof)
        if not expect_key:
            if c == "}":
                return i + 1, None
            if c != ",":
                raise _Malformed(i, f"malformed JSON: expected ',' or '}}' between top-level keys, found {c!r}")
            i = _skip_ws(text, i + 1)
            c = _char(text, i, eof)
        elif c == "}" and first and not meta:
            return i + 1, None
        if c != '"':
            raise _Malformed(i, f"malformed JSON: expected a key string in the top-level object, found {c!r}")
        try:
            key, j = json.decoder.scanstring(text, i + 1)
        except json.JSONDecodeError:
            if not eof:
                raise _NeedMore from None
            raise _Malformed(i, "truncated or malformed JSON: unterminated top-level key") from None
        j = _skip_ws(text, j)
        if _char(text, j, eof) != ":":
            raise _Malformed(j, f"malformed JSON: expected ':' after top-level key {key!r}")
        j = _skip_ws(text, j + 1)
        c = _char(text, j, eof)
        if key == "traceEvents":
            if c == "[":
                return j, "traceEvents"
            if c == "n" and text.startswith("null", j):
                raise _Malformed(j, "traceEvents is null (no events)")
            raise _Malformed(j, "traceEvents is not an array")
        try:
            value, i = _DECODER.raw_decode(text, j)
        except json.JSONDecodeError as exc:
            if not eof:
                raise _NeedMore from None
            if exc.msg.startswith("Unterminated") or exc.pos >= len(text.rstrip()):
                raise _Malformed(len(text), "truncated JSON: file ends inside the top-level object") from None
            raise _Malformed(exc.pos, f"malformed JSON in top-level key {key!r}: {exc.msg}") from None
        meta[key] = value
        expect_key = False


def _decode(buf: bytes, eof: bool) -> str:
    """UTF-8 text of `buf`; an incomplete sequence at its end waits for more bytes unless at EOF."""
    try:
        return buf.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not eof and exc.start >= len(buf) - 3:
            return buf[: exc.start].decode("utf-8", "surrogateescape")
        return buf.decode("utf-8", "surrogateescape")


def _byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8", "surrogateescape"))


# ---- prepare ------------------------------------------------------------------------------------------


class _ScanThread:
    """An ArrayScanner fed in its own thread (numpy releases the GIL), so the scan overlaps the
    decompression, the hashing and the copy; it stops scanning once the array's end is found."""

    def __init__(self) -> None:
        self.scanner = ArrayScanner()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            if self.scanner.end is None and self._error is None:
                try:
                    self.scanner.feed(chunk)
                except BaseException as exc:  # re-raised by result()
                    self._error = exc

    def feed(self, chunk: bytes) -> None:
        self._q.put(chunk)

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()

    def result(self) -> ArrayScanner:
        self.close()
        if self._error is not None:
            raise self._error
        return self.scanner


class _Hasher:
    """SHA-256 in its own thread (hashlib releases the GIL), so hashing overlaps the scan and the copy."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while (chunk := self._q.get()) is not None:
            self._sha.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._q.put(chunk)

    def close(self) -> None:
        if self._t.is_alive():
            self._q.put(None)
            self._t.join()

    def digest(self) -> str:
        self.close()
        return self._sha.hexdigest()


class _PartWriter:
    """Writes the array's bytes (from just after its '[') into part files of about PART_BYTES, each a JSON
    array: a part is cut at the first candidate boundary (',' + whitespace + '{') once it is long enough;
    the ',' becomes the part's closing ']' and the next part opens with '['."""

    def __init__(self, first: Path):
        self.files = [first]
        self.starts = [0]  # offset (in the array's bytes after '[') where each part's content begins
        self.out = open(first, "wb")  # noqa: SIM115 - closed by close()
        self.out.write(b"[")
        self.size = 0  # bytes of the current part's content
        self.written = 0  # array bytes seen
        # the first SPLIT_BYTES go to the first file uncut (and are kept): an array that ends within them
        # stays one file; past them, the first file is rewritten in parts from what was kept
        self.held: list[bytes] | None = [] if PART_BYTES > 0 and SPLIT_BYTES > 0 else None
        self.held_bytes = 0

    def write(self, chunk: bytes) -> None:
        if self.held is None:
            self._write(chunk)
            return
        self.held.append(chunk)
        self.held_bytes += len(chunk)
        if self.held_bytes <= SPLIT_BYTES:
            self.out.write(chunk)
            return
        held, self.held = self.held, None  # big enough to split: cut from the start, then go on
        self.out.seek(1)
        self.out.truncate()
        for c in held:
            self._write(c)

    def _write(self, chunk: bytes) -> None:
        at = 0
        while PART_BYTES > 0 and self.size + len(chunk) - at > PART_BYTES:
            m = _CUT.search(chunk, max(at, at + PART_BYTES - self.size))
            if m is None:
                break
            cut = m.start()
            self.out.write(chunk[at:cut])
            self.out.write(b"]")
            self.out.close()
            nxt = self.files[0].with_name(f"events.{len(self.files)}.json")
            self.files.append(nxt)
            self.starts.append(self.written + cut + 1)
            self.out = open(nxt, "wb")  # noqa: SIM115 - closed by close()
            self.out.write(b"[")
            self.size = 0
            at = cut + 1
        self.out.write(chunk[at:] if at else chunk)
        self.size += len(chunk) - at
        self.written += len(chunk)

    def close(self) -> None:
        if self.held is not None:  # the whole array fit in SPLIT_BYTES: one file
            self.written += self.held_bytes
            self.size += self.held_bytes
            self.held = None
        self.out.close()


def _join(parts: list[Path], target: Path) -> None:
    """The array file whose parts these are: part 0 without its ']', then ',' + each next part without its
    '[' (and, but for the last, its ']'). The parts are removed."""
    tmp = target.with_name("events-joined.json")
    with open(tmp, "wb") as out:
        for k, part in enumerate(parts):
            with open(part, "rb") as f:
                if k:
                    out.write(b",")
                    f.seek(1)
                size = part.stat().st_size
                left = size - (1 if k else 0) - (1 if k < len(parts) - 1 else 0)
                while left > 0 and (block := f.read(min(CHUNK, left))):
                    out.write(block)
                    left -= len(block)
    for part in parts:
        part.unlink()
    tmp.replace(target)


def prepare(path: str | os.PathLike[str], workdir: str | os.PathLike[str], *, scan: bool = False) -> PreparedTrace:
    """Stream `path` once: hash it, collect its metadata and write its events array to `workdir`.

    The array's closing ']' is looked for from the file's tail (`_end_from_tail`: Kineto writes a few KB after
    it), and the reader's parse of the array is the proof (`PreparedTrace.rescan` when it refuses); when no
    candidate fits, or with `scan`, the structural scan finds it while the file streams (bounded memory, exact
    for valid JSON, and the source of every message about a malformed or truncated file)."""
    path = Path(path)
    if not path.exists():
        raise TraceError(path, "no such file")
    if path.is_dir():
        raise TraceError(path, "is a directory")
    try:
        file_bytes = path.stat().st_size
        with open(path, "rb") as f:
            magic = f.read(512)
    except PermissionError:
        raise TraceError(path, "permission denied") from None
    if file_bytes == 0:
        raise TraceError(path, "empty file")
    kind = container_of(magic)
    if kind.startswith("unsupported:"):
        raise TraceError(
            path,
            f"unsupported compression ({kind.partition(':')[2]}); tracekit reads plain JSON, .gz, .xz, .bz2 and .zst",
        )

    sha = _Hasher()
    head = bytearray()  # bytes before the array
    meta: dict[str, Any] = {}
    array_file = Path(workdir) / "events.json"
    out: _PartWriter | None = None
    scanner: _ScanThread | None = None
    total = 0
    written = 0  # bytes of the array file (everything after the '[')
    array_offset = 0
    bare = False
    try:
        for chunk in _read_chunks(path, kind):
            sha.update(chunk)
            total += len(chunk)
            if out is None:
                head += chunk
                found = _find_array(path, head, eof=False, meta=meta)
                if found is None:
                    if len(head) > HEAD_LIMIT:
                        raise TraceError(path, "not a Chrome/Kineto trace (no traceEvents array near the start)")
                    continue
                array_offset, bare = found
                chunk = bytes(head[array_offset + 1 :])
                del head[:]
                out = _PartWriter(array_file)
                scanner = _ScanThread() if scan else None
            elif scanner is not None and (end := scanner.scanner.end) is not None and written - end > TAIL_LIMIT:
                raise TraceError(path, f"more than {TAIL_LIMIT >> 20} MiB of data after the traceEvents array")
            if scanner is not None:
                scanner.feed(chunk)  # the scan runs in its own thread; everything is copied, the tail cut later
            out.write(chunk)
            written += len(chunk)
        if out is None:
            found = _find_array(path, head, eof=True, meta=meta)
            if found is None:
                raise TraceError(path, "not a Chrome/Kineto trace (JSON object without a traceEvents array)")
    finally:
        if out is not None:
            out.close()
        sha.close()
        if scanner is not None:
            scanner.close()
    if total == 0:
        raise TraceError(path, "empty file (nothing after decompression)")
    closed = True
    parts = out.files
    if scanner is None:
        tail_end = _end_from_tail(out, bare)
        if tail_end is None:  # no candidate fits: the structural scan decides (and words any problem)
            return prepare(path, workdir, scan=True)
        array_end_at: int | None = tail_end
    else:
        array_end_at = scanner.result().end
    if array_end_at is not None and array_end_at <= out.starts[-1]:  # a cut after the array's end (in the tail)
        _join(parts, array_file)
        parts = [array_file]
    last, start = parts[-1], (out.starts[-1] if len(parts) > 1 else 0)
    if array_end_at is None:
        if len(parts) > 1:
            _join(parts, array_file)
            parts = [array_file]
        closed = False
        _unclosed_array(path, array_file, array_offset, bare, total)
    else:
        if written - array_end_at > TAIL_LIMIT:
            raise TraceError(path, f"more than {TAIL_LIMIT >> 20} MiB of data after the traceEvents array")
        with open(last, "r+b") as f:  # cut the last part just after the array's ']'; the rest is the tail
            f.seek(1 + array_end_at - start)
            tail = f.read()
            f.truncate(1 + array_end_at - start)
        array_end = array_offset + 1 + array_end_at  # file offset just past the array
        try:
            _parse_tail(path, tail, array_end, bare, meta)
        except TraceError:
            # an unbalanced quote inside an event can make a later ']' look like the array's end: name the
            # event where the JSON first breaks, if there is one
            if len(parts) > 1:
                _join(parts, array_file)
            if (problem := first_malformed_element(array_file, array_offset, bare)) is not None:
                raise TraceError(path, problem) from None
            raise
    return PreparedTrace(
        path=path.resolve(),
        sha256=sha.digest(),
        file_bytes=file_bytes,
        json_bytes=total,
        metadata=meta,
        array_file=array_file,
        array_offset=array_offset,
        container=kind,
        bare_array=bare,
        closed=closed,
        parts=parts if len(parts) > 1 else [],
        end_from_tail=scanner is None,
    )


TAIL_TRIES = 64  # candidate ']' tried from the tail before the structural scan takes over


def _end_from_tail(out: _PartWriter, bare: bool) -> int | None:
    """The array's end (offset just past its ']', counted from the first byte after '['), found from the end of
    the last part: the last ']' that follows an element's '}' (or the '[' of an empty array) and after which the
    rest of the file parses as the rest of the top-level object (`_parse_tail`). A ']' inside the array leaves
    more events after it, which no object's tail parses as; a ']' after the array's end (an array of objects
    among the keys after it) makes an array the reader refuses. None: no candidate within the last part's
    last TAIL_LIMIT bytes (or TAIL_TRIES tries)."""
    last = out.files[-1]
    start = out.starts[-1] if len(out.files) > 1 else 0
    with open(last, "rb") as f:
        size = f.seek(0, os.SEEK_END)
        base = max(1, size - TAIL_LIMIT)
        f.seek(base)
        window = f.read()
    tries = 0
    at = len(window)
    while tries < TAIL_TRIES and (at := window.rfind(b"]", 0, at)) >= 0:
        before = window[:at].rstrip(b" \t\r\n")[-1:]
        if not before and base + at == 1:
            before = b"["  # the array's own '[' (an empty array), written before the window
        if before not in (b"}", b"["):
            continue
        tries += 1
        try:  # prepare parses the tail again, into meta, once the array is cut there
            _parse_tail(Path(last), bytes(window[at + 1 :]), 0, bare, {})
        except TraceError:
            continue
        return start + base + at  # the part's byte p holds array byte start + p - 1; end is just past it
    return None


def _find_array(path: Path, head: bytearray, eof: bool, meta: dict[str, Any]) -> tuple[int, bool] | None:
    """(byte offset of the '[' that opens traceEvents, bare?) or None if not seen yet; fills `meta`."""
    start = 0
    if head[:3] == b"\xef\xbb\xbf":  # UTF-8 byte order mark
        start = 3
    i = start
    n = len(head)
    while i < n and head[i] in b" \t\n\r":
        i += 1
    if i >= n:
        if eof:
            raise TraceError(path, "empty JSON (only whitespace)")
        return None
    first = head[i : i + 1]
    if first == b"[":
        return i, True
    if first != b"{":
        if b"\x00" in head[:512] or not _looks_like_text(bytes(head[:512])):
            raise TraceError(path, "not JSON (binary data; not a compression format tracekit knows)")
        raise TraceError(path, "not JSON (does not start with '{' or '[')")
    text = _decode(bytes(head), eof)
    ti = len(head[:i].decode("utf-8", "surrogateescape")) + 1
    meta.clear()
    try:
        j, key = _members(text, ti, eof, meta, first=True)
    except _NeedMore:
        return None
    except _Malformed as exc:
        raise TraceError(path, f"{exc.problem} at byte {_byte_offset(text, exc.pos)}") from None
    if key is None:
        if not eof and not text[j:].strip():
            return None  # wait: there must be nothing after the object, checked at EOF
        rest = text[j:].strip()
        if rest:
            raise TraceError(path, f"malformed JSON: data after the top-level object at byte {_byte_offset(text, j)}")
        raise TraceError(path, "not a Chrome/Kineto trace (JSON object without a traceEvents array)")
    return _byte_offset(text, j), False


def _looks_like_text(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start >= len(sample) - 3


def _parse_tail(path: Path, tail: bytes, offset: int, bare: bool, meta: dict[str, Any]) -> None:
    """The bytes after the array's ']' (starting at file byte `offset`): the rest of the top-level object."""
    text = _decode(tail, eof=True)
    if bare:
        if text.strip():
            i = _skip_ws(text, 0)
            raise TraceError(
                path, f"malformed JSON: data after the top-level array at byte {offset + _byte_offset(text, i)}"
            )
        return
    try:
        j, key = _members(text, 0, True, meta, first=False)
    except _Malformed as exc:
        problem = exc.problem
        if problem.startswith("truncated JSON"):
            problem = "truncated JSON: file ends after traceEvents, inside the top-level object"
        raise TraceError(path, f"{problem} at byte {offset + _byte_offset(text, exc.pos)}") from None
    if key is not None:
        raise TraceError(path, f"malformed JSON: a second traceEvents key at byte {offset + _byte_offset(text, j)}")
    if text[j:].strip():
        i = _skip_ws(text, j)
        raise TraceError(
            path, f"malformed JSON: data after the top-level object at byte {offset + _byte_offset(text, i)}"
        )


def _unclosed_array(path: Path, array_file: Path, array_offset: int, bare: bool, total: int) -> None:
    """The file ended inside the array. A bare array that stops between two elements is accepted (the
    Trace Event Format allows the JSON Array Format to omit its ']'): a trailing ',' is dropped and ']'
    added. Anything else is a truncated file, reported with the element it ends in."""
    scan = scan_elements(array_file)
    if bare and scan.depth == 1 and not scan.in_string:
        with open(array_file, "r+b") as f:
            size = f.seek(0, os.SEEK_END)
            keep = size
            window = 4096
            while keep > 1:
                f.seek(max(1, keep - window))
                piece = f.read(keep - max(1, keep - window))
                stripped = piece.rstrip(b" \t\n\r")
                keep = max(1, keep - window) + len(stripped)
                if stripped:
                    break
            f.seek(keep - 1)
            if f.read(1) == b",":
                keep -= 1
            f.truncate(keep)
            f.seek(keep)
            f.write(b"]")
        return
    index = element_index(scan, scan.offset)
    where = "the top-level array" if bare else "traceEvents"
    if scan.depth == 1 and not scan.in_string:
        raise TraceError(
            path, f"truncated JSON: file ends inside {where} (between elements, no closing ']') at byte {total}"
        )
    with open(array_file, "rb") as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 64))
        last = f.read().rstrip(b" \t\n\r")[-1:]
    if not bare and last == b"}":  # the file looks complete: something inside the array never closed
        starts = scan.element_starts()
        rel = int(starts[index - 1]) if index else 1
        with open(array_file, "rb") as f:
            f.seek(rel)
            piece = f.read(4096)
        at = array_offset + rel + len(piece) - len(piece.lstrip(b" \t\n\r"))
        raise TraceError(
            path,
            f"malformed JSON: {where}[{index}] (at byte {at}) never closes (an unbalanced quote or bracket); "
            f"the file ends inside it at byte {total}",
        )
    raise TraceError(path, f"truncated JSON: file ends inside {where}[{index}] at byte {total}")


def first_malformed_element(array_file: Path, array_offset: int, bare: bool) -> str | None:
    """The first element of the array file that Python's json refuses, as a message (error path)."""
    scanner, starts = element_spans(array_file)
    end = scanner.end if scanner.end is not None else scanner.offset
    where = "the top-level array" if bare else "traceEvents"
    with open(array_file, "rb") as f:
        for i in range(starts.size):
            a = int(starts[i])
            b = int(starts[i + 1]) - 1 if i + 1 < starts.size else end - 1
            f.seek(a)
            text = f.read(b - a).decode("utf-8", "surrogateescape")
            if not text.strip() and starts.size == 1:
                return None  # []
            try:
                json.loads(text)
            except json.JSONDecodeError as exc:
                at = array_offset + a + len(text[: exc.pos].encode("utf-8", "surrogateescape"))
                return f"malformed JSON in {where}[{i}] at byte {at} of the file (decompressed): {exc.msg}"
    return None


def scan_elements(array_file: Path) -> ArrayScanner:
    """Scan an array file (its '[' first) recording element boundaries (error path, and the hook for
    splitting the array by element)."""
    scanner = ArrayScanner(boundaries=True)
    with open(array_file, "rb") as f:
        f.read(1)
        scanner.offset = 1
        while chunk := f.read(CHUNK):
            if scanner.feed(chunk) is not None:
                break
    return scanner


def element_index(scanner: ArrayScanner, offset: int) -> int:
    """The 0-based index of the array element at byte `offset` of the array file."""
    starts = scanner.element_starts()
    return int(np.searchsorted(starts, offset, side="right"))


def element_spans(array_file: Path) -> tuple[ArrayScanner, np.ndarray]:
    """Start offsets of every element in the array file (first just after '['; the rest after each ',')."""
    scanner = scan_elements(array_file)
    return scanner, np.concatenate(([1], scanner.element_starts()))
