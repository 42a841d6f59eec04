"""``Mnemos``: open, lock, recover, and the public verbs.

Every mutation is checked, encoded as an event, appended to the log (and synced as the
durability mode says) and only then applied to the in-memory state, from the log's own
bytes, so the live state is exactly what a replay of the log would build.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import itertools
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np

from . import chunking, config, replay, retrieval, trace
from . import format as fmt
from ._native import backend, crc32
from .config import UNSET
from .config import is_int as _is_int
from .errors import (
    CorruptDatabaseError,
    DatabaseClosedError,
    DatabaseLockedError,
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFound,
    ReadOnlyError,
    StorageError,
)
from .events import (
    Clock,
    check_id,
    check_importance,
    check_kind,
    check_metadata,
    check_namespace,
    check_relation,
    check_text,
    check_vector,
    check_weight,
    decode_event,
    decode_meta,
    encode_event,
    from_micros,
    now_micros,
    to_micros,
)
from .index.ann import BACKGROUND_CHUNK as ANN_BACKGROUND_CHUNK
from .index.ann import GraphBuilder
from .index.ann import available as ann_available
from .snapshot import SnapshotError, SnapshotInfo, load_snapshot, write_snapshot
from .state import State
from .state import Version as VersionTuple
from .storage import OSStorage, write_atomically
from .trace import TRACE_FILE, TraceWriter
from .types import Document, Hit, Memory, Neighbor, Version
from .wal import (
    LogCursor,
    LogEvents,
    LogWriter,
    SnapshotMismatch,
    Tail,
    check_version,
    decode_segment_header,
    encode_record,
    encode_segment_header,
    list_numbered,
    new_salt,
    record_spans,
    scan_records,
)

log = logging.getLogger("mnemos")

SNAPSHOTS_KEPT = 2  # the newest, and one to fall back on if the newest is damaged
TOP_K_MAX = 10_000
DEPTH_MAX = 16
_EMBED_BATCH = 64  # texts per embedding call when ingesting a document
_PROGRESS_ITEMS_MIN = 64  # show ingestion progress (on a terminal) above this many chunks


def _default_clock() -> float:
    return time.time()


class Mnemos:
    """An embedded memory database: a directory holding a log and snapshots.

    Open with ``Mnemos.open(path)``. One process may write (it holds ``LOCK``); any
    number may read with ``readonly=True`` and follow the writer with ``refresh()``.
    A ``Mnemos`` object may be shared by threads.
    """

    # -- open / close ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        embedder: Any = "default",
        dim: int | None = UNSET,
        durability: str = UNSET,
        readonly: bool = False,
        create: bool = True,
        trace: bool = UNSET,
        clock: Clock | None = None,
        snapshot_every_events: int | None = UNSET,
        snapshot_every_bytes: int | None = UNSET,
        log_retention: str = UNSET,
        segment_bytes: int = UNSET,
        sync_interval_ms: float = UNSET,
        ann_background: bool = UNSET,
    ) -> Mnemos:
        """Open (or create) the database at ``path`` (default: ``$MNEMOS_DB``).

        ``durability``: "full" (default) syncs the log before every write returns,
        "normal" syncs at most every ``sync_interval_ms`` (50) and on close (a crash may
        lose that window but never corrupts), "off" leaves syncing to the OS.
        ``log_retention``: "keep" (default) keeps log segments that a snapshot covers
        (history and as-of reads need them), "delete" removes them. A snapshot is written
        automatically after ``snapshot_every_events`` (10,000) events or
        ``snapshot_every_bytes`` (64 MiB) of log; log segments roll at ``segment_bytes``
        (64 MiB). ``ann_background`` (True): bring the approximate index up to date on a
        background thread (else the first approximate ask after writes does it); answers
        are the same. ``trace`` (False): record every ``ask`` (parameters, query vector,
        hits) beside the log, for ``export_replay`` and a replay to check (writer handles
        only).

        Each of these options not passed is read from ``MNEMOS_<OPTION>`` (say
        ``MNEMOS_DURABILITY=normal``, ``MNEMOS_TRACE=1``) if set, else takes its default
        (README "Configuration").
        """
        options = {
            "dim": dim,
            "durability": durability,
            "trace": trace,
            "snapshot_every_events": snapshot_every_events,
            "snapshot_every_bytes": snapshot_every_bytes,
            "log_retention": log_retention,
            "segment_bytes": segment_bytes,
            "sync_interval_ms": sync_interval_ms,
            "ann_background": ann_background,
        }
        resolved = {name: config.resolve(name, value) for name, value in options.items()}
        if readonly and trace is UNSET:  # MNEMOS_TRACE is for the writers it reaches
            resolved["trace"] = False
        config.check_flag("readonly", readonly)
        config.check_flag("create", create)
        return cls(
            config.db_path(path),
            embedder=embedder,
            readonly=readonly,
            create=create,
            clock=clock,
            **resolved,
        )

    def __init__(
        self,
        path: str,
        *,
        embedder: Any,
        dim: int | None,
        durability: str,
        readonly: bool,
        create: bool,
        clock: Clock | None,
        snapshot_every_events: int | None,
        snapshot_every_bytes: int | None,
        log_retention: str,
        segment_bytes: int,
        sync_interval_ms: float,
        ann_background: bool = True,
        as_of_seq: int | None = None,
        init_payload: bytes | None = None,
        trace: bool = False,
    ):
        self.path = path
        self.readonly = readonly
        self.durability = durability
        # "default" is resolved once the database is read: a new one gets the built-in
        # model, an existing one the model it records (or none, if it has none).
        self._default_embedder = isinstance(embedder, str) and embedder == "default"
        self._embedder: Any = None if self._default_embedder else _resolve_embedder(embedder)
        self._clock: Clock = clock if clock is not None else _default_clock
        self._snapshot_every_events = snapshot_every_events
        self._snapshot_every_bytes = snapshot_every_bytes
        self._retention = log_retention
        self._storage = OSStorage()
        self._lock = threading.RLock()
        self._closed = False
        self._lock_fd = -1
        self._writer: LogWriter | None = None
        self._cursor: LogCursor | None = None
        self._wal_dir = os.path.join(path, fmt.WAL_DIR)
        self._snap_dir = os.path.join(path, fmt.SNAPSHOT_DIR)
        self._events_since_snapshot = 0
        self._bytes_since_snapshot = 0
        self._last_snapshot_seq = 0
        self._last_snapshot_bytes = 0
        self._open_stats: dict[str, Any] = {}
        self._version = fmt.CREATED_VERSION  # the MNEMOS file's, read by open
        self._ann_background = ann_background and ann_available()
        self._builder: GraphBuilder | None = None
        # A view of the past (``as_of``): the state after this seq, never refreshed.
        self._as_of_seq = as_of_seq
        # A replay into a new database creates it with the replayed log's first event.
        self._init_payload = init_payload
        if trace and readonly:
            raise InvalidInputError("trace=True records asks in the database: open it writable")
        self._tracer: TraceWriter | None = None
        _OPEN_HANDLES.add(self)
        try:
            self._prepare_directory(create, dim)
            self._state, tail = self._recover()
            if not readonly:
                self._writer = LogWriter(
                    self._storage,
                    self._wal_dir,
                    tail,
                    durability=durability,
                    segment_bytes=segment_bytes,
                    sync_interval_ms=sync_interval_ms,
                )
            self._check_identity(dim)
            if trace:
                self._tracer = TraceWriter(self._storage, os.path.join(path, TRACE_FILE))
        except BaseException:
            self._release()
            raise
        self._wake_builder()

    def _wake_builder(self) -> None:
        """Start or wake the background ANN builder if the queue has work."""
        ann = self._state.ann
        if not self._ann_background or ann is None or not ann.pending:
            return
        if self._builder is None:
            self._builder = GraphBuilder(self._ann_step)
        self._builder.wake()

    def _ann_step(self) -> bool:
        """One chunk of the background build; whether more is queued."""
        with self._lock:
            ann = self._state.ann
            if self._closed or ann is None or not ann.pending:
                return False
            ann.advance(self._state.vectors, ANN_BACKGROUND_CHUNK)
            return ann.pending > 0

    def _prepare_directory(self, create: bool, dim: int | None) -> None:
        """Take the writer lock and make sure ``path`` is a database (creating it)."""
        path = self.path
        if os.path.exists(path) and not os.path.isdir(path):
            raise InvalidInputError(f"{path} is a file, not a Mnemos database directory")
        if not os.path.isdir(path):
            if self.readonly or not create:
                raise InvalidInputError(
                    f"no Mnemos database at {path}; check the path"
                    + ("" if self.readonly else ", or open it with create=True to make one")
                )
            self._storage.mkdir(path)
            self._storage.fsync_dir(os.path.dirname(os.path.abspath(path)))
        ours = {
            fmt.LOCK_FILE,
            fmt.WAL_DIR,
            fmt.SNAPSHOT_DIR,
            fmt.DB_FILE,
            fmt.DB_FILE + fmt.TMP_SUFFIX,
            TRACE_FILE,
        }
        foreign = sorted(set(os.listdir(path)) - ours)
        if foreign:  # checked before the lock file is made: refusing writes nothing
            raise InvalidInputError(
                f"{path} is not a Mnemos database (it holds {', '.join(foreign[:3])}); "
                "choose an empty or new directory"
            )
        if not self.readonly:
            self._lock_fd = take_writer_lock(path)
        db_file = os.path.join(path, fmt.DB_FILE)
        if os.path.exists(db_file):
            self._version = _check_db_file(db_file)
            return
        if self.readonly:
            raise InvalidInputError(
                f"{path} is not initialised yet; open it once without readonly=True"
            )
        if not self._creation_leftovers_only():
            raise CorruptDatabaseError(
                f"{db_file} is missing but {path} holds a log or snapshots; restore the "
                "MNEMOS file from a backup (nothing was changed)",
                path=db_file,
            )
        self._create(dim)

    def _creation_leftovers_only(self) -> bool:
        """Without MNEMOS, is what ``wal/`` and ``snapshots/`` hold at most what an
        interrupted creation leaves (segment 1 with nothing but the init event)? Anything
        more is a database that lost its MNEMOS file, and must not be wiped."""
        if list_numbered(self._snap_dir, fmt.SNAP_SUFFIX):
            return False
        segments = list_numbered(self._wal_dir, fmt.WAL_SUFFIX)
        if not segments:
            return True
        if segments != [1]:
            return False
        path = os.path.join(self._wal_dir, fmt.segment_name(1))
        with open(path, "rb") as f:
            data = f.read()
        try:
            header = decode_segment_header(data, path)
        except CorruptDatabaseError:
            return False
        body = memoryview(data)[fmt.SEGMENT_HEADER_BYTES :]
        result = scan_records(body, fmt.SEGMENT_HEADER_BYTES, header.salt, 0, 0)
        return result.status == "clean" and len(result.records) <= 1

    def _create(self, dim: int | None) -> None:
        """Lay out a new database. The log (with its first event) is written before the
        MNEMOS file, so a directory with MNEMOS always has a log; without MNEMOS, the
        creation never finished, nothing was acknowledged, and leftovers are replaced."""
        try:
            self._lay_out(dim)
        except OSError as exc:
            err = StorageError(
                f"creating the database at {self.path} failed ({exc}); nothing was written "
                "that matters: free space or fix the error and open it again"
            )
            err.errno = exc.errno
            raise err from exc

    def _lay_out(self, dim: int | None) -> None:
        for sub in (self._wal_dir, self._snap_dir):
            self._storage.mkdir(sub)
            for name in os.listdir(sub):
                self._storage.unlink(os.path.join(sub, name))
        self._storage.fsync_dir(self.path)
        salt = new_salt()
        payload = self._init_payload or encode_event(self._init_event(dim))
        record, _crc = encode_record(salt, 1, 0, 0, 1, 0, payload)
        write_atomically(
            self._storage,
            os.path.join(self._wal_dir, fmt.segment_name(1)),
            [encode_segment_header(1, 0, salt), record],
        )
        self._write_db_file(fmt.CREATED_VERSION)

    def _write_db_file(self, version: int) -> None:
        header = fmt.DB_HEADER.pack(fmt.DB_MAGIC, version, 0)[:12]
        write_atomically(
            self._storage,
            os.path.join(self.path, fmt.DB_FILE),
            [header + crc32(header).to_bytes(4, "little")],
        )
        self._version = version

    def _upgrade_for(self, kinds: Iterable[str]) -> None:
        """Move the database to format 2 before it logs its first event only format 2
        defines; a version-1 reader then refuses it instead of misreading it."""
        if self._version < fmt.FORMAT_VERSION and not fmt.V2_EVENTS.isdisjoint(kinds):
            try:
                self._write_db_file(fmt.FORMAT_VERSION)
            except OSError as exc:
                raise StorageError(
                    f"upgrading {self.path} to format {fmt.FORMAT_VERSION} failed ({exc}); "
                    "nothing was logged: fix the error and try again"
                ) from exc
            log.info("%s: upgraded to format version %d", self.path, fmt.FORMAT_VERSION)

    def _recover(self) -> tuple[State, Tail]:
        """Newest valid snapshot plus the log after it; cleans orphans when writing.

        A reader racing a writer that prunes files retries from the new listing.
        """
        for attempt in range(5):
            listing = self._listing()
            try:
                return self._recover_once()
            except (FileNotFoundError, CorruptDatabaseError) as exc:
                if self.readonly and attempt < 4 and self._listing() != listing:
                    continue  # the writer pruned files under us; look again
                if isinstance(exc, CorruptDatabaseError):
                    exc.args = (
                        f"{exc.args[0]}. Run `mnemos verify {self.path}` for a full report "
                        f"and `mnemos repair {self.path}` to fix it (it keeps a backup)",
                    )
                raise
        raise AssertionError("unreachable")

    def _segment_gone(self) -> bool:
        assert self._cursor is not None
        segment = self._cursor.segment
        return segment is not None and not os.path.exists(
            os.path.join(self._wal_dir, fmt.segment_name(segment))
        )

    def _listing(self) -> tuple[list[int], list[int]]:
        return list_numbered(self._wal_dir, fmt.WAL_SUFFIX), list_numbered(
            self._snap_dir, fmt.SNAP_SUFFIX
        )

    def _recover_once(self) -> tuple[State, Tail]:
        if not self.readonly:
            self._remove_orphans()
        if not list_numbered(self._wal_dir, fmt.WAL_SUFFIX):
            raise CorruptDatabaseError(
                f"{self._wal_dir} holds no log segment, but {self.path} was created: the log "
                "is missing",
                path=self._wal_dir,
            )
        damaged: list[str] = []
        at = self._as_of_seq
        snapshots = list_numbered(self._snap_dir, fmt.SNAP_SUFFIX)
        if at is not None:  # a view of the past starts from a snapshot at or before it
            snapshots = [seq for seq in snapshots if seq <= at]
        for snap_seq in [*reversed(snapshots), 0]:
            started = time.perf_counter()
            state = State()
            snap_crc: int | None = None
            snap_path = os.path.join(self._snap_dir, fmt.snapshot_name(snap_seq))
            if snap_seq:
                try:
                    state, snap_crc = load_snapshot(snap_path)
                except (SnapshotError, OSError) as exc:
                    log.warning("skipping damaged snapshot %s: %s", snap_path, exc)
                    damaged.append(f"{snap_path} ({exc})")
                    continue
            snapshot_loaded = time.perf_counter()
            cursor = LogCursor(self._wal_dir, state.seq, snapshot_crc=snap_crc)
            try:
                records, tail = cursor.read_events()
            except SnapshotMismatch:
                log.warning("skipping snapshot %s: it does not match the log", snap_path)
                damaged.append(f"{snap_path} (does not match the log)")
                continue
            except CorruptDatabaseError as exc:
                if damaged:
                    exc.args = (f"{exc.args[0]}; damaged snapshots: {'; '.join(damaged)}",)
                raise
            if tail.seq < state.seq:
                raise CorruptDatabaseError(
                    f"the log ends at seq {tail.seq} but snapshot {snap_path} is at seq "
                    f"{state.seq}: a log segment is missing",
                    path=self._wal_dir,
                )
            if at is not None:
                if tail.seq < at:
                    raise InvalidInputError(
                        f"{self.path} has no event {at}: its log ends at {tail.seq}"
                    )
                records.until(at)
            scanned = time.perf_counter()
            state.reserve(len(records))
            self._apply_records(state, records, cursor.wal_dir)
            self._open_stats = {
                "snapshot_seq": snap_seq,
                "snapshot_load_ms": (snapshot_loaded - started) * 1000.0,
                "log_scan_ms": (scanned - snapshot_loaded) * 1000.0,
                "log_replay_ms": (time.perf_counter() - scanned) * 1000.0,
                "events_replayed": len(records),
            }
            if tail.torn_offset is not None:
                self._handle_torn_tail(tail)
            self._cursor = cursor
            self._last_snapshot_seq = state.seq if snap_seq else 0
            self._last_snapshot_bytes = os.path.getsize(snap_path) if snap_seq else 0
            self._events_since_snapshot = tail.seq - self._last_snapshot_seq
            self._bytes_since_snapshot = sum(
                os.path.getsize(os.path.join(self._wal_dir, fmt.segment_name(first)))
                for first in list_numbered(self._wal_dir, fmt.WAL_SUFFIX)
                if first > self._last_snapshot_seq
            )
            return state, tail
        raise AssertionError("unreachable: replay from seq 0 always returns or raises")

    def _apply_records(self, state: State, records: LogEvents, where: str) -> None:
        """Apply what ``LogCursor.read_events`` gave: decoded events, and payloads left to
        ``decode_event``."""
        for seq, event in records:
            try:
                state.apply(seq, event if isinstance(event, dict) else decode_event(event))
            except Exception as exc:  # a checksummed event that will not apply
                raise CorruptDatabaseError(
                    f"event at seq {seq} in {where} cannot be applied ({exc!r}); run "
                    "`mnemos verify` for details",
                    path=where,
                ) from exc

    def _handle_torn_tail(self, tail: Tail) -> None:
        path = os.path.join(self._wal_dir, fmt.segment_name(tail.segment))
        if self.readonly:
            return  # an append may still be in flight; the writer owns the tail
        log.warning(
            "truncating torn log tail in %s at offset %d (%s)",
            path,
            tail.end,
            tail.torn_reason,
        )
        try:
            self._storage.truncate(path, tail.end)
        except OSError as exc:
            raise StorageError(f"could not cut the torn tail of {path}: {exc}") from exc
        tail.torn_offset = None

    def _remove_orphans(self) -> None:
        for directory in (self.path, self._wal_dir, self._snap_dir):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(fmt.TMP_SUFFIX):
                    log.info("removing orphan file %s", os.path.join(directory, name))
                    try:
                        self._storage.unlink(os.path.join(directory, name))
                    except OSError as exc:  # harmless: readers ignore orphans
                        log.warning("could not remove orphan %s: %s", name, exc)

    def _init_event(self, dim: int | None) -> dict[str, Any]:
        if self._default_embedder:
            self._embedder = _builtin_embedder()
        emb = self._embedder
        identity = None
        if emb is not None:
            identity = self._identity()
            if dim is not None and dim != emb.dim:
                raise InvalidInputError(f"dim={dim} disagrees with the embedder's dim {emb.dim}")
            dim = int(emb.dim)
        return {
            "t": "init",
            "at": now_micros(self._clock),
            "format": fmt.CREATED_VERSION,
            "dim": dim,
            "embedder": identity,
        }

    def _identity(self) -> dict[str, Any]:
        emb = self._embedder
        assert emb is not None
        if emb.dim is None:  # a wrapped function learns its width from one call
            emb.embed([""])
        return {"name": emb.name, "dim": int(emb.dim), "fingerprint": emb.fingerprint}

    def _check_identity(self, dim: int | None) -> None:
        state = self._state
        if dim is not None and state.dim is not None and dim != state.dim:
            raise InvalidInputError(
                f"{self.path} stores {state.dim}-dimensional vectors; dim={dim} was given"
            )
        recorded = state.embedder
        if self._default_embedder and self._embedder is None and recorded is not None:
            from .embed import MODEL_NAME

            if recorded["name"] != MODEL_NAME:
                raise EmbedderMismatchError(
                    f"{self.path} was created with embedder {_describe(recorded)}; open it "
                    "with that embedder (embedder=...), or with embedder=None to use it "
                    "without one"
                )
            self._embedder = _builtin_embedder()
        if self._embedder is None:
            return
        given = self._identity()
        if recorded != given:
            raise EmbedderMismatchError(
                f"{self.path} was created with embedder {_describe(recorded)} but "
                f"{_describe(given)} was given; open it with that embedder, or with "
                "embedder=None to use it vector-only"
            )

    def close(self) -> None:
        """Sync (unless durability="off") and release the lock. Safe to call twice."""
        builder, self._builder = self._builder, None
        if builder is not None:  # outside the lock: its chunk in progress takes the lock
            builder.stop()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._release()

    def _release(self) -> None:
        writer, self._writer = self._writer, None
        tracer, self._tracer = self._tracer, None
        try:
            if tracer is not None:
                tracer.close()
            if writer is not None:
                writer.close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def __del__(self) -> None:
        # Like a file object, a dropped handle releases its lock instead of holding it
        # until the process exits. Not during interpreter shutdown: _close_all_at_exit
        # has run by then, and the sync thread can no longer be joined.
        if not getattr(self, "_closed", True) and not sys.is_finalizing():
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> Mnemos:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = "closed" if self._closed else ("readonly" if self.readonly else "open")
        return f"<Mnemos {self.path!r} {mode}>"

    # -- the write path ---------------------------------------------------------------

    def _writable(self) -> LogWriter:
        self._check_open()
        if self._writer is None:
            raise ReadOnlyError(
                f"{self.path} was opened with readonly=True; open it without readonly to write"
            )
        self._writer.check()
        return self._writer

    def _check_open(self) -> None:
        if self._closed:
            raise DatabaseClosedError(f"{self.path} is closed; open it again with Mnemos.open")

    def _commit(self, events: list[dict[str, Any]]) -> int:
        """Log ``events`` as one transaction, then apply them; evictions the capacity
        rules call for join the transaction. Returns the first seq."""
        writer = self._writable()
        if self._state.capacity and any(e["t"] == "remember" for e in events):
            events = events + self._evictions(events, events[0]["at"])
        payloads = [encode_event(e) for e in events]
        size = sum(map(len, payloads))
        if size > fmt.TXN_BYTES_MAX:
            raise InvalidInputError(
                f"this batch encodes to {size} bytes, over TXN_BYTES_MAX ({fmt.TXN_BYTES_MAX}); "
                "split it into several remember_many calls"
            )
        self._upgrade_for(e["t"] for e in events)
        first = writer.append(payloads)
        for i, payload in enumerate(payloads):
            self._state.apply(first + i, decode_event(payload))
        self._events_since_snapshot += len(payloads)
        self._bytes_since_snapshot += size + fmt.RECORD_HEADER_BYTES * len(payloads)
        self._maybe_checkpoint()
        self._wake_builder()
        return first

    def _maybe_checkpoint(self) -> None:
        """Snapshot when enough events or log bytes have accumulated, but not before the
        log since the last snapshot is a quarter of that snapshot's size: rewriting a large
        database every few thousand events would cost more than replaying them."""
        due = (
            self._snapshot_every_events is not None
            and self._events_since_snapshot >= self._snapshot_every_events
        ) or (
            self._snapshot_every_bytes is not None
            and self._bytes_since_snapshot >= self._snapshot_every_bytes
        )
        if not due or self._bytes_since_snapshot < self._last_snapshot_bytes // 4:
            return
        try:
            self._checkpoint()
        except (OSError, StorageError) as exc:
            # The events are already durable; a missing snapshot only slows the next open.
            log.warning("automatic snapshot failed (%s); will retry later", exc)
            self._events_since_snapshot = self._bytes_since_snapshot = 0

    def _now(self) -> int:
        return now_micros(self._clock)

    def _embed(self, texts: list[str]) -> list[bytes]:
        emb = self._embedder
        if emb is None:
            raise InvalidInputError(
                "this database has no embedder, so text cannot be turned into a vector; "
                "pass vector=..."
            )
        from .embed import check_embeddings

        out = emb.embed(list(texts))
        if isinstance(out, np.ndarray) and out.dtype.kind == "f":
            out = out.astype(np.float32, copy=False)
        out = check_embeddings(emb, texts, out)
        if self._state.dim is not None and out.shape[1] != self._state.dim:
            raise InvalidInputError(
                f"embedder {emb.name!r} returned {out.shape[1]}-dimensional vectors; "
                f"{self.path} stores {self._state.dim}"
            )
        return [check_vector(row, self._state.dim) for row in out]

    def _remember_events(self, items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        state = self._state
        writer = self._writable()
        at = self._now()
        dim = state.dim
        events: list[dict[str, Any]] = []
        need_embedding: list[int] = []
        # Explicit ids first, so an assigned id never takes one given later in the batch.
        taken: set[str] = set()
        for item in items:
            if isinstance(item, Mapping) and item.get("id") is not None:
                given = check_id(item["id"])
                if given in taken:
                    raise InvalidInputError(f"id {given!r} appears twice in one batch")
                if state.live_row(given) is not None:
                    raise InvalidInputError(
                        f"a memory with id {given!r} already exists; use update() to change it"
                    )
                taken.add(given)
        for i, item in enumerate(items):
            unknown = set(item) - _REMEMBER_KEYS
            if unknown:
                raise InvalidInputError(
                    f"item {i}: unknown key(s) {', '.join(sorted(unknown))}; "
                    f"use {', '.join(sorted(_REMEMBER_KEYS))}"
                )
            if "text" not in item:
                raise InvalidInputError(f"item {i} has no 'text'")
            vector = item.get("vector")
            vec = b""
            if vector is not None:
                vec = check_vector(vector, dim)
                dim = dim or len(vec) // 4
            else:
                need_embedding.append(i)
            mid = item.get("id")
            if mid is None:
                mid = _auto_id(writer.seq + 1 + i, state, taken)
                taken.add(mid)
            importance = item.get("importance")
            ts = item.get("timestamp")
            events.append(
                {
                    "t": "remember",
                    "at": at,
                    "id": mid,
                    "text": check_text(item["text"]),
                    "meta": check_metadata(item.get("metadata")),
                    "ns": check_namespace(item.get("namespace")),
                    "kind": check_kind(item.get("kind", "episodic")),
                    "imp": fmt.DEFAULT_IMPORTANCE
                    if importance is None
                    else check_importance(importance),
                    "ts": at if ts is None else to_micros(ts),
                    "vec": vec,
                }
            )
        if need_embedding:
            vectors = self._embed([events[i]["text"] for i in need_embedding])
            for i, vec in zip(need_embedding, vectors, strict=True):
                events[i]["vec"] = vec
        return events

    # -- public verbs: writing --------------------------------------------------------

    def remember(
        self,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        namespace: str | None = None,
        kind: str = "episodic",
        importance: float | None = None,
        timestamp: Any = None,
        vector: Any = None,
        id: str | None = None,
        dedup: float | None = None,
    ) -> str:
        """Store one memory and return its id (assigned deterministically unless given).

        ``dedup``: a cosine threshold; if a live memory in the same namespace is at least
        that similar, nothing is stored and its id is returned instead.
        """
        if dedup is not None and (
            isinstance(dedup, bool) or not isinstance(dedup, (int, float)) or not -1 <= dedup <= 1
        ):
            raise InvalidInputError(f"dedup must be a cosine between -1 and 1; got {dedup!r}")
        item = {
            "text": text,
            "metadata": metadata,
            "namespace": namespace,
            "kind": kind,
            "importance": importance,
            "timestamp": timestamp,
            "vector": vector,
            "id": id,
        }
        with self._lock:
            event = self._remember_events([item])[0]
            if dedup is not None:
                same = self._near_duplicate(event, float(dedup))
                if same is not None:
                    return same
            self._commit([event])
            return str(event["id"])

    def _near_duplicate(self, event: dict[str, Any], threshold: float) -> str | None:
        """The live memory in the event's namespace most similar to its vector (ties by
        id), if at least ``threshold``."""
        s = self._state
        if s.vectors is None or event["ns"] not in s.ns_codes:
            return None
        n = len(s.ids)
        code = s.ns_codes[event["ns"]]
        mask = s.vectors.alive[:n] & (s.vectors.ns[:n] == code)
        query = np.frombuffer(event["vec"], dtype="<f4")[None, :]
        found = s.vectors.search(query, 1, mask, [code])[0]
        best = min(found, key=lambda rs: (-rs[1], s.ids[rs[0]]), default=None)
        return None if best is None or best[1] < threshold else s.ids[best[0]]

    def remember_many(self, items: Iterable[str | Mapping[str, Any]]) -> list[str]:
        """Store many memories atomically with one log write and one sync.

        Each item is a str (the text) or a dict with ``remember``'s keyword names.
        """
        batch: list[Mapping[str, Any]] = []
        for item in items:
            if isinstance(item, str):
                batch.append({"text": item})
            elif isinstance(item, Mapping):
                batch.append(item)
            else:
                raise InvalidInputError(
                    f"remember_many items must be str or dict, not {type(item).__name__}"
                )
        if len(batch) > fmt.BATCH_ITEMS_MAX:
            raise InvalidInputError(f"a batch holds at most {fmt.BATCH_ITEMS_MAX} items")
        with self._lock:
            self._writable()
            if not batch:
                return []
            events = self._remember_events(batch)
            self._commit(events)
            return [str(e["id"]) for e in events]

    def update(
        self,
        id: str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        importance: float | None = None,
        vector: Any = None,
    ) -> None:
        """Make a new version of a memory; the old one stays in ``history``.

        ``metadata`` replaces the whole map. A new ``text`` is re-embedded when the
        database has an embedder and no ``vector`` is given; otherwise the vector stays.
        """
        with self._lock:
            self._writable()
            self._live_row(id)
            event: dict[str, Any] = {"t": "update", "at": self._now(), "id": id}
            if text is not None:
                event["text"] = check_text(text)
            if metadata is not None:
                event["meta"] = check_metadata(metadata)
            if importance is not None:
                event["imp"] = check_importance(importance)
            if vector is not None:
                event["vec"] = check_vector(vector, self._state.dim)
            elif text is not None and self._embedder is not None:
                event["vec"] = self._embed([event["text"]])[0]
            if len(event) == 3:
                raise InvalidInputError(
                    "update needs at least one of text, metadata, importance or vector"
                )
            self._commit([event])

    def forget(self, id: str) -> None:
        """Tombstone a memory: it leaves ``get`` and ``ask``, its edges go, its history
        stays until ``compact``."""
        with self._lock:
            self._writable()
            self._live_row(id)
            self._commit([{"t": "forget", "at": self._now(), "id": id}])

    def set_capacity(
        self,
        max_entries: int | None = None,
        *,
        namespace: str | None = None,
        policy: str = "importance-then-age",
    ) -> list[str]:
        """Bound the live memories of one namespace (or, with ``namespace=None``, of the
        whole database) to ``max_entries``; ``None`` removes the bound. A write that would
        exceed a bound evicts, in the same transaction, the memories ``policy`` ranks
        first: "importance-then-age" (lowest importance, then oldest timestamp, then
        lowest id) or "least-recently-recalled" (the oldest last use, where a use is a
        remember, an update or a ``mark_recalled``; then lowest id). Each eviction is an
        ``evict`` event, so a replay evicts the same memories, and ``history`` shows it.
        Returns the ids evicted now, if the new bound is below the current count."""
        if max_entries is not None and (
            not _is_int(max_entries) or not 0 <= max_entries <= fmt.CAPACITY_MAX
        ):
            raise InvalidInputError(
                f"max_entries must be an int from 0 to {fmt.CAPACITY_MAX}, or None; got "
                f"{max_entries!r}"
            )
        if policy not in fmt.POLICIES:
            raise InvalidInputError(
                f"policy must be one of {', '.join(map(repr, fmt.POLICIES))}; got {policy!r}"
            )
        ns = None if namespace is None else check_namespace(namespace)
        with self._lock:
            self._writable()
            at = self._now()
            rule = {"t": "capacity", "at": at, "ns": ns, "max": max_entries, "policy": policy}
            evictions = []
            if max_entries is not None:
                evictions = self._evictions([], at, {ns: (max_entries, policy)})
            self._commit([rule, *evictions])
            return [e["id"] for e in evictions]

    def _evictions(
        self,
        events: list[dict[str, Any]],
        at: int,
        rules: Mapping[str | None, tuple[int, str]] | None = None,
    ) -> list[dict[str, Any]]:
        """The ``evict`` events that keep every capacity rule (``rules``, default the
        state's) satisfied once ``events`` (a transaction's) are applied: for each rule,
        the namespace ones in name order and then the whole database's, the lowest-ranked
        live memories in its scope beyond its bound, the new ones included."""
        s = self._state
        rules = s.capacity if rules is None else rules
        n = len(s.ids)
        live = np.frombuffer(s.dseqs, dtype=np.int64, count=n) == 0
        row_ns = s.vectors.ns[:n] if s.vectors is not None else np.zeros(0, dtype=np.int32)
        first_seq = self._writable().seq + 1
        # The transaction's own changes: memories it forgets leave the count; memories it
        # remembers or updates are ranked by their values after it, as candidates
        # (namespace, importance, timestamp, id, seq of their last use).
        gone = {e["id"] for e in events if e["t"] in ("forget", "evict")}
        fresh: dict[str, tuple[str, float, int, str, int]] = {}
        for i, e in enumerate(events):
            if e["t"] == "remember":
                fresh[e["id"]] = (e["ns"], e["imp"], e["ts"], e["id"], first_seq + i)
            elif e["t"] == "update":
                at_row = s.rows[e["id"]]
                was = (s.nss[at_row], s.imps[at_row], s.tss[at_row], e["id"], 0)
                space, imp, ts, _, _ = fresh.get(e["id"], was)
                if "imp" in e:
                    imp = e["imp"]
                fresh[e["id"]] = (space, imp, ts, e["id"], first_seq + i)
        changed = [s.rows[mid] for mid in (gone | set(fresh)) if mid in s.rows]
        out: list[dict[str, Any]] = []
        order = sorted(rules.items(), key=lambda item: (item[0] is None, item[0] or ""))
        for ns, (limit, policy) in order:
            scope = live.copy()
            if ns is not None:
                code = s.ns_codes.get(ns)
                scope &= row_ns == code if code is not None else False
            scope[changed] = False
            for mid in gone:
                row = s.rows.get(mid)
                if row is not None:
                    scope[row] = False
            new = [f for mid, f in fresh.items() if (ns is None or f[0] == ns) and mid not in gone]
            excess = int(np.count_nonzero(scope)) + len(new) - limit
            if excess <= 0:
                continue
            rows = np.flatnonzero(scope)
            keys: list[tuple[Any, ...]]
            if policy == "importance-then-age":
                columns = [
                    np.frombuffer(s.imps, dtype=np.float64, count=n),
                    np.frombuffer(s.tss, dtype=np.int64, count=n),
                ]
                picked = _lowest(rows, columns, excess, s.ids)
                keys = [(s.imps[r], s.tss[r], s.ids[r]) for r in picked]
                keys += [(f[1], f[2], f[3]) for f in new]
            else:
                recency = np.maximum(
                    np.frombuffer(s.rseqs, dtype=np.int64, count=n),
                    np.frombuffer(s.vseqs, dtype=np.int64, count=n),
                )
                picked = _lowest(rows, [recency], excess, s.ids)
                keys = [(int(recency[r]), s.ids[r]) for r in picked]
                keys += [(f[4], f[3]) for f in new]
            for key in sorted(keys)[:excess]:
                mid = key[-1]
                gone.add(mid)
                rule = {"ns": ns, "max": limit, "policy": policy}
                out.append({"t": "evict", "at": at, "id": mid, "rule": rule})
        for e in out:
            log.info("%s: evicting %s (capacity %s)", self.path, e["id"], e["rule"])
        return out

    def mark_recalled(self, ids: Iterable[str]) -> None:
        """Log that these live memories were used (a ``recall`` event): the
        "least-recently-recalled" capacity policy evicts them last. ``ask`` does this
        for its hits with ``mark_recalled=True``."""
        chosen = _id_list(ids, "mark_recalled")
        with self._lock:
            self._writable()
            for mid in chosen:
                self._live_row(mid)
            if chosen:
                self._commit([{"t": "recall", "at": self._now(), "ids": chosen}])

    def connect(self, a: str, b: str, relation: str = "related", weight: float = 1.0) -> None:
        """A typed, weighted edge from ``a`` to ``b`` (connecting again sets the weight)."""
        with self._lock:
            self._writable()
            self._live_row(a)
            self._live_row(b)
            if a == b:
                raise InvalidInputError(f"cannot connect memory {a!r} to itself")
            self._commit(
                [
                    {
                        "t": "connect",
                        "at": self._now(),
                        "a": a,
                        "b": b,
                        "rel": check_relation(relation),
                        "w": check_weight(weight),
                    }
                ]
            )

    def disconnect(self, a: str, b: str, relation: str | None = None) -> int:
        """Remove the edges from ``a`` to ``b`` (of one relation, or all); returns how
        many were removed. Removing nothing writes nothing."""
        with self._lock:
            self._writable()
            self._live_row(a)
            self._live_row(b)
            rel = None if relation is None else check_relation(relation)
            removed = self._state.graph.count(a, b, rel)
            if removed:
                self._commit([{"t": "disconnect", "at": self._now(), "a": a, "b": b, "rel": rel}])
            return removed

    def ingest_document(
        self,
        text: str,
        *,
        chunk_size: int = 512,
        overlap: int = 50,
        doc_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        namespace: str | None = None,
    ) -> Document:
        """Store a document as overlapping chunks, in one transaction (README "Documents").

        Chunks are ``chunk_size`` word pieces of the embedder (characters without one),
        ``overlap`` shared with the next, ended early at a paragraph or sentence end near
        the edge. The document is a memory of its own (``doc_id``, by default derived from
        the text) linked to every chunk (``part_of``), and each chunk to the next
        (``next``). Ingesting the same text again changes nothing; a changed document
        gets new chunks only where the text changed, and its stale chunks are forgotten.
        """
        text = check_text(text)
        if not text.strip():
            raise InvalidInputError("ingest_document needs a non-empty text")
        for name, value, low in (("chunk_size", chunk_size, 2), ("overlap", overlap, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InvalidInputError(f"{name} must be an int >= {low}; got {value!r}")
        if overlap >= chunk_size:
            raise InvalidInputError(
                f"overlap ({overlap}) must be smaller than chunk_size ({chunk_size})"
            )
        if doc_id is None:
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
            doc_id = f"doc-{digest[:16]}"
        doc_id = check_id(doc_id)
        if len(doc_id.encode()) > fmt.ID_BYTES_MAX - 32:
            raise InvalidInputError(
                f"doc_id must be at most {fmt.ID_BYTES_MAX - 32} bytes (chunk ids extend it)"
            )
        ns = check_namespace(namespace)
        meta = check_metadata(metadata)
        with self._lock:
            self._writable()
            s = self._state
            spans = _token_spans(self._embedder)
            pieces = []
            for a, b in chunking.chunk(text, chunk_size, overlap, spans):
                piece = text[a:b].strip()
                if piece:
                    pieces.append(piece)
            ids = [chunking.chunk_id(doc_id, i, piece) for i, piece in enumerate(pieces)]
            doc_row = s.live_row(doc_id)
            if doc_row is not None and s.nss[doc_row] != ns:
                raise InvalidInputError(
                    f"document {doc_id!r} is in namespace {s.nss[doc_row]!r}, not {ns!r}"
                )
            old = [] if doc_row is None else _chunks_of(s, doc_id)
            new_ids = set(ids) - set(old)
            stale = [mid for mid in old if mid not in set(ids)]
            for mid in new_ids:
                if s.rows.get(mid) is not None and s.live_row(mid) is None:
                    continue  # a forgotten chunk comes back: remembered again below
                if s.live_row(mid) is not None:
                    raise InvalidInputError(
                        f"chunk id {mid!r} is taken by a memory outside document {doc_id!r}"
                    )
            doc_meta = {**meta, "document": True, "chunks": len(ids)}
            title = text.strip().splitlines()[0][:200]
            items: list[dict[str, Any]] = []
            if doc_row is None:
                items.append(
                    {
                        "text": title,
                        "id": doc_id,
                        "metadata": doc_meta,
                        "namespace": ns,
                        "kind": "semantic",
                    }
                )
            items += [
                {
                    "text": piece,
                    "id": mid,
                    "metadata": {**meta, "doc_id": doc_id, "chunk": i},
                    "namespace": ns,
                    "kind": "semantic",
                }
                for i, (mid, piece) in enumerate(zip(ids, pieces, strict=True))
                if mid in new_ids
            ]
            at = self._now()
            events: list[dict[str, Any]] = [{"t": "forget", "at": at, "id": mid} for mid in stale]
            if doc_row is not None and (
                s.texts[doc_row] != title or decode_meta(s.metas[doc_row]) != doc_meta
            ):
                events.append(
                    {"t": "update", "at": at, "id": doc_id, "text": title, "meta": doc_meta}
                )
            if items:
                self._embed_with_progress(items)
                events += self._remember_events(items)
            edges = [(mid, doc_id, "part_of") for mid in ids if mid in new_ids]
            edges += [
                (a, b, "next")
                for a, b in itertools.pairwise(ids)
                if a in new_ids or b in new_ids or (b, "next") not in s.graph.out_edges.get(a, {})
            ]
            events += [
                {"t": "connect", "at": at, "a": a, "b": b, "rel": rel, "w": 1.0}
                for a, b, rel in edges
            ]
            if events:
                self._commit(events)
            added = [mid for mid in ids if mid in new_ids]
            return Document(id=doc_id, chunks=ids, added=added, removed=stale)

    def _embed_with_progress(self, items: list[dict[str, Any]]) -> None:
        """Embed the items' texts into their "vector" in batches, showing progress on a
        terminal (a long document takes a while on a CPU)."""
        if self._embedder is None:
            return  # _remember_events raises the clear error
        show = len(items) > _PROGRESS_ITEMS_MIN and sys.stderr.isatty()
        for start in range(0, len(items), _EMBED_BATCH):
            batch = items[start : start + _EMBED_BATCH]
            vectors = self._embed([item["text"] for item in batch])
            for item, vec in zip(batch, vectors, strict=True):
                item["vector"] = np.frombuffer(vec, dtype="<f4")
            if show:
                done = start + len(batch)
                print(f"\ringest: embedded {done}/{len(items)} texts", end="", file=sys.stderr)
        if show:
            print(file=sys.stderr)

    def checkpoint(self) -> int:
        """Write a snapshot of the current state now; returns its seq."""
        with self._lock:
            self._writable()
            return self._checkpoint().seq

    def _checkpoint(self) -> SnapshotInfo:
        """Snapshot the state. The log is synced and rolled first: a snapshot must never
        be ahead of the durable log, and the snapshot's next event then starts a segment,
        so open reads no record the snapshot already covers."""
        assert self._writer is not None
        self._writer.roll()
        self._writer.sync()
        self._writer.check()
        if self._tracer is not None:
            self._tracer.sync()
        try:
            info = write_snapshot(self._storage, self._snap_dir, self._state, self._writer.crc)
        except OSError as exc:
            # The log still holds every event: only the snapshot is lost (its temp file is
            # an orphan the next open removes), so the handle stays usable.
            raise StorageError(
                f"writing a snapshot of {self.path} failed ({exc}); no data was lost, the "
                "log holds every event. Free space or fix the error and checkpoint again"
            ) from exc
        self._last_snapshot_seq, self._last_snapshot_bytes = info.seq, info.size_bytes
        self._events_since_snapshot = self._bytes_since_snapshot = 0
        self._prune(keep_log=self._retention == "keep")
        return info

    def _prune(self, *, keep_log: bool, snapshots_kept: int = SNAPSHOTS_KEPT) -> None:
        """Delete snapshots beyond the newest ``snapshots_kept`` and, unless the log is
        kept, segments wholly covered by the oldest snapshot that remains. Failing to
        delete loses nothing, so it is logged, not raised."""
        try:
            self._prune_files(keep_log, snapshots_kept)
        except OSError as exc:
            log.warning("could not delete old snapshots or log segments: %s", exc)

    def _prune_files(self, keep_log: bool, snapshots_kept: int) -> None:
        snaps = list_numbered(self._snap_dir, fmt.SNAP_SUFFIX)
        for seq in snaps[:-snapshots_kept]:
            self._storage.unlink(os.path.join(self._snap_dir, fmt.snapshot_name(seq)))
        snaps = snaps[-snapshots_kept:]
        if keep_log or not snaps:
            return
        covered = snaps[0]
        segments = list_numbered(self._wal_dir, fmt.WAL_SUFFIX)
        # A segment is wholly covered when the next one starts at or before covered + 1.
        for first, nxt in itertools.pairwise(segments):
            if nxt <= covered + 1:
                self._storage.unlink(os.path.join(self._wal_dir, fmt.segment_name(first)))
        self._storage.fsync_dir(self._wal_dir)

    def compact(self, *, keep_versions: int = 0) -> dict[str, int]:
        """Drop forgotten memories and superseded versions (keeping the newest
        ``keep_versions`` per memory), snapshot, and delete the log and snapshots this
        makes redundant. History before the compaction is gone afterwards.

        Returns ``bytes_before``/``bytes_after`` (log plus snapshots), ``memories_dropped``
        and ``versions_dropped``.
        """
        if (
            isinstance(keep_versions, bool)
            or not isinstance(keep_versions, int)
            or (keep_versions < 0)
        ):
            raise InvalidInputError(f"keep_versions must be an int >= 0; got {keep_versions!r}")
        with self._lock:
            self._writable()
            before = self._disk_bytes()
            state = self._state
            dead = sum(1 for d in state.dseqs if d)
            versions = sum(len(v) for v in state.history.values())
            self._commit([{"t": "compact", "at": self._now(), "keep": keep_versions}])
            info = self._checkpoint()
            try:  # the only snapshot left once the log is gone: read it back first
                load_snapshot(info.path)
            except (SnapshotError, OSError) as exc:
                raise StorageError(
                    f"the compaction snapshot {info.path} does not read back ({exc}); the "
                    "log and older snapshots were kept"
                ) from exc
            self._prune(keep_log=False, snapshots_kept=1)
            return {
                "bytes_before": before,
                "bytes_after": self._disk_bytes(),
                "memories_dropped": dead,
                "versions_dropped": versions - sum(len(v) for v in state.history.values()),
            }

    # -- public verbs: reading ----------------------------------------------------------

    def _live_row(self, mid: object) -> int:
        self._check_open()
        row = self._state.live_row(mid) if isinstance(mid, str) else None
        if row is None:
            raise MemoryNotFound(f"no memory with id {mid!r} in {self.path}")
        return row

    def _memory(self, row: int) -> Memory:
        s = self._state
        return Memory(
            id=s.ids[row],
            text=s.texts[row],
            metadata=decode_meta(s.metas[row]),
            namespace=s.nss[row],
            kind=s.kinds[row],
            importance=s.imps[row],
            timestamp=from_micros(s.tss[row]),
            vector=s.vector(row),
            version=s.vers[row],
        )

    def get(self, id: str) -> Memory:
        """The memory with this id; raises ``MemoryNotFound`` if unknown or forgotten."""
        with self._lock:
            return self._memory(self._live_row(id))

    def history(self, id: str) -> list[Version]:
        """Every version of a memory, oldest first, including forgets (tombstones)."""
        with self._lock:
            self._check_open()
            s = self._state
            row = s.rows.get(id) if isinstance(id, str) else None
            if row is None:
                raise MemoryNotFound(
                    f"no memory with id {id!r} in {self.path} (never remembered, or removed "
                    "by compact())"
                )
            steps = [*s.history.get(id, []), s.version_of(row)]
            if s.dseqs[row]:
                steps.append(s._tombstone(row))
            return [_version(id, v) for v in steps]

    def neighbors(
        self,
        id: str,
        depth: int = 1,
        relation: str | None = None,
        *,
        direction: str = "both",
        _within: str | None = None,
    ) -> list[Neighbor]:
        """Memories reachable from ``id`` in at most ``depth`` hops, breadth first.

        ``direction`` is "out", "in" or "both". Order is deterministic: by depth, then
        by the memory reached from, then by id and relation.
        """
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= DEPTH_MAX:
            raise InvalidInputError(f"depth must be an int from 1 to {DEPTH_MAX}; got {depth!r}")
        if direction not in ("out", "in", "both"):
            raise InvalidInputError(f"direction must be 'out', 'in' or 'both'; got {direction!r}")
        with self._lock:
            self._live_row(id)
            s = self._state

            def allowed(other: str) -> bool:  # a namespace view walks inside its namespace
                return _within is None or s.nss[s.rows[other]] == _within

            found = [
                Neighbor(other, level, via, rel, weight, way)
                for level, via, (other, rel, way, weight) in s.graph.walk(
                    id, depth, relation=relation, direction=direction, allow=allowed
                )
            ]
            return found

    def ask(
        self,
        query: str | None = None,
        *,
        vector: Any = None,
        top_k: int = 5,
        namespace: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        since: Any = None,
        until: Any = None,
        use_graph: bool = False,
        recency_bias: bool | float | str | timedelta = False,
        explain: bool = False,
        exact: bool = False,
        fusion: str = "weighted",
        kind_weights: Mapping[str, float] | None = None,
        mark_recalled: bool = False,
    ) -> list[Hit]:
        """The ``top_k`` live memories that best match ``query`` (words, and meaning
        when the database has an embedder) and/or ``vector``, best first; ties break
        by id. README "Retrieval" gives every parameter and the scoring formula.
        ``mark_recalled``: also log the hits as used (see ``mark_recalled``)."""
        if query is None and vector is None:
            raise InvalidInputError("ask needs query= (text), vector=, or both")
        if not isinstance(mark_recalled, bool):
            raise InvalidInputError(f"mark_recalled must be True or False; got {mark_recalled!r}")
        params = locals()
        del params["self"], params["query"], params["vector"], params["mark_recalled"]
        with self._lock:
            if mark_recalled:
                self._writable()
            hits = self._ask([query], None if vector is None else [vector], params)[0]
            if mark_recalled:
                self.mark_recalled([h.id for h in hits])
            return hits

    def ask_many(
        self,
        queries: Sequence[str | None] | None = None,
        *,
        vectors: Any = None,
        top_k: int = 5,
        namespace: str | Sequence[str] | None = None,
        kind: str | Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
        since: Any = None,
        until: Any = None,
        use_graph: bool = False,
        recency_bias: bool | float | str | timedelta = False,
        explain: bool = False,
        exact: bool = False,
        fusion: str = "weighted",
        kind_weights: Mapping[str, float] | None = None,
    ) -> list[list[Hit]]:
        """``ask`` for a batch: the same hits as one ``ask`` per query, with the texts
        embedded in one call and the vectors scored by one matrix product.

        ``queries`` are texts, ``vectors`` a (n, dim) array or list of vectors; give
        either or both (same length; a None text in ``queries`` means vector only)."""
        params = locals()
        del params["self"], params["queries"], params["vectors"]
        texts = None if queries is None else list(queries)
        if isinstance(queries, str):
            raise InvalidInputError("ask_many takes a list of queries; use ask for one")
        rows = None if vectors is None else list(vectors)
        if texts is None and rows is None:
            raise InvalidInputError("ask_many needs queries= (texts), vectors=, or both")
        if texts is not None and rows is not None and len(texts) != len(rows):
            raise InvalidInputError(
                f"ask_many got {len(texts)} queries but {len(rows)} vectors; give one each"
            )
        count = len(texts) if texts is not None else len(rows)  # type: ignore[arg-type]
        if count > TOP_K_MAX:
            raise InvalidInputError(f"ask_many takes at most {TOP_K_MAX} queries per call")
        return self._ask(texts or [None] * count, rows, params)

    def _ask(
        self,
        texts: list[str | None],
        vectors: list[Any] | None,
        params: dict[str, Any],
    ) -> list[list[Hit]]:
        with self._lock:
            self._check_open()
            s = self._state
            p = retrieval.resolve(**params, now=self._now(), top_k_max=TOP_K_MAX)
            checked_texts = [None if t is None else check_text(t) for t in texts]
            qvecs: list[np.ndarray | None] = [None] * len(texts)
            for i, v in enumerate(vectors or []):
                if v is not None:
                    qvecs[i] = np.frombuffer(check_vector(v, s.dim), dtype="<f4")
            for i, (t, v) in enumerate(zip(checked_texts, qvecs, strict=True)):
                if t is None and v is None:
                    raise InvalidInputError(f"query {i} has neither text nor vector")
            embed = [i for i, t in enumerate(checked_texts) if t is not None and qvecs[i] is None]
            if embed and self._embedder is not None:
                embedded = self._embed([checked_texts[i] for i in embed])  # type: ignore[misc]
                for i, vec in zip(embed, embedded, strict=True):
                    qvecs[i] = np.frombuffer(vec, dtype="<f4")
            queries = list(zip(checked_texts, qvecs, strict=True))
            mask = retrieval.row_mask(s, p)
            ranked = retrieval.rank(s, p, queries, mask)
            if self._tracer is not None:
                graph = s.graph_applies(mask, exact=p.exact)
                self._tracer.append(
                    [
                        trace.record(s.seq, t, v, p, graph, [(s.ids[r.row], r.score) for r in hits])
                        for (t, v), hits in zip(queries, ranked, strict=True)
                    ]
                )
            return [[self._hit(r.row, r.score, r.components) for r in hits] for hits in ranked]

    def _hit(self, row: int, score: float, components: dict[str, float] | None) -> Hit:
        s = self._state
        return Hit(
            id=s.ids[row],
            text=s.texts[row],
            score=score,
            metadata=decode_meta(s.metas[row]),
            namespace=s.nss[row],
            kind=s.kinds[row],
            timestamp=from_micros(s.tss[row]),
            importance=s.imps[row],
            components=components,
        )

    def namespace(self, name: str) -> Namespace:
        """A view of this database scoped to one namespace."""
        return Namespace(self, check_namespace(name))

    @property
    def seq(self) -> int:
        """Sequence number of the last applied event."""
        return self._state.seq

    def state_hash(self) -> str:
        """Hex digest of the logical state: equal for equal histories, whatever the
        snapshot timing, batching or backend."""
        with self._lock:
            self._check_open()
            return self._state.state_hash()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            self._check_open()
            s = self._state
            breakdown = self._breakdown()
            return {
                "memories": s.live,
                "forgotten": sum(part["forgotten"] for part in breakdown["by_namespace"].values()),
                "edges": len(s.graph),
                "namespaces": len(s.ns_live),
                "seq": s.seq,
                "dim": s.dim,
                "log_bytes": _dir_bytes(self._wal_dir, fmt.WAL_SUFFIX),
                "snapshot_bytes": _dir_bytes(self._snap_dir, fmt.SNAP_SUFFIX),
                "segments": len(list_numbered(self._wal_dir, fmt.WAL_SUFFIX)),
                "last_snapshot_seq": self._last_snapshot_seq,
                "durability": self.durability,
                "readonly": self.readonly,
                "as_of": self._as_of_seq,
                "format_version": self._version,
                "capacity": [
                    {"namespace": ns, "max_entries": limit, "policy": policy}
                    for ns, limit, policy in s.capacity_rules()
                ],
                "evicted": s.evictions,
                "events": s.seq,
                **breakdown,
                "last_checkpoint": self._last_checkpoint(),
                "backend": backend(),
                "embedder": s.embedder,
                "embedding_cache": None if self._embedder is None else self._embedder.stats(),
                "ann": None if s.ann is None else s.ann.stats(),
                "open": dict(self._open_stats),
            }

    def _breakdown(self) -> dict[str, Any]:
        """Live and forgotten memories by namespace (with live ones by kind), live ones by
        kind, and the sizes of the indexes."""
        s = self._state
        n = len(s.ids)
        out: dict[str, Any] = {"by_namespace": {}, "by_kind": dict.fromkeys(fmt.KINDS, 0)}
        vectors = s.vectors
        if vectors is not None and n:
            live = np.frombuffer(s.dseqs, dtype=np.int64, count=n) == 0
            row_ns, row_kind = vectors.ns[:n], vectors.kind[:n]
            for ns in sorted(s.ns_codes):
                mine = row_ns == s.ns_codes[ns]
                kinds = np.bincount(row_kind[mine & live], minlength=len(fmt.KINDS))
                out["by_namespace"][ns] = {
                    "live": int(np.count_nonzero(mine & live)),
                    "forgotten": int(np.count_nonzero(mine & ~live)),
                    "by_kind": {k: int(c) for k, c in zip(fmt.KINDS, kinds, strict=True)},
                }
            kinds = np.bincount(row_kind[live], minlength=len(fmt.KINDS))
            out["by_kind"] = {k: int(c) for k, c in zip(fmt.KINDS, kinds, strict=True)}
        lexical = s.lexical_index()
        out["indexes"] = {
            "vectors": {
                "rows": 0 if vectors is None else vectors.n,
                "bytes": 0 if vectors is None else vectors.n * vectors.dim * 4,
            },
            "lexical": {"terms": len(lexical.terms), "documents": lexical.docs},
            "graph": {"edges": len(s.graph)},
            "ann": None if s.ann is None else s.ann.stats(),
        }
        return out

    def _last_checkpoint(self) -> dict[str, Any] | None:
        snapshots = list_numbered(self._snap_dir, fmt.SNAP_SUFFIX)
        if not snapshots:
            return None
        path = os.path.join(self._snap_dir, fmt.snapshot_name(snapshots[-1]))
        try:
            info = os.stat(path)
        except FileNotFoundError:  # pruned meanwhile by the writer
            return None
        written = datetime.fromtimestamp(info.st_mtime, tz=timezone.utc).isoformat()
        return {"seq": snapshots[-1], "written": written, "bytes": info.st_size}

    def _disk_bytes(self) -> int:
        return _dir_bytes(self._wal_dir, fmt.WAL_SUFFIX) + _dir_bytes(
            self._snap_dir, fmt.SNAP_SUFFIX
        )

    def export_replay(
        self,
        path: str | os.PathLike[str],
        *,
        since: int | datetime | None = None,
        until: int | datetime | None = None,
        namespaces: str | Sequence[str] | None = None,
        checkpoint_every: int = replay.CHECKPOINT_EVERY,
    ) -> dict[str, Any]:
        """Write this database's events ``since..until`` (seqs, or datetimes meaning the
        events written by then; default: the whole retained history) to a self-contained,
        checksummed, compressed replay log at ``path`` (FORMAT.md "Replay logs"), with the
        state hash every ``checkpoint_every`` events and at the end. A log that starts
        after seq 1 records the state hash it continues. ``namespaces``: only the events
        of memories in these namespaces (edges between two of them; compactions), from
        seq 1, renumbered, without traces: a run of one agent of many, replayable on its
        own. Returns what was written."""
        if not _is_int(checkpoint_every) or checkpoint_every < 1:
            raise InvalidInputError(
                f"checkpoint_every must be a positive int; got {checkpoint_every!r}"
            )
        with self._lock:
            self._check_open()
            first = 1 if since is None else self._seq_of(since, "since", start=True)
            last = self._state.seq if until is None else self._seq_of(until, "until")
            if not 1 <= first <= last <= self._state.seq:
                raise InvalidInputError(
                    f"export_replay needs 1 <= since <= until <= {self._state.seq}; got "
                    f"{first}..{last}"
                )
        chosen = None
        if namespaces is not None:
            names = [namespaces] if isinstance(namespaces, str) else list(namespaces)
            chosen = {check_namespace(ns) for ns in names}
            if first != 1:
                raise InvalidInputError(
                    "export_replay(namespaces=...) exports from seq 1; leave since unset"
                )
        if first == 1:
            base = State()
        else:
            with self.as_of(first - 1) as view:
                base = view._state
        return replay.export(self, os.fspath(path), first, last, base, checkpoint_every, chosen)

    @staticmethod
    def replay(
        path: str | os.PathLike[str],
        into: str | os.PathLike[str] | None = None,
        *,
        verify: bool = True,
        stop_at: int | None = None,
    ) -> replay.ReplayReport:
        """Rebuild the state a replay log describes, in memory or ``into`` a database
        directory (a new one for a log from seq 1; for a log that continues a base state,
        a database at that state, such as a ``fork``), and check it against the log's
        running digests and state hashes (``verify``). Stops after event ``stop_at`` (in a
        database, at the end of its transaction). The report's ``divergence`` is the first
        disagreement, with its seq; a damaged log raises ``CorruptDatabaseError``."""
        src = os.fspath(path)
        if stop_at is not None and (not _is_int(stop_at) or stop_at < 1):
            raise InvalidInputError(f"stop_at must be a positive int; got {stop_at!r}")
        if into is None:
            return replay.run(src, None, verify=verify, stop_at=stop_at)
        dest = os.fspath(into)
        with replay.ReplayLog(src) as log:
            fresh = log.header.get("base") is None
            first = next(log.entries(), None) if fresh else None
        if fresh:
            _check_new_dir(dest, "a log from seq 1 replays into a new directory")
            if first is None or first.seq != 1:
                raise CorruptDatabaseError(
                    f"replay log {src} does not start with event 1", path=src
                )
            init = first.payload[replay.CHAIN_BYTES :]
            options = config.defaults(
                durability="normal", snapshot_every_events=None, snapshot_every_bytes=None
            )
            target = Mnemos(
                dest,
                embedder=None,
                readonly=False,
                create=True,
                clock=None,
                init_payload=init,
                **options,
            )
        else:
            target = Mnemos.open(dest, embedder=None, create=False)
        with target:
            report = replay.run(src, target, verify=verify, stop_at=stop_at)
            target.checkpoint()
        return report

    def _append_replayed(self, payloads: list[bytes]) -> None:
        """Log and apply one replayed transaction as it was logged (no validation: these
        events were validated by the database that first wrote them)."""
        writer = self._writable()
        events = [decode_event(payload) for payload in payloads]
        self._upgrade_for(e["t"] for e in events)
        first = writer.append(payloads)
        for i, event in enumerate(events):
            self._state.apply(first + i, event)
        self._events_since_snapshot += len(payloads)

    def _seq_of(self, point: object, name: str, *, start: bool = False) -> int:
        """A seq, or for a datetime the last event written at or before it (for ``start``,
        the first event after the ones before it)."""
        if isinstance(point, datetime):
            micros = to_micros(point)
            return self._seq_at_time(micros - 1) + 1 if start else self._seq_at_time(micros)
        if isinstance(point, int) and not isinstance(point, bool):
            return point
        raise InvalidInputError(
            f"{name} takes a seq (int) or a datetime; got {type(point).__name__}"
        )

    def as_of(self, point: int | datetime) -> Mnemos:
        """A read-only view of the state right after event ``point`` (a seq), or after the
        last event written at or before ``point`` (a ``datetime``; naive means UTC). It
        has the read API (``get``, ``ask``, ``neighbors``, ``history``, ``stats``,
        ``state_hash``) and is built from the nearest snapshot at or before that point plus
        the log, in a handle of its own: this one is not disturbed. Close it when done.
        Any point within the retained history works (``log_retention="keep"``, the
        default, and no ``compact`` since); a seq inside a ``remember_many`` batch gives
        the state part-way through it."""
        with self._lock:
            self._check_open()
            seq = self._seq_of(point, "as_of")
            if not seq and isinstance(point, datetime):
                raise InvalidInputError("as_of: the database has no event at or before that time")
            if not 1 <= seq <= self._state.seq:
                raise InvalidInputError(
                    f"as_of({seq}) is outside this database's history: seqs run from 1 to "
                    f"{self._state.seq}"
                )
        try:
            options = config.defaults(
                durability=self.durability, log_retention=self._retention, ann_background=False
            )
            return Mnemos(
                self.path,
                embedder=self._embedder,  # the same model and cache: text asks work alike
                readonly=True,
                create=False,
                clock=self._clock,
                as_of_seq=seq,
                **options,
            )
        except CorruptDatabaseError as exc:
            if "log segment missing" not in str(exc):
                raise
            raise InvalidInputError(
                f"as_of({seq}): the log before the oldest snapshot at or before it is no longer "
                f"kept in {self.path} (log_retention='delete', or a compact since); only later "
                "points can be viewed"
            ) from None

    def fork(self, path: str | os.PathLike[str], *, at: int | None = None) -> Mnemos:
        """Create a new database at ``path`` whose history is this one's up to event ``at``
        (default: now), for a counterfactual run, and return it open for writing (with this
        handle's embedder and durability). The log up to ``at`` and the newest snapshot at
        or before it are copied byte for byte, so the fork's ``history``, ``as_of`` and
        ``state_hash`` at ``at`` are this database's; nothing here changes. ``at`` must end
        a transaction (not fall inside a ``remember_many`` batch) and lie within the
        retained history."""
        dest = os.fspath(path)
        with self._lock:
            self._check_open()
            seq = self._state.seq if at is None else at
            if not _is_int(seq) or not 1 <= seq <= self._state.seq:
                raise InvalidInputError(
                    f"fork(at={seq!r}) is outside this database's history: seqs run from 1 to "
                    f"{self._state.seq}"
                )
            _check_new_dir(dest, "fork into a new or empty directory")
            segments, snapshot = self._files_at(seq)
            if not segments or (
                segments[0] != 1 and (snapshot is None or snapshot < segments[0] - 1)
            ):
                raise InvalidInputError(
                    f"fork(at={seq}): the log before it is no longer kept in {self.path} "
                    "(log_retention='delete', or a compact since); fork at a later point"
                )
            names = _file_names(segments, snapshot)
            files = {name: _read(os.path.join(self.path, name)) for name in names}
            last = names[len(segments) - 1]
            files[last] = _cut_at(files[last], seq, os.path.join(self.path, last), segments[-1])
            files[fmt.DB_FILE] = _read(os.path.join(self.path, fmt.DB_FILE))
            self._lay_down(dest, files)
        return Mnemos.open(dest, embedder=self._embedder, durability=self.durability)

    def _lay_down(self, dest: str, files: Mapping[str, bytes | memoryview]) -> None:
        """Write a database directory at ``dest`` holding ``files`` (relative names), each
        atomically and durably; MNEMOS last, so a copy cut short is no database."""
        self._storage.mkdir(dest)
        for sub in (fmt.WAL_DIR, fmt.SNAPSHOT_DIR):
            self._storage.mkdir(os.path.join(dest, sub))
        for name in sorted(files, key=lambda name: name == fmt.DB_FILE):
            write_atomically(self._storage, os.path.join(dest, name), [files[name]])
        self._storage.fsync_dir(dest)
        self._storage.fsync_dir(os.path.dirname(os.path.abspath(dest)))

    def backup(self, dest: str | os.PathLike[str], *, verify: bool = True) -> dict[str, Any]:
        """Copy this database to the new directory ``dest`` as it is at this moment, while
        writes go on: the retained log up to the current seq, the newest snapshot and the
        TRACE file, each cut at what was committed when the backup began. The lock is held
        only to open the files; they are read after it is released (a compaction meanwhile
        cannot take them away). With ``verify``, the copy is checked as ``mnemos verify``
        does and opened; returns ``{path, seq, state_hash, bytes, files, seconds}``."""
        dest = os.fspath(dest)
        started = time.perf_counter()
        with self._lock:
            self._check_open()
            _check_new_dir(dest, "back up into a new or empty directory")
            seq = self._state.seq
            segments, snapshot = self._files_at(seq)
            names = _file_names(segments, snapshot)
            # Traces are appended under the lock, whole records at a time.
            trace_path = os.path.join(self.path, TRACE_FILE)
            trace_bytes = os.path.getsize(trace_path) if os.path.exists(trace_path) else 0
            if trace_bytes:
                names.append(TRACE_FILE)
            opened: dict[str, BinaryIO] = {}
            try:
                for name in names:
                    opened[name] = open(os.path.join(self.path, name), "rb")  # noqa: SIM115
                header = _read(os.path.join(self.path, fmt.DB_FILE))
            except BaseException:
                for f in opened.values():
                    f.close()
                raise
        files: dict[str, bytes] = {}
        try:
            for name, f in opened.items():
                files[name] = f.read(trace_bytes) if name == TRACE_FILE else f.read()
        finally:
            for f in opened.values():
                f.close()
        if segments:
            last = names[len(segments) - 1]
            files[last] = _cut_at(files[last], seq, os.path.join(self.path, last), segments[-1])
        files[fmt.DB_FILE] = header
        try:
            self._lay_down(dest, files)
        except OSError as exc:
            raise StorageError(
                f"writing the backup to {dest} failed ({exc}); the database is unchanged. "
                "Delete the partial copy, free space or fix the error, and try again"
            ) from exc
        result: dict[str, Any] = {
            "path": dest,
            "seq": seq,
            "bytes": sum(len(data) for data in files.values()),
            "files": len(files),
        }
        if verify:
            from .recovery import verify as verify_copy

            report = verify_copy(dest)
            if not report.ok:
                raise CorruptDatabaseError(
                    f"the backup at {dest} does not verify ({report.problems[0].reason}); "
                    f"run `mnemos verify {self.path}`",
                    path=dest,
                )
            with Mnemos.open(dest, embedder=None, readonly=True) as copy:
                if copy.seq != seq:
                    raise CorruptDatabaseError(
                        f"the backup at {dest} opens at seq {copy.seq}, not {seq}", path=dest
                    )
                result["state_hash"] = copy.state_hash()
        result["seconds"] = time.perf_counter() - started
        log.info("%s: backed up at seq %d to %s", self.path, seq, dest)
        return result

    def _files_at(self, seq: int) -> tuple[list[int], int | None]:
        """The log segments through the one holding event ``seq`` (or a successor that
        starts right after it: a compaction leaves only such a segment) and the newest
        snapshot at or before it, if any."""
        segments = list_numbered(self._wal_dir, fmt.WAL_SUFFIX)
        snapshots = [n for n in list_numbered(self._snap_dir, fmt.SNAP_SUFFIX) if n <= seq]
        return [first for first in segments if first <= seq + 1], max(snapshots, default=None)

    def _seq_at_time(self, micros: int) -> int:
        """The end of the longest run of retained events written at or before ``micros``
        (0: none): the last seq before the first event with a later ``at``."""
        first = min(list_numbered(self._wal_dir, fmt.WAL_SUFFIX), default=1)
        seq = 0
        for record_seq, _index, _count, payload in replay.log_records(
            self._wal_dir, first, self._state.seq
        ):
            if decode_event(payload)["at"] > micros:
                break
            seq = record_seq
        return seq

    def refresh(self) -> int:
        """Catch up with the writer's log (readonly handles); returns events applied.
        A view from ``as_of`` stays where it is (0)."""
        with self._lock:
            self._check_open()
            if self._writer is not None or self._as_of_seq is not None:
                return 0
            assert self._cursor is not None
            before = self._state.seq
            listing = self._listing()
            try:
                records, _tail = self._cursor.read_events()
            except (FileNotFoundError, CorruptDatabaseError):
                if self._listing() == listing and not self._segment_gone():
                    raise
                # The writer compacted or pruned past us: start again from its snapshot.
                self._state, _tail = self._recover()
                self._wake_builder()
                return self._state.seq - before
            self._apply_records(self._state, records, self._wal_dir)
            self._wake_builder()
            return self._state.seq - before


class Namespace:
    """The database seen through one namespace: writes land in it, reads stay in it."""

    def __init__(self, db: Mnemos, name: str):
        self.db = db
        self.name = name

    def __repr__(self) -> str:
        return f"<Namespace {self.name!r} of {self.db!r}>"

    def _own(self, id: str) -> None:
        with self.db._lock:
            row = self.db._live_row(id)
            if self.db._state.nss[row] != self.name:
                raise MemoryNotFound(f"no memory with id {id!r} in namespace {self.name!r}")

    def remember(self, text: str, **kwargs: Any) -> str:
        if kwargs.get("namespace") not in (None, self.name):
            raise InvalidInputError(f"this view writes to namespace {self.name!r} only")
        kwargs["namespace"] = self.name
        return self.db.remember(text, **kwargs)

    def remember_many(self, items: Iterable[str | Mapping[str, Any]]) -> list[str]:
        scoped = []
        for item in items:
            entry = {"text": item} if isinstance(item, str) else dict(item)
            if entry.get("namespace") not in (None, self.name):
                raise InvalidInputError(f"this view writes to namespace {self.name!r} only")
            entry["namespace"] = self.name
            scoped.append(entry)
        return self.db.remember_many(scoped)

    def ask(self, query: str | None = None, **kwargs: Any) -> list[Hit]:
        if kwargs.get("namespace") not in (None, self.name):
            raise InvalidInputError(f"this view reads namespace {self.name!r} only")
        kwargs["namespace"] = self.name
        return self.db.ask(query, **kwargs)

    def ask_many(
        self, queries: Sequence[str | None] | None = None, **kwargs: Any
    ) -> list[list[Hit]]:
        if kwargs.get("namespace") not in (None, self.name):
            raise InvalidInputError(f"this view reads namespace {self.name!r} only")
        kwargs["namespace"] = self.name
        return self.db.ask_many(queries, **kwargs)

    def get(self, id: str) -> Memory:
        with self.db._lock:
            self._own(id)
            return self.db.get(id)

    def update(self, id: str, **kwargs: Any) -> None:
        with self.db._lock:
            self._own(id)
            self.db.update(id, **kwargs)

    def forget(self, id: str) -> None:
        with self.db._lock:
            self._own(id)
            self.db.forget(id)

    def history(self, id: str) -> list[Version]:
        versions = self.db.history(id)
        if versions[-1].memory.namespace != self.name:
            raise MemoryNotFound(f"no memory with id {id!r} in namespace {self.name!r}")
        return versions

    def connect(self, a: str, b: str, relation: str = "related", weight: float = 1.0) -> None:
        with self.db._lock:
            self._own(a)
            self._own(b)
            self.db.connect(a, b, relation, weight)

    def disconnect(self, a: str, b: str, relation: str | None = None) -> int:
        with self.db._lock:
            self._own(a)
            self._own(b)
            return self.db.disconnect(a, b, relation)

    def neighbors(
        self, id: str, depth: int = 1, relation: str | None = None, *, direction: str = "both"
    ) -> list[Neighbor]:
        with self.db._lock:
            self._own(id)
            return self.db.neighbors(id, depth, relation, direction=direction, _within=self.name)

    def set_capacity(
        self, max_entries: int | None = None, *, policy: str = "importance-then-age"
    ) -> list[str]:
        return self.db.set_capacity(max_entries, namespace=self.name, policy=policy)

    def mark_recalled(self, ids: Iterable[str]) -> None:
        chosen = _id_list(ids, "mark_recalled")
        with self.db._lock:
            for mid in chosen:
                self._own(mid)
            self.db.mark_recalled(chosen)

    def stats(self) -> dict[str, Any]:
        with self.db._lock:
            self.db._check_open()
            s = self.db._state
            return {
                "namespace": self.name,
                "memories": s.ns_live.get(self.name, 0),
                "seq": s.seq,
                "capacity": s.capacity.get(self.name),
            }


_REMEMBER_KEYS = frozenset(
    {"text", "metadata", "namespace", "kind", "importance", "timestamp", "vector", "id"}
)


# Handles still open when the program exits are closed (synced) by an atexit hook, as a
# file object is flushed: under durability="normal" this saves the last window.
_OPEN_HANDLES: weakref.WeakSet[Mnemos] = weakref.WeakSet()


@atexit.register
def _close_all_at_exit() -> None:
    for db in list(_OPEN_HANDLES):
        with contextlib.suppress(Exception):
            db.close()


def _id_list(ids: object, what: str) -> list[str]:
    """Memory ids from a list (or any iterable but a str), each checked, in order, once."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise InvalidInputError(f"{what} takes a list of ids; got {type(ids).__name__}")
    return list(dict.fromkeys(check_id(mid) for mid in ids))


def _check_new_dir(dest: str, advice: str) -> None:
    if os.path.exists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise InvalidInputError(f"{dest} already exists; {advice}")


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _file_names(segments: list[int], snapshot: int | None) -> list[str]:
    """Paths inside a database of these segments and snapshot, segments first."""
    names = [os.path.join(fmt.WAL_DIR, fmt.segment_name(first)) for first in segments]
    if snapshot is not None:
        names.append(os.path.join(fmt.SNAPSHOT_DIR, fmt.snapshot_name(snapshot)))
    return names


def _cut_at(data: bytes, seq: int, path: str, first_seq: int) -> bytes:
    """Segment ``first_seq``'s bytes through record ``seq``, which must end a transaction
    (the bytes after it are later commits; FORMAT.md "Record": no padding between)."""
    spans = [span for span in record_spans(data, path, first_seq) if span.seq <= seq]
    if first_seq > seq:
        return data[: fmt.SEGMENT_HEADER_BYTES]
    if not spans or spans[-1].seq != seq:
        raise InvalidInputError(f"event {seq} is not in {path}")
    last = spans[-1]
    if last.txn_index + 1 != last.txn_count:
        start = seq - last.txn_index
        raise InvalidInputError(
            f"seq {seq} falls inside a transaction of {last.txn_count} events (seqs {start} "
            f"to {start + last.txn_count - 1}); fork at its last seq, or before its first"
        )
    return data[: last.end]


def _lowest(rows: np.ndarray, columns: list[np.ndarray], k: int, ids: list[str]) -> list[int]:
    """``k`` of ``rows`` with the lowest (columns..., id) keys, in no order: each column
    settles the rows strictly below its k-th value and passes the ties on to the next."""
    chosen: list[int] = []
    for column in columns:
        if k <= 0 or len(rows) <= k:
            break
        values = column[rows]
        threshold = _kth_smallest(values, k)
        below = rows[values < threshold]
        chosen += below.tolist()
        k -= len(below)
        rows = rows[values == threshold]
    ties: list[int] = rows.tolist()
    return chosen + (ties if len(ties) <= k else sorted(ties, key=ids.__getitem__)[:k])


def _kth_smallest(values: np.ndarray, k: int) -> Any:
    """The ``k``-th smallest of ``values`` (1-based). A write at a capacity bound evicts one
    or a few: a pass of ``min`` per distinct value is then several times faster than
    ``np.partition``."""
    if k > 8:
        return np.partition(values, k - 1)[k - 1]
    threshold = values.min()
    seen = int(np.count_nonzero(values == threshold))
    while seen < k:
        threshold = values[values > threshold].min()
        seen += int(np.count_nonzero(values == threshold))
    return threshold


def _auto_id(seq: int, state: State, taken: set[str]) -> str:
    """``m<seq>``; if a caller already used that id, ``m<seq>-1``, ``m<seq>-2``, ..."""
    base = f"m{seq}"
    mid, n = base, 0
    while mid in state.rows or mid in taken:
        n += 1
        mid = f"{base}-{n}"
    return mid


def _version(mid: str, v: VersionTuple) -> Version:
    seq, at, op, ver, text, meta, ns, kind, imp, ts, vec = v
    memory = Memory(
        id=mid,
        text=text,
        metadata=decode_meta(meta),
        namespace=ns,
        kind=kind,
        importance=imp,
        timestamp=from_micros(ts),
        vector=np.frombuffer(vec, dtype="<f4").copy(),
        version=ver,
    )
    return Version(seq=seq, at=from_micros(at), op=op, memory=memory)


def take_writer_lock(path: str) -> int:
    """Lock ``path/LOCK`` for writing, without waiting; returns the descriptor holding it.

    ``flock`` locks belong to the open file, so a second writer in the same process is
    refused as well, and the lock goes away with the process however it ends.
    """
    fd = os.open(os.path.join(path, fmt.LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        where = (
            "by another handle in this process"
            if holder == str(os.getpid())
            else "by another process" + (f" (pid {holder})" if holder else "")
        )
        raise DatabaseLockedError(
            f"{path} is open for writing {where}; close that handle first, or open this "
            "one with readonly=True"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _check_db_file(path: str) -> int:
    """The format version in a MNEMOS file, after checking it."""
    with open(path, "rb") as f:
        data = f.read(fmt.DB_HEADER.size + 1)
    if len(data) != fmt.DB_HEADER.size:
        raise CorruptDatabaseError(f"{path} has the wrong size", path=path, offset=0)
    magic, version, crc = fmt.DB_HEADER.unpack(data)
    if magic != fmt.DB_MAGIC or crc != crc32(data[:12]):
        raise CorruptDatabaseError(f"{path} is not a valid Mnemos header", path=path, offset=0)
    check_version(version, path)
    return int(version)


def _dir_bytes(directory: str, suffix: str) -> int:
    total = 0
    for n in list_numbered(directory, suffix):
        name = f"{n:020d}{suffix}"
        with contextlib.suppress(FileNotFoundError):  # pruned meanwhile
            total += os.stat(os.path.join(directory, name)).st_size
    return total


def _describe(identity: Mapping[str, Any] | None) -> str:
    if identity is None:
        return "none (vector-only)"
    return f"{identity['name']!r} (dim {identity['dim']}, fingerprint {identity['fingerprint']})"


def _resolve_embedder(embedder: Any) -> Any:
    """What ``mnemos.embed.resolve_embedder`` makes of ``embedder``: ``None``, an object
    with ``name``, ``dim``, ``fingerprint`` and ``embed(texts)``, a plain function
    ``texts -> vectors``, or the built-in model."""
    from .embed import resolve_embedder  # not at import: it is only needed with an embedder

    return _cached(resolve_embedder(embedder))


def _builtin_embedder() -> Any:
    """The built-in MiniLM (nothing heavy loads until the first text is embedded)."""
    from .embed import MiniLM

    return _cached(MiniLM())


def _cached(embedder: Any) -> Any:
    """``embedder`` behind an in-memory LRU of recent texts, and for the built-in models
    a persistent cache in the user cache directory too, so re-asking or re-ingesting the
    same text costs no inference. A given ``CachedEmbedder`` is used as it is."""
    from .embed import BertEmbedder, CachedEmbedder, default_cache_dir

    if embedder is None or isinstance(embedder, CachedEmbedder):
        return embedder
    if isinstance(embedder, BertEmbedder):
        try:
            return CachedEmbedder(embedder, persistent_dir=default_cache_dir())
        except InvalidInputError as exc:  # an unwritable cache directory only costs speed
            log.warning("embedding cache kept in memory only: %s", exc)
    return CachedEmbedder(embedder)


def _token_spans(embedder: Any) -> chunking.Spans:
    """The embedder's word-piece offsets, if it can give them (the built-in models can,
    also behind a cache); else characters."""
    for candidate in (embedder, getattr(embedder, "inner", None)):
        spans = getattr(candidate, "token_spans", None)
        if callable(spans):
            return spans  # type: ignore[no-any-return]
    return chunking.char_spans


def _chunks_of(state: State, doc_id: str) -> list[str]:
    """The live chunks of a document: the memories linked to it by ``part_of``, in chunk
    order (their metadata's ``chunk``)."""
    found = [other for other, rel in state.graph.in_edges.get(doc_id, {}) if rel == "part_of"]
    return sorted(found, key=lambda mid: (state.meta(state.rows[mid]).get("chunk", 0), mid))
