"""Recovery guards the promise "a crash never leaves a database that will not open, and
damage that is not a torn tail is reported, never silently dropped".

Concretely: a final append cut at any byte opens at the previous commit (the writer cuts
the file back to the record boundary, a readonly open touches nothing); a transaction is
all-or-nothing; a flipped bit in an earlier record or a missing segment raises
``CorruptDatabaseError`` naming the file and the record's offset; a damaged snapshot falls
back to an older one plus the log with the same state hash; ``verify`` reports and
``repair`` cuts back to the valid prefix after taking a backup.

Offsets are computed here from FORMAT.md's layout (a 32-byte segment header, then records
of a 32-byte header plus payload), independently of the code under test.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import FixedClock, vec

import mnemos
from mnemos import CorruptDatabaseError, DatabaseLockedError, MemoryNotFound, Mnemos

SEGMENT_HEADER_BYTES = 32
RECORD_HEADER = struct.Struct(
    "<IIQIIII"
)  # crc, length, seq, prev_crc, txn_index, txn_count, reserved
SNAP_HEADER = struct.Struct("<8sIIQII")  # magic, version, sections, seq, last_crc, crc
SNAP_SECTION = struct.Struct("<IIQQQII")  # kind, codec, offset, stored, raw, crc, reserved
SECTION_STATE, SECTION_VECTORS = 1, 2


@dataclass(frozen=True)
class Rec:
    offset: int
    length: int
    seq: int
    txn_index: int
    txn_count: int

    @property
    def end(self) -> int:
        return self.offset + RECORD_HEADER.size + self.length


def parse_records(data: bytes) -> list[Rec]:
    """Every whole record of one segment's bytes, by walking the length fields."""
    assert RECORD_HEADER.size == 32
    out = []
    pos = SEGMENT_HEADER_BYTES
    while pos + RECORD_HEADER.size <= len(data):
        _crc, length, seq, _prev, index, count, _res = RECORD_HEADER.unpack_from(data, pos)
        if pos + RECORD_HEADER.size + length > len(data):
            break
        out.append(Rec(pos, length, seq, index, count))
        pos += RECORD_HEADER.size + length
    return out


def segments(db: Path) -> list[Path]:
    return sorted((db / "wal").glob("*.wal"))


def snapshots(db: Path) -> list[Path]:
    return sorted((db / "snapshots").glob("*.snap"))


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (but the lock file) by relative path."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "LOCK"
    }


def flip_bit(path: Path, offset: int, bit: int = 0) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))


def open_db(path: Path, **kwargs) -> Mnemos:
    return Mnemos.open(path, embedder=None, clock=FixedClock(step=1), **kwargs)


def build(path: Path, n: int = 3, **kwargs) -> dict[int, str]:
    """A database of ``n`` single remembers; the state hash after every commit, by seq."""
    hashes = {}
    with open_db(path, dim=8, durability="full", **kwargs) as db:
        hashes[db.seq] = db.state_hash()
        for i in range(n):
            db.remember(f"memory number {i}", vector=vec(i), metadata={"i": i})
            hashes[db.seq] = db.state_hash()
    return hashes


def check_opens_at(path: Path, seq: int, state_hash: str, *, readonly: bool) -> None:
    with Mnemos.open(path, embedder=None, readonly=readonly) as db:
        assert db.seq == seq
        assert db.state_hash() == state_hash


# -- torn tails ----------------------------------------------------------------------


def test_last_record_truncated_at_every_offset(db_path: Path, caplog: pytest.LogCaptureFixture):
    hashes = build(db_path, n=4)
    (seg,) = segments(db_path)
    data = seg.read_bytes()
    recs = parse_records(data)
    last = recs[-1]
    assert last.end == len(data) and last.seq == max(hashes)
    prev_seq = recs[-2].seq
    for cut in range(last.offset, len(data) + 1):
        seg.write_bytes(data[:cut])
        whole = cut == len(data)
        seq = last.seq if whole else prev_seq

        # A readonly open sees the committed prefix and leaves the file alone.
        stat = seg.stat()
        check_opens_at(db_path, seq, hashes[seq], readonly=True)
        assert seg.read_bytes() == data[:cut], f"readonly open modified the log (cut {cut})"
        assert seg.stat().st_mtime_ns == stat.st_mtime_ns

        # The writer's open cuts the torn bytes off and says so.
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="mnemos"):
            check_opens_at(db_path, seq, hashes[seq], readonly=False)
        torn = last.offset < cut < len(data)
        expected_size = last.offset if torn else cut
        assert seg.stat().st_size == expected_size, f"cut {cut}"
        warnings = [
            r for r in caplog.records if r.name == "mnemos" and r.levelno == logging.WARNING
        ]
        if torn:
            assert warnings, f"no warning for the torn tail at cut {cut}"
            assert seg.name in warnings[0].getMessage()
        else:
            assert not warnings, f"spurious warning at cut {cut}: {warnings}"


def test_writer_appends_after_truncating_a_torn_tail(db_path: Path):
    hashes = build(db_path, n=3)
    (seg,) = segments(db_path)
    data = seg.read_bytes()
    last = parse_records(data)[-1]
    seg.write_bytes(data[: last.offset + 30])
    with open_db(db_path) as db:
        assert db.seq == last.seq - 1
        mid = db.remember("after the crash", vector=vec(99))
        after = db.state_hash()
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.seq == last.seq
        assert db.get(mid).text == "after the crash"
        assert db.state_hash() == after
    assert mnemos.verify(db_path).problems == []
    assert hashes  # the pre-crash history is a prefix of what is there now


def test_batch_cut_at_every_offset_is_all_or_nothing(db_path: Path):
    build(db_path, n=2)
    with open_db(db_path) as db:
        before_seq, before_hash = db.seq, db.state_hash()
        ids = db.remember_many(
            [{"text": f"batch item {j}", "vector": vec(100 + j)} for j in range(4)]
        )
        after_seq, after_hash = db.seq, db.state_hash()
    (seg,) = segments(db_path)
    data = seg.read_bytes()
    batch = [r for r in parse_records(data) if r.seq > before_seq]
    assert [(r.txn_index, r.txn_count) for r in batch] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert batch[-1].end == len(data) and after_seq == before_seq + 4
    start = batch[0].offset
    for cut in range(start, len(data) + 1):
        seg.write_bytes(data[:cut])
        whole = cut == len(data)
        for readonly in (True, False):
            with Mnemos.open(db_path, embedder=None, readonly=readonly) as db:
                present = []
                for mid in ids:
                    try:
                        db.get(mid)
                        present.append(mid)
                    except MemoryNotFound:
                        pass
                assert present == (ids if whole else []), f"cut {cut}: {present}"
                assert db.seq == (after_seq if whole else before_seq), f"cut {cut}"
                assert db.state_hash() == (after_hash if whole else before_hash)
        assert seg.stat().st_size == (len(data) if whole else start), f"cut {cut}"


def test_unsynced_batch_persisted_out_of_order_is_a_torn_tail(db_path: Path):
    """Power loss during the fdatasync of an unacknowledged batch may persist its later
    sectors but not the first one. That transaction was never acknowledged, so the
    database must open without it rather than refuse to open."""
    build(db_path, n=2)
    with open_db(db_path) as db:
        before_seq, before_hash = db.seq, db.state_hash()
        db.remember_many(
            [{"text": f"batch item {j} " + "x" * 100, "vector": vec(j)} for j in range(30)]
        )
    (seg,) = segments(db_path)
    data = bytearray(seg.read_bytes())
    start = parse_records(bytes(data))[before_seq].offset  # first record of the batch
    hole_end = (start // 512 + 1) * 512  # the sector holding the batch's first bytes
    assert len(data) > hole_end + 1024
    data[start:hole_end] = bytes(hole_end - start)  # what was on disk before the append
    seg.write_bytes(bytes(data))
    check_opens_at(db_path, before_seq, before_hash, readonly=False)
    assert seg.stat().st_size == start


# -- damage before the tail --------------------------------------------------------------

FIELDS = {
    # name: (byte within the record, bit)
    "crc": (0, 3),
    "length_low": (4, 0),
    "length_high": (7, 7),
    "seq": (8, 1),
    "prev_crc": (16, 5),
    "txn_index": (20, 0),
    "txn_count": (24, 1),
    "reserved": (28, 4),
    "payload_first": (32, 2),
}


@pytest.mark.parametrize("which", ["first", "middle"])
def test_bit_flip_in_an_earlier_record_is_reported(db_path: Path, which: str):
    build(db_path, n=6)
    (seg,) = segments(db_path)
    pristine = seg.read_bytes()
    recs = parse_records(pristine)
    rec = recs[0] if which == "first" else recs[len(recs) // 2]
    assert rec is not recs[-1]
    positions = dict(FIELDS)
    positions["payload_middle"] = (32 + rec.length // 2, 6)
    positions["payload_last"] = (32 + rec.length - 1, 0)
    for field, (byte, bit) in positions.items():
        seg.write_bytes(pristine)
        flip_bit(seg, rec.offset + byte, bit)
        damaged = seg.read_bytes()
        for readonly in (True, False):
            with pytest.raises(CorruptDatabaseError) as info:
                Mnemos.open(db_path, embedder=None, readonly=readonly)
            err = info.value
            assert err.path is not None and Path(err.path) == seg, field
            assert err.offset == rec.offset, (field, err.offset, str(err))
            assert seg.name in str(err) and str(rec.offset) in str(err), str(err)
            # Nothing is cut off or "repaired" behind the user's back.
            assert seg.read_bytes() == damaged, field


def test_bit_flip_in_segment_header_is_reported(db_path: Path):
    build(db_path, n=2)
    (seg,) = segments(db_path)
    flip_bit(seg, 17)  # inside first_seq
    with pytest.raises(CorruptDatabaseError) as info:
        Mnemos.open(db_path, embedder=None)
    assert Path(info.value.path) == seg
    assert info.value.offset == 0


def multi_segment_db(path: Path, n: int = 60, **kwargs) -> dict[int, str]:
    hashes = build(path, n=n, segment_bytes=4096, snapshot_every_events=None, **kwargs)
    assert len(segments(path)) >= 3
    return hashes


def test_missing_middle_segment_is_corruption(db_path: Path):
    multi_segment_db(db_path)
    segs = segments(db_path)
    segs[1].unlink()
    for readonly in (True, False):
        with pytest.raises(CorruptDatabaseError, match="missing"):
            Mnemos.open(db_path, embedder=None, readonly=readonly)
    assert segments(db_path) == [segs[0], *segs[2:]]


def test_missing_first_segment_without_snapshot_is_corruption(db_path: Path):
    multi_segment_db(db_path, log_retention="keep")
    assert snapshots(db_path) == []
    segments(db_path)[0].unlink()
    for readonly in (True, False):
        with pytest.raises(CorruptDatabaseError):
            Mnemos.open(db_path, embedder=None, readonly=readonly)


def test_missing_only_segment_is_corruption(db_path: Path):
    """A database that has been written to but whose whole log is gone (and which has no
    snapshot) must not silently reopen as a new, empty database."""
    build(db_path, n=3)
    (seg,) = segments(db_path)
    seg.unlink()
    for readonly in (True, False):
        with pytest.raises(CorruptDatabaseError):
            Mnemos.open(db_path, embedder=None, readonly=readonly)


def test_truncated_sealed_segment_is_corruption_not_a_torn_tail(db_path: Path):
    multi_segment_db(db_path)
    segs = segments(db_path)
    data = segs[0].read_bytes()
    last = parse_records(data)[-1]
    segs[0].write_bytes(data[: last.offset + 10])
    with pytest.raises(CorruptDatabaseError) as info:
        Mnemos.open(db_path, embedder=None)
    assert Path(info.value.path) == segs[0]
    assert info.value.offset == last.offset
    assert segs[0].stat().st_size == last.offset + 10


# -- snapshots -------------------------------------------------------------------------


def snapshot_db(path: Path, **kwargs) -> tuple[str, int, list[int]]:
    """Two checkpoints with writes between and after them: (final hash, seq, snap seqs)."""
    with open_db(path, dim=8, snapshot_every_events=None, **kwargs) as db:
        snaps = []
        for round_ in range(3):
            for i in range(40):
                db.remember(f"round {round_} item {i}", vector=vec(round_ * 100 + i))
            if round_ < 2:
                snaps.append(db.checkpoint())
        db.forget(f"m{snaps[0]}")
        return db.state_hash(), db.seq, snaps


def damage_snapshot(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    _magic, _ver, count, _seq, _last, _crc = SNAP_HEADER.unpack_from(data, 0)
    sections = {}
    for i in range(count):
        kind, _codec, offset, stored, *_ = SNAP_SECTION.unpack_from(
            data, SNAP_HEADER.size + i * SNAP_SECTION.size
        )
        sections[kind] = (offset, stored)
    if how == "vectors":
        offset, stored = sections[SECTION_VECTORS]
        data[offset + stored // 2] ^= 0x10
    elif how == "state":
        offset, stored = sections[SECTION_STATE]
        data[offset + stored // 2] ^= 0x01
    elif how == "header":
        data[20] ^= 0x01  # seq
    elif how == "truncate":
        del data[len(data) // 2 :]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["vectors", "state", "header", "truncate"])
@pytest.mark.parametrize("retention", ["keep", "delete"])
def test_damaged_newest_snapshot_falls_back(
    db_path: Path, caplog: pytest.LogCaptureFixture, how: str, retention: str
):
    final_hash, final_seq, snaps = snapshot_db(db_path, log_retention=retention, segment_bytes=4096)
    assert [int(p.stem) for p in snapshots(db_path)] == snaps
    if retention == "delete":
        assert int(segments(db_path)[0].stem) > 1, "nothing was pruned"
    newest = snapshots(db_path)[-1]
    damage_snapshot(newest, how)
    for readonly in (True, False):
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="mnemos"),
            Mnemos.open(db_path, embedder=None, readonly=readonly) as db,
        ):
            assert db.seq == final_seq
            assert db.state_hash() == final_hash
            assert db.stats()["open"]["snapshot_seq"] == snaps[0]
        assert any(newest.name in r.getMessage() for r in caplog.records)
    if retention == "keep":
        # With both snapshots damaged, the whole log replays from scratch.
        damage_snapshot(snapshots(db_path)[0], how)
        with Mnemos.open(db_path, embedder=None) as db:
            assert db.state_hash() == final_hash
            assert db.stats()["open"]["snapshot_seq"] == 0


def test_orphan_temp_files_removed_by_writer_only(db_path: Path):
    final_hash, _seq, snaps = snapshot_db(db_path)
    orphans = [
        db_path / "snapshots" / f"{snaps[-1] + 5:020d}.snap.tmp",
        db_path / "wal" / f"{10**6:020d}.wal.tmp",
        db_path / "MNEMOS.tmp",
    ]
    for p in orphans:
        p.write_bytes(b"half-written garbage")
    with Mnemos.open(db_path, embedder=None, readonly=True) as db:
        assert db.state_hash() == final_hash
    assert all(p.exists() for p in orphans)
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.state_hash() == final_hash
    assert not any(p.exists() for p in orphans)


def test_replay_from_snapshot_equals_replay_from_scratch(db_path: Path):
    final_hash, final_seq, snaps = snapshot_db(db_path)
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.stats()["open"]["snapshot_seq"] == snaps[-1]
        assert (db.seq, db.state_hash()) == (final_seq, final_hash)
    for p in snapshots(db_path):
        p.unlink()
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.stats()["open"]["snapshot_seq"] == 0
        assert (db.seq, db.state_hash()) == (final_seq, final_hash)


def retention_workload(path: Path, retention: str) -> tuple[str, int]:
    with Mnemos.open(
        path,
        embedder=None,
        dim=8,
        clock=FixedClock(),
        segment_bytes=4096,
        snapshot_every_events=None,
        log_retention=retention,
    ) as db:
        for round_ in range(4):
            for i in range(30):
                db.remember(f"round {round_} item {i}", vector=vec(round_ * 100 + i))
            db.checkpoint()
        db.remember("after the last checkpoint", vector=vec(7))
        return db.state_hash(), db.stats()["log_bytes"]


def test_log_retention_delete_prunes_and_reopens(tmp_path: Path):
    keep_hash, keep_bytes = retention_workload(tmp_path / "keep", "keep")
    del_hash, del_bytes = retention_workload(tmp_path / "delete", "delete")
    assert keep_hash == del_hash
    assert del_bytes < keep_bytes
    assert int(segments(tmp_path / "keep")[0].stem) == 1
    assert int(segments(tmp_path / "delete")[0].stem) > 1
    for name, expected in (("keep", keep_hash), ("delete", del_hash)):
        with Mnemos.open(tmp_path / name, embedder=None) as db:
            assert db.state_hash() == expected


# -- verify and repair -----------------------------------------------------------------


def test_verify_healthy(db_path: Path):
    snapshot_db(db_path)
    report = mnemos.verify(db_path)
    assert report.ok
    assert report.problems == []


def test_verify_reports_flipped_bit_with_file_and_offset(db_path: Path):
    build(db_path, n=5)
    (seg,) = segments(db_path)
    rec = parse_records(seg.read_bytes())[2]
    flip_bit(seg, rec.offset + 30)
    report = mnemos.verify(db_path)
    assert not report.ok
    assert any(
        p.kind == "corrupt" and Path(p.path) == seg and p.offset == rec.offset
        for p in report.problems
    ), report.problems


def test_verify_reports_torn_tail_as_ok(db_path: Path):
    build(db_path, n=3)
    (seg,) = segments(db_path)
    data = seg.read_bytes()
    last = parse_records(data)[-1]
    seg.write_bytes(data[: last.offset + 7])
    report = mnemos.verify(db_path)
    assert report.ok
    assert [(p.kind, Path(p.path), p.offset) for p in report.problems] == [
        ("torn", seg, last.offset)
    ]


def test_repair_cuts_back_to_the_valid_prefix_after_a_backup(db_path: Path):
    hashes = build(db_path, n=6)
    (seg,) = segments(db_path)
    recs = parse_records(seg.read_bytes())
    bad = recs[3]
    flip_bit(seg, bad.offset + 32 + bad.length // 2)
    before = tree_bytes(db_path)
    with pytest.raises(CorruptDatabaseError):
        Mnemos.open(db_path, embedder=None)
    result = mnemos.repair(db_path)
    assert result["repaired"]
    backup = Path(result["backup"])
    assert backup.is_dir() and backup != db_path
    assert tree_bytes(backup) == before
    assert seg.stat().st_size == bad.offset
    good_seq = recs[2].seq
    assert result["last_seq"] == good_seq
    check_opens_at(db_path, good_seq, hashes[good_seq], readonly=False)
    assert mnemos.verify(db_path).problems == []


def test_repair_leaves_a_healthy_database_alone(db_path: Path):
    snapshot_db(db_path)
    before = tree_bytes(db_path)
    siblings = set(db_path.parent.iterdir())
    result = mnemos.repair(db_path)
    assert not result["repaired"]
    assert result["backup"] is None
    assert tree_bytes(db_path) == before
    assert set(db_path.parent.iterdir()) == siblings


def test_repair_refuses_while_a_writer_has_the_database(db_path: Path):
    build(db_path, n=1)
    with Mnemos.open(db_path, embedder=None), pytest.raises(DatabaseLockedError):
        mnemos.repair(db_path)


# -- the command line --------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mnemos.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_verify_and_repair(db_path: Path, tmp_path: Path):
    hashes = build(db_path, n=5)
    assert run_cli("verify", str(db_path)).returncode == 0
    (seg,) = segments(db_path)
    recs = parse_records(seg.read_bytes())
    flip_bit(seg, recs[2].offset + 26)
    proc = run_cli("verify", str(db_path))
    assert proc.returncode == 2, proc
    assert seg.name in proc.stdout + proc.stderr
    assert str(recs[2].offset) in proc.stdout + proc.stderr
    proc = run_cli("repair", str(db_path), "--yes")
    assert proc.returncode == 0, proc
    assert run_cli("verify", str(db_path)).returncode == 0
    check_opens_at(db_path, recs[1].seq, hashes[recs[1].seq], readonly=True)
    assert run_cli("verify", str(tmp_path / "nowhere")).returncode == 1


def test_cli_repair_reports_locked(db_path: Path):
    build(db_path, n=3)
    (seg,) = segments(db_path)
    flip_bit(seg, parse_records(seg.read_bytes())[1].offset + 26)
    fd = os.open(db_path / "LOCK", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another writer holds the database
        proc = run_cli("repair", str(db_path), "--yes")
        assert proc.returncode == 3, proc
    finally:
        os.close(fd)
    assert run_cli("repair", str(db_path), "--yes").returncode == 0


# -- found in review ---------------------------------------------------------------------


def test_text_that_spells_a_record_cannot_make_a_torn_tail_look_corrupt(db_path: Path):
    """Record CRCs are seeded with a per-segment random salt, so a memory whose text is a
    well-formed record (with the seq that would come next) is not mistaken for a later
    record when the append holding it is torn."""
    hashes = build(db_path, n=2)
    seq = max(hashes)
    payload = b"\x82\xa1t\xa6forget\xa2at\x00"
    tail = struct.pack("<IQIIII", len(payload), seq + 2, 0, 0, 1, 0)
    forged = zlib.crc32(payload, zlib.crc32(tail)).to_bytes(4, "little") + tail + payload
    with open_db(db_path) as db:
        db.remember(forged.decode("latin-1"), vector=vec(9))
    (seg,) = segments(db_path)
    data = seg.read_bytes()
    last = parse_records(data)[-1]
    os.truncate(seg, last.end - 5)  # the append of that memory was cut short
    check_opens_at(db_path, seq, hashes[seq], readonly=False)


def test_damage_in_the_unsynced_window_is_a_torn_tail(db_path: Path):
    """Under durability "off"/"normal" a power loss may keep later unsynced pages and lose
    earlier ones: each record says how many records before it were unsynced when it was
    written, so damage there loses the window instead of refusing to open."""
    with open_db(db_path, dim=8, durability="off") as db:
        db.remember("kept", vector=vec(1))
        before_seq, before_hash = db.seq, db.state_hash()
        db.remember("lost in the window", vector=vec(2))
        db.remember("written after it, also unsynced", vector=vec(3))
    (seg,) = segments(db_path)
    data = bytearray(seg.read_bytes())
    middle = parse_records(bytes(data))[-2]
    data[middle.offset : middle.end] = bytes(middle.end - middle.offset)
    seg.write_bytes(bytes(data))
    check_opens_at(db_path, before_seq, before_hash, readonly=False)
    assert seg.stat().st_size == middle.offset


def test_same_damage_after_a_sync_is_corruption(db_path: Path):
    """The counterpart: under "full" every record was synced before the next was written,
    so the same zeroed record is reported, not cut away."""
    build(db_path, n=3)
    (seg,) = segments(db_path)
    data = bytearray(seg.read_bytes())
    middle = parse_records(bytes(data))[-2]
    data[middle.offset : middle.end] = bytes(middle.end - middle.offset)
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError) as info:
        Mnemos.open(db_path, embedder=None)
    assert info.value.offset == middle.offset


def test_missing_mnemos_file_is_reported_and_nothing_is_deleted(db_path: Path):
    build(db_path, n=4)
    with open_db(db_path) as db:
        db.checkpoint()
    (db_path / "MNEMOS").unlink()
    before = tree_bytes(db_path)
    with pytest.raises(CorruptDatabaseError, match="MNEMOS"):
        Mnemos.open(db_path, embedder=None)
    assert tree_bytes(db_path) == before


def test_repair_of_damage_a_snapshot_covers_keeps_every_memory(db_path: Path, tmp_path: Path):
    """Damage in an old segment that a valid newer snapshot covers does not stop open;
    repair must drop that history, never the data after it."""
    with open_db(db_path, dim=8, segment_bytes=4096) as db:
        for i in range(40):
            db.remember(f"note {i} " + "x" * 100, vector=vec(i))
        db.checkpoint()
        for i in range(40, 45):
            db.remember(f"note {i}", vector=vec(i))
        expected = db.state_hash()
    first = segments(db_path)[0]
    flip_bit(first, parse_records(first.read_bytes())[1].offset + 40)
    with Mnemos.open(db_path, embedder=None, readonly=True) as db:  # opens: the snapshot covers it
        assert db.state_hash() == expected
    report = mnemos.verify(db_path)
    assert report.opens and not report.ok
    assert [p.kind for p in report.problems] == ["history"]
    result = mnemos.repair(db_path, backup=str(tmp_path / "backup"))
    assert result["repaired"] and result["ok"], result
    assert first.exists() is False and (tmp_path / "backup" / "wal" / first.name).exists()
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.state_hash() == expected and db.stats()["memories"] == 45


def test_every_bit_flip_is_reported_or_cut_never_silently_applied(db_path: Path):
    """A sweep over every bit of a small log: a flip in any record before the last
    transaction raises CorruptDatabaseError naming that record's offset; a flip in the last
    transaction (which no later record vouches for) either raises or opens at the state
    before it. Never an exception of another type, never a state that was not committed."""
    hashes = build(db_path, n=3)
    (seg,) = segments(db_path)
    pristine = seg.read_bytes()
    recs = parse_records(pristine)
    last = recs[-1]
    for offset in range(32, len(pristine)):
        record = next(r for r in recs if r.offset <= offset < r.end)
        for bit in range(8):
            damaged = bytearray(pristine)
            damaged[offset] ^= 1 << bit
            seg.write_bytes(bytes(damaged))
            try:
                with Mnemos.open(db_path, embedder=None, readonly=True) as db:
                    opened = (db.seq, db.state_hash())
            except CorruptDatabaseError as exc:
                assert exc.offset == record.offset, (offset, bit, str(exc))
                continue
            assert record is last, f"flip at {offset}:{bit} before the tail was not reported"
            assert opened == (last.seq - 1, hashes[last.seq - 1]), (offset, bit)
    seg.write_bytes(pristine)


def _checkpointed_segments_db(path: Path) -> str:
    """Several segments, snapshots part way, the log going on after them."""
    with open_db(path, dim=8, segment_bytes=4096) as db:
        for i in range(120):
            db.remember(f"note {i} " + "y" * 60, vector=vec(i))
            if i == 60:
                db.checkpoint()
        return db.state_hash()


@pytest.mark.parametrize("damage", ["segment header", "missing segment", "two places"])
def test_repair_removes_every_kind_of_damage_after_the_snapshot(
    db_path: Path, tmp_path: Path, damage: str
):
    """Whatever stops open — a damaged segment header, a missing segment, damage both in
    history and after the snapshot — repair leaves a database that opens with every event
    of the valid log and every memory the snapshot holds."""
    _checkpointed_segments_db(db_path)
    snap_seq = int(snapshots(db_path)[-1].name.split(".")[0])
    segs = segments(db_path)
    after = [s for s in segs if int(s.name.split(".")[0]) > snap_seq]
    assert len(after) >= 3
    victim = after[1]
    if damage == "segment header":
        flip_bit(victim, 20)
    elif damage == "missing segment":
        victim.unlink()
    else:
        flip_bit(victim, parse_records(victim.read_bytes())[0].offset + 40)
        flip_bit(segs[0], parse_records(segs[0].read_bytes())[1].offset + 40)
    with pytest.raises(CorruptDatabaseError):
        Mnemos.open(db_path, embedder=None)
    result = mnemos.repair(db_path, backup=str(tmp_path / "backup"))
    assert result["repaired"] and result["ok"], result
    assert mnemos.verify(db_path).ok
    with Mnemos.open(db_path, embedder=None) as db:
        kept = int(victim.name.split(".")[0]) - 1
        assert db.seq >= kept  # nothing before the damage was lost
        assert db.stats()["memories"] == kept - 1  # seq 1 is the init event
