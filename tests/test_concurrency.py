"""Concurrency guards "one writer, many readers, threads may share a handle".

A second writer, in another process or the same one, is refused at once with
``DatabaseLockedError`` naming the holder's pid, and the lock goes away with the holder
however it ends (close or SIGKILL). A readonly handle following a live writer through
``refresh()`` sees seq only grow, never sees part of a transaction, survives segment
rollovers and compaction deleting the segments under it, and ends at the writer's
state hash. Threads sharing one handle lose nothing. Everything here runs real
processes and threads; nothing is mocked.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import vec

from mnemos import DatabaseLockedError, Mnemos

TIMEOUT_S = 30.0  # "it did not hang" guard for anything involving a child process


class Child:
    """A Python child process running ``code`` whose stdout lines we can wait for."""

    def __init__(self, code: str, *args: object):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child did not print {prefix!r} in {timeout} s") from None
            if line is None:
                self.proc.wait(TIMEOUT_S)
                assert self.proc.stderr is not None
                raise AssertionError(
                    f"child exited ({self.proc.returncode}) before printing {prefix!r}:\n"
                    + self.proc.stderr.read()
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line.rstrip("\n")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT_S)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


HOLD_LOCK = """
import sys
from mnemos import Mnemos
db = Mnemos.open(sys.argv[1], embedder=None, dim=8)
print("READY", flush=True)
sys.stdin.readline()
db.close()
print("CLOSED", flush=True)
"""

TRY_OPEN = """
import sys
from mnemos import DatabaseLockedError, Mnemos
try:
    Mnemos.open(sys.argv[1], embedder=None).close()
    print("OPENED")
except DatabaseLockedError:
    print("LOCKED")
"""


def try_open_elsewhere(path: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", TRY_OPEN, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.parametrize("ending", ["close", "sigkill"])
def test_writer_lock_refuses_a_second_process_until_the_holder_ends(db_path: Path, ending: str):
    holder = Child(HOLD_LOCK, db_path)
    try:
        holder.expect("READY")
        # The holder keeps the lock until told to let go, so a blocking open would never
        # return: raising at all shows the refusal does not wait.
        with pytest.raises(DatabaseLockedError) as info:
            Mnemos.open(db_path, embedder=None)
        assert str(holder.proc.pid) in str(info.value)
        assert holder.proc.poll() is None  # it really was held all along
        with Mnemos.open(
            db_path, embedder=None, readonly=True
        ) as reader:  # readers are never locked out
            assert reader.seq == 1
        if ending == "close":
            holder.send("")
            holder.expect("CLOSED")
            assert holder.proc.wait(TIMEOUT_S) == 0
        else:
            holder.proc.kill()
            holder.proc.wait(TIMEOUT_S)
        with Mnemos.open(db_path, embedder=None) as db:
            db.remember("the lock is free again", vector=vec(1))
            assert db.seq == 2
    finally:
        holder.stop()


def test_second_writer_in_the_same_process_is_refused(db_path: Path):
    db = Mnemos.open(db_path, embedder=None, dim=8)
    try:
        with pytest.raises(DatabaseLockedError) as info:
            Mnemos.open(db_path, embedder=None)
        assert "another handle in this process" in str(info.value)
        # The refused open closed its own descriptor; that must not drop the first lock.
        assert try_open_elsewhere(db_path) == "LOCKED"
        db.remember("still the writer", vector=vec(2))
    finally:
        db.close()
    assert try_open_elsewhere(db_path) == "OPENED"
    with Mnemos.open(db_path, embedder=None) as again:
        assert again.seq == 2


FOLLOWED_WRITER = """
import sys, time
import numpy as np
from mnemos import Mnemos
path, batches, compact_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
db = Mnemos.open(path, embedder=None, dim=8, segment_bytes=4096, snapshot_every_events=400)
print("READY", flush=True)
for b in range(batches):
    db.remember_many([
        {"text": f"batch {b} item {j}", "vector": rng.standard_normal(8).astype(np.float32),
         "metadata": {"batch": b}}
        for j in range(50)
    ])
    if compact_every and (b + 1) % compact_every == 0:
        db.compact()
    time.sleep(0.004)
print("DONE", db.seq, db.state_hash(), db.stats()["memories"], flush=True)
db.close()
"""

BATCH = 50


@pytest.mark.parametrize("compact_every", [0, 3], ids=["append", "compacting"])
def test_readonly_follows_a_live_writer(db_path: Path, compact_every: int):
    batches = 60
    writer = Child(FOLLOWED_WRITER, db_path, batches, compact_every)
    try:
        writer.expect("READY")
        reader = Mnemos.open(db_path, embedder=None, readonly=True)
        last_seq = reader.seq
        seen_counts = set()
        deadline = time.monotonic() + TIMEOUT_S
        while writer.proc.poll() is None and time.monotonic() < deadline:
            reader.refresh()
            stats = reader.stats()
            assert stats["seq"] >= last_seq, "seq went backwards"
            last_seq = stats["seq"]
            # Only whole batches: the live count is always a multiple of the batch size,
            # and without compaction (one event of its own) seq is 1 + a multiple of it.
            assert stats["memories"] % BATCH == 0, f"partial batch visible: {stats}"
            if not compact_every:
                assert (stats["seq"] - 1) % BATCH == 0, f"partial batch visible: {stats}"
            seen_counts.add(stats["memories"])
        done = writer.expect("DONE").split()
        assert writer.proc.wait(TIMEOUT_S) == 0
        final_seq, final_hash, final_count = int(done[1]), done[2], int(done[3])
        assert final_count == batches * BATCH
        reader.refresh()
        assert reader.seq == final_seq
        assert reader.state_hash() == final_hash
        assert reader.stats()["memories"] == final_count
        assert len(seen_counts) >= 2, "the reader never saw the writer in progress"
        reader.close()
        with Mnemos.open(db_path, embedder=None, readonly=True) as fresh:
            assert fresh.state_hash() == final_hash
    finally:
        writer.stop()


def test_readonly_refresh_after_compaction_deleted_its_segment(db_path: Path):
    writer = Mnemos.open(
        db_path, embedder=None, dim=8, segment_bytes=4096, snapshot_every_events=None
    )
    reader = Mnemos.open(db_path, embedder=None, readonly=True)
    try:
        for round_ in range(3):
            writer.remember_many(
                [{"text": f"r{round_} i{i}", "vector": vec(round_ * 100 + i)} for i in range(60)]
            )
        reader.refresh()
        assert reader.state_hash() == writer.state_hash()
        first_segment = db_path / "wal" / f"{1:020d}.wal"
        for round_ in range(2):
            writer.forget(f"m{2 + round_}")
            writer.compact()
            writer.remember("after compaction", vector=vec(1000 + round_))
        assert not first_segment.exists()
        reader.refresh()
        assert reader.seq == writer.seq
        assert reader.state_hash() == writer.state_hash()
    finally:
        reader.close()
        writer.close()


def test_readonly_open_beside_a_compacting_writer(db_path: Path):
    """Each compaction writes a new snapshot, then deletes the previous one and the
    segments it covered. A reader opening (or re-opening from a refresh) meanwhile must
    retry rather than report the deleted files as corruption."""
    writer = Child(FOLLOWED_WRITER, db_path, 100, 1)
    failures: list[str] = []
    opens = 0
    try:
        writer.expect("READY")
        deadline = time.monotonic() + TIMEOUT_S
        while writer.proc.poll() is None and time.monotonic() < deadline:
            try:
                with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
                    assert reader.stats()["memories"] % BATCH == 0
                opens += 1
            except Exception as exc:
                failures.append(repr(exc))
        final_hash = writer.expect("DONE").split()[2]
    finally:
        writer.stop()
    assert opens > 0
    assert not failures, f"{len(failures)} of {opens + len(failures)} opens failed: {failures[:3]}"
    with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
        assert reader.state_hash() == final_hash


def test_threads_share_one_handle(db_path: Path):
    threads_n, per_thread = 4, 200
    db = Mnemos.open(db_path, embedder=None, dim=8, snapshot_every_events=150)
    barrier = threading.Barrier(threads_n)
    ids: list[list[str]] = [[] for _ in range(threads_n)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                seed = t * 10_000 + i
                ids[t].append(db.remember(f"thread {t} item {i}", vector=vec(seed)))
                if i % 10 == 0:
                    hits = db.ask(vector=vec(seed), top_k=3)
                    assert hits and hits[0].score > 0.99
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT_S)
    try:
        assert not errors, errors
        all_ids = [mid for chunk in ids for mid in chunk]
        assert len(all_ids) == len(set(all_ids)) == threads_n * per_thread
        for t, chunk in enumerate(ids):
            for i, mid in enumerate(chunk):
                assert db.get(mid).text == f"thread {t} item {i}"
        assert db.stats()["memories"] == threads_n * per_thread
        assert db.seq == 1 + threads_n * per_thread
        expected = db.state_hash()
    finally:
        db.close()
    with Mnemos.open(db_path, embedder=None) as again:
        assert again.state_hash() == expected
        assert again.seq == 1 + threads_n * per_thread
