"""The log damage sweep: a log of over 64 KiB truncated at every length and with every bit
flipped, on both backends.

Guards: every truncation scans to exactly the records wholly inside it (clean at a record
boundary, else a torn tail cut back to the last whole record), and a sample of them open to
exactly that prefix; every flipped bit before the final record is corruption at the offset of
the record it hit, never a silent drop and never a crash, and one inside the final record
(which no later record vouches for) is a torn tail there; a sample of flips opens to a
``CorruptDatabaseError`` naming that offset.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from conftest import vec

from mnemos import CorruptDatabaseError, Mnemos
from mnemos import format as fmt
from mnemos.wal import decode_segment_header, scan_records, segment_records

LOG_BYTES_MIN = 64 * 1024
WINDOW_RECORDS = 4  # a flip is scanned from its record over this many: later ones vouch


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> tuple[Path, bytes, list[int]]:
    """A database whose one segment holds over 64 KiB of single-record transactions, the
    segment's bytes, and the offset where each record starts (plus the end)."""
    path = tmp_path_factory.mktemp("sweep") / "db.mem"
    with Mnemos.open(path, embedder=None, dim=8, segment_bytes=1 << 20, clock=lambda: 1.7e9) as db:
        i = 0
        while (path / "wal" / fmt.segment_name(1)).stat().st_size < LOG_BYTES_MIN:
            db.remember(f"note {i}: " + "x" * (i % 97), vector=vec(i), metadata={"i": i})
            i += 1
    segment = path / "wal" / fmt.segment_name(1)
    data, spans = segment_records(str(segment), 1)
    starts = [fmt.SEGMENT_HEADER_BYTES] + [span.end for span in spans]
    assert len(data) >= LOG_BYTES_MIN and starts[-1] == len(data)
    return path, data, starts


def _scan(data: bytes, start: int, seq: int, crc: int, salt: int):
    return scan_records(memoryview(data)[start:], start, salt, seq, crc)


def test_every_truncation_scans_to_the_whole_records_inside_it(log):
    _path, data, starts = log
    salt = decode_segment_header(data, "segment").salt
    boundaries = set(starts)
    for n in range(fmt.SEGMENT_HEADER_BYTES, len(data) + 1):
        result = _scan(data[:n], fmt.SEGMENT_HEADER_BYTES, 0, 0, salt)
        whole = sum(1 for s in starts[1:] if s <= n)
        assert len(result.records) == whole, n
        assert result.end == starts[whole]
        assert result.status == ("clean" if n in boundaries else "torn"), n


def test_a_sample_of_truncations_opens_to_exactly_that_prefix(log, tmp_path):
    path, data, starts = log
    lengths = sorted(random.Random(7).sample(range(fmt.SEGMENT_HEADER_BYTES, len(data)), 40))
    for n in lengths:
        copy = tmp_path / f"t{n}.mem"
        shutil.copytree(path, copy)
        (copy / "wal" / fmt.segment_name(1)).write_bytes(data[:n])
        with Mnemos.open(copy, embedder=None) as db:
            assert db.seq == sum(1 for s in starts[1:] if s <= n), n
        shutil.rmtree(copy)


def test_every_bit_flip_is_corruption_at_its_record_or_a_torn_final_record(log):
    _path, data, starts = log
    salt = decode_segment_header(data, "segment").salt
    clean = _scan(data, fmt.SEGMENT_HEADER_BYTES, 0, 0, salt)
    prev = [(0, 0)] + [(seq, crc) for seq, crc, _p in clean.records]  # before each record
    last = len(starts) - 2  # index of the final record
    flips = 0
    for r in range(last + 1):
        lo, hi = starts[r], starts[r + 1]
        window_end = starts[min(r + 1 + WINDOW_RECORDS, last + 1)]
        seq, crc = prev[r]
        for byte in range(lo, hi):
            window = bytearray(data[lo:window_end])
            for bit in range(8):
                window[byte - lo] ^= 1 << bit
                result = scan_records(memoryview(bytes(window)), lo, salt, seq, crc)
                window[byte - lo] ^= 1 << bit
                expected = "torn" if r == last else "corrupt"
                assert (result.status, result.bad_offset) == (expected, lo), (byte, bit)
                assert len(result.records) == 0  # nothing at or after the damage is applied
                flips += 1
    assert flips == 8 * (len(data) - fmt.SEGMENT_HEADER_BYTES) >= 8 * 60_000


def test_a_sample_of_flips_opens_to_an_error_naming_the_offset(log, tmp_path):
    path, data, starts = log
    rng = random.Random(11)
    for _ in range(25):
        r = rng.randrange(len(starts) - 2)  # not the final record
        byte = rng.randrange(starts[r], starts[r + 1])
        copy = tmp_path / "flip.mem"
        shutil.copytree(path, copy)
        damaged = bytearray(data)
        damaged[byte] ^= 1 << rng.randrange(8)
        (copy / "wal" / fmt.segment_name(1)).write_bytes(bytes(damaged))
        with pytest.raises(CorruptDatabaseError) as caught:
            Mnemos.open(copy, embedder=None)
        assert caught.value.offset == starts[r]
        shutil.rmtree(copy)
