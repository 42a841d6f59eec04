"""Durability guards "a crash at any instant loses nothing acknowledged under
durability='full' and never leaves a database that will not open".

Every durability mode round-trips across close and reopen; a writer process SIGKILLed at
random moments keeps every write it acknowledged, and a batch is all-or-nothing;
"normal" mode's sync thread stops on close; and a simulated power loss (unsynced bytes
dropped) after a checkpoint still leaves a database that opens.
"""

from __future__ import annotations

import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import FixedClock, vec

import mnemos
import mnemos.db
from mnemos import InvalidInputError, MemoryNotFound, Mnemos
from mnemos.storage import OSStorage

TIMEOUT_S = 30.0


@pytest.mark.parametrize("durability", ["full", "normal", "off"])
def test_every_durability_mode_round_trips(db_path: Path, durability: str):
    with Mnemos.open(
        db_path, embedder=None, dim=8, durability=durability, clock=FixedClock(step=1)
    ) as db:
        ids = [db.remember(f"item {i}", vector=vec(i), metadata={"i": i}) for i in range(20)]
        ids += db.remember_many([{"text": f"batch {j}", "vector": vec(50 + j)} for j in range(10)])
        db.forget(ids[3])
        expected, seq = db.state_hash(), db.seq
    with Mnemos.open(db_path, embedder=None, durability=durability) as db:
        assert (db.seq, db.state_hash()) == (seq, expected)
        assert db.get(ids[0]).text == "item 0"
        assert db.get(ids[-1]).text == "batch 9"
        with pytest.raises(MemoryNotFound):
            db.get(ids[3])


@pytest.mark.parametrize("bad", ["FULL", "sync", "", None, 1])
def test_invalid_durability_is_refused_and_writes_nothing(db_path: Path, bad: object):
    with pytest.raises(InvalidInputError, match="durability"):
        Mnemos.open(db_path, embedder=None, durability=bad)  # type: ignore[arg-type]
    assert not db_path.exists()


def test_normal_mode_syncs_on_close_and_stops_its_thread(db_path: Path):
    def sync_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "mnemos-sync"]

    before = len(sync_threads())
    db = Mnemos.open(db_path, embedder=None, dim=8, durability="normal")
    assert len(sync_threads()) == before + 1
    ids = [db.remember(f"item {i}", vector=vec(i)) for i in range(50)]
    expected = db.state_hash()
    db.close()
    assert len(sync_threads()) == before
    with Mnemos.open(db_path, embedder=None, durability="normal") as db:
        assert db.state_hash() == expected
        assert [db.get(mid).text for mid in ids] == [f"item {i}" for i in range(50)]
    assert len(sync_threads()) == before


def test_normal_mode_close_does_not_wait_out_the_sync_interval(db_path: Path):
    """close() wakes the sync thread instead of waiting out its interval (a minute here):
    the close finishes long before the interval would, or it is reported as hanging."""
    db = Mnemos.open(db_path, embedder=None, dim=8, durability="normal", sync_interval_ms=60_000)
    db.remember("dirty", vector=vec(1))
    closer = threading.Thread(target=db.close)
    closer.start()
    closer.join(timeout=TIMEOUT_S)
    assert not closer.is_alive(), "close() slept out the sync interval"
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.seq == 2


# -- SIGKILL ------------------------------------------------------------------------------

SINGLES = """
import sys
import numpy as np
from mnemos import Mnemos
db = Mnemos.open(sys.argv[1], embedder=None, dim=8, durability="full", snapshot_every_events=97)
print("READY", flush=True)
i = 0
while True:
    v = np.random.default_rng(i).standard_normal(8).astype(np.float32)
    mid = db.remember(f"item {i}", vector=v, metadata={"i": i})
    print("ACK", i, mid, flush=True)
    i += 1
"""

BATCHES = """
import sys
import numpy as np
from mnemos import Mnemos
size = int(sys.argv[2])
db = Mnemos.open(sys.argv[1], embedder=None, dim=8, durability="full", snapshot_every_events=230,
                 segment_bytes=8192)
print("READY", flush=True)
b = 0
while True:
    rng = np.random.default_rng(b)
    db.remember_many([
        {"id": f"b{b}-{j}", "text": f"batch {b} item {j}",
         "vector": rng.standard_normal(8).astype(np.float32)}
        for j in range(size)
    ])
    print("ACK", b, flush=True)
    b += 1
"""


def run_and_kill(code: str, args: list[str], delay_s: float) -> list[list[str]]:
    """Start ``code``, SIGKILL it ``delay_s`` after it is ready; the complete ACK lines."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=TIMEOUT_S)
        assert first == "READY\n", (first, proc.stderr.read() if first is None else "")
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(TIMEOUT_S) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT_S)
    acks = []
    while (line := lines.get(timeout=TIMEOUT_S)) is not None:
        if line.endswith("\n") and line.startswith("ACK "):  # a cut-off line is no ack
            acks.append(line.split()[1:])
    for stream in (proc.stdout, proc.stderr):
        assert stream is not None
        stream.close()
    return acks


def reopen_twice(path: Path) -> str:
    with Mnemos.open(path, embedder=None) as db:
        first = db.state_hash()
    with Mnemos.open(path, embedder=None) as db:
        assert db.state_hash() == first
    return first


DELAYS = random.Random(20240611).sample([i / 100 for i in range(2, 40)], 4)


@pytest.mark.parametrize("delay_s", DELAYS)
def test_sigkill_loses_no_acknowledged_remember(db_path: Path, delay_s: float):
    acks = run_and_kill(SINGLES, [str(db_path)], delay_s)
    assert acks, "the child acknowledged nothing before it was killed"
    with Mnemos.open(db_path, embedder=None) as db:
        for i, mid in acks:
            assert db.get(mid).text == f"item {i}", mid
        live = db.stats()["memories"]
        # At most the one write in flight when the signal hit may be there unacknowledged.
        assert len(acks) <= live <= len(acks) + 1
    reopen_twice(db_path)
    assert mnemos.verify(db_path).ok


@pytest.mark.parametrize("delay_s", DELAYS[:3])
def test_sigkill_keeps_batches_whole(db_path: Path, delay_s: float):
    size = 40
    acks = run_and_kill(BATCHES, [str(db_path), str(size)], delay_s)
    acked = [int(b) for (b,) in acks]
    assert acked == list(range(len(acked)))
    with Mnemos.open(db_path, embedder=None) as db:

        def present(b: int) -> int:
            n = 0
            for j in range(size):
                try:
                    db.get(f"b{b}-{j}")
                    n += 1
                except MemoryNotFound:
                    pass
            return n

        for b in acked:
            assert present(b) == size, f"acknowledged batch {b} is not whole"
        in_flight = present(len(acked))
        assert in_flight in (0, size), f"batch {len(acked)} is partly there ({in_flight})"
        assert present(len(acked) + 1) == 0
        assert db.stats()["memories"] == len(acked) * size + in_flight
    reopen_twice(db_path)
    assert mnemos.verify(db_path).ok


# -- group commit and failed syncs --------------------------------------------------------


class CountingDisk(OSStorage):
    """The real file system, counting data syncs."""

    fdatasyncs: ClassVar[list[int]] = []

    def fdatasync(self, fd: int) -> None:
        super().fdatasync(fd)
        self.fdatasyncs.append(fd)


class FailingSyncDisk(OSStorage):
    """The real file system whose data syncs fail with EIO once ``dying`` is set."""

    dying: ClassVar[bool] = False

    def fdatasync(self, fd: int) -> None:
        if self.dying:
            raise OSError(5, "Input/output error")
        super().fdatasync(fd)


def open_then_fail_syncs(path: Path, monkeypatch: pytest.MonkeyPatch, **options) -> Mnemos:
    """A writer on an existing database whose disk fails every data sync after open."""
    Mnemos.open(path, embedder=None, dim=8).close()
    monkeypatch.setattr(mnemos.db, "OSStorage", FailingSyncDisk)
    monkeypatch.setattr(FailingSyncDisk, "dying", False)
    db = Mnemos.open(path, embedder=None, **options)
    FailingSyncDisk.dying = True
    return db


def test_normal_mode_groups_many_appends_into_one_sync(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Group commit: appends within one interval share one fdatasync, however many."""
    monkeypatch.setattr(CountingDisk, "fdatasyncs", [])
    monkeypatch.setattr(mnemos.db, "OSStorage", CountingDisk)
    db = Mnemos.open(db_path, embedder=None, dim=8, durability="normal", sync_interval_ms=60_000)
    at_open = len(CountingDisk.fdatasyncs)  # open syncs the log tail it inherits
    for i in range(40):
        db.remember(f"item {i}", vector=vec(i))
    assert len(CountingDisk.fdatasyncs) == at_open  # the interval has not run out
    db.close()
    assert len(CountingDisk.fdatasyncs) == at_open + 1
    monkeypatch.undo()
    with Mnemos.open(db_path, embedder=None) as db:
        assert db.stats()["memories"] == 40


def test_close_reports_a_failed_final_sync(db_path: Path, monkeypatch: pytest.MonkeyPatch):
    """close() must not report success when the window it was to make durable is not."""
    db = open_then_fail_syncs(db_path, monkeypatch, durability="normal", sync_interval_ms=60_000)
    db.remember("never synced", vector=vec(1))
    with pytest.raises(mnemos.StorageError, match="fdatasync"):
        db.close()
    monkeypatch.undo()
    with Mnemos.open(db_path, embedder=None) as db:  # the lock was released all the same
        assert db.seq >= 1


def test_full_mode_failed_sync_acknowledges_nothing_and_refuses_writes(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db = open_then_fail_syncs(db_path, monkeypatch)
    seq = db.seq
    with pytest.raises(mnemos.StorageError):
        db.remember("not acknowledged", vector=vec(1))
    assert db.seq == seq  # not applied either
    with pytest.raises(mnemos.StorageError, match="reopen"):
        db.remember("refused", vector=vec(2))
    with pytest.raises(mnemos.StorageError):
        db.close()


def test_a_handle_left_open_is_synced_when_the_program_exits(db_path: Path):
    """Like a file object, an unclosed handle is flushed at exit: under "normal" the last
    window is synced even if the program forgot close(). The child counts its data syncs
    and reports them last (atexit runs handlers in reverse order of registration)."""
    code = (
        "import atexit, sys\n"
        "syncs = []\n"
        "opened = []\n"
        "atexit.register(lambda: print('SYNCS', len(syncs) - opened[0], flush=True))\n"
        "import numpy as np\n"
        "import mnemos.db\n"
        "from mnemos.storage import OSStorage\n"
        "class Counting(OSStorage):\n"
        "    def fdatasync(self, fd):\n"
        "        super().fdatasync(fd)\n"
        "        syncs.append(fd)\n"
        "mnemos.db.OSStorage = Counting\n"
        "db = mnemos.db.Mnemos.open(sys.argv[1], embedder=None, dim=8, durability='normal',\n"
        "                           sync_interval_ms=60000)\n"
        "opened.append(len(syncs))\n"
        "db.remember('left open', vector=np.ones(8, dtype=np.float32))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(db_path)],
        check=True,
        timeout=TIMEOUT_S,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip().splitlines()[-1] == "SYNCS 1", out
    with Mnemos.open(db_path, embedder=None) as db:
        assert [db.get(f"m{db.seq}").text] == ["left open"]


def test_a_writer_syncs_the_log_tail_it_inherits_before_writing(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """What the previous process wrote may still be only in the page cache; the new
    writer's records count it as durable, so open must make it durable first."""
    with Mnemos.open(db_path, embedder=None, dim=8, durability="off") as db:
        db.remember("written, never synced", vector=vec(1))
    monkeypatch.setattr(CountingDisk, "fdatasyncs", [])
    monkeypatch.setattr(mnemos.db, "OSStorage", CountingDisk)
    with Mnemos.open(db_path, embedder=None, durability="off"):
        assert len(CountingDisk.fdatasyncs) == 1


def test_a_failing_background_sync_stops_acknowledgements(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Under "normal", a sync the background thread cannot do puts the handle in its
    failed state, so later writes raise instead of being acknowledged and never synced."""
    db = open_then_fail_syncs(db_path, monkeypatch, durability="normal", sync_interval_ms=1)
    db.remember("its sync fails", vector=vec(1))
    with pytest.raises(mnemos.StorageError, match="background log sync"):
        for i in range(10_000):  # the thread fails within a few milliseconds
            db.remember(f"item {i}", vector=vec(i))
            time.sleep(0.001)
    with pytest.raises(mnemos.StorageError):
        db.close()
