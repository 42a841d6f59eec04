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
    # For repair. The first damage that stops open: (segment first_seq, offset where its
    # valid part ends, or None when the whole segment goes, seq of the first event lost).
    cut: tuple[int, int | None, int] | None = None
    # Segments with damage that a valid snapshot covers.
    history_segments: list[int] = field(default_factory=list)

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
    if state.ann is not None:  # open leaves the graph for its first use; verify reads it all
        try:
            state.ann.check_graph()
        except CorruptDatabaseError as exc:
            raise SnapshotError(str(exc)) from None
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

    def problem(
        where: str,
        offset: int | None,
        reason: str,
        seq: int,
        segment: int | None = None,
        keep_bytes: int | None = None,
    ) -> None:
        """Damage losing events from ``seq`` on: fatal unless a snapshot covers them.
        ``segment`` is where repair would cut: keep its first ``keep_bytes`` bytes, or
        drop it whole when None."""
        kind = "history" if seq <= newest_valid else "corrupt"
        report.problems.append(Problem(where, offset, reason, kind))
        if segment is None:
            return
        if kind == "history":
            report.history_segments.append(segment)
        elif report.cut is None:
            report.cut = (segment, keep_bytes, seq)

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
            problem(seg_path, exc.offset, str(exc), first, first)
            broken = True
            continue
        if i == 0:
            report.first_seq = header.first_seq
            state = _replay_start(header.first_seq, snap_dir, snap_hashes)
        elif not broken and (header.first_seq != seq + 1 or header.prev_crc != crc):
            problem(
                seg_path, 0, f"segment does not continue the log at seq {seq + 1}", seq + 1, first
            )
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
        start = fmt.SEGMENT_HEADER_BYTES  # where each record begins
        for rseq, _crc, payload in result.records:
            if state is None:
                break
            try:
                state.apply(rseq, decode_event(payload))
            except Exception as exc:  # reported, not raised
                reason = f"event at seq {rseq} does not apply: {exc!r}"
                problem(seg_path, start, reason, rseq, first, start)
                state = None
                break
            start += fmt.RECORD_HEADER_BYTES + len(payload)
            if rseq in snap_hashes and state.state_hash() != snap_hashes[rseq]:
                # The log is the truth: such a snapshot is as good as damaged.
                snap_path = os.path.join(snap_dir, fmt.snapshot_name(rseq))
                for snap in report.snapshots:
                    if snap["seq"] == rseq:
                        snap.update(valid=False, reason="differs from the state the log replays to")
                report.problems.append(
                    Problem(snap_path, None, "snapshot state differs from the log", "corrupt")
                )
        last = i == len(segments) - 1
        if result.status == "torn" and last:
            report.problems.append(Problem(seg_path, result.bad_offset, result.reason, "torn"))
        elif result.status != "clean":
            problem(seg_path, result.bad_offset, result.reason, result.seq + 1, first, result.end)
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
    damage, holding the writer lock throughout:

    - damaged snapshots, and snapshots that disagree with the log, are deleted (open was
      skipping them, or should);
    - damage in log segments a valid newer snapshot covers: the log up to the last such
      segment is deleted (that history is in the backup);
    - the first damage after the newest valid snapshot: the log is cut at the end of its
      valid part and later segments are deleted.

    Raises ``MnemosError``, changing nothing, when no repair can keep the data a valid
    snapshot holds, and if the repaired database still would not open.
    """
    path = os.fspath(path)
    if not os.path.isfile(os.path.join(path, fmt.DB_FILE)):
        raise InvalidInputError(f"no Mnemos database at {path}")
    storage = OSStorage()
    wal_dir = os.path.join(path, fmt.WAL_DIR)
    # Hold the writer lock without opening: open refuses a corrupt database.
    lock_fd = take_writer_lock(path)
    try:
        report = verify(path)
        if report.ok:
            return {"repaired": False, "reason": "no damage found", "backup": None}
        plan = _plan(report, wal_dir)
        backup = backup or f"{path.rstrip(os.sep)}.bak-{time.strftime('%Y%m%d-%H%M%S')}"
        shutil.copytree(path, backup, ignore=shutil.ignore_patterns(fmt.LOCK_FILE))
        if plan["truncate"] is not None:
            storage.truncate(plan["truncate"]["path"], plan["truncate"]["offset"])
        for victim in plan["remove"]:
            storage.unlink(victim)
        for directory in (wal_dir, os.path.join(path, fmt.SNAPSHOT_DIR)):
            storage.fsync_dir(directory)
    finally:
        os.close(lock_fd)
    after = verify(path)
    if not after.opens:
        raise MnemosError(
            f"repair of {path} left damage it could not remove "
            f"({'; '.join(p.reason for p in after.problems)}); the original is in {backup}"
        )
    return {
        "repaired": True,
        "backup": backup,
        "truncated": plan["truncate"],
        "removed": plan["remove"],
        "last_seq": after.last_seq,
        "ok": after.ok,
    }


def _plan(report: VerifyReport, wal_dir: str) -> dict[str, Any]:
    """What repair will truncate and delete; raises before anything changes if it cannot
    keep everything the newest valid snapshot holds."""
    valid = [s["seq"] for s in report.snapshots if s["valid"]]
    newest_valid = max(valid, default=0)
    remove = [s["path"] for s in report.snapshots if not s["valid"]]
    segments = list_numbered(wal_dir, fmt.WAL_SUFFIX)
    truncate = None
    if report.history_segments:
        last_bad = max(report.history_segments)
        later = [s for s in segments if s > last_bad]
        # What remains must hold the event after the snapshot open will use.
        if not later or later[0] > newest_valid + 1:
            raise MnemosError(
                f"damaged segment {_segment(wal_dir, last_bad)} also holds events after the "
                f"newest valid snapshot (seq {newest_valid}); restore from a backup"
            )
        remove += [_segment(wal_dir, s) for s in segments if s <= last_bad]
    if report.cut is not None:
        seg, keep_bytes, _lost = report.cut
        if keep_bytes is None:
            remove += [_segment(wal_dir, s) for s in segments if s >= seg]
        else:
            truncate = {"path": _segment(wal_dir, seg), "offset": keep_bytes}
            remove += [_segment(wal_dir, s) for s in segments if s > seg]
    return {"truncate": truncate, "remove": sorted(set(remove))}


def _segment(wal_dir: str, first_seq: int) -> str:
    return os.path.join(wal_dir, fmt.segment_name(first_seq))
