"""Typed surface of the Rust extension module `mnemos._core` (crates/mnemos-py).

Every function here has a pure-Python reference in the `mnemos` package with the same results.
"""

__version__: str

# Any C-contiguous buffer works at run time (mmap, numpy arrays, ...); collections.abc.Buffer
# would say so but needs Python 3.12, so typed callers wrap others in memoryview (`arr.data`).
def crc32(data: bytes | bytearray | memoryview, value: int = 0, /) -> int:
    """CRC-32 of `data` continuing from `value`; equal to `zlib.crc32(data, value)`.

    The raw bytes are hashed without a copy and with the GIL released; a non-contiguous buffer
    raises ValueError. `value` must fit in 32 bits.
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
    """One log record's bytes and its CRC; equal to `mnemos.wal.encode_record_py`."""

def scan_records(
    data: bytes | memoryview, salt: int, seq: int, crc: int, /
) -> tuple[bytes, int, int, int, str, int | None, str]:
    """Scan record bytes as `mnemos.wal.scan_records_py` does, with the GIL released.

    Returns (records, end, seq, crc, status, bad_offset, reason): `records` packs each
    committed record as 32 bytes (seq u64, crc u32, 4 zero bytes, payload offset u64, payload
    length u64, little-endian); offsets are into `data`; status is "clean", "torn" or
    "corrupt".
    """
