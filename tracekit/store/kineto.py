"""Find the `traceEvents` array of a Chrome/Kineto trace without parsing the whole JSON object.

A Kineto trace is one JSON object whose `traceEvents` array holds nearly all of its bytes. Parsing the
object whole costs several times its size in memory, so instead we stream the (possibly gzipped) file
once: hash it, keep the small head (top-level keys before the array) and tail (keys after it), and copy
the array's bytes to a temporary file that DuckDB's `read_json(format='array')` then reads.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import queue
import re
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tracekit.errors import TraceError

CHUNK = 8 << 20
GZ_READ = 256 << 10  # compressed bytes per inflate step: ~4 MiB pieces at Kineto's ~15x, so the
# reader thread and the hash/copy loop overlap instead of taking turns on 30 MiB pieces
HEAD_LIMIT = 64 << 20  # top-level keys before traceEvents beyond this: not a Kineto trace
TAIL_KEEP = 4 << 20  # bytes after the array's end we can hold (Kineto writes a few hundred)
_KEY = re.compile(rb'"traceEvents"\s*:\s*\[')
GZIP_MAGIC = b"\x1f\x8b"


@dataclasses.dataclass
class PreparedTrace:
    """A trace file split into its metadata and a temporary file holding exactly its events array."""

    path: Path
    sha256: str
    file_bytes: int
    json_bytes: int
    metadata: dict[str, Any]
    array_file: Path
    candidates: list[tuple[int, dict[str, Any]]]  # (array file length, metadata), most likely first

    @property
    def name(self) -> str:
        """The file's own name: Kineto's `traceName` (kept in metadata) is often the exporter's temp path."""
        return self.path.name

    def use_candidate(self, i: int) -> None:
        """Cut the array file at the i-th candidate end (see `_array_end_candidates`)."""
        length, self.metadata = self.candidates[i]
        os.truncate(self.array_file, length)


def _raw_chunks(path: Path, stop: threading.Event) -> Iterator[bytes]:
    """Decompressed chunks. gzip goes through zlib directly (GzipFile's Python-level buffering costs
    more than the inflate itself); concatenated gzip members are followed."""
    with open(path, "rb") as f:
        gz = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not gz:
            while not stop.is_set() and (chunk := f.read(CHUNK)):
                yield chunk
            return
        d = None  # the member being inflated; None between members
        while not stop.is_set() and (packed := f.read(GZ_READ)):
            while packed:
                if d is None:
                    if not packed.strip(b"\x00"):  # zero padding after the last member
                        break
                    d = zlib.decompressobj(wbits=31)
                if out := d.decompress(packed):
                    yield out
                packed, d = (d.unused_data, None) if d.eof else (b"", d)
        if d is not None and not stop.is_set():
            raise EOFError("compressed file ended before the end-of-stream marker was reached")


def _chunks(path: Path) -> Iterator[bytes]:
    """The file's decompressed bytes in chunks, read ahead by a thread (zlib and I/O release the GIL,
    so decompression overlaps the caller's hashing and writing)."""
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=4)
    stop = threading.Event()

    def reader() -> None:
        try:
            for chunk in _raw_chunks(path, stop):
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


def _read_chunks(path: Path) -> Iterator[bytes]:
    try:
        yield from _chunks(path)
    except EOFError:
        raise TraceError(path, "truncated gzip stream (file ends before the end-of-stream marker)") from None
    except zlib.error as exc:
        raise TraceError(path, f"corrupt gzip data ({exc})") from None
    except IsADirectoryError:
        raise TraceError(path, "is a directory") from None
    except PermissionError:
        raise TraceError(path, "permission denied") from None


def prepare(path: str | os.PathLike[str], workdir: str | os.PathLike[str]) -> PreparedTrace:
    """Stream `path` once: hash it, collect its metadata and write its events array to `workdir`."""
    path = Path(path)
    if not path.exists():
        raise TraceError(path, "no such file")
    if path.is_dir():
        raise TraceError(path, "is a directory")
    file_bytes = path.stat().st_size
    if file_bytes == 0:
        raise TraceError(path, "empty file")

    sha = hashlib.sha256()
    head = bytearray()
    array_file = Path(workdir) / "events.json"
    out = None
    total = 0
    recent: collections.deque[bytes] = collections.deque()  # the last chunks written, >= TAIL_KEEP bytes
    written = 0
    bare_array = False
    try:
        for chunk in _read_chunks(path):
            sha.update(chunk)
            total += len(chunk)
            if out is None:
                head += chunk
                start = _find_array_start(path, head)
                if start is None:
                    if len(head) > HEAD_LIMIT:
                        raise TraceError(path, "not a Chrome/Kineto trace (no traceEvents array near the start)")
                    continue
                bare_array = start == 0 and head.lstrip()[:1] == b"["
                body = bytes(head[start:])
                del head[start:]
                out = open(array_file, "wb")  # noqa: SIM115 - closed in finally
                chunk = body
            out.write(chunk)
            written += len(chunk)
            recent.append(chunk)
            while len(recent) > 1 and sum(map(len, recent)) - len(recent[0]) >= TAIL_KEEP:
                recent.popleft()
    finally:
        if out is not None:
            out.close()
    if out is None:
        _classify_without_array(path, bytes(head))
    tail = b"".join(recent)[-TAIL_KEEP:]
    candidates = list(_array_end_candidates(bytes(head), tail, written, bare_array))
    if not candidates:
        raise TraceError(path, "truncated or malformed JSON: no closing ']' for traceEvents")
    metadata = candidates[0][1]
    prepared = PreparedTrace(
        path=path.resolve(),
        sha256=sha.hexdigest(),
        file_bytes=file_bytes,
        json_bytes=total,
        metadata=metadata,
        array_file=array_file,
        candidates=candidates,
    )
    prepared.use_candidate(0)
    return prepared


def _find_array_start(path: Path, head: bytearray) -> int | None:
    """Offset of the '[' that opens traceEvents (0 for a bare top-level array), or None if not seen yet."""
    stripped = head.lstrip()
    if not stripped:
        return None
    first = stripped[:1]
    if first == b"[":
        return len(head) - len(stripped)
    if first != b"{":
        raise TraceError(path, "not JSON (does not start with '{' or '[')")
    m = _KEY.search(head)
    return None if m is None else m.end() - 1


def _classify_without_array(path: Path, head: bytes) -> None:
    """Explain why no traceEvents array was found."""
    try:
        doc = json.loads(head)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise TraceError(path, "not a Chrome/Kineto trace (no traceEvents array) or truncated JSON") from None
    if isinstance(doc, dict):
        raise TraceError(path, "not a Chrome/Kineto trace (JSON object without a traceEvents array)")
    raise TraceError(path, "not a Chrome/Kineto trace (unexpected JSON value)")


def _array_end_candidates(
    head: bytes, tail: bytes, written: int, bare_array: bool
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (array length, metadata) for each ']' that could close traceEvents, last first.

    A candidate is accepted when the head plus `null` plus what follows the ']' parses as a JSON
    object; a wrong pick (a later top-level array) makes DuckDB's parse fail and the caller tries the
    next one.
    """
    base = written - len(tail)
    pos = len(tail)
    tried = 0
    while tried < 16:
        pos = tail.rfind(b"]", 0, pos)
        if pos < 0:
            return
        tried += 1
        rest = tail[pos + 1 :]
        if bare_array:
            if rest.strip():
                return
            yield base + pos + 1, {}
            return
        try:
            doc = json.loads(head + b"null" + rest)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and "traceEvents" in doc:
            doc.pop("traceEvents")
            yield base + pos + 1, doc
