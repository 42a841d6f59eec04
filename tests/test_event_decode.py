"""Replay decodes log events in the Rust core, and gets the Python reference's events.

``ScanResult.events`` hands a scanned segment's payloads to ``_core.decode_events`` in one
call; each payload it does not decode itself (ext values, invalid UTF-8, deep nesting,
anything that is not one event map) is passed on for ``decode_event`` to decode or refuse.
The differential tests check every payload, well-formed or not, against ``decode_event``;
the database tests check that open and ``as_of`` replay through it, chunk by chunk, and
still name the seq of an event that will not decode. Last, encoding: ``events.pack``
(one msgpack Packer per thread) gives ``msgpack.packb``'s bytes.
"""

from __future__ import annotations

import mmap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mnemos import CorruptDatabaseError, InvalidInputError, Mnemos, _native, events
from mnemos.events import decode_event
from mnemos.wal import LogEvents, encode_record_py, scan_records

needs_rust = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not built")


def scanned(payloads: list[bytes]):
    """The payloads as a log segment body (one transaction each), scanned."""
    body, crc = bytearray(), 0
    for seq, payload in enumerate(payloads, 1):
        record, crc = encode_record_py(7, seq, crc, 0, 1, 0, payload)
        body += record
    result = scan_records(bytes(body), 32, 7, 0, 0)
    assert result.status == "clean" and result.count == len(payloads)
    return result


def reference(payload: bytes) -> dict[str, Any] | None:
    try:
        return decode_event(payload)
    except Exception:
        return None


def same_value(a: object, b: object) -> bool:
    """Equal and of the same types throughout (True is not 1 here), NaN equal to NaN."""
    pack = msgpack.Packer(use_bin_type=True, strict_types=True)
    return bool(pack.pack(a) == pack.pack(b))


# Values msgpack gives back as plain Python: what the Rust decoder must decode itself.
plain = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=40)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10) | st.binary(max_size=4), inner, max_size=5)
    ),
    max_leaves=25,
)
plain_events = st.builds(
    lambda t, rest: {"t": t, **rest},
    st.text(max_size=12),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k != "t"), plain, max_size=8),
)


def pack(value: object, single_float: bool) -> bytes:
    """msgpack bytes; floats as float 32 if asked and they all fit."""
    try:
        return bytes(msgpack.packb(value, use_bin_type=True, use_single_float=single_float))
    except OverflowError:
        if not single_float:
            raise
        return pack(value, False)


# Payloads that are not plain events: the decoder leaves each to decode_event.
odd_payloads = st.one_of(
    st.binary(max_size=60),
    plain.map(lambda v: pack(v, False)),  # not a map with a str "t", mostly
    st.builds(  # an ext value or a timestamp inside an event
        lambda code, data: pack({"t": "remember", "x": msgpack.ExtType(code, data)}, False),
        st.integers(0, 127),
        st.binary(max_size=20),
    ),
    st.builds(  # a key msgpack refuses (strict_map_key)
        lambda key: pack({"t": "remember", key: 1}, False),
        st.integers(-(2**63), 2**64 - 1) | st.none(),
    ),
    st.builds(lambda e, extra: pack(e, False) + extra, plain_events, st.binary(min_size=1)),
    st.builds(lambda e, cut: pack(e, False)[:cut], plain_events, st.integers(0, 30)),
)


@needs_rust
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(plain_events, st.booleans()), max_size=12))
def test_plain_events_decode_in_rust_to_the_reference_value(events):
    payloads = [pack(event, single) for event, single in events]
    decoded = scanned(payloads).events(0, len(payloads))
    for i, ((seq, event), payload) in enumerate(zip(decoded, payloads, strict=True), 1):
        assert seq == i
        assert isinstance(event, dict), payload  # decoded here, not left to the reference
        assert same_value(event, decode_event(payload))


@needs_rust
@settings(max_examples=500, deadline=None)
@given(st.lists(plain_events.map(lambda e: pack(e, False)) | odd_payloads, max_size=12))
@example([b"\x81\xa1t\xa2\xff\xfe"])  # "t" is not UTF-8
@example([b"\x81\xa1t\x01"])  # "t" is not a str
@example([b"\x80", b"\xc1", b""])  # no "t"; the unused marker; nothing
@example([pack({"t": "x", "deep": [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]] * 5}, False)])
def test_every_payload_decodes_to_the_reference_value_or_is_left_to_it(payloads):
    decoded = scanned(payloads).events(0, len(payloads))
    for (_seq, event), payload in zip(decoded, payloads, strict=True):
        expected = reference(payload)
        if isinstance(event, dict):
            assert expected is not None and same_value(event, expected)
        else:  # left to decode_event: the payload itself
            assert bytes(event) == payload


@needs_rust
def test_nesting_past_the_decoders_depth_is_left_to_the_reference():
    deep: object = 1
    for _ in range(100):
        deep = [deep]
    payloads = [pack({"t": "x", "v": deep}, False), pack({"t": "y"}, False)]
    (_, first), (_, second) = scanned(payloads).events(0, 2)
    assert bytes(first) == payloads[0] and decode_event(first)["v"] == deep
    assert second == {"t": "y"}


@needs_rust
def test_a_run_of_records_decodes_alone():
    payloads = [pack({"t": str(i)}, False) for i in range(10)]
    assert scanned(payloads).events(3, 6) == [(4, {"t": "3"}), (5, {"t": "4"}), (6, {"t": "5"})]


@needs_rust
def test_duplicate_keys_and_float32_specials_decode_as_msgpack_reads_them():
    # {"t": "x", "k": 1, "k": 2.5 as float 32, "n": NaN as float 32, "i": -inf as float 32}
    payload = (
        b"\x85\xa1t\xa1x\xa1k\x01\xa1k\xca\x40\x20\x00\x00"
        b"\xa1n\xca\x7f\xc0\x00\x00\xa1i\xca\xff\x80\x00\x00"
    )
    [(_, event)] = scanned([payload]).events(0, 1)
    assert isinstance(event, dict) and same_value(event, decode_event(payload))
    assert list(event) == ["t", "k", "n", "i"] and event["k"] == 2.5


@needs_rust
def test_a_payload_left_to_the_reference_leaves_the_rest_of_the_segment_in_rust():
    odd = pack({"t": "x", "e": msgpack.ExtType(1, b"")}, False)
    payloads = [odd] + [pack({"t": str(i)}, False) for i in range(9)] + [odd]
    result = scanned(payloads)
    chunks = [result.events(lo, min(lo + 4, len(payloads))) for lo in range(0, 11, 4)]
    kinds = [type(event).__name__ for chunk in chunks for _seq, event in chunk]
    assert kinds == ["memoryview"] + ["dict"] * 9 + ["memoryview"]
    assert [seq for chunk in chunks for seq, _event in chunk] == list(range(1, 12))


@needs_rust
def test_only_buffers_nothing_can_write_to_are_decoded(tmp_path: Path):
    result = scanned([pack({"t": "x"}, False)])
    data = bytes(result._data)
    path = tmp_path / "segment"
    path.write_bytes(data)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        for buffer in (data, memoryview(data), mapped, view):
            decoded, left = _native._core.decode_events(buffer, result._packed)
            assert decoded == [{"t": "x"}] and left == []
        view.release()
    writable = bytearray(data)
    for buffer in (writable, memoryview(writable).toreadonly(), memoryview(writable)):
        with pytest.raises(InvalidInputError, match="bytes, a read-only mmap"):
            _native._core.decode_events(buffer, result._packed)


def test_open_and_as_of_replay_through_small_chunks(db_path: Path, monkeypatch):
    db = Mnemos.open(db_path, dim=4, embedder=None)
    db.remember_many([{"text": f"fact {i}", "vector": [1.0, i, 0.0, 2.0]} for i in range(20)])
    for i in range(5):
        db.update(f"m{2 + i}", text=f"fact {i}, revised")
    db.forget("m9")
    hashes = {seq: db.as_of(seq).state_hash() for seq in (1, 7, 21, db.seq)}
    expected = db.state_hash()
    db.close()
    monkeypatch.setattr(LogEvents, "DECODE_CHUNK", 3)
    db = Mnemos.open(db_path)
    assert db.state_hash() == expected
    for seq, state_hash in hashes.items():
        with db.as_of(seq) as view:
            assert view.state_hash() == state_hash
    db.close()


def test_an_event_left_to_the_reference_replays_as_it_did(db_path: Path):
    """An ext value inside metadata: applied the same whether decoded here or there."""
    db = Mnemos.open(db_path, dim=2, embedder=None)
    db.remember("before", vector=[1.0, 0.0])
    event = {
        "t": "remember", "at": 5, "id": "odd", "text": "odd", "ns": "default",
        "kind": "semantic", "imp": 0.5, "ts": 5,
        "meta": {"blob": msgpack.ExtType(3, b"xy")},
        "vec": bytes(8),
    }  # fmt: skip
    db._append_replayed([msgpack.packb(event, use_bin_type=True)])
    db.remember("after", vector=[0.0, 1.0])
    expected = db.state_hash()
    db.close()
    with Mnemos.open(db_path) as again:
        assert again.state_hash() == expected
        assert again.get("odd").metadata == {"blob": msgpack.ExtType(3, b"xy")}


def test_an_event_that_will_not_decode_names_its_seq(db_path: Path):
    db = Mnemos.open(db_path, dim=2, embedder=None)
    db.remember("before", vector=[1.0, 0.0])
    seq = db.seq + 1
    writer = db._writable()
    writer.append([b"\x81\xa1t\xa2\xff\xfe"])  # checksummed, but "t" is not UTF-8
    db.close()
    with pytest.raises(CorruptDatabaseError, match=f"event at seq {seq} .*cannot be applied"):
        Mnemos.open(db_path)


# -- encoding: the per-thread packer ------------------------------------------------------


@given(plain)
def test_the_per_thread_packer_packs_as_packb(value):
    assert events.pack(value) == msgpack.packb(value, use_bin_type=True)


def test_a_packer_that_packed_something_big_is_not_kept():
    events.pack({"small": 1})
    kept = events._packers.packer
    events.pack({"small": 2})
    assert events._packers.packer is kept
    big = events.pack({"big": b"x" * (events._PACKER_KEEP_BYTES + 1)})
    assert len(big) > events._PACKER_KEEP_BYTES and not hasattr(events._packers, "packer")
    assert events.pack({"small": 3}) == msgpack.packb({"small": 3})


def test_a_failed_pack_leaves_nothing_behind():
    with pytest.raises(TypeError):
        events.pack({"a": [1, 2, object()]})
    assert events.pack({"b": 1}) == msgpack.packb({"b": 1}, use_bin_type=True)


def test_each_thread_packs_with_its_own_packer():
    def work(n: int) -> tuple[int, bool]:
        value = {"thread": n, "items": list(range(n * 10)), "text": "x" * n}
        expected = msgpack.packb(value, use_bin_type=True)
        same = all(events.pack(value) == expected for _ in range(200))
        return id(events._packers.packer), same

    barrier = threading.Barrier(8)  # all alive at once, so no packer id is reused

    def at_once(n: int) -> tuple[int, bool]:
        result = work(n)
        barrier.wait()
        return result

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(at_once, range(8)))
    assert all(same for _id, same in results)
    assert len({packer for packer, _same in results}) == 8
