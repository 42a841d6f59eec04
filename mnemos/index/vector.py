"""Exact vector search over a growable float32 matrix.

Derived state: rows are filled by the state machine in apply order, so the same events
always give the same matrix. Scores are cosine similarity; the stored vectors stay as
given (``Memory.vector`` returns them unchanged) and their norms are kept beside them.
"""

from __future__ import annotations

import numpy as np

_INITIAL_ROWS = 1024


class VectorIndex:
    def __init__(self, dim: int, rows: int = 0, capacity: int = _INITIAL_ROWS):
        capacity = max(capacity, rows, 1)
        self.dim = dim
        self.n = rows
        self.mat = np.zeros((capacity, dim), dtype=np.float32)
        self.norms = np.zeros(capacity, dtype=np.float32)
        # Row attributes used as filters inside the scan.
        self.alive = np.zeros(capacity, dtype=bool)
        self.ns = np.zeros(capacity, dtype=np.int32)
        self.kind = np.zeros(capacity, dtype=np.int8)

    @classmethod
    def from_arrays(
        cls,
        mat: np.ndarray,
        norms: np.ndarray,
        alive: np.ndarray,
        ns: np.ndarray,
        kind: np.ndarray,
    ) -> VectorIndex:
        index = cls.__new__(cls)
        index.dim = mat.shape[1]
        index.n = mat.shape[0]
        index.mat, index.norms, index.alive, index.ns, index.kind = mat, norms, alive, ns, kind
        return index

    def _grow(self, need: int) -> None:
        capacity = max(need, 2 * len(self.mat), _INITIAL_ROWS)
        for name in ("mat", "norms", "alive", "ns", "kind"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def append(self, vector: np.ndarray, ns: int, kind: int) -> int:
        row = self.n
        if row >= len(self.mat):
            self._grow(row + 1)
        self.n = row + 1
        self.set(row, vector, ns, kind)
        return row

    def set(self, row: int, vector: np.ndarray, ns: int, kind: int) -> None:
        self.mat[row] = vector
        self.norms[row] = np.sqrt(np.dot(vector.astype(np.float64), vector))
        self.alive[row] = True
        self.ns[row] = ns
        self.kind[row] = kind

    def keep(self, rows: np.ndarray) -> None:
        """Keep only ``rows`` (ascending), renumbered from 0 in that order."""
        self.n = len(rows)
        capacity = max(self.n, _INITIAL_ROWS)
        for name in ("mat", "norms", "alive", "ns", "kind"):
            old = getattr(self, name)
            new = np.zeros((capacity, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[rows]
            setattr(self, name, new)

    def search(self, query: np.ndarray, top_k: int, mask: np.ndarray) -> list[tuple[int, float]]:
        """(row, cosine) of the best ``top_k`` rows where ``mask`` is true, best first.

        Rows tied with the k-th score are all returned (so the list may be longer than
        ``top_k``): callers break ties by memory id, which must not depend on which of
        the tied rows a partial sort happened to keep.
        """
        n = self.n
        if n == 0 or top_k <= 0:
            return []
        q = query.astype(np.float32, copy=False)
        qnorm = np.float32(np.sqrt(np.dot(q.astype(np.float64), q)))
        scores = self.mat[:n] @ q
        scores /= self.norms[:n] * qnorm
        scores[~mask[:n]] = -np.inf
        k = min(top_k, int(np.count_nonzero(mask[:n])))
        if k == 0:
            return []
        if k < n:
            kth = scores[np.argpartition(-scores, k - 1)[k - 1]]
            rows = np.flatnonzero(scores >= kth)
        else:
            rows = np.flatnonzero(mask[:n])
        order = rows[np.lexsort((rows, -scores[rows]))]
        return [(int(r), float(scores[r])) for r in order]
