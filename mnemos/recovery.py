"""``verify`` reports damage; ``repair`` cuts the log back to its last valid prefix.

Open already truncates a torn final append by itself. Anything else (a bad checksum
before the tail, a gap, a missing segment) stops open with ``CorruptDatabaseError``;
these tools show where, and repair only when asked, keeping a backup copy first.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import format as fmt
from .db import take_writer_lock
from .errors import CorruptDatabaseError, InvalidInputError
from .events import decode_event
from .index.vector import row_norms
from .snapshot import SnapshotError, load_snapshot
from .state import State
from .wal import decode_segment_header, list_numbered, scan_records


@dataclass
class Problem:
    path: str
    offset: int | None
    reason: str
    kind: str  # "corrupt" stops open; "torn" is truncated by the next writer's open


@dataclass
class VerifyReport:
    path: str
    segments: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int = 0  # last seq of the valid prefix of the log
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    # Where the valid prefix ends: (segment first_seq, byte offset), for repair.
    cut: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not any(p.kind == "corrupt" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "segments": self.segments,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "snapshots": self.snapshots,
            "problems": [p.__dict__ for p in self.problems],
            "orphans": self.orphans,
        }


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every byte of every log segment and snapshot of the database at ``path``.

    Replays the whole retained log and compares each snapshot's state with the replayed
    state at the same seq. Reads only: safe beside a live writer (its in-flight append
    may show as a torn tail).
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, fmt.DB_FILE)):
        raise InvalidInputError(f"no Mnemos database at {path}")
    report = VerifyReport(path)
    wal_dir = os.path.join(path, fmt.WAL_DIR)
    snap_dir = os.path.join(path, fmt.SNAPSHOT_DIR)
    for directory in (path, wal_dir, snap_dir):
        if os.path.isdir(directory):
            report.orphans += [
                os.path.join(directory, n)
                for n in sorted(os.listdir(directory))
                if n.endswith(fmt.TMP_SUFFIX)
            ]
    snap_seqs = list_numbered(snap_dir, fmt.SNAP_SUFFIX)
    snap_hashes: dict[int, str] = {}
    for snap_seq in snap_seqs:
        snap_path = os.path.join(snap_dir, fmt.snapshot_name(snap_seq))
        try:
            snap_state, _ = load_snapshot(snap_path)
            snap_hashes[snap_seq] = snap_state.state_hash()
            index = snap_state.vectors
            if index is not None and not np.array_equal(
                index.norms[: index.n], row_norms(index.take(np.arange(index.n)))
            ):
                raise SnapshotError("NORMS section disagrees with the VECTORS section")
            report.snapshots.append({"path": snap_path, "seq": snap_seq, "valid": True})
        except (SnapshotError, OSError) as exc:
            report.snapshots.append(
                {"path": snap_path, "seq": snap_seq, "valid": False, "reason": str(exc)}
            )
            report.problems.append(Problem(snap_path, None, f"damaged snapshot: {exc}", "corrupt"))

    segments = list_numbered(wal_dir, fmt.WAL_SUFFIX)
    report.segments = len(segments)
    state: State | None = State() if segments and segments[0] == 1 else None
    seq: int | None = None
    crc = 0
    broken = False
    for i, first in enumerate(segments):
        seg_path = os.path.join(wal_dir, fmt.segment_name(first))
        with open(seg_path, "rb") as f:
            data = f.read()
        try:
            header = decode_segment_header(data, seg_path)
        except CorruptDatabaseError as exc:
            report.problems.append(Problem(seg_path, exc.offset, str(exc), "corrupt"))
            broken = True
            continue
        if report.first_seq is None:
            report.first_seq = header.first_seq
        if (
            seq is not None
            and not broken
            and (header.first_seq != seq + 1 or header.prev_crc != crc)
        ):
            report.problems.append(
                Problem(
                    seg_path,
                    0,
                    f"segment does not continue the log (expected seq {seq + 1})",
                    "corrupt",
                )
            )
            broken = True
        result = scan_records(
            memoryview(data)[fmt.SEGMENT_HEADER_BYTES :],
            fmt.SEGMENT_HEADER_BYTES,
            header.first_seq - 1,
            header.prev_crc,
        )
        report.records += len(result.records)
        if not broken:
            report.last_seq = result.seq
            report.cut = (first, result.end)
            for rseq, _crc, payload in result.records:
                if state is None:
                    continue
                try:
                    state.apply(rseq, decode_event(payload))
                except Exception as exc:
                    report.problems.append(
                        Problem(
                            seg_path,
                            None,
                            f"event at seq {rseq} does not apply: {exc!r}",
                            "corrupt",
                        )
                    )
                    state = None
                    broken = True
                    break
                if rseq in snap_hashes and state.state_hash() != snap_hashes[rseq]:
                    report.problems.append(
                        Problem(
                            os.path.join(snap_dir, fmt.snapshot_name(rseq)),
                            None,
                            "snapshot state differs from the state the log replays to",
                            "corrupt",
                        )
                    )
        last = i == len(segments) - 1
        if result.status == "corrupt" or (result.status == "torn" and not last):
            report.problems.append(Problem(seg_path, result.bad_offset, result.reason, "corrupt"))
            broken = True
        elif result.status == "torn":
            report.problems.append(Problem(seg_path, result.bad_offset, result.reason, "torn"))
        seq, crc = result.seq, result.crc
    if segments and snap_seqs and report.last_seq < max(snap_seqs) and not broken:
        report.problems.append(
            Problem(wal_dir, None, "the log ends before the newest snapshot", "corrupt")
        )
    return report


def repair(path: str | os.PathLike[str], *, backup: str | None = None) -> dict[str, Any]:
    """Copy the database to ``backup`` (default ``PATH.bak-<time>``), then cut the log at
    the end of its valid prefix, removing later segments and any damaged snapshot or
    snapshot beyond the cut. Takes the writer lock for the duration."""
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, fmt.DB_FILE)):
        raise InvalidInputError(f"no Mnemos database at {path}")
    # Hold the writer lock without opening: open refuses a corrupt database.
    lock_fd = take_writer_lock(path)
    try:
        report = verify(path)
        if report.ok:
            return {"repaired": False, "reason": "no damage found", "backup": None}
        backup = backup or f"{path.rstrip(os.sep)}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(path, backup, ignore=shutil.ignore_patterns(fmt.LOCK_FILE))
        wal_dir = os.path.join(path, fmt.WAL_DIR)
        snap_dir = os.path.join(path, fmt.SNAPSHOT_DIR)
        removed: list[str] = []
        truncated = None
        if report.cut is not None:
            seg, offset = report.cut
            seg_path = os.path.join(wal_dir, fmt.segment_name(seg))
            os.truncate(seg_path, offset)
            truncated = {"path": seg_path, "offset": offset}
            for first in list_numbered(wal_dir, fmt.WAL_SUFFIX):
                if first > seg:
                    removed.append(os.path.join(wal_dir, fmt.segment_name(first)))
        for snap in report.snapshots:
            if not snap["valid"] or snap["seq"] > report.last_seq:
                removed.append(snap["path"])
        for victim in removed:
            os.unlink(victim)
        for directory in (wal_dir, snap_dir):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        os.close(lock_fd)
    after = verify(path)
    return {
        "repaired": True,
        "backup": backup,
        "truncated": truncated,
        "removed": removed,
        "last_seq": after.last_seq,
        "ok": after.ok,
    }
