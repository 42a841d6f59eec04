"""``verify`` reports damage; ``repair`` removes it, keeping a backup copy first.

Open already truncates a torn final append by itself. Anything else stops open with
``CorruptDatabaseError``; these tools show where, and repair only when asked.

Damage is sorted by what it costs. "corrupt": open fails (damage in the log after the
newest valid snapshot, a gap, a missing segment). "history": damage in log segments or
snapshots that open does not need (a valid newer snapshot covers them), so the database
opens, but history and replay from scratch are affected. "torn": an interrupted final
append, which the next writer's open truncates.
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
from .errors import CorruptDatabaseError, InvalidInputError, MnemosError
from .events import decode_event
from .index.vector import row_norms
from .snapshot import SnapshotError, load_snapshot
from .state import State
from .storage import OSStorage
from .wal import decode_segment_header, list_numbered, scan_records


@dataclass
class Problem:
    path: str
    offset: int | None
    reason: str
    kind: str  # "corrupt", "history" or "torn" (module docstring)


@dataclass
class VerifyReport:
    path: str
    segments: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int = 0  # last seq of the valid part of the log
    snapshots: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    # First damage in the log: (segment first_seq, offset where the valid part ends,
    # seq of the first record lost), for repair.
    cut: tuple[int, int, int] | None = None

    @property
    def opens(self) -> bool:
        """The database opens with every event of its valid log."""
        return not any(p.kind == "corrupt" for p in self.problems)

    @property
    def ok(self) -> bool:
        """No damage at all (a torn tail is not damage: open removes it)."""
        return all(p.kind == "torn" for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "opens": self.opens,
            "segments": self.segments,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "snapshots": self.snapshots,
            "problems": [p.__dict__ for p in self.problems],
            "orphans": self.orphans,
        }


def _check_snapshot(path: str) -> str:
    """The state hash of a valid snapshot; raises SnapshotError otherwise."""
    state, _ = load_snapshot(path)
    index = state.vectors
    if index is not None and not np.array_equal(
        index.norms[: index.n], row_norms(index.take(np.arange(index.n)))
    ):
        raise SnapshotError("NORMS section disagrees with the VECTORS section")
    return state.state_hash()


def verify(path: str | os.PathLike[str]) -> VerifyReport:
    """Check every byte of every log segment and snapshot of the database at ``path``.

    Replays the retained log (from seq 1, or from the snapshot it continues) and compares
    each snapshot's state with the replayed state at the same seq. Reads only, so it is
    safe beside a live writer (whose in-flight append may show as a torn tail).
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
    snap_hashes: dict[int, str] = {}
    for snap_seq in list_numbered(snap_dir, fmt.SNAP_SUFFIX):
        snap_path = os.path.join(snap_dir, fmt.snapshot_name(snap_seq))
        try:
            snap_hashes[snap_seq] = _check_snapshot(snap_path)
            report.snapshots.append({"path": snap_path, "seq": snap_seq, "valid": True})
        except (SnapshotError, OSError) as exc:
            report.snapshots.append(
                {"path": snap_path, "seq": snap_seq, "valid": False, "reason": str(exc)}
            )
    newest_valid = max(snap_hashes, default=0)
    for snap in report.snapshots:
        if not snap["valid"]:
            # Open skips a damaged snapshot and replays more log instead.
            report.problems.append(
                Problem(snap["path"], None, f"damaged snapshot: {snap['reason']}", "history")
            )

    def problem(where: str, offset: int | None, reason: str, seq: int) -> None:
        """Damage losing events from ``seq`` on: fatal unless a snapshot covers them."""
        kind = "history" if seq <= newest_valid else "corrupt"
        report.problems.append(Problem(where, offset, reason, kind))

    segments = list_numbered(wal_dir, fmt.WAL_SUFFIX)
    report.segments = len(segments)
    if not segments:
        problem(wal_dir, None, "the log has no segment", 1)
    state: State | None = None
    seq = crc = 0
    broken = False  # the chain is lost: later segments are checked on their own
    for i, first in enumerate(segments):
        seg_path = os.path.join(wal_dir, fmt.segment_name(first))
        try:
            with open(seg_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:  # a live writer pruned it after the listing
            broken, state = True, None
            continue
        try:
            header = decode_segment_header(data, seg_path)
        except CorruptDatabaseError as exc:
            problem(seg_path, exc.offset, str(exc), first)
            broken = True
            continue
        if i == 0:
            report.first_seq = header.first_seq
            state = _replay_start(header.first_seq, snap_dir, snap_hashes)
        elif not broken and (header.first_seq != seq + 1 or header.prev_crc != crc):
            problem(seg_path, 0, f"segment does not continue the log at seq {seq + 1}", seq + 1)
            broken = True
        if broken:  # pick the log up again where a valid snapshot continues it
            state = _replay_start(header.first_seq, snap_dir, snap_hashes)
            broken = state is None
        continuing = not broken
        result = scan_records(
            memoryview(data)[fmt.SEGMENT_HEADER_BYTES :],
            fmt.SEGMENT_HEADER_BYTES,
            header.salt,
            header.first_seq - 1,
            header.prev_crc,
        )
        report.records += len(result.records)
        for rseq, _crc, payload in result.records:
            if state is None:
                break
            try:
                state.apply(rseq, decode_event(payload))
            except Exception as exc:  # reported, not raised
                problem(seg_path, None, f"event at seq {rseq} does not apply: {exc!r}", rseq)
                state = None
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
        if result.status == "torn" and last:
            report.problems.append(Problem(seg_path, result.bad_offset, result.reason, "torn"))
        elif result.status != "clean":
            problem(seg_path, result.bad_offset, result.reason, result.seq + 1)
            if report.cut is None:
                report.cut = (first, result.end, result.seq + 1)
            broken, state = True, None
        if continuing:
            report.last_seq = result.seq
        seq, crc = result.seq, result.crc
    if segments and not broken and report.last_seq < newest_valid:
        problem(wal_dir, None, "the log ends before the newest snapshot", report.last_seq + 1)
    return report


def _replay_start(first_seq: int, snap_dir: str, snap_hashes: dict[int, str]) -> State | None:
    """The state to replay a run of log from: empty at seq 1, else the valid snapshot the
    run continues, if any."""
    if first_seq == 1:
        return State()
    if first_seq - 1 in snap_hashes:
        return load_snapshot(os.path.join(snap_dir, fmt.snapshot_name(first_seq - 1)))[0]
    return None


def repair(path: str | os.PathLike[str], *, backup: str | None = None) -> dict[str, Any]:
    """Copy the database to ``backup`` (default ``PATH.bak-<time>``), then remove the
    damage, taking the writer lock for the duration:

    - damaged snapshots are deleted (open was skipping them);
    - damage in log segments a valid newer snapshot covers: those segments are deleted
      (their history is in the backup);
    - damage after the newest valid snapshot: the log is cut at the end of its valid part,
      later segments and snapshots past the cut are deleted.
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, fmt.DB_FILE)):
        raise InvalidInputError(f"no Mnemos database at {path}")
    storage = OSStorage()
    # Hold the writer lock without opening: open refuses a corrupt database.
    lock_fd = take_writer_lock(path)
    try:
        report = verify(path)
        if report.ok:
            return {"repaired": False, "reason": "no damage found", "backup": None}
        backup = backup or f"{path.rstrip(os.sep)}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(path, backup, ignore=shutil.ignore_patterns(fmt.LOCK_FILE))
        wal_dir = os.path.join(path, fmt.WAL_DIR)
        newest_valid = max((s["seq"] for s in report.snapshots if s["valid"]), default=0)
        removed = [s["path"] for s in report.snapshots if not s["valid"]]
        truncated = None
        if report.cut is not None:
            seg, offset, lost_seq = report.cut
            segments = list_numbered(wal_dir, fmt.WAL_SUFFIX)
            if lost_seq <= newest_valid:
                # Drop the history the snapshot covers, damaged segment included; what
                # remains must start right after the snapshot.
                later = [s for s in segments if s > newest_valid]
                if not later or later[0] != newest_valid + 1:
                    raise MnemosError(
                        f"the damage in {path} is inside the segment that continues the "
                        f"newest snapshot (seq {newest_valid}); restore from a backup"
                    )
                removed += [_segment(wal_dir, s) for s in segments if s <= newest_valid]
            else:
                storage.truncate(_segment(wal_dir, seg), offset)
                truncated = {"path": _segment(wal_dir, seg), "offset": offset}
                # No valid snapshot reaches lost_seq (else the damage would be history).
                removed += [_segment(wal_dir, s) for s in segments if s > seg]
        for victim in removed:
            storage.unlink(victim)
        for directory in (wal_dir, os.path.join(path, fmt.SNAPSHOT_DIR)):
            storage.fsync_dir(directory)
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


def _segment(wal_dir: str, first_seq: int) -> str:
    return os.path.join(wal_dir, fmt.segment_name(first_seq))
