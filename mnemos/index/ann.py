"""Approximate nearest-neighbour search: a deterministic HNSW graph over rows.

A thin wrapper over ``mnemos._core.HnswIndex`` (``crates/mnemos-core/src/ann.rs``, whose
module documentation is the full design). Rows are the database's row numbers; scores are
cosine similarity, like ``VectorIndex.search``. The index keeps its own normalised float32
copy of each vector, so it stays valid when the database overwrites or renumbers rows.

Deterministic: the same inserts and deletes, in the same order, build the same graph (the
same ``to_bytes()``) and return the same results on every machine, however the inserts are
grouped into ``insert_many`` calls. A node's level comes from the ``key`` passed with it
(use ``ann_key(memory_id, seq)``), never from a random generator.

There is no pure-Python implementation: the Python reference for an approximate search is
the exact one (``VectorIndex.search``), which it must agree with on recall, not bit for bit.
With ``MNEMOS_BACKEND=python`` or without the extension, ``available()`` is false and
``AnnIndex(...)`` raises ``MnemosError``; callers use the exact path instead.

Deletes leave tombstones that still route searches. Rebuild (a new index over the live rows,
in row order, with the same keys) when ``needs_rebuild``: once tombstones are as many as the
live rows, searches visit about twice the nodes for the same recall.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from .. import _native
from ..errors import CorruptDatabaseError, InvalidInputError, MnemosError

__all__ = [
    "DEFAULT_EF_CONSTRUCTION",
    "DEFAULT_EF_SEARCH",
    "DEFAULT_M",
    "ANN_ROWS_MIN",
    "EXACT_MASK_BELOW",
    "AnnIndex",
    "ann_key",
    "available",
]

# The Rust defaults (crates/mnemos-core/src/ann.rs), the same meaning as hnswlib's M,
# ef_construction and ef: links per node (2*M on the bottom layer), the candidate list
# while inserting, and while searching (raised to k when smaller).
DEFAULT_M = 16
DEFAULT_EF_CONSTRUCTION = 200
DEFAULT_EF_SEARCH = 64

# Proposed for VectorIndex.search: use the ANN index from this many live rows (below it the
# exact scan is already well under a millisecond), unless the caller passes exact=True.
ANN_ROWS_MIN = 20_000
# A mask letting through less than this share of the rows makes the graph search wander
# (it counts only allowed rows toward its results): scan the allowed rows exactly instead.
EXACT_MASK_BELOW = 0.05

_ROW_MAX = 2**32 - 1
_KEY_MAX = 2**64 - 1


def available() -> bool:
    """Whether the Rust extension (and so the ANN index) is in use."""
    return _native._core is not None


def ann_key(memory_id: str, seq: int) -> int:
    """The 64-bit key that places a memory's node in the graph: a hash of its id and the
    seq of the event that inserted it, so a replay of the same events makes the same graph."""
    data = memory_id.encode("utf-8") + b"\0" + int(seq).to_bytes(8, "little", signed=False)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


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
        not be in the index; ``key`` (64 bits) fixes the node's level: see ``ann_key``."""
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
