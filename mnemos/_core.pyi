"""Typed surface of the Rust extension module `mnemos._core` (crates/mnemos-py).

Every function here has a pure-Python reference in the `mnemos` package with the same results.
Errors are `mnemos.errors` classes (crates/mnemos-py/src/error.rs): a bad argument raises
`InvalidInputError` (also a `ValueError`), damaged serialized bytes `CorruptDatabaseError`
with the `offset` of the damage. An object without the buffer protocol, or an int that does
not fit its parameter, raises PyO3's TypeError or OverflowError.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__version__: str

# Any C-contiguous buffer works at run time (mmap, numpy arrays, ...); collections.abc.Buffer
# would say so but needs Python 3.12, so typed callers wrap others in memoryview (`arr.data`).
def crc32(data: bytes | bytearray | memoryview, value: int = 0, /) -> int:
    """CRC-32 of `data` continuing from `value`; equal to `zlib.crc32(data, value)`.

    The raw bytes are hashed without a copy and with the GIL released; a non-contiguous buffer
    raises InvalidInputError. `value` must fit in 32 bits.
    """

def encode_record(
    salt: int,
    seq: int,
    prev_crc: int,
    txn_index: int,
    txn_count: int,
    unsynced: int,
    payload: bytes,
    /,
) -> tuple[bytes, int]:
    """One log record's bytes and its CRC; equal to `mnemos.wal.encode_record_py`.

    A payload of 4 GiB or more raises InvalidInputError.
    """

def scan_records(
    data: bytes | memoryview, salt: int, seq: int, crc: int, /
) -> tuple[bytes, int, int, int, str, int | None, str]:
    """Scan record bytes as `mnemos.wal.scan_records_py` does, with the GIL released.

    Returns (records, end, seq, crc, status, bad_offset, reason): `records` packs each
    committed record as 32 bytes (seq u64, crc u32, 4 zero bytes, payload offset u64, payload
    length u64, little-endian); offsets are into `data`; status is "clean", "torn" or
    "corrupt" (damage is reported in the result, never raised). A non-contiguous buffer raises
    InvalidInputError.
    """

def decode_events(
    data: bytes | memoryview, records: bytes, /
) -> tuple[list[dict[str, Any] | None], list[int]]:
    """Decode the payloads of `records` (a run of `scan_records`' packed records) in `data`
    (the scanned buffer: bytes, a read-only mmap, or a C-contiguous memoryview of either) as
    `mnemos.events.decode_event` does.

    Returns (events, left): each record's event, or None where the payload is left to
    `decode_event` (ext values, invalid UTF-8, deep nesting, not one event map); `left` lists
    those indexes. Any other buffer (one Python code could write to while objects are built),
    or a record outside `data`, raises InvalidInputError.
    """

# Vector kernels (crates/mnemos-core/src/kernels.rs), wrapped by mnemos/index/kernels.py.
# Arrays are read in place: C-contiguous, native byte order, aligned, of the stated dtype, or
# InvalidInputError; so are lengths that do not fit together. `parts` are consecutive 2-d blocks of one matrix (rows numbered across them).
# Results are little-endian bytes for numpy.frombuffer. The GIL is released for the scans.

def candidates(
    parts: Sequence[npt.NDArray[np.float32]],
    norms: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    k: int,
    margin: float,
    /,
) -> list[bytes]:
    """Per query, the selected rows within `margin` of the k-th best float32 score
    `dot(row, q) / norm`, ascending, as u32 bytes; all selected rows when k >= their count."""

def quantize(matrix: npt.NDArray[np.float32], /) -> tuple[bytes, bytes]:
    """(int8 codes, float32 scales) per row: scale = max|x| / 127, code = rint(x / scale)."""

def search_int8(
    codes: npt.NDArray[np.int8],
    scales: npt.NDArray[np.float32],
    parts: Sequence[npt.NDArray[np.float32]],
    norms: npt.NDArray[np.float32],
    queries: npt.NDArray[np.float32],
    mask: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None,
    k: int,
    rescore: int,
    /,
) -> list[tuple[bytes, bytes]]:
    """Per query, (u32 rows, float64 scores) of the best min(k, selected) rows, best first:
    the best max(rescore, k) by int8 score, rescored exactly over the float32 parts."""

# The deterministic HNSW index (crates/mnemos-core/src/ann.rs), wrapped by mnemos/index/ann.py.
# Vectors are C-contiguous float32 buffers; a mask is one byte per row (nonzero: allowed).
# Bad arguments (shapes, values, rows already in or not in the index) raise InvalidInputError;
# damaged bytes in `from_bytes` raise CorruptDatabaseError (`offset`: the first damaged byte;
# `path`: None). A lock left poisoned by a panic raises MnemosError: rebuild the index.

class HnswIndex:
    def __init__(
        self, dim: int, m: int = ..., ef_construction: int = ..., ef_search: int = ...
    ) -> None: ...
    def insert(self, row: int, key: int, vector: npt.NDArray[np.float32], /) -> None:
        """Add ``row``; its level comes from ``key`` (no random source)."""
    def insert_batch(
        self, rows: Sequence[int], keys: Sequence[int], vectors: npt.NDArray[np.float32], /
    ) -> None: ...
    def delete(self, row: int, /) -> None:
        """Tombstone ``row``: never returned, still used for routing. InvalidInputError if
        ``row`` has no live entry."""
    def renumber(self, kept: Sequence[int], /) -> None:
        """Keep only the live rows ``kept`` (ascending), renumbered 0.. in that order."""
    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        ef: int | None = None,
        mask: npt.NDArray[np.uint8] | npt.NDArray[np.bool_] | None = None,
        threads: int = 0,
    ) -> list[list[tuple[int, float]]]:
        """Per query, (row, cosine) of the best ``k`` allowed rows found, best first."""
    def to_bytes(self) -> bytes: ...
    def serialized_len(self) -> int: ...
    def write_into(self, buffer: bytearray | memoryview, /) -> None: ...
    @staticmethod
    def from_bytes(data: bytes | memoryview, /) -> HnswIndex:
        """Load `to_bytes()` output, checking all of it; CorruptDatabaseError if damaged."""
    def __len__(self) -> int: ...
    def __contains__(self, row: int) -> bool: ...
    @property
    def deleted(self) -> int: ...
    @property
    def nodes(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def m(self) -> int: ...
    @property
    def ef_construction(self) -> int: ...
    @property
    def ef_search(self) -> int: ...
    @ef_search.setter
    def ef_search(self, ef: int) -> None: ...
    def unreachable(self) -> int: ...
