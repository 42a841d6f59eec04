"""The Rust log codec gives the Python reference's answer on every input.

Record bytes and CRCs are compared for random records; segment scans for random runs of
transactions that are then truncated, bit-flipped, overwritten with garbage or given a
forged record after the damage: the records found, the end, the last seq and CRC, the
status (clean / torn / corrupt), the bad offset and the reason, to the character.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemos import _native
from mnemos.wal import ScanResult, encode_record, encode_record_py, scan_records, scan_records_py

pytestmark = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not built")

u32 = st.integers(0, 2**32 - 1)


@given(u32, st.integers(0, 2**64 - 1), u32, u32, u32, u32, st.binary(max_size=300))
def test_encoded_records_are_identical(salt, seq, prev, index, count, unsynced, payload):
    assert encode_record(salt, seq, prev, index, count, unsynced, payload) == encode_record_py(
        salt, seq, prev, index, count, unsynced, payload
    )


def build(salt: int, first_seq: int, crc: int, txns: list[list[bytes]], lag: int) -> bytes:
    """Transactions of records, chained from (first_seq - 1, crc); each record claims that
    ``lag`` records before it were still unsynced."""
    out = bytearray()
    seq = first_seq
    for txn in txns:
        for i, payload in enumerate(txn):
            record, crc = encode_record_py(salt, seq, crc, i, len(txn), min(lag, seq - 1), payload)
            out += record
            seq += 1
    return bytes(out)


def same(a: ScanResult, b: ScanResult) -> None:
    assert [(s, c, bytes(p)) for s, c, p in a.records] == [
        (s, c, bytes(p)) for s, c, p in b.records
    ]
    assert (a.end, a.seq, a.crc, a.status, a.bad_offset, a.reason) == (
        b.end,
        b.seq,
        b.crc,
        b.status,
        b.bad_offset,
        b.reason,
    )


damage = st.one_of(
    st.tuples(st.just("none")),
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(0, 7)),
    st.tuples(st.just("garbage"), st.floats(0, 1), st.binary(min_size=1, max_size=80)),
    st.tuples(st.just("append"), st.binary(max_size=40)),
)


@settings(max_examples=400, deadline=None)
@given(
    salt=u32,
    first=st.integers(1, 1000),
    crc=u32,
    txns=st.lists(st.lists(st.binary(max_size=60), min_size=1, max_size=4), max_size=8),
    lag=st.integers(0, 3),
    hurt=damage,
    base=st.integers(0, 4096),
)
def test_segment_scans_are_identical(salt, first, crc, txns, lag, hurt, base):
    data = bytearray(build(salt, first, crc, txns, lag))
    kind = hurt[0]
    if kind == "truncate":
        data = data[: int(hurt[1] * len(data))]
    elif kind == "flip" and data:
        at = min(int(hurt[1] * len(data)), len(data) - 1)
        data[at] ^= 1 << hurt[2]
    elif kind == "garbage" and data:
        at = min(int(hurt[1] * len(data)), len(data) - 1)
        data[at : at + len(hurt[2])] = hurt[2]
    elif kind == "append":
        data += hurt[1]
    rust = scan_records(bytes(data), base, salt, first - 1, crc)
    python = scan_records_py(bytes(data), base, salt, first - 1, crc)
    same(rust, python)


def test_damage_followed_by_a_durable_record_is_corruption_in_both():
    """A flipped byte in an early record, with later records written after it was durable
    (lag 0): both scanners report corruption at the same offset."""
    txns = [[b"a" * 10], [b"b" * 10], [b"c" * 10]]
    data = bytearray(build(7, 1, 0, txns, lag=0))
    data[40] ^= 0xFF
    rust, python = scan_records(bytes(data), 32, 7, 0, 0), scan_records_py(bytes(data), 32, 7, 0, 0)
    same(rust, python)
    assert (
        rust.status == "corrupt"
        and rust.bad_offset == 32
        and rust.reason == "record checksum mismatch"
    )
    assert scan_records(b"", 32, 7, 0, 0).status == "clean"
