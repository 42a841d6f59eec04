"""Live memories ordered by timestamp, for ``since``/``until`` ranges.

Derived state, built on first use from the timestamp column (open and replay never pay
for it) and kept up to date by the state machine after that. A key packs (timestamp,
row) into one int so the sorted list compares plain ints.
"""

from __future__ import annotations

import numpy as np
from sortedcontainers import SortedList

_ROW_BITS = 32


def _key(ts: int, row: int) -> int:
    return (ts << _ROW_BITS) | row


class TemporalIndex:
    def __init__(self) -> None:
        self._keys: SortedList | None = None

    @property
    def built(self) -> bool:
        return self._keys is not None

    def build(self, tss: np.ndarray, live: np.ndarray) -> None:
        rows = np.flatnonzero(live)
        keys = (tss[rows].astype(object) << _ROW_BITS) | rows.astype(object)
        self._keys = SortedList(keys.tolist())

    def reset(self) -> None:
        self._keys = None

    def add(self, ts: int, row: int) -> None:
        if self._keys is not None:
            self._keys.add(_key(ts, row))

    def remove(self, ts: int, row: int) -> None:
        if self._keys is not None:
            self._keys.remove(_key(ts, row))

    def count(self, lo: int | None, hi: int | None) -> int:
        """Live memories with lo <= timestamp < hi (None: unbounded)."""
        keys = self._keys
        assert keys is not None
        start = 0 if lo is None else keys.bisect_left(_key(lo, 0))
        end = len(keys) if hi is None else keys.bisect_left(_key(hi, 0))
        return max(end - start, 0)

    def rows(self, lo: int | None, hi: int | None) -> np.ndarray:
        """Rows of live memories with lo <= timestamp < hi, in timestamp order."""
        keys = self._keys
        assert keys is not None
        found = keys.irange(
            None if lo is None else _key(lo, 0),
            None if hi is None else _key(hi, 0),
            inclusive=(True, False),
        )
        mask = (1 << _ROW_BITS) - 1
        return np.fromiter((k & mask for k in found), dtype=np.int64)
