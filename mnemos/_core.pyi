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
