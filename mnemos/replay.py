"""Replay logs: export a database's events to one self-contained file, replay it anywhere,
and report the first place a replay diverges (FORMAT.md "Replay logs").

A replay log holds the events exactly as the database logged them, each with a running
digest of every event before it (so an edited event is found at exactly that event), and
the state hash every ``checkpoint_every`` events and at the end (so a replay that computes
another state from the same events is found at the next checkpoint). Replaying applies the
events to the pure state machine: no clock, embedder or environment is read, so the same
log gives the same state hashes on every machine and on both backends.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import msgpack
import numpy as np
import zstandard

from . import format as fmt
from . import retrieval, trace
from ._native import crc32
from .errors import CorruptDatabaseError, InvalidInputError
from .events import decode_event
from .index.ann import available as ann_available
from .state import State
from .wal import list_numbered, segment_records

if TYPE_CHECKING:
    from .db import Mnemos

MAGIC = b"MNEMORPL"
VERSION = 1
PREFIX = struct.Struct("<8sII")  # magic, version, header bytes
ENTRY = struct.Struct("<BQIII")  # kind, seq, txn_index, txn_count, payload bytes
KIND_EVENT = 1
KIND_CHECKPOINT = 2
KIND_TRACE = 3
KIND_END = 4
CHAIN_BYTES = 16
CHECKPOINT_EVERY = 10_000
_READ_CHUNK = 1 << 20


def chain_next(chain: bytes, seq: int, event: bytes | memoryview) -> bytes:
    """The running digest after event ``seq``: BLAKE2b-128 of the previous digest, the seq
    (u64) and the event's bytes (FORMAT.md "Replay logs")."""
    h = hashlib.blake2b(chain, digest_size=CHAIN_BYTES)
    h.update(seq.to_bytes(8, "little"))
    h.update(event)
    return h.digest()


def log_records(
    wal_dir: str, first_seq: int, last_seq: int
) -> Iterator[tuple[int, int, int, bytes]]:
    """(seq, txn_index, txn_count, payload) of every committed record from ``first_seq``
    to ``last_seq``, read from the retained segments (FORMAT.md "Record")."""
    segments = list_numbered(wal_dir, fmt.WAL_SUFFIX)
    start = [s for s in segments if s <= first_seq]
    if not start:
        raise InvalidInputError(
            f"event {first_seq} is no longer in the log of {os.path.dirname(wal_dir)} "
            "(log_retention='delete', or a compact since); export a later range"
        )
    for first in segments[segments.index(start[-1]) :]:
        if first > last_seq:
            return
        _data, spans = segment_records(os.path.join(wal_dir, fmt.segment_name(first)), first)
        for span in spans:
            if span.seq > last_seq:
                return
            if span.seq >= first_seq:
                yield span.seq, span.txn_index, span.txn_count, bytes(span.payload)


# -- export ---------------------------------------------------------------------------------


def _filtered(wal_dir: str, last: int, namespaces: set[str]) -> list[tuple[int, int, int, bytes]]:
    """Events ``1..last`` that concern only memories in ``namespaces``, renumbered from 1,
    each transaction keeping the events of it that were kept (FORMAT.md "Replay logs")."""
    ns_of: dict[str, str] = {}
    kept: list[tuple[int, int, int, bytes]] = []
    txn: list[bytes] = []
    ended = True
    for _seq, index, count, payload in log_records(wal_dir, 1, last):
        event = decode_event(payload)
        kind = event["t"]
        if kind == "remember":
            ns_of[event["id"]] = event["ns"]
            keep = event["ns"] in namespaces
        elif kind in ("update", "forget"):
            keep = ns_of.get(event["id"]) in namespaces
        elif kind in ("connect", "disconnect"):
            keep = ns_of.get(event["a"]) in namespaces and ns_of.get(event["b"]) in namespaces
        else:  # init, compact: they concern every memory
            keep = True
        if keep:
            txn.append(payload)
        if index + 1 == count:
            first = len(kept) + 1
            kept += [(first + i, i, len(txn), p) for i, p in enumerate(txn)]
            txn = []
        ended = index + 1 == count
    if not ended:
        raise InvalidInputError(f"export until seq {last} would end inside a transaction")
    return kept


def export(
    db: Mnemos,
    path: str,
    first: int,
    last: int,
    base: State,
    checkpoint_every: int,
    namespaces: set[str] | None = None,
) -> dict[str, Any]:
    """Write events ``first..last`` of ``db`` (whose state before ``first`` is ``base``) to
    the replay log ``path``, atomically; with ``namespaces`` (from seq 1 only), just the
    events of memories in them, renumbered, and no traces. Returns what was written."""
    state = base
    records: Any
    if namespaces is None:
        records = log_records(db._wal_dir, first, last)
    else:
        records = _filtered(db._wal_dir, last, namespaces)
        last = len(records)
    header = {
        "format": db._version,
        "base": None if first == 1 else {"seq": first - 1, "state_hash": base.state_hash()},
        "first_seq": first,
        "last_seq": last,
        "checkpoint_every": checkpoint_every,
        "namespaces": None if namespaces is None else sorted(namespaces),
        "dim": db._state.dim,
        "embedder": db._state.embedder,
    }
    packed = msgpack.packb(header, use_bin_type=True)
    prefix = PREFIX.pack(MAGIC, VERSION, len(packed)) + packed
    prefix += crc32(prefix).to_bytes(4, "little")
    tmp = path + fmt.TMP_SUFFIX
    traces: dict[int, list[bytes]] = {}
    for traced in trace.read(os.path.join(db.path, trace.TRACE_FILE))[0]:
        if namespaces is None and first - 1 <= traced["after"] <= last:
            traces.setdefault(traced["after"], []).append(msgpack.packb(traced, use_bin_type=True))
    traced_count = sum(map(len, traces.values()))
    chain = bytes(CHAIN_BYTES)
    events = checkpoints = at_checkpoint = 0
    interval = checkpoint_every
    state.reserve(last - first + 1)
    with open(tmp, "wb") as f:
        f.write(prefix)
        params = zstandard.ZstdCompressionParameters.from_level(3, write_checksum=True)
        with zstandard.ZstdCompressor(compression_params=params).stream_writer(
            f, closefd=False
        ) as out:
            for payload in traces.get(first - 1, []):
                _write_entry(out, KIND_TRACE, first - 1, 0, 0, payload)
            for seq, index, count, payload in records:
                if seq == first and index:
                    raise InvalidInputError(
                        f"export from seq {first} would start inside a transaction; start at "
                        f"seq {first - index}"
                    )
                chain = chain_next(chain, seq, payload)
                _write_entry(out, KIND_EVENT, seq, index, count, chain + payload)
                state.apply(seq, decode_event(payload))
                events += 1
                if seq == last and index + 1 != count:
                    raise InvalidInputError(
                        f"export until seq {last} would end inside a transaction of {count} "
                        f"events; end at seq {last - index + count - 1} or {last - index - 1}"
                    )
                # Every checkpoint_every events, or once the state holds more rows than
                # that, every as many events as rows: a state hash costs about as much as
                # applying one event per row, so checkpoints at most double the work.
                if events - at_checkpoint >= interval and index + 1 == count and seq != last:
                    at_checkpoint = events
                    interval = max(checkpoint_every, len(state.ids))
                    _write_entry(out, KIND_CHECKPOINT, seq, 0, 0, _digest(state))
                    checkpoints += 1
                if index + 1 == count and seq != last:
                    for traced_payload in traces.get(seq, []):
                        _write_entry(out, KIND_TRACE, seq, 0, 0, traced_payload)
            if state.seq != last:
                raise InvalidInputError(f"the log ends at seq {state.seq}, before {last}")
            _write_entry(out, KIND_CHECKPOINT, last, 0, 0, _digest(state))
            checkpoints += 1
            for traced_payload in traces.get(last, []):
                _write_entry(out, KIND_TRACE, last, 0, 0, traced_payload)
            end: dict[str, Any] = {"events": events, "checkpoints": checkpoints}
            end["traces"], end["chain"] = traced_count, chain
            _write_entry(out, KIND_END, last, 0, 0, msgpack.packb(end, use_bin_type=True))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return {
        "path": path,
        "first_seq": first,
        "last_seq": last,
        "events": events,
        "checkpoints": checkpoints,
        "traces": traced_count,
        "bytes": os.path.getsize(path),
        "state_hash": state.state_hash(),
    }


def _digest(state: State) -> bytes:
    return bytes.fromhex(state.state_hash())


def _write_entry(out: Any, kind: int, seq: int, index: int, count: int, payload: bytes) -> None:
    head = ENTRY.pack(kind, seq, index, count, len(payload))
    out.write(head)
    out.write(payload)
    out.write(crc32(payload, crc32(head)).to_bytes(4, "little"))


# -- reading --------------------------------------------------------------------------------


@dataclass
class Entry:
    kind: int
    seq: int
    txn_index: int
    txn_count: int
    payload: bytes


class ReplayLog:
    """A replay log opened for reading: ``header``, then ``entries()`` in order, each
    checked against its CRC (damage raises ``CorruptDatabaseError`` naming the entry)."""

    def __init__(self, path: str):
        self.path = path
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by close())
        try:
            self.header = self._read_header()
        except BaseException:
            self._file.close()
            raise

    def _fail(self, what: str, offset: int | None = None) -> CorruptDatabaseError:
        return CorruptDatabaseError(
            f"replay log {self.path} is damaged: {what}; export it again from the database",
            path=self.path,
            offset=offset,
        )

    def _read_header(self) -> dict[str, Any]:
        head = self._file.read(PREFIX.size)
        if len(head) < PREFIX.size or head[:8] != MAGIC:
            raise InvalidInputError(f"{self.path} is not a Mnemos replay log (no MNEMORPL magic)")
        _magic, version, size = PREFIX.unpack(head)
        if version != VERSION:
            raise InvalidInputError(
                f"{self.path} is replay log version {version}; this Mnemos reads version "
                f"{VERSION}: upgrade mnemos-db"
            )
        body = self._file.read(size + 4)
        if len(body) != size + 4 or crc32(body[:size], crc32(head)) != int.from_bytes(
            body[size:], "little"
        ):
            raise self._fail("its header fails its checksum", 0)
        header: dict[str, Any] = msgpack.unpackb(body[:size], raw=False)
        if not isinstance(header, dict):
            raise self._fail("its header is not a map", PREFIX.size)
        if header.get("format") not in range(1, fmt.FORMAT_VERSION + 1):
            raise InvalidInputError(
                f"{self.path} holds events of database format {header.get('format')!r}; this "
                f"Mnemos reads formats 1 to {fmt.FORMAT_VERSION}: upgrade mnemos-db"
            )
        return header

    def entries(self) -> Iterator[Entry]:
        reader = zstandard.ZstdDecompressor().stream_reader(self._file, read_size=_READ_CHUNK)
        buf = b""
        pos = 0  # the next entry starts at buf[pos]
        at = 0  # body offset of buf[0]
        done = False

        def fill(need: int) -> bool:
            """Make ``need`` bytes from ``pos`` available, if the body has them."""
            nonlocal buf, pos, at, done
            if len(buf) - pos >= need:
                return True
            parts = [buf[pos:]]
            have = len(parts[0])
            while have < need and not done:
                try:
                    chunk = reader.read(max(_READ_CHUNK, need - have))
                except zstandard.ZstdError as exc:
                    raise self._fail(f"its body does not decompress ({exc})") from None
                if not chunk:
                    done = True
                parts.append(chunk)
                have += len(chunk)
            at += pos
            buf, pos = b"".join(parts), 0
            return have >= need

        while fill(ENTRY.size):
            kind, seq, index, count, size = ENTRY.unpack_from(buf, pos)
            total = ENTRY.size + size + 4
            if size > fmt.EVENT_BYTES_MAX + CHAIN_BYTES or not fill(total):
                raise self._fail(f"entry at body offset {at + pos} runs past the end", at + pos)
            view = memoryview(buf)[pos : pos + total]
            if crc32(view[:-4]) != int.from_bytes(view[-4:], "little"):
                raise self._fail(
                    f"entry at body offset {at + pos} (seq {seq}) fails its checksum", at + pos
                )
            yield Entry(kind, seq, index, count, bytes(view[ENTRY.size : -4]))
            pos += total
        if len(buf) > pos:
            raise self._fail(f"{len(buf) - pos} stray bytes at body offset {at + pos}", at + pos)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ReplayLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- replay ---------------------------------------------------------------------------------


@dataclass
class Divergence:
    """The first place a replay disagrees with its log: ``kind`` is ``"event"`` (the event's
    bytes are not the ones exported: its running digest differs), ``"state"`` (the state
    after ``seq`` hashes differently from the log's checkpoint) or ``"end"`` (the log's
    totals disagree with what was replayed)."""

    seq: int
    kind: str
    expected: str
    actual: str
    expected_state_hash: str | None
    actual_state_hash: str


@dataclass
class ReplayReport:
    path: str
    into: str | None
    events_applied: int = 0
    checkpoints_verified: int = 0
    traces_verified: int = 0  # traced asks asked again with the same answer
    traces_skipped: int = 0  # traced asks the graph answered, on a backend without it
    first_seq: int = 0
    last_seq: int = 0
    state_hash: str = ""
    complete: bool = False  # reached the end of the log (not stopped by stop_at)
    divergence: Divergence | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No divergence was found."""
        return self.divergence is None


def run(path: str, into: Mnemos | None, *, verify: bool, stop_at: int | None) -> ReplayReport:
    """Apply the log at ``path`` to a fresh state, or through ``into`` (a database at the
    log's base state, or one just made from its first event), appending the events to it."""
    with ReplayLog(path) as log:
        header = log.header
        base = header.get("base")
        report = ReplayReport(path=path, into=None if into is None else into.path)
        report.first_seq, report.last_seq = header["first_seq"], header["last_seq"]
        state = State() if into is None else into._state
        if base is not None and into is None:
            raise InvalidInputError(
                f"{path} continues a database from seq {base['seq']}: replay it into a "
                f"database at that state, such as db.fork(path, at={base['seq']})"
            )
        if base is not None and (
            state.seq != base["seq"] or state.state_hash() != base["state_hash"]
        ):
            raise InvalidInputError(
                f"{path} continues the state at seq {base['seq']} (hash "
                f"{base['state_hash'][:16]}...); the database is at seq {state.seq} with "
                "another state"
            )
        chain = bytes(CHAIN_BYTES)
        batch: list[bytes] = []
        if into is None:
            state.reserve(report.last_seq - report.first_seq + 1)
        for entry in log.entries():
            if entry.kind == KIND_EVENT:
                if stop_at is not None and entry.seq > stop_at and not batch:
                    break
                expected, event = entry.payload[:CHAIN_BYTES], entry.payload[CHAIN_BYTES:]
                chain = chain_next(chain, entry.seq, event) if verify else expected
                if chain != expected:
                    report.divergence = Divergence(
                        entry.seq, "event", expected.hex(), chain.hex(), None, state.state_hash()
                    )
                    break
                report.events_applied += 1
                if into is None:
                    state.apply(entry.seq, decode_event(event))
                elif entry.seq > state.seq:  # a new database already holds its init event
                    batch.append(event)
                    if entry.txn_index + 1 == entry.txn_count:
                        into._append_replayed(batch)
                        batch = []
            elif entry.kind == KIND_CHECKPOINT and verify:
                actual = state.state_hash()
                if actual != entry.payload.hex():
                    report.divergence = Divergence(
                        entry.seq, "state", entry.payload.hex(), actual, entry.payload.hex(), actual
                    )
                    break
                report.checkpoints_verified += 1
            elif entry.kind == KIND_TRACE and verify:
                traced = msgpack.unpackb(entry.payload, raw=False)
                if traced["path"] == "ann" and not ann_available():
                    report.traces_skipped += 1
                    continue
                again = _ask_again(state, traced)
                if not trace.same_hits(traced["hits"], again):
                    report.divergence = Divergence(
                        entry.seq,
                        "read",
                        _hits_text(traced["hits"]),
                        _hits_text(again),
                        None,
                        state.state_hash(),
                    )
                    break
                report.traces_verified += 1
            elif entry.kind == KIND_END:
                end = msgpack.unpackb(entry.payload, raw=False)
                report.details = {"events": end["events"], "checkpoints": end["checkpoints"]}
                if verify and (end["events"] != report.events_applied or end["chain"] != chain):
                    report.divergence = Divergence(
                        entry.seq,
                        "end",
                        f"{end['events']} events",
                        f"{report.events_applied} events",
                        None,
                        state.state_hash(),
                    )
                report.complete = True
                break
        else:
            if stop_at is None:
                raise log._fail("it ends before its END entry (truncated?)")
        report.state_hash = state.state_hash()
        return report


def _ask_again(state: State, traced: dict[str, Any]) -> list[tuple[str, float]]:
    """A traced ask run on ``state``, by the path that answered it (graph or exact)."""
    params = trace.decode_params(traced["params"])
    params = dataclasses.replace(params, exact=traced["path"] == "exact")
    vector = None if traced["vec"] is None else np.frombuffer(traced["vec"], dtype="<f4")
    hits = retrieval.rank(state, params, [(traced["query"], vector)])[0]
    return [(state.ids[hit.row], hit.score) for hit in hits]


def _hits_text(hits: Any) -> str:
    return " ".join(f"{mid}:{score:.6f}" for mid, score in hits)


# -- diff -----------------------------------------------------------------------------------


class Source:
    """A replay log (from seq 1) or a database directory, read for ``diff``: a digest of
    each event by seq, and the final state."""

    def __init__(self, path: str | os.PathLike[str]):
        from .db import Mnemos  # db imports this module

        self.path = os.fspath(path)
        self.events: dict[int, bytes] = {}
        if os.path.isdir(self.path):
            with Mnemos.open(self.path, embedder=None, readonly=True, create=False) as db:
                self.state = db._state
                wal = os.path.join(self.path, fmt.WAL_DIR)
                for seq, _index, _count, payload in log_records(wal, 1, db.seq):
                    self.events[seq] = _event_digest(payload)
            return
        self.state = State()
        with ReplayLog(self.path) as log:
            if log.header.get("base") is not None:
                raise InvalidInputError(
                    f"{self.path} starts after seq 1; diff compares whole histories"
                )
            for entry in log.entries():
                if entry.kind == KIND_EVENT:
                    event = entry.payload[CHAIN_BYTES:]
                    self.events[entry.seq] = _event_digest(event)
                    self.state.apply(entry.seq, decode_event(event))

    def memories(self) -> dict[str, tuple[Any, ...]]:
        """Each live memory's id and content (text, metadata, namespace, kind, importance,
        timestamp, vector)."""
        s = self.state
        return {
            mid: (*s._content(row)[4:], s.vector(row).tobytes())
            for mid, row in s.rows.items()
            if not s.dseqs[row]
        }


def _event_digest(event: bytes) -> bytes:
    return hashlib.blake2b(event, digest_size=16).digest()


def diff(a: Source, b: Source) -> dict[str, Any]:
    """The first seq whose event differs (or exists on one side only), and the live
    memories only in ``a``, only in ``b``, and in both with different content."""
    first = None
    for seq in range(1, max(len(a.events), len(b.events)) + 1):
        if a.events.get(seq) != b.events.get(seq):
            first = seq
            break
    ma, mb = a.memories(), b.memories()
    changed = sorted(mid for mid in ma.keys() & mb.keys() if ma[mid] != mb[mid])
    result = {
        "a": a.path,
        "b": b.path,
        "first_diverging_seq": first,
        "a_state_hash": a.state.state_hash(),
        "b_state_hash": b.state.state_hash(),
        "only_in_a": sorted(ma.keys() - mb.keys()),
        "only_in_b": sorted(mb.keys() - ma.keys()),
        "changed": changed,
    }
    result["same"] = first is None and result["a_state_hash"] == result["b_state_hash"]
    return result
