"""Approximate nearest-neighbour search: a deterministic HNSW graph over rows.

A thin wrapper over ``mnemos._core.HnswIndex`` (``crates/mnemos-core/src/ann.rs``, whose
module documentation is the full design). Rows are the database's row numbers; scores are
cosine similarity, like ``VectorIndex.search``. The index keeps its own normalised float32
copy of each vector, so it stays valid when the database overwrites or renumbers rows.

Deterministic: the same inserts and deletes, in the same order, build the same graph (the
same ``to_bytes()``) and return the same results on every machine, however the inserts are
grouped into ``insert_many`` calls. A node's level comes from the ``key`` passed with it
(the database passes the seq of the event that gave the row its vector: unique per insert,
and the index mixes it with splitmix64), never from a random generator.

There is no pure-Python implementation: the Python reference for an approximate search is
the exact one (``VectorIndex.search``), which it must agree with on recall, not bit for bit.
With ``MNEMOS_BACKEND=python`` or without the extension, ``available()`` is false and
``AnnIndex(...)`` raises ``MnemosError``; callers use the exact path instead.

Deletes leave tombstones that still route searches. Rebuild (a new index over the live rows,
in row order, with the same keys) when ``needs_rebuild``: once tombstones are as many as the
live rows, searches visit about twice the nodes for the same recall.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
import weakref
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import _native
from .._native import crc32
from ..errors import CorruptDatabaseError, InvalidInputError, MnemosError

__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_M",
    "ANN_ROWS_MIN",
    "EXACT_MASK_BELOW",
    "AnnIndex",
    "AnnState",
    "available",
]

# The Rust defaults (crates/mnemos-core/src/ann.rs), the same meaning as hnswlib's M,
# ef_construction and ef: links per node (2*M on the bottom layer), the candidate list
# while inserting, and while searching (raised to k when smaller).
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 64

# The graph starts at the event that first brings the live memories to this many (below it
# the exact scan takes about a millisecond), and a search uses it when its filters let
# through at least this many rows, unless the caller passes exact=True (FORMAT.md "ANN
# section": part of the format, since the graph is a function of the log).
ANN_ROWS_MIN = 20_000
# A mask letting through less than this share of the rows makes the graph search wander
# (it counts only allowed rows toward its results): scan the allowed rows exactly instead.
EXACT_MASK_BELOW = 0.05

# Inserts gathered into one insert_many call while flushing (bounds the gathered copy).
_FLUSH_CHUNK = 4096

log = logging.getLogger("mnemos")

_ROW_MAX = 2**32 - 1
_KEY_MAX = 2**64 - 1


def available() -> bool:
    """Whether the Rust extension (and so the ANN index) is in use."""
    return _native._core is not None


def _core() -> Any:
    if _native._core is None:
        raise MnemosError(
            "the ANN index needs the Rust extension mnemos._core, which is not in use "
            "(MNEMOS_BACKEND=python or not built); use the exact search (VectorIndex.search)"
        )
    return _native._core


def _check_int(value: object, name: str, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name} must be an int; got {type(value).__name__}")
    if not 0 <= int(value) <= high:
        raise InvalidInputError(f"{name} must be from 0 to {high}; got {value}")
    return int(value)


def _int_list(values: Any, name: str, high: int) -> list[int]:
    # Not np.asarray: a list mixing keys above 2**63 with smaller ones would become float64.
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    return [_check_int(v, name, high) for v in items]


def _floats(array: object, name: str) -> np.ndarray:
    # Copies only when the input is not already C-contiguous float32.
    try:
        out: np.ndarray = np.ascontiguousarray(array, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be numbers ({exc})") from None
    return out


class AnnIndex:
    """An HNSW index of ``dim``-dimensional vectors (see the module docstring)."""

    __slots__ = ("_index",)

    def __init__(
        self,
        dim: int,
        *,
        m: int = DEFAULT_M,
        ef_construction: int = DEFAULT_EF_CONSTRUCTION,
        ef_search: int = DEFAULT_EF_SEARCH,
    ):
        core = _core()
        for name, value in (("dim", dim), ("m", m), ("ef_construction", ef_construction)):
            _check_int(value, name, _ROW_MAX)
        _check_int(ef_search, "ef_search", _ROW_MAX)
        self._index = core.HnswIndex(dim, m, ef_construction, ef_search)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> AnnIndex:
        """Load ``to_bytes()`` output, checking all of it (no re-insertion). Damaged or
        truncated bytes raise ``InvalidInputError`` (a ``ValueError``) saying where; its
        ``__cause__`` is the binding's ``CorruptDatabaseError``, whose ``offset`` is that byte."""
        core = _core()
        self = cls.__new__(cls)
        try:
            self._index = core.HnswIndex.from_bytes(data)
        except CorruptDatabaseError as exc:
            # Here the bytes are an argument, not a file: a caller that read them from one
            # knows its path and raises CorruptDatabaseError itself.
            raise InvalidInputError(str(exc)) from exc
        except TypeError as exc:  # raised by PyO3: no buffer protocol
            raise InvalidInputError(
                f"data must be bytes, bytearray or memoryview ({exc})"
            ) from None
        return self

    def to_bytes(self) -> bytes:
        """The versioned, checksummed, little-endian form (layout: ``ann.rs``)."""
        data: bytes = self._index.to_bytes()
        return data

    def serialized_len(self) -> int:
        """Bytes in ``to_bytes()``: the size of the buffer ``write_into`` fills."""
        n: int = self._index.serialized_len()
        return n

    def write_into(self, buffer: bytearray | memoryview) -> None:
        """Write ``to_bytes()`` into a writable buffer of exactly ``serialized_len()`` bytes
        (say, a memoryview of the snapshot file's mapping), without an intermediate copy."""
        self._index.write_into(buffer)

    def insert(self, row: int, vector: object, key: int) -> None:
        """Add ``row`` with ``vector`` (``dim`` finite numbers, not all zero). ``row`` must
        not be in the index; ``key`` (64 bits) fixes the node's level (see the module docstring)."""
        row = _check_int(row, "row", _ROW_MAX)
        key = _check_int(key, "key", _KEY_MAX)
        vec = _floats(vector, "vector")
        if vec.ndim != 1:
            raise InvalidInputError(f"vector must be one-dimensional; got shape {vec.shape}")
        self._index.insert(row, key, vec)

    def insert_many(self, rows: object, vectors: object, keys: object) -> None:
        """``insert`` of each (row, vector, key), in order: the same graph as one by one.
        Every item is checked first, so an error inserts nothing."""
        row_list = _int_list(rows, "row", _ROW_MAX)
        key_list = _int_list(keys, "key", _KEY_MAX)
        matrix = _floats(vectors, "vectors")
        if matrix.ndim != 2 and not (matrix.ndim == 1 and matrix.size == 0):
            raise InvalidInputError(f"vectors must be two-dimensional; got shape {matrix.shape}")
        self._index.insert_batch(row_list, key_list, matrix)

    def delete(self, row: int) -> None:
        """Mark ``row`` deleted: never returned again, still used for routing."""
        row = _check_int(row, "row", _ROW_MAX)
        self._index.delete(row)

    def renumber(self, kept: object) -> None:
        """Follow the database's ``compact``: ``kept`` is the surviving old rows, ascending;
        old row ``kept[i]`` becomes row ``i``. Every live row must be kept. The graph is
        unchanged (deleted rows still route), so no rebuild is needed."""
        self._index.renumber(_int_list(kept, "row", _ROW_MAX))

    def search(
        self,
        queries: object,
        k: int,
        mask: object = None,
        ef: int | None = None,
        *,
        threads: int = 0,
    ) -> list[list[tuple[int, float]]]:
        """For each query (a vector, or rows of a 2-d array), the best ``k`` live rows as
        (row, cosine), best first, ties by the lower row. ``mask`` (bool, one per row; rows
        past its end count as false) limits the rows returned. ``ef`` defaults to
        ``ef_search``. A batch may use ``threads`` threads (0: all cores); results do not
        depend on it."""
        k = _check_int(k, "k", _ROW_MAX)
        q = _floats(queries, "queries")
        if q.ndim == 1:
            q = q.reshape(1, -1)
        if q.ndim != 2:
            raise InvalidInputError(f"queries must be a vector or 2-d array; got shape {q.shape}")
        bits = None
        if mask is not None:
            bits = np.ascontiguousarray(mask, dtype=bool)
            if bits.ndim != 1:
                raise InvalidInputError(f"mask must be one-dimensional; got shape {bits.shape}")
        if ef is not None:
            ef = _check_int(ef, "ef", _ROW_MAX)
        threads = _check_int(threads, "threads", 1024)
        found: list[list[tuple[int, float]]] = self._index.search(q, k, ef, bits, threads)
        return found

    def __len__(self) -> int:
        """Live rows."""
        n: int = len(self._index)
        return n

    def __contains__(self, row: object) -> bool:
        if isinstance(row, bool) or not isinstance(row, (int, np.integer)):
            return False
        return 0 <= int(row) <= _ROW_MAX and bool(int(row) in self._index)

    @property
    def deleted(self) -> int:
        """Tombstones: deleted rows still kept for routing."""
        n: int = self._index.deleted
        return n

    @property
    def nodes(self) -> int:
        """Live rows plus tombstones."""
        n: int = self._index.nodes
        return n

    @property
    def needs_rebuild(self) -> bool:
        """True once tombstones are as many as the live rows (see the module docstring)."""
        return self.deleted > 0 and self.deleted >= len(self)

    @property
    def dim(self) -> int:
        n: int = self._index.dim
        return n

    @property
    def m(self) -> int:
        n: int = self._index.m
        return n

    @property
    def ef_construction(self) -> int:
        n: int = self._index.ef_construction
        return n

    @property
    def ef_search(self) -> int:
        """The default ``ef`` of searches; saved by ``to_bytes``."""
        n: int = self._index.ef_search
        return n

    @ef_search.setter
    def ef_search(self, ef: int) -> None:
        self._index.ef_search = _check_int(ef, "ef_search", _ROW_MAX)

    def unreachable(self) -> int:
        """Live rows a walk of the bottom layer from the entry point misses (still found by
        the scan that ends an exhausted search). A diagnostic: growing means rebuild."""
        n: int = self._index.unreachable()
        return n

    def __repr__(self) -> str:
        return (
            f"AnnIndex(dim={self.dim}, m={self.m}, ef_construction={self.ef_construction}, "
            f"ef_search={self.ef_search}, live={len(self)}, deleted={self.deleted})"
        )


# -- the index as derived database state ---------------------------------------------------

# Operations the background builder applies per hold of the database lock: about 0.1 s of
# inserts at 100k rows, so a waiting ask or write is not held up for long.
BACKGROUND_CHUNK = 256


class GraphBuilder:
    """A daemon thread that works off a database's ANN queue while the program does
    something else, so a search finds the graph (nearly) up to date. ``step()`` applies
    one chunk under the database lock and says whether more is queued; the thread holds
    ``step`` weakly, so a dropped handle ends it. When ran does not change the graph."""

    def __init__(self, step: Callable[[], bool]):
        self._step = weakref.WeakMethod(step)
        self._wake = threading.Event()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="mnemos-ann", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop after the chunk in progress. Call without holding the database lock."""
        self._stopped = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped:
            if not self._wake.wait(timeout=1.0):
                if self._step() is None:  # the handle is gone
                    return
                continue
            self._wake.clear()
            while not self._stopped:
                step = self._step()
                if step is None:
                    return
                try:
                    more = step()
                except Exception as exc:  # the next search raises it where it can be seen
                    log.warning("building the ANN index in the background failed: %s", exc)
                    return
                del step
                if not more:
                    break
                time.sleep(0.001)  # let a waiting ask or write take the lock


# Operation codes of AnnState's pending list (FORMAT.md "ANN section").
OP_INSERT = 0
OP_DELETE = 1
OP_RENUMBER = 2

# The ANN snapshot section's fixed header (FORMAT.md "ANN section"): version, active,
# live nodes, deleted nodes, graph bytes, operations, saved vectors, kept rows, dim, 0.
SECTION_HEADER = struct.Struct("<IIQQQQQQII")
SECTION_VERSION = 1


class AnnState:
    """The database's HNSW graph as derived state: a function of the log alone.

    The state machine reports every change to the set of vectors (``insert``, ``delete``,
    ``renumber``, ``rebuild``) in event order, and this class queues it as an operation,
    cheaply and on both backends. ``advance`` (Rust only) applies queued operations to the
    graph in order, some at a time (a background thread) or all (``ready``, before an
    approximate search). A graph depends only on the sequence of its operations, never on
    how they are batched, so the graph a search sees is the same whenever and however often
    the queue was worked off: the same events give the same graph, live, after reopen,
    after a replay, and whatever the snapshot timing.

    The graph starts at the event that first brings the live memories to ``ANN_ROWS_MIN``,
    with every live row in row order, and starts afresh (``rebuild``) whenever its
    tombstones reach its live nodes. A queued insert reads its vector from the database's
    matrix when applied; if that row's vector is about to change first (an update with a
    new vector, a forgotten id remembered again, a compaction that drops or moves the row)
    the state machine calls ``keep_vector`` so the insert keeps the vector it had. Both the
    graph and the queue are stored in snapshots (FORMAT.md "ANN section").

    Operations have absolute numbers: the queue holds ``_first ..`` and the first
    ``_done`` of them are applied, so a number below ``_first + _done`` is applied.
    """

    def __init__(self, dim: int):
        self.dim = dim
        self.live_nodes = 0
        self.deleted_nodes = 0
        self._graph: AnnIndex | None = None
        # A snapshot's ANN_GRAPH section and its CRC, checked and loaded at first use.
        self._graph_bytes: memoryview | None = None
        self._graph_crc = 0
        self._first = 0
        self._done = 0
        self._kinds = array("B")
        self._clear()
        self._row_op = array("q")  # row -> its queued insert still reading the matrix, or -1

    def _clear(self) -> None:
        self._first += len(self._kinds)
        self._done = 0
        self._kinds = array("B")
        self._rows = array("I")  # insert/delete: the row; renumber: len(kept)
        self._keys = array("Q")
        self._vector_rows = array("q")  # insert: the row holding its vector now, or -1
        self._saved: dict[int, np.ndarray] = {}  # queue index -> the vector an insert keeps
        self._kept: dict[int, np.ndarray] = {}  # queue index -> a renumber's surviving rows

    @property
    def pending(self) -> int:
        """Operations queued and not yet applied to the graph."""
        return len(self._kinds) - self._done

    def stats(self) -> dict[str, int]:
        """Live nodes, tombstones and queued operations, for ``Mnemos.stats()``."""
        return {"live": self.live_nodes, "deleted": self.deleted_nodes, "pending": self.pending}

    # -- queueing (called by the state machine, in event order) ------------------------

    def insert(self, row: int, key: int) -> None:
        # Called once per memory written or replayed: kept to plain appends.
        number = self._first + len(self._kinds)
        self._kinds.append(OP_INSERT)
        self._rows.append(row)
        self._keys.append(key)
        self._vector_rows.append(row)
        row_op = self._row_op
        if row == len(row_op):
            row_op.append(number)
        else:
            while len(row_op) <= row:
                row_op.append(-1)
            row_op[row] = number
        self.live_nodes += 1

    def delete(self, row: int) -> bool:
        """Queue the delete; True if the graph then has as many tombstones as live nodes,
        and the caller must ``rebuild``."""
        self._push(OP_DELETE, row, 0, -1)
        self.live_nodes -= 1
        self.deleted_nodes += 1
        return self.deleted_nodes >= self.live_nodes

    def _queued_insert(self, row: int) -> int:
        """The index in the queue of ``row``'s unapplied insert that reads the matrix, or -1."""
        if row < len(self._row_op):
            index = self._row_op[row] - self._first
            if index >= self._done:
                return index
        return -1

    def keep_vector(self, row: int, vector: np.ndarray) -> None:
        """``row``'s vector (``vector``, its current value) is about to change or move: a
        queued insert that still reads it from the matrix keeps a copy instead."""
        index = self._queued_insert(row)
        if index >= 0:
            self._saved[index] = np.array(vector, dtype=np.float32)
            self._vector_rows[index] = -1
        if row < len(self._row_op):
            self._row_op[row] = -1

    def renumber(self, kept: np.ndarray, vector: Any) -> None:
        """The database kept only rows ``kept`` (ascending), renumbered from 0.
        ``vector(row)`` is a row's current vector (read before the matrix changes)."""
        total = max(len(self._row_op), int(kept[-1]) + 1 if len(kept) else 0)
        queued = np.full(total, -1, dtype=np.int64)
        queued[: len(self._row_op)] = np.frombuffer(self._row_op, dtype=np.int64) - self._first
        queued[queued < self._done] = -1
        dropped = np.ones(total, dtype=bool)
        dropped[kept] = False
        for row in np.flatnonzero(dropped & (queued >= 0)).tolist():
            self.keep_vector(row, vector(row))
        table = queued[kept]
        for new_row, index in enumerate(table.tolist()):
            if index >= 0:
                self._vector_rows[index] = new_row
        self._row_op = _array("q", np.where(table >= 0, table + self._first, -1))
        self._kept[len(self._kinds)] = np.asarray(kept, dtype=np.uint32)
        self._push(OP_RENUMBER, len(kept), 0, -1)

    def rebuild(self, rows: Sequence[int], keys: Sequence[int]) -> None:
        """Drop the graph and every queued operation; insert ``rows`` afresh."""
        self._graph, self._graph_bytes = None, None
        self.live_nodes = self.deleted_nodes = 0
        self._clear()
        for row, key in zip(rows, keys, strict=True):
            self.insert(row, key)

    def _push(self, kind: int, row: int, key: int, vector_row: int) -> None:
        self._kinds.append(kind)
        self._rows.append(row)
        self._keys.append(key)
        self._vector_rows.append(vector_row)

    # -- the graph -------------------------------------------------------------------------

    def ready(self, matrix: Any) -> AnnIndex:
        """The graph with every queued operation applied (needs the Rust extension).
        ``matrix.take(rows)`` gives the database's current vectors of ``rows``."""
        self.advance(matrix)
        assert self._graph is not None
        return self._graph

    def advance(self, matrix: Any, limit: int | None = None) -> int:
        """Apply up to ``limit`` queued operations (all without it); returns how many."""
        graph = self._graph
        if graph is None:
            if self._graph_bytes is not None:
                graph = self.load_graph(self._graph_bytes, self._graph_crc)
            else:
                graph = AnnIndex(self.dim)
            self._graph, self._graph_bytes = graph, None
        ops = len(self._kinds)
        stop = ops if limit is None else min(ops, self._done + limit)
        i = start = self._done
        while i < stop:
            kind = self._kinds[i]
            if kind == OP_DELETE:
                graph.delete(self._rows[i])
                i += 1
            elif kind == OP_RENUMBER:
                graph.renumber(self._kept.pop(i))
                i += 1
            else:
                end = i
                while end < stop and end - i < _FLUSH_CHUNK and self._kinds[end] == OP_INSERT:
                    end += 1
                graph.insert_many(
                    self._rows[i:end], self._insert_vectors(i, end, matrix), self._keys[i:end]
                )
                i = end
            self._done = i
        if self._done == ops:
            self._clear()
        return i - start

    def check_graph(self) -> None:
        """Check a stored graph now rather than at first use (``mnemos verify``): its
        section CRC, and with the Rust extension every invariant of its bytes."""
        if self._graph_bytes is None:
            return
        if available():
            self.load_graph(self._graph_bytes, self._graph_crc)
        elif crc32(self._graph_bytes) != self._graph_crc:
            raise CorruptDatabaseError("a snapshot's ANN_GRAPH section fails its checksum")

    @staticmethod
    def load_graph(data: memoryview, crc: int) -> AnnIndex:
        """A snapshot's ANN_GRAPH section, checked in full: ``CorruptDatabaseError`` if it
        fails its section CRC or its own checks."""
        if crc32(data) != crc:
            raise CorruptDatabaseError(
                "a snapshot's ANN_GRAPH section fails its checksum; run `mnemos verify` on "
                "the database"
            )
        try:
            return AnnIndex.from_bytes(data)
        except InvalidInputError as exc:
            raise CorruptDatabaseError(
                f"a snapshot's ANN_GRAPH section holds a damaged graph ({exc}); run "
                "`mnemos verify` on the database"
            ) from None

    def _insert_vectors(self, start: int, end: int, matrix: Any) -> np.ndarray:
        where = np.asarray(self._vector_rows[start:end], dtype=np.int64)
        out = np.empty((end - start, self.dim), dtype=np.float32)
        from_matrix = where >= 0
        if from_matrix.any():
            out[from_matrix] = matrix.take(where[from_matrix])
        for j in np.flatnonzero(~from_matrix).tolist():
            out[j] = self._saved.pop(start + j)
        return out

    # -- the snapshot section -----------------------------------------------------------

    def encode(self) -> tuple[list[bytes], bytes | memoryview]:
        """The ANN section (FORMAT.md "ANN section") in pieces, and the ANN_GRAPH section:
        the graph as applied so far (empty before any operation was applied), and the
        operations still queued."""
        if self._graph is not None:
            graph: bytes | memoryview = self._graph.to_bytes()
        else:
            graph = self._graph_bytes if self._graph_bytes is not None else b""
        done = self._done
        saved = sorted(self._saved)
        kept = [self._kept[index] for index in sorted(self._kept)]
        header = SECTION_HEADER.pack(
            SECTION_VERSION,
            1,
            self.live_nodes,
            self.deleted_nodes,
            len(graph),
            self.pending,
            len(saved),
            sum(len(k) for k in kept),
            self.dim,
            0,
        )
        section = [
            header,
            self._kinds[done:].tobytes(),
            _le(self._rows[done:], "<u4"),
            _le(self._keys[done:], "<u8"),
            _le(self._vector_rows[done:], "<i8"),
            np.asarray([index - done for index in saved], dtype="<u4").tobytes(),
            b"".join(self._saved[index].astype("<f4").tobytes() for index in saved),
            b"".join(k.astype("<u4").tobytes() for k in kept),
        ]
        return section, graph

    @staticmethod
    def inactive_section() -> bytes:
        """The ANN section of a database whose graph has not started."""
        return SECTION_HEADER.pack(SECTION_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    @classmethod
    def decode(
        cls, data: memoryview, rows: int, graph: tuple[memoryview, int] | None = None
    ) -> AnnState | None:
        """The state an ANN section holds (None: the graph has not started), continuing
        ``graph``, the ANN_GRAPH section and its CRC (checked and loaded at first use).
        Raises ValueError if malformed."""
        if len(data) < SECTION_HEADER.size:
            raise ValueError("ANN section is shorter than its header")
        fields = SECTION_HEADER.unpack_from(data)
        version, active, live, deleted, graph_bytes, ops, saved, kept, dim, _ = fields
        if version != SECTION_VERSION:
            raise ValueError(f"ANN section version {version} is not {SECTION_VERSION}")
        if not active:
            if len(data) != SECTION_HEADER.size:
                raise ValueError("an inactive ANN section has bytes after its header")
            return None
        if not 1 <= dim <= 4096:
            raise ValueError(f"ANN section dimension {dim} is out of range")
        if graph_bytes != (0 if graph is None else len(graph[0])):
            raise ValueError("ANN section's graph_bytes disagrees with the ANN_GRAPH section")
        sizes = (ops, 4 * ops, 8 * ops, 8 * ops, 4 * saved, 4 * saved * dim, 4 * kept)
        if SECTION_HEADER.size + sum(sizes) != len(data):
            raise ValueError("ANN section size disagrees with its header")
        parts = []
        at = SECTION_HEADER.size
        for size in sizes:
            parts.append(data[at : at + size])
            at += size
        state = cls(dim)
        state.live_nodes, state.deleted_nodes = live, deleted
        if graph is not None:
            state._graph_bytes, state._graph_crc = graph
        kinds = np.frombuffer(parts[0], dtype=np.uint8)
        op_rows = np.frombuffer(parts[1], dtype="<u4")
        vector_rows = np.frombuffer(parts[3], dtype="<i8")
        saved_ops = np.frombuffer(parts[4], dtype="<u4").astype(np.int64)
        vectors = np.frombuffer(parts[5], dtype="<f4").reshape(saved, dim)
        kept_rows = np.frombuffer(parts[6], dtype="<u4")
        inserts = kinds == OP_INSERT
        if np.any(kinds > OP_RENUMBER):
            raise ValueError("ANN section has an unknown operation")
        if np.any(~inserts & (vector_rows != -1)) or np.any(vector_rows >= rows):
            raise ValueError("ANN section has a vector row out of range")
        reading = vector_rows[vector_rows >= 0]
        if len(np.unique(reading)) != len(reading):
            raise ValueError("ANN section has two inserts reading one row")
        keeps = inserts & (vector_rows < 0)
        if not np.array_equal(saved_ops, np.flatnonzero(keeps)):
            raise ValueError("ANN section's saved vectors do not match its inserts")
        renumbers = np.flatnonzero(kinds == OP_RENUMBER)
        if int(op_rows[renumbers].astype(np.int64).sum()) != kept:
            raise ValueError("ANN section's kept rows do not add up")
        state._kinds = _array("B", kinds)
        state._rows = _array("I", op_rows)
        state._keys = _array("Q", np.frombuffer(parts[2], dtype="<u8"))
        state._vector_rows = _array("q", vector_rows)
        state._saved = {int(op): vectors[j].copy() for j, op in enumerate(saved_ops.tolist())}
        at = 0
        for op in renumbers.tolist():
            state._kept[op] = kept_rows[at : at + int(op_rows[op])].copy()
            at += int(op_rows[op])
        table = np.full(rows, -1, dtype=np.int64)  # queue index = op number: _first is 0
        live_inserts = np.flatnonzero(inserts & (vector_rows >= 0))
        table[vector_rows[live_inserts]] = live_inserts
        state._row_op = _array("q", table)
        return state


def _array(typecode: str, values: np.ndarray) -> array[Any]:
    """A typed array of ``values`` in one copy."""
    out = array(typecode)
    out.frombytes(values.astype(np.dtype(typecode), copy=False).tobytes())
    return out


def _le(column: array[Any], dtype: str) -> bytes:
    return np.frombuffer(column, dtype=column.typecode).astype(dtype).tobytes()
