"""Every error the Rust binding raises on purpose is its mnemos.errors class (error.rs).

Calls ``mnemos._core`` directly, one error path of each binding module at a time (lib,
wal, kernels, ann) and asserts the exact class: bad arguments ``InvalidInputError`` (so
also ``ValueError``), damaged index bytes ``CorruptDatabaseError`` with the offset of the
damage, an unknown row ``InvalidInputError`` rather than ``KeyError``; each a ``MnemosError``
whose message says what was wrong. Not reachable from here: a payload of 4 GiB, a full index
and a lock poisoned by a panic.
"""

from __future__ import annotations

import numpy as np
import pytest

from mnemos import _native
from mnemos.errors import CorruptDatabaseError, InvalidInputError, MnemosError
from mnemos.index.ann import AnnIndex

pytestmark = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not built")


def raises(cls: type[MnemosError], call, match: str) -> MnemosError:
    """The error ``call()`` raises, checked to be exactly ``cls``, a MnemosError."""
    with pytest.raises(MnemosError, match=match) as info:
        call()
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    return info.value


def invalid(call, match: str) -> None:
    err = raises(InvalidInputError, call, match)
    assert isinstance(err, ValueError) and not isinstance(err, KeyError)


def core():
    return _native._core


# -- lib.rs and wal.rs ----------------------------------------------------------------------


def test_crc32_of_a_non_contiguous_buffer():
    strided = memoryview(bytearray(16))[::2]
    invalid(lambda: core().crc32(strided), r"C-contiguous buffer; pass bytes\(data\)")


def test_scan_records_of_a_non_contiguous_buffer():
    strided = memoryview(bytearray(64))[::2]
    invalid(lambda: core().scan_records(strided, 0, 0, 0), r"C-contiguous buffer; pass bytes")


def test_a_damaged_scan_is_reported_not_raised():
    result = core().scan_records(b"\xff" * 64, 1, 0, 0)
    assert result[4] in ("torn", "corrupt")


def test_what_pyo3_refuses_itself_stays_a_type_error():
    # An object without the buffer protocol: raised by PyO3 while extracting the argument.
    with pytest.raises(TypeError) as info:
        core().crc32("text")
    assert not isinstance(info.value, MnemosError)


# -- kernels.rs -----------------------------------------------------------------------------


def arrays(n: int = 12, dim: int = 4):
    rng = np.random.default_rng(3)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    norms = np.linalg.norm(rows, axis=1).astype(np.float32)
    queries = np.ascontiguousarray(rows[:2] / norms[:2, None])
    return rows, norms, queries, np.ones(n, dtype=bool)


def test_kernels_refuse_a_buffer_of_the_wrong_dtype():
    rows, norms, queries, mask = arrays()
    invalid(
        lambda: core().candidates([rows.astype(np.float64)], norms, queries, mask, 3, 0.0),
        r"parts\[0\] must be float32.*numpy.ascontiguousarray",
    )
    invalid(
        lambda: core().candidates([rows], norms, queries, mask.astype(np.int32), 3, 0.0),
        "mask must be bool or uint8",
    )
    invalid(lambda: core().quantize(rows.astype(np.float64)), "matrix must be float32")
    codes, scales = core().quantize(rows)
    int8 = np.frombuffer(codes, dtype=np.int8).reshape(rows.shape)
    invalid(
        lambda: core().search_int8(
            int8.view(np.uint8), np.frombuffer(scales, "<f4"), [rows], norms, queries, mask, 3, 6
        ),
        r"codes\[0\] must be int8",
    )


def test_kernels_refuse_wrong_dimensions_layout_and_alignment():
    rows, norms, queries, mask = arrays()
    invalid(
        lambda: core().candidates([rows], norms, queries[0], mask, 3, 0.0),
        "queries must be 2-dimensional; it has 1 dimensions: reshape it",
    )
    invalid(
        lambda: core().candidates([np.asfortranarray(rows)], norms, queries, mask, 3, 0.0),
        r"parts\[0\] must be C-contiguous",
    )
    raw = bytearray(rows.tobytes() + b"\0")
    shifted = np.frombuffer(raw, dtype=np.float32, count=rows.size, offset=1).reshape(rows.shape)
    invalid(
        lambda: core().candidates([shifted], norms, queries, mask, 3, 0.0),
        r"parts\[0\] is not aligned to 4 bytes; pass a copy",
    )
    invalid(
        lambda: core().candidates([rows[:, :3].copy()], norms, queries, mask, 3, 0.0),
        r"parts\[0\] has rows of 3 values; the queries have 4",
    )


def test_kernel_shape_errors_from_the_core():
    rows, norms, queries, mask = arrays()
    invalid(
        lambda: core().candidates([rows], norms[:-1], queries, mask, 3, 0.0),
        "norms has 11 values for 12 rows",
    )
    invalid(
        lambda: core().candidates([rows], norms, queries, mask, 3, -1.0),
        "margin must be finite and at least 0",
    )
    codes, scales = core().quantize(rows)
    int8 = np.frombuffer(codes, dtype=np.int8).reshape(rows.shape)
    invalid(
        lambda: core().search_int8(
            int8[:-1], np.frombuffer(scales, "<f4"), [rows], norms, queries, mask, 3, 6
        ),
        "codes are 11 x 4 for a matrix of 12 x 4",
    )


# -- ann.rs ---------------------------------------------------------------------------------


@pytest.fixture
def index():
    index = core().HnswIndex(4, 4, 16, 16)
    index.insert(0, 1, np.array([1, 0, 0, 0], np.float32))
    return index


def test_index_parameters_out_of_range(index):
    invalid(lambda: core().HnswIndex(0), "dim must be from 1")
    invalid(lambda: core().HnswIndex(4, 1), "m must be from 2")

    def set_ef(ef: int) -> None:
        index.ef_search = ef

    invalid(lambda: set_ef(0), "ef_search must be from 1")
    invalid(lambda: index.search(np.ones(4, np.float32), 1, 0), "ef must be from 1")


def test_index_vectors_that_cannot_be_inserted(index):
    vec = np.array([0, 1, 0, 0], np.float32)
    invalid(lambda: index.insert(0, 2, vec), "row 0 is already in the index; delete it")
    invalid(lambda: index.insert(1, 2, vec[:3]), "vector has 3 dimensions but the index holds 4")
    invalid(lambda: index.insert(1, 2, np.array([np.nan, 1, 0, 0], np.float32)), "NaN")
    invalid(lambda: index.insert(1, 2, np.zeros(4, np.float32)), "all zeros")
    batch = np.eye(4, dtype=np.float32)[1:3]
    invalid(lambda: index.insert_batch([1, 0], [5, 6], batch), "item 1: row 0 is already")
    invalid(lambda: index.insert_batch([1, 2, 3], [5, 6, 7], batch), "batch needs")
    assert (len(index), index.nodes) == (1, 1), "an error inserts nothing"


def test_index_buffers_the_binding_refuses(index):
    invalid(lambda: index.insert(1, 2, np.ones(4)), r"vector must be a buffer of float32")
    invalid(
        lambda: index.insert(1, 2, np.ones((4, 2), np.float32)[:, 0]),
        r"vector must be C-contiguous; pass numpy.ascontiguousarray\(vector\)",
    )
    raw = bytearray(17)
    shifted = np.frombuffer(raw, dtype=np.float32, count=4, offset=1)
    invalid(lambda: index.insert(1, 2, shifted), "vector is not aligned")
    invalid(
        lambda: index.search(np.ones(4, np.float32), 1, None, np.ones(1, np.int32)),
        "mask must be a buffer of bool or uint8",
    )
    invalid(
        lambda: index.write_into(bytearray(index.serialized_len() + 1)),
        f"the buffer has {index.serialized_len() + 1}",
    )
    invalid(lambda: index.write_into(index.to_bytes()), "needs a writable buffer; pass")
    invalid(lambda: core().HnswIndex.from_bytes(np.ones(20, np.float32)), "data must be")


def test_index_unknown_rows_are_invalid_input_not_key_error(index):
    invalid(lambda: index.delete(7), "row 7 has no live entry")
    invalid(lambda: index.renumber([5]), "live row 0 is not among the kept rows; delete it")
    invalid(lambda: index.search(np.zeros((2, 4), np.float32), 1), "item 0: vector is all zeros")
    invalid(lambda: index.search(np.ones(4, np.float32), 10**6), "k must be at most")


def test_damaged_index_bytes_are_corrupt_with_their_offset(index):
    data = index.to_bytes()
    cases = [
        (data[:10], 10),  # shorter than the header
        (b"X" + data[1:], 0),  # magic
        (data[:-1] + bytes([data[-1] ^ 1]), len(data) - 4),  # checksum
        (data + b"\0", 48),  # the header's length
    ]
    for damaged, offset in cases:
        err = raises(
            CorruptDatabaseError,
            lambda d=damaged: core().HnswIndex.from_bytes(d),
            f"damaged ANN index at byte {offset}:",
        )
        assert (err.offset, err.path) == (offset, None)
        assert not isinstance(err, ValueError)


def test_the_wrapper_keeps_its_value_error_with_the_offset_as_cause(index):
    data = index.to_bytes()
    with pytest.raises(InvalidInputError, match="damaged ANN index at byte 0") as info:
        AnnIndex.from_bytes(b"X" + data[1:])
    cause = info.value.__cause__
    assert isinstance(cause, CorruptDatabaseError) and cause.offset == 0
    with pytest.raises(InvalidInputError, match="data must be bytes"):
        AnnIndex.from_bytes("text")  # type: ignore[arg-type]
