"""Exact vector search over float32 rows.

Derived state: rows are filled by the state machine in apply order, so the same events
always give the same matrix. Scores are cosine similarity; the stored vectors stay as
given (``Memory.vector`` returns them unchanged) and their norms are kept beside them.

The matrix is two parts: ``base``, the rows a snapshot held (mapped copy-on-write from
the snapshot file, so open neither copies nor allocates them), and ``tail``, a growable
array for rows added since. Rows are numbered across both.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._native import _core
from . import kernels

_INITIAL_ROWS = 1024


def row_norms(rows: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row, summed in float64 and rounded to float32.

    Each row is reduced on its own (numpy's pairwise sum along the last axis), so a row's
    norm does not depend on which other rows are computed with it: replay, which does
    many rows at once, and live writes, which do one, agree to the bit.
    """
    wide = rows.astype(np.float64)
    norms: np.ndarray = np.sqrt(np.square(wide).sum(axis=1)).astype(np.float32)
    return norms


def _zeros_like_grown(old: np.ndarray, capacity: int, keep: int) -> np.ndarray:
    new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
    new[:keep] = old[:keep]
    return new


class VectorIndex:
    def __init__(self, dim: int, capacity: int = _INITIAL_ROWS):
        capacity = max(capacity, 1)
        self.dim = dim
        self.n = 0
        self.base = np.zeros((0, dim), dtype=np.float32)
        self.tail = np.zeros((capacity, dim), dtype=np.float32)
        # Per-row attributes, over all rows; used as filters inside the scan.
        self.norms = np.zeros(capacity, dtype=np.float32)
        self.alive = np.zeros(capacity, dtype=bool)
        self.ns = np.zeros(capacity, dtype=np.int32)
        self.kind = np.zeros(capacity, dtype=np.int8)
        self._stale: list[int] = []  # rows whose norm is not computed yet
        # Per-namespace partitions: code -> [rows, matrix, count], the namespace's rows
        # (ascending) and a contiguous copy of their vectors, built when a search first
        # filters on the namespace and kept up to date after, so such a search reads
        # only its namespace's rows. Buffers grow by doubling; ``count`` are in use.
        self._partitions: dict[int, list[Any]] = {}

    @classmethod
    def from_snapshot(
        cls,
        base: np.ndarray,
        norms: np.ndarray,
        alive: np.ndarray,
        ns: np.ndarray,
        kind: np.ndarray,
    ) -> VectorIndex:
        """An index over ``base`` (rows by dim, possibly a mapped file) with attribute
        arrays of at least that many rows."""
        index = cls(base.shape[1], capacity=len(norms) - base.shape[0])
        index.base, index.n = base, base.shape[0]
        index.norms, index.alive, index.ns, index.kind = norms, alive, ns, kind
        return index

    @property
    def capacity(self) -> int:
        return len(self.base) + len(self.tail)

    def row(self, row: int) -> np.ndarray:
        """A view of one row (copy it before handing it out)."""
        nb = len(self.base)
        view: np.ndarray = self.base[row] if row < nb else self.tail[row - nb]
        return view

    def take(self, rows: np.ndarray) -> np.ndarray:
        """A new array of the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        nb = len(self.base)
        if nb == 0 or (len(rows) and rows.max() < nb):  # all in one part: one gather
            gathered: np.ndarray = self.tail[rows] if nb == 0 else self.base[rows]
            return gathered
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        in_base = rows < nb
        out[in_base] = self.base[rows[in_base]]
        out[~in_base] = self.tail[rows[~in_base] - nb]
        return out

    def parts(self) -> list[np.ndarray]:
        """Rows 0..n as consecutive arrays (no copy)."""
        return [self.base, self.tail[: self.n - len(self.base)]]

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` rows in all, so a long replay does not regrow."""
        if rows > self.capacity:
            self._grow(rows, exact=True)

    def _grow(self, need: int, *, exact: bool = False) -> None:
        capacity = need if exact else max(need, 2 * self.capacity, _INITIAL_ROWS)
        nb = len(self.base)
        self.tail = _zeros_like_grown(self.tail, capacity - nb, self.n - nb)
        for name in ("norms", "alive", "ns", "kind"):
            setattr(self, name, _zeros_like_grown(getattr(self, name), capacity, self.n))

    def append(self, vector: np.ndarray, ns: int, kind: int) -> int:
        row = self.n
        if row >= self.capacity:
            self._grow(row + 1)
        self.n = row + 1
        self._write(row, vector, ns, kind)
        part = self._partitions.get(ns)
        if part is not None:
            rows, matrix, count = part
            if count == len(rows):
                rows = part[0] = _zeros_like_grown(rows, 2 * count + 16, count)
                matrix = part[1] = _zeros_like_grown(matrix, 2 * count + 16, count)
            rows[count], matrix[count] = row, vector
            part[2] = count + 1
        return row

    def set(self, row: int, vector: np.ndarray, ns: int, kind: int) -> None:
        """Overwrite an existing row."""
        old_ns = int(self.ns[row])
        if ns != old_ns:  # moved to another namespace: both partitions are rebuilt when needed
            self._partitions.pop(old_ns, None)
            self._partitions.pop(ns, None)
        elif old_ns in self._partitions:
            part = self._partitions[old_ns]
            part[1][np.searchsorted(part[0][: part[2]], row)] = vector
        self._write(row, vector, ns, kind)

    def _write(self, row: int, vector: np.ndarray, ns: int, kind: int) -> None:
        self.row(row)[:] = vector
        self._stale.append(row)
        self.alive[row] = True
        self.ns[row] = ns
        self.kind[row] = kind

    def fresh_norms(self) -> np.ndarray:
        """The norms of rows 0..n, computing those of rows set since the last call in
        one vectorised pass (replay sets 100k rows; one pass is much cheaper)."""
        if self._stale:
            rows = np.unique(np.asarray(self._stale, dtype=np.int64))
            self.norms[rows] = row_norms(self.take(rows))
            self._stale.clear()
        norms: np.ndarray = self.norms[: self.n]
        return norms

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), renumbered from 0 in that order."""
        self.fresh_norms()
        self._partitions.clear()
        kept = self.take(rows)
        n = len(rows)
        capacity = max(n, _INITIAL_ROWS)
        self.base = np.zeros((0, self.dim), dtype=np.float32)
        self.tail = np.zeros((capacity, self.dim), dtype=np.float32)
        self.tail[:n] = kept
        for name in ("norms", "alive", "ns", "kind"):
            old = getattr(self, name)
            new = np.zeros(capacity, dtype=old.dtype)
            new[:n] = old[rows]
            setattr(self, name, new)
        self.n = n

    def partition(self, code: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, vectors) of namespace ``code``, the vectors a contiguous copy."""
        part = self._partitions.get(code)
        if part is None:
            rows = np.flatnonzero(self.ns[: self.n] == code)
            part = self._partitions[code] = [rows, self.take(rows).copy(), len(rows)]
        count = part[2]
        return part[0][:count], part[1][:count]

    def search(
        self,
        queries: np.ndarray,
        top_k: int,
        mask: np.ndarray,
        namespaces: list[int] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """For each query (rows of a 2-d array), the (row, cosine) of the best ``top_k``
        rows where ``mask`` is true, best first. ``namespaces``: the codes the mask is
        limited to, if it is (their partitions are scanned instead of every row).

        Rows tied with the k-th score are all returned (so a list may be longer than
        ``top_k``): callers break ties by memory id, which must not depend on which of
        the tied rows a partial sort happened to keep.
        """
        n = self.n
        mask = mask[:n]
        selected = int(np.count_nonzero(mask))
        k = min(top_k, selected)
        if k <= 0:
            return [[] for _ in queries]
        norms = self.fresh_norms()
        wide = np.asarray(queries, dtype=np.float64)
        units = wide / np.sqrt(np.square(wide).sum(axis=1, keepdims=True))
        # A fast float32 pass picks the candidates; BLAS may round a row's dot product
        # differently depending on where the row sits in the matrix, so the candidates
        # (every row within RESCORE_MARGIN of the k-th) are then scored again exactly,
        # row by row in float64: the final scores depend only on the two vectors.
        in_partitions = 0
        if namespaces is not None:
            in_partitions = int(np.count_nonzero(np.isin(self.ns[:n], namespaces)))
        if namespaces is not None and in_partitions < PARTITION_BELOW * n:
            parts = [self.partition(code) for code in sorted(namespaces)]
            rows = np.concatenate([r for r, _m in parts])
            if _core is not None:  # the Rust scan over the partitions, as below
                local = kernels.candidates(
                    [m for _r, m in parts], norms[rows], units, mask[rows], k, RESCORE_MARGIN
                )
                return [self.rescore(rows[found], units[j], k) for j, found in enumerate(local)]
            approx = np.concatenate([m @ units.T.astype(np.float32) for _r, m in parts])
            approx /= norms[rows, None]
            approx[~mask[rows]] = -np.inf
        elif _core is not None:
            # The Rust scan skips masked rows inside the scan and returns each query's
            # candidates (a superset of the numpy path's: kernels.candidates); the exact
            # rescoring below then gives the same answer.
            found_all = kernels.candidates(self.parts(), norms, units, mask, k, RESCORE_MARGIN)
            return [self.rescore(found, units[j], k) for j, found in enumerate(found_all)]
        elif selected < GATHER_BELOW * n:
            # A selective filter (one namespace of many, a time range): scan only the
            # rows it lets through.
            rows = np.flatnonzero(mask)
            approx = self.take(rows) @ units.T.astype(np.float32)
            approx /= norms[rows, None]
        else:
            rows = np.arange(n)
            approx = np.concatenate([part @ units.T.astype(np.float32) for part in self.parts()])
            approx /= norms[:, None]
            approx[~mask] = -np.inf
        results = []
        for j in range(len(units)):
            column = approx[:, j]
            if k < len(rows):
                kth = column[np.argpartition(-column, k - 1)[k - 1]]
                found = rows[column >= kth - RESCORE_MARGIN]
            else:
                found = rows[mask[rows]]
            results.append(self.rescore(found, units[j], k))
        return results

    def rescore(
        self, found: np.ndarray, unit: np.ndarray, k: int | None = None
    ) -> list[tuple[int, float]]:
        """The candidates scored exactly, best first, down to the k-th score (ties kept;
        all of them without ``k``)."""
        if not len(found):
            return []
        exact = cosine(self.take(found), unit)
        order = np.lexsort((found, -exact))
        cut = exact[order[min(k or len(found), len(found)) - 1]]
        return [(int(found[i]), float(exact[i])) for i in order if exact[i] >= cut]

    def scores(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Exact cosine of ``query`` with each of ``rows``, as ``search`` computes it."""
        wide = np.asarray(query, dtype=np.float64)
        return cosine(self.take(rows), wide / np.sqrt(np.square(wide).sum()))


# When a filter lets through less than this share of the rows, gather those rows rather
# than scan them all (gathering copies, so it pays only when it skips most of the scan).
GATHER_BELOW = 0.1
# A namespace filter covering less than this share of the rows scans its partitions.
PARTITION_BELOW = 0.5
# Larger than any float32 rounding of a cosine over DIM_MAX dimensions.
RESCORE_MARGIN = 1e-3


def cosine(rows: np.ndarray, unit: np.ndarray) -> np.ndarray:
    """Cosine of each row with the unit vector ``unit``, in float64, each row reduced on
    its own (so the result does not depend on the other rows)."""
    wide = rows.astype(np.float64)
    dots = (wide * unit).sum(axis=1)
    lengths = np.sqrt(np.square(wide).sum(axis=1))
    scores: np.ndarray = dots / lengths
    return scores
