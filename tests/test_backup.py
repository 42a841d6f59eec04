"""db.backup(dest): a consistent, verified copy taken while writes go on."""

from __future__ import annotations

import errno
import itertools
import struct
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

import mnemos
import mnemos.db
from mnemos import InvalidInputError, Mnemos, StorageError, trace
from mnemos.storage import OSStorage


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


@pytest.mark.parametrize("retention", ["keep", "delete"])
def test_backups_taken_during_writes_are_committed_prefixes(tmp_path: Path, retention: str):
    """A writer thread remembers, forgets, checkpoints and compacts; backups taken
    meanwhile each open to exactly the writer's state at the seq they report."""
    db = Mnemos.open(
        tmp_path / "db.mem",
        embedder=None,
        dim=8,
        durability="normal",
        segment_bytes=4096,
        snapshot_every_events=40,
        log_retention=retention,
    )
    hashes = {db.seq: db.state_hash()}
    ids: list[str] = []
    done = threading.Event()

    results: list[dict] = []

    def write() -> None:
        """At least 400 operations, and on until three backups are done."""
        try:
            for i in itertools.count():
                if (i >= 400 and len(results) >= 3) or i >= 20_000:
                    break
                with db._lock:  # the op and its hash, together
                    if i % 7 == 6:
                        db.forget(ids.pop(0))
                    elif i % 50 == 49:
                        db.compact()
                    else:
                        items = [{"text": f"{i}.{j}", "vector": vec(i * 3 + j)} for j in range(2)]
                        ids.extend(db.remember_many(items))
                    hashes[db.seq] = db.state_hash()
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set():
        results.append(db.backup(tmp_path / f"b{len(results)}"))
        # The next backup starts after the writer has moved on from this one's seq.
        deadline = time.monotonic() + 60
        while db.seq == results[-1]["seq"] and not done.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)
    writer.join()
    db.close()
    assert len({r["seq"] for r in results}) > 1  # the backups saw the writes moving on
    for r in results:
        assert r["state_hash"] == hashes[r["seq"]], r
        assert mnemos.verify(r["path"]).ok
        with Mnemos.open(r["path"], embedder=None) as copy:  # a backup is a database
            assert copy.seq == r["seq"]
            copy.remember("after restore", vector=vec(999))


def test_a_backup_carries_history_traces_and_format(tmp_path: Path):
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8, trace=True) as db:
        a = db.remember("first", vector=vec(1))
        db.update(a, text="second")
        db.checkpoint()
        db.remember("third", vector=vec(2))
        db.ask(vector=vec(1), top_k=2)
        db.set_capacity(5)  # format 2
        result = db.backup(tmp_path / "copy.mem")
        expected = db.state_hash()
    dest = Path(result["path"])
    # Two log segments (the checkpoint rolled the log), the snapshot, TRACE and MNEMOS.
    assert result["state_hash"] == expected and result["files"] == 5
    assert struct.unpack_from("<I", (dest / "MNEMOS").read_bytes(), 8)[0] == 2
    assert len(trace.read(str(dest / "TRACE"))[0]) == 1
    with Mnemos.open(dest, embedder=None, readonly=True) as copy:
        assert [v.op for v in copy.history(a)] == ["remember", "update"]
        assert copy.stats()["capacity"][0]["max_entries"] == 5


def test_a_readonly_follower_backs_up_what_it_has_seen(tmp_path: Path):
    path = tmp_path / "db.mem"
    with Mnemos.open(path, embedder=None, dim=8) as db:
        db.remember("one", vector=vec(1))
        follower = Mnemos.open(path, embedder=None, readonly=True)
        db.remember("two", vector=vec(2))  # after the follower's view
        result = follower.backup(tmp_path / "copy.mem")
        assert result["seq"] == follower.seq == db.seq - 1
        assert result["state_hash"] == follower.state_hash()
        follower.close()


def test_backup_refuses_a_used_destination_and_changes_nothing(tmp_path: Path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        db.remember("x", vector=vec(1))
        for dest in ("full", "afile"):
            with pytest.raises(InvalidInputError, match="new or empty directory"):
                db.backup(tmp_path / dest)
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    assert (tmp_path / "afile").read_text() == "mine"


class FullDisk(OSStorage):
    """ENOSPC for every write into the backup's directory."""

    def write(self, fd: int, data: bytes | memoryview) -> None:
        if "copy.mem" in self.paths.get(fd, ""):
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write(fd, data)

    paths: ClassVar[dict[int, str]] = {}

    def create(self, path: str) -> int:
        fd = super().create(path)
        self.paths[fd] = path
        return fd


def test_a_failed_backup_raises_storage_error_and_leaves_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(mnemos.db, "OSStorage", FullDisk)
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        db.remember("x", vector=vec(1))
        digest = db.state_hash()
        with pytest.raises(StorageError, match="free space"):
            db.backup(tmp_path / "copy.mem")
        db.remember("still writable", vector=vec(2))
        assert db.seq == 3
    assert not (tmp_path / "copy.mem" / "MNEMOS").exists()  # MNEMOS goes last
    monkeypatch.undo()
    with Mnemos.open(tmp_path / "db.mem", embedder=None) as db:
        assert db.as_of(2).state_hash() == digest
