"""The write-ahead log: record codec, segment scanning and the appending writer.

FORMAT.md "Log segments" is the specification. In one sentence (``check_record``), a
record is valid when its header and payload lie inside the file, its length is at most
EVENT_BYTES_MAX, its stored CRC equals the CRC-32, seeded with its segment's salt, of
everything after the CRC field up to the end of the payload, its seq is one more than the
record before it, its prev_crc equals that record's CRC, and its place in its transaction
(txn_index of txn_count) follows the record before it; a transaction is committed when
all its txn_count records are valid.

The log files are durable state; everything else is derived from them.
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import format as fmt
from ._native import _core, crc32
from .errors import CorruptDatabaseError, StorageError
from .storage import OSStorage, write_atomically

log = logging.getLogger("mnemos")

_HEADER_TAIL = struct.Struct("<IQIIII")  # the record header after its CRC field


def encode_record_py(
    salt: int,
    seq: int,
    prev_crc: int,
    txn_index: int,
    txn_count: int,
    unsynced: int,
    payload: bytes,
) -> tuple[bytes, int]:
    """One record's bytes and its CRC. ``unsynced`` counts the records before this one
    that were not yet known durable when it was written."""
    tail = _HEADER_TAIL.pack(len(payload), seq, prev_crc, txn_index, txn_count, unsynced)
    crc = crc32(payload, crc32(tail, salt))
    return crc.to_bytes(4, "little") + tail + payload, crc


# The Rust codec when the extension is there (same bytes, same CRC; tests/test_wal_codec.py).
encode_record: Callable[..., tuple[bytes, int]] = (
    _core.encode_record if _core is not None else encode_record_py
)


def new_salt() -> int:
    """A random salt for a new segment. Record CRCs are seeded with it, so bytes that a
    user stores (a text that spells out a record) can never pass for a record. The salt
    is file framing, not state: it never reaches ``apply``."""
    return int.from_bytes(os.urandom(4), "little")


def encode_segment_header(first_seq: int, prev_crc: int, salt: int) -> bytes:
    # Segment framing is unchanged since version 1; the MNEMOS file says which events to expect.
    body = fmt.SEGMENT_HEADER.pack(fmt.WAL_MAGIC, fmt.CREATED_VERSION, salt, first_seq, prev_crc, 0)
    return body[:28] + crc32(body[:28]).to_bytes(4, "little")


@dataclass(frozen=True)
class SegmentHeader:
    first_seq: int
    prev_crc: int
    salt: int


def decode_segment_header(data: bytes | memoryview, path: str) -> SegmentHeader:
    if len(data) < fmt.SEGMENT_HEADER_BYTES:
        raise CorruptDatabaseError(
            f"log segment {path} is shorter than its {fmt.SEGMENT_HEADER_BYTES}-byte header",
            path=path,
            offset=0,
        )
    magic, version, salt, first_seq, prev_crc, crc = fmt.SEGMENT_HEADER.unpack_from(data, 0)
    if magic != fmt.WAL_MAGIC:
        raise CorruptDatabaseError(f"{path} is not a Mnemos log segment", path=path, offset=0)
    if crc != crc32(bytes(data[:28])):
        raise CorruptDatabaseError(
            f"log segment header checksum mismatch in {path}", path=path, offset=0
        )
    check_version(version, path)
    if first_seq == 0:  # seqs start at 1; a zero here would make "the record before" seq -1
        raise CorruptDatabaseError(
            f"log segment {path} claims to start at seq 0 (seqs start at 1)", path=path, offset=16
        )
    return SegmentHeader(first_seq, prev_crc, salt)


def check_version(version: int, path: str) -> None:
    """Refuse a file of a format version this code does not read (the field sits at
    offset 8 in each)."""
    if not 1 <= version <= fmt.FORMAT_VERSION:
        raise CorruptDatabaseError(
            f"{path} is format version {version}; this Mnemos reads versions 1 to "
            f"{fmt.FORMAT_VERSION} (upgrade mnemos-db)",
            path=path,
            offset=8,
        )


@dataclass
class ScanResult:
    """What one pass over a run of record bytes found.

    ``records`` holds (seq, crc, payload) for committed records only. ``end`` is the offset
    just after the last committed record, ``seq``/``crc`` describe that record.
    ``status`` is "clean" (every byte consumed), "torn" (the bytes after ``end`` are an
    interrupted append: truncate to ``end``) or "corrupt" (damage at ``bad_offset`` with a
    valid record after it).
    """

    end: int = 0
    seq: int = 0
    crc: int = 0
    status: str = "clean"
    bad_offset: int | None = None
    reason: str = ""
    # The Python scan lists the records as it goes; the Rust scan returns them packed
    # (_SCAN_ENTRY) into ``_data``, and the list is made only if asked for: replay decodes
    # straight from the packed form (``events``).
    _records: list[tuple[int, int, memoryview]] | None = field(
        default=None, repr=False, compare=False
    )
    _data: memoryview | None = field(default=None, repr=False, compare=False)
    _packed: bytes = field(default=b"", repr=False, compare=False)

    @property
    def records(self) -> list[tuple[int, int, memoryview]]:
        if self._records is None:
            assert self._data is not None
            buf, entries = self._data, self._entries()
            self._records = [
                (s, c, buf[o : o + n])
                for s, c, o, n in zip(
                    entries["seq"].tolist(),
                    entries["crc"].tolist(),
                    entries["offset"].tolist(),
                    entries["len"].tolist(),
                    strict=True,
                )
            ]
        return self._records

    def _entries(self) -> np.ndarray:
        return np.frombuffer(self._packed, dtype=_SCAN_ENTRY)

    @property
    def count(self) -> int:
        """How many records are committed."""
        if self._records is not None:
            return len(self._records)
        return len(self._packed) // _SCAN_ENTRY.itemsize

    def seq_crc(self, index: int) -> tuple[int, int]:
        """The seq and CRC of committed record ``index``."""
        if self._records is not None:
            seq, crc, _payload = self._records[index]
            return seq, crc
        entry = self._entries()[index]
        return int(entry["seq"]), int(entry["crc"])

    def events(self, start: int, stop: int) -> list[tuple[int, dict[str, Any] | memoryview]]:
        """(seq, event) for committed records ``start`` to ``stop``: the Rust core decodes
        them in one call, and gives each payload it leaves to ``decode_event`` instead of
        its event (every payload, on the Python path). ``decode_event`` of such a payload
        gives the event or raises, exactly as for any payload."""
        if self._records is not None:  # the Python scan
            return [(seq, payload) for seq, _crc, payload in self._records[start:stop]]
        assert self._data is not None
        size = _SCAN_ENTRY.itemsize
        events, left = _core.decode_events(self._data, self._packed[start * size : stop * size])
        entries = self._entries()[start:stop]
        out: list[tuple[int, dict[str, Any] | memoryview]] = list(
            zip(entries["seq"].tolist(), events, strict=True)
        )
        for i in left:
            seq, offset, n = (int(entries[i][name]) for name in ("seq", "offset", "len"))
            out[i] = (seq, self._data[offset : offset + n])
        return out


class LogEvents:
    """The committed records a ``LogCursor.read_events`` found, decoded as they are
    iterated: (seq, event), or (seq, payload) where the Rust core leaves the payload to
    ``decode_event`` (every one, on the Python path). Decoding ``DECODE_CHUNK`` records at a
    time keeps a replay's memory flat (the events of a whole log would not fit beside it)
    and the events in cache: 4,096 at a time decoded about 1.25x slower than 256."""

    DECODE_CHUNK = 256

    def __init__(self) -> None:
        self._runs: list[tuple[ScanResult, int, int]] = []  # (scan, start, stop)
        self._count = 0

    def add(self, result: ScanResult, start: int) -> None:
        if start < result.count:
            self._runs.append((result, start, result.count))
            self._count += result.count - start

    def __len__(self) -> int:
        return self._count

    def until(self, seq: int) -> None:
        """Drop the records after ``seq``."""
        kept = []
        self._count = 0
        for result, start, stop in self._runs:
            first = result.seq - result.count + 1  # seqs are consecutive in a scan
            stop = min(stop, seq - first + 1)
            if stop > start:
                kept.append((result, start, stop))
                self._count += stop - start
        self._runs = kept

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | memoryview]]:
        for result, start, stop in self._runs:
            for lo in range(start, stop, self.DECODE_CHUNK):
                yield from result.events(lo, min(lo + self.DECODE_CHUNK, stop))


def check_record(
    buf: memoryview,
    pos: int,
    salt: int,
    expect_seq: int,
    expect_prev: int,
    expect_index: int,
    expect_count: int,
) -> tuple[int, int, int, int] | str:
    """The validity rule: (crc, length, txn_index, txn_count) of the valid record at
    ``pos``, or the reason it is not valid. ``expect_count`` is 0 when the record must
    start a transaction (its count is then free)."""
    remaining = len(buf) - pos
    if remaining < fmt.RECORD_HEADER_BYTES:
        return "truncated record header"
    crc, length, seq, prev, index, count, _unsynced = fmt.RECORD_HEADER.unpack_from(buf, pos)
    if length > fmt.EVENT_BYTES_MAX:
        return f"record length {length} exceeds EVENT_BYTES_MAX"
    if fmt.RECORD_HEADER_BYTES + length > remaining:
        return "truncated record payload"
    if crc32(buf[pos + 4 : pos + fmt.RECORD_HEADER_BYTES + length], salt) != crc:
        return "record checksum mismatch"
    if seq != expect_seq:
        return f"sequence gap: expected seq {expect_seq}, found {seq}"
    if prev != expect_prev:
        return "broken checksum chain (prev_crc does not match the previous record)"
    if index != expect_index or not index < count or (expect_count and count != expect_count):
        return f"record {index} of {count} out of place in its transaction"
    return crc, length, index, count


def _durable_record_after(buf: memoryview, start: int, salt: int, damaged_seq: int) -> bool:
    """Is there a record at an offset >= start (fitting in the buffer, with a matching
    salted CRC) written when ``damaged_seq`` was already durable?

    If so, the damaged record had been synced and later changed: corruption. If every
    record after the damage was written while it was still unsynced, the damage is in the
    window a crash may lose (out-of-order writeback of unsynced pages): a torn tail.
    Every byte offset is a candidate; the header fields are screened for all of them at
    once with strided numpy views and only the survivors are checksummed.
    """
    count = len(buf) - fmt.RECORD_HEADER_BYTES - start + 1
    if count <= 0:
        return False
    raw = np.frombuffer(buf, dtype=np.uint8)

    def column(offset: int, dtype: str) -> np.ndarray:
        view: np.ndarray = np.ndarray(
            (count,), dtype=dtype, buffer=raw, offset=start + offset, strides=(1,)
        )
        return view

    seqs, lengths = column(8, "<u8"), column(4, "<u4")
    indexes, counts, unsynced = column(20, "<u4"), column(24, "<u4"), column(28, "<u4")
    # Records after the damage number at most one per RECORD_HEADER_BYTES bytes.
    max_seq = damaged_seq + count // fmt.RECORD_HEADER_BYTES + 1
    window = 1 << 20
    for lo in range(0, count, window):
        hi = min(lo + window, count)
        idx = lo + np.flatnonzero(indexes[lo:hi] < counts[lo:hi])
        seq = seqs[idx].astype(np.int64)
        durable = seq - 1 - unsynced[idx].astype(np.int64)
        fits = lengths[idx].astype(np.int64) <= count - 1 - idx
        for i in idx[(durable >= damaged_seq) & (seq <= max_seq) & fits]:
            pos = start + int(i)
            crc, length = struct.unpack_from("<II", buf, pos)
            if crc32(buf[pos + 4 : pos + fmt.RECORD_HEADER_BYTES + length], salt) == crc:
                return True
    return False


def scan_records(data: bytes | memoryview, base: int, salt: int, seq: int, crc: int) -> ScanResult:
    """Validate the records in ``data`` (which starts at file offset ``base`` of a segment
    with ``salt``), the first of which must have seq ``seq + 1`` and prev_crc ``crc`` and
    start a transaction. Offsets returned are file offsets. The Rust scanner when the
    extension is there, else ``scan_records_py``: the same answer for every input."""
    if _core is None:
        return scan_records_py(data, base, salt, seq, crc)
    buf = memoryview(data)
    packed, end, last_seq, last_crc, status, bad, reason = _core.scan_records(buf, salt, seq, crc)
    return ScanResult(
        end=base + end,
        seq=last_seq,
        crc=last_crc,
        status=status,
        bad_offset=None if bad is None else base + bad,
        reason=reason,
        _data=buf,
        _packed=packed,
    )


# One record in the Rust scanner's packed result (crates/mnemos-py/src/wal.rs).
_SCAN_ENTRY = np.dtype(
    [("seq", "<u8"), ("crc", "<u4"), ("_pad", "<u4"), ("offset", "<u8"), ("len", "<u8")]
)


def scan_records_py(
    data: bytes | memoryview, base: int, salt: int, seq: int, crc: int
) -> ScanResult:
    """The Python reference of ``scan_records``."""
    buf = memoryview(data)
    n = len(buf)
    records: list[tuple[int, int, memoryview]] = []
    result = ScanResult(end=base, seq=seq, crc=crc, _records=records)
    pending: list[tuple[int, int, memoryview]] = []
    pos = index = count = 0
    while pos < n:
        checked = check_record(buf, pos, salt, seq + 1, crc, index, count)
        if isinstance(checked, str):
            result.bad_offset = base + pos
            result.reason = checked
            durable_after = _durable_record_after(buf, pos + 1, salt, seq + 1)
            result.status = "corrupt" if durable_after else "torn"
            return result
        crc, length, index, count = checked
        seq += 1
        end = pos + fmt.RECORD_HEADER_BYTES + length
        pending.append((seq, crc, buf[pos + fmt.RECORD_HEADER_BYTES : end]))
        pos = end
        index += 1
        if index == count:
            records.extend(pending)
            pending.clear()
            result.end, result.seq, result.crc = base + pos, seq, crc
            index = count = 0
    if pending:
        result.status = "torn"
        result.bad_offset = result.end
        result.reason = "transaction without all of its records"
    return result


def list_numbered(directory: str, suffix: str) -> list[int]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    numbers = (fmt.parse_numbered(name, suffix) for name in names)
    return sorted(n for n in numbers if n is not None)


def segment_records(path: str, first_seq: int) -> tuple[bytes, list[RecordSpan]]:
    """The bytes of segment ``path`` (named ``first_seq``) and its committed records, each
    with its transaction position and where it ends (records follow one another with no
    padding, FORMAT.md "Record")."""
    with open(path, "rb") as f:
        data = f.read()
    return data, record_spans(data, path, first_seq)


def record_spans(data: bytes, path: str, first_seq: int) -> list[RecordSpan]:
    """The committed records of segment bytes ``data`` (see ``segment_records``)."""
    header = decode_segment_header(data, path)
    body = memoryview(data)[fmt.SEGMENT_HEADER_BYTES :]
    result = scan_records(
        body, fmt.SEGMENT_HEADER_BYTES, header.salt, first_seq - 1, header.prev_crc
    )
    spans = []
    end = fmt.SEGMENT_HEADER_BYTES
    for seq, _crc, payload in result.records:
        start, end = end, end + fmt.RECORD_HEADER_BYTES + len(payload)
        *_head, index, count, _unsynced = fmt.RECORD_HEADER.unpack_from(data, start)
        spans.append(RecordSpan(seq, index, count, end, payload))
    return spans


@dataclass(frozen=True)
class RecordSpan:
    seq: int
    txn_index: int
    txn_count: int
    end: int  # file offset just past the record
    payload: memoryview


def _read_from(path: str, offset: int, *, sealed: bool) -> bytes | memoryview:
    """The bytes of a segment from ``offset``. A sealed segment (one with a successor) is
    never written or truncated again, so it is mapped instead of copied; the last segment
    is read, since a writer may cut its tail while we look."""
    with open(path, "rb") as f:
        if sealed and os.fstat(f.fileno()).st_size > offset:
            return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))[offset:]
        f.seek(offset)
        return f.read()


@dataclass
class Tail:
    """Where the committed log ends, and what follows it in the last segment."""

    segment: int  # first_seq of the last segment
    end: int  # offset after its last committed record
    seq: int
    crc: int
    salt: int
    torn_offset: int | None = None
    torn_reason: str = ""


class LogCursor:
    """Reads committed records in order, segment after segment, and can resume later.

    The segment list is taken before a segment's bytes are read, so a segment that has
    a successor is known to be sealed (the writer syncs a segment before creating the
    next) and any damage in it is corruption, never an append still in flight.
    """

    def __init__(self, wal_dir: str, after_seq: int, *, snapshot_crc: int | None = None):
        self.wal_dir = wal_dir
        self.after_seq = after_seq  # records up to here are already applied
        self._snapshot_crc = snapshot_crc
        self.segment: int | None = None
        self.offset = 0
        self.seq = 0
        self.crc = 0
        self.salt = 0

    def _path(self, first_seq: int) -> str:
        return os.path.join(self.wal_dir, fmt.segment_name(first_seq))

    def _start(self, segments: list[int]) -> None:
        want = self.after_seq + 1
        candidates = [s for s in segments if s <= want]
        if not candidates:
            first = segments[0] if segments else None
            raise CorruptDatabaseError(
                f"log segment missing: no segment holds seq {want} "
                f"(first segment starts at {first}) in {self.wal_dir}",
                path=self.wal_dir,
                offset=None,
            )
        self.segment = candidates[-1]
        self.offset = -1  # header not read yet

    def read_events(self) -> tuple[LogEvents, Tail]:
        """As ``read``, with the payloads decoded as they are iterated (``LogEvents``)."""
        events = LogEvents()
        with _gc_paused():
            tail = self._read(events.add)
        return events, tail

    def read(self) -> tuple[list[tuple[int, memoryview]], Tail]:
        """Every committed record after the cursor, (seq, payload), and where the log's
        tail stands."""
        out: list[tuple[int, memoryview]] = []

        def collect(result: ScanResult, start: int) -> None:
            out.extend((seq, payload) for seq, _crc, payload in result.records[start:])

        with _gc_paused():
            tail = self._read(collect)
        return out, tail

    def _read(self, collect: Callable[[ScanResult, int], None]) -> Tail:
        """Scans the log after the cursor, passing each segment's scan and the index of
        its first record not yet applied to ``collect``."""
        segments = list_numbered(self.wal_dir, fmt.WAL_SUFFIX)
        if self.segment is None:
            self._start(segments)
        elif self.segment not in segments:
            raise FileNotFoundError(self._path(self.segment))
        assert self.segment is not None
        while True:
            path = self._path(self.segment)
            sealed = segments[-1] > self.segment
            if self.offset < 0:
                data = _read_from(path, 0, sealed=sealed)
                header = decode_segment_header(data, path)
                if header.first_seq != self.segment:
                    raise CorruptDatabaseError(
                        f"log segment {path} starts at seq {header.first_seq}, "
                        "not the seq in its name",
                        path=path,
                        offset=16,
                    )
                if self.seq and (header.prev_crc != self.crc):
                    raise CorruptDatabaseError(
                        f"log segment {path} does not continue the previous segment's "
                        "checksum chain",
                        path=path,
                        offset=24,
                    )
                self.offset, self.seq, self.crc, self.salt = (
                    fmt.SEGMENT_HEADER_BYTES,
                    header.first_seq - 1,
                    header.prev_crc,
                    header.salt,
                )
                if self.seq == self.after_seq:
                    self._check_snapshot_link(self.seq, self.crc)
                body = memoryview(data)[fmt.SEGMENT_HEADER_BYTES :]
            else:
                body = memoryview(_read_from(path, self.offset, sealed=sealed))
            result = scan_records(body, self.offset, self.salt, self.seq, self.crc)
            # Seqs are consecutive: the records up to after_seq (already applied) come first.
            done = min(max(self.after_seq - self.seq, 0), result.count)
            if done:
                self._check_snapshot_link(*result.seq_crc(done - 1))
            collect(result, done)
            self.offset, self.seq, self.crc = result.end, result.seq, result.crc
            self.after_seq = max(self.after_seq, self.seq)
            later = [s for s in segments if s > self.segment]
            if result.status == "corrupt" or (result.status == "torn" and later):
                raise CorruptDatabaseError(
                    f"log damaged at {path} offset {result.bad_offset}: {result.reason}",
                    path=path,
                    offset=result.bad_offset,
                )
            if not later:
                tail = Tail(self.segment, self.offset, self.seq, self.crc, self.salt)
                if result.status == "torn":
                    tail.torn_offset, tail.torn_reason = result.bad_offset, result.reason
                return tail
            if later[0] != self.seq + 1:
                raise CorruptDatabaseError(
                    f"log segment missing: {path} ends at seq {self.seq} but the next "
                    f"segment starts at seq {later[0]}",
                    path=self._path(later[0]),
                    offset=0,
                )
            self.segment, self.offset = later[0], -1

    def _check_snapshot_link(self, seq: int, crc: int) -> None:
        """The snapshot records the CRC of its last record; a log that disagrees is not
        the log the snapshot was taken from."""
        if self._snapshot_crc is not None and seq == self.after_seq:
            if crc != self._snapshot_crc:
                raise SnapshotMismatch(seq)
            self._snapshot_crc = None


_gc_lock = threading.Lock()
_gc_pauses = 0  # reads under way (threads may read at once)
_gc_resume = False  # whether collection was on when the first of them began


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a cursor lists records.

    Each record ``read`` lists is a tuple and a memoryview, alive until replay ends: a
    million of them for a million events (``read_events`` keeps 32 packed bytes a record
    instead, and decodes them chunk by chunk later, each chunk short-lived). CPython runs a full collection whenever the tracked objects
    have grown by a quarter, walking all of them each time, which at that size costs more
    than the scan itself (``python -m startup_bench.backends``, 1M records, Rust path: 2.3 us
    a record with collections, 0.9 with the pause, including the one collection of the
    young objects that follows it). None of these objects is in a cycle, so none of them
    is left uncollected; cycles made meanwhile elsewhere are collected after. Overlapping
    reads share one pause: collection resumes when the last ends, if it was on before the
    first began.
    """
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()


class SnapshotMismatch(Exception):
    """The log's record at a snapshot's seq does not have the CRC the snapshot recorded."""


_UNSYNCED_MAX = 2**32 - 1


class LogWriter:
    """Appends transactions to the newest segment and makes them durable.

    ``durability``: "full" syncs before every append returns; "normal" syncs from a
    background thread at most every ``sync_interval_ms`` (one fdatasync for everything
    appended meanwhile) and on close; "off" leaves it to the operating system. A failed
    write or sync puts the writer in a failed state: every later append raises until the
    database is reopened.

    Each record says how many records before it were not yet known durable when it was
    written (``synced_seq`` is the last seq known durable), so recovery can tell damage
    in the unsynced window a crash may lose from damage to synced data.
    """

    def __init__(
        self,
        storage: OSStorage,
        wal_dir: str,
        tail: Tail,
        *,
        durability: str,
        segment_bytes: int,
        sync_interval_ms: float,
    ):
        self.storage = storage
        self.wal_dir = wal_dir
        self.durability = durability
        self.segment_bytes = segment_bytes
        self.segment = tail.segment
        self.salt = tail.salt
        self.seq = tail.seq
        self.crc = tail.crc
        self.size = tail.end
        self.failed: BaseException | None = None
        self._failed_what = ""
        self._fd = storage.open_append(self._path(self.segment))
        # What the last process wrote may still be only in the page cache. Sync it before
        # any new record vouches for it (``unsynced`` counts from synced_seq).
        try:
            storage.fdatasync(self._fd)
        except OSError as exc:
            storage.close(self._fd)
            raise StorageError(
                f"syncing the log tail at open failed ({exc}); the disk may be failing"
            ) from exc
        self.synced_seq = tail.seq
        self._io = threading.Lock()  # guards the descriptor and the fields below
        self._wake = threading.Condition(self._io)
        self._dirty_since: float | None = None  # monotonic time of the first unsynced append
        self._closing = False
        self._sync_interval_s = sync_interval_ms / 1000.0
        self._syncer: threading.Thread | None = None
        if durability == "normal":
            self._syncer = threading.Thread(target=self._sync_loop, name="mnemos-sync", daemon=True)
            self._syncer.start()

    def _path(self, first_seq: int) -> str:
        return os.path.join(self.wal_dir, fmt.segment_name(first_seq))

    def _fail(self, exc: BaseException, what: str) -> StorageError:
        self.failed, self._failed_what = exc, what
        err = StorageError(
            f"{what} failed ({exc}); the database refuses further writes. Close and reopen "
            "it to recover every acknowledged write"
        )
        if isinstance(exc, OSError):
            err.errno = exc.errno
        return err

    def check(self) -> None:
        if self.failed is not None:
            raise StorageError(
                f"an earlier {self._failed_what} failed ({self.failed}), so this handle "
                "accepts no more writes; close it and reopen the database to recover every "
                "acknowledged write"
            )

    def append(self, payloads: list[bytes]) -> int:
        """Write one transaction (all of ``payloads``, atomically) and return its first seq."""
        self.check()
        if self.size >= self.segment_bytes:
            self._roll()
        first = self.seq + 1
        seq, crc = self.seq, self.crc
        chunks = []
        with self._io:
            synced = self.synced_seq
        for i, payload in enumerate(payloads):
            seq += 1
            unsynced = min(seq - 1 - synced, _UNSYNCED_MAX)
            record, crc = encode_record(self.salt, seq, crc, i, len(payloads), unsynced, payload)
            chunks.append(record)
        blob = b"".join(chunks)
        with self._io:
            try:
                self.storage.write(self._fd, blob)
            except OSError as exc:
                raise self._fail(exc, "log write") from exc
            self.seq, self.crc = seq, crc
            self.size += len(blob)
            if self.durability == "full":
                self._sync_locked(raise_errors=True)
            elif self.durability == "normal" and self._dirty_since is None:
                self._dirty_since = time.monotonic()
                self._wake.notify()
        return first

    def _roll(self) -> None:
        """Seal the current segment (synced whatever the durability, so a crash can never
        leave a gap before a newer segment) and start the next one with a new salt."""
        first = self.seq + 1
        path = self._path(first)
        salt = new_salt()
        with self._io:
            try:
                self.storage.fsync(self._fd)
                write_atomically(self.storage, path, [encode_segment_header(first, self.crc, salt)])
                fd = self.storage.open_append(path)
            except OSError as exc:
                raise self._fail(exc, "starting a new log segment") from exc
            self.storage.close(self._fd)
            self._fd, self._dirty_since, self.synced_seq = fd, None, self.seq
            self.segment, self.salt, self.size = first, salt, fmt.SEGMENT_HEADER_BYTES

    def roll(self) -> None:
        """Start a new segment now, if the current one holds any record."""
        self.check()
        if self.size > fmt.SEGMENT_HEADER_BYTES:
            self._roll()

    def sync(self) -> None:
        """Make everything appended so far durable now; raises if that fails."""
        with self._io:
            self._sync_locked(raise_errors=True)

    def _sync_locked(self, *, raise_errors: bool) -> None:
        if self.failed is not None or self._fd < 0:
            if raise_errors:
                self.check()
            return
        try:
            self.storage.fdatasync(self._fd)
        except OSError as exc:
            err = self._fail(exc, "log fdatasync")
            if raise_errors:
                raise err from exc
            log.error("log fdatasync failed: %s; the database refuses further writes", exc)
            return
        self._dirty_since, self.synced_seq = None, self.seq

    def _sync_loop(self) -> None:
        """Group commit: from the first unsynced append, wait out the interval, then make
        everything appended meanwhile durable with one fdatasync of a duplicate descriptor,
        outside the lock, so appends go on while the disk works. Any failure here puts
        the writer in its failed state: acknowledging writes that no one will sync is
        never an option."""
        try:
            while self._sync_once():
                pass
        except BaseException as exc:
            with self._io:
                self._fail(exc, "background log sync")
            log.error("background log sync failed: %s; the database refuses writes", exc)

    def _sync_once(self) -> bool:
        """One group commit; False when the thread should stop."""
        with self._io:
            while self._dirty_since is None and not self._closing:
                self._wake.wait()
            deadline = (self._dirty_since or 0.0) + self._sync_interval_s
            while not self._closing and (remaining := deadline - time.monotonic()) > 0:
                self._wake.wait(remaining)
            if self._closing or self.failed is not None:
                return False  # close() does the last sync itself
            target, fd = self.seq, self.storage.dup(self._fd)
            self._dirty_since = None
        try:
            self.storage.fdatasync(fd)
        finally:
            self.storage.close(fd)
        with self._io:
            self.synced_seq = max(self.synced_seq, target)
        return True

    def close(self) -> None:
        """Sync what is unsynced (unless durability is "off") and close. Raises
        ``StorageError`` if the writer failed, so a lost window is never reported as
        saved."""
        with self._io:
            self._closing = True
            self._wake.notify()
        if self._syncer is not None:
            self._syncer.join()
        with self._io:
            if self.durability != "off" and self._dirty_since is not None:
                self._sync_locked(raise_errors=False)
            if self._fd >= 0:
                self.storage.close(self._fd)
                self._fd = -1
        self.check()
