"""Process kills at named points inside the engine lose nothing acknowledged.

A writer subprocess runs a deterministic sequence of operations (remember, remember_many,
update, forget, connect, checkpoint, compact) under ``durability="full"`` and reports each
operation on stdout only after it returned. Its file-system calls go through a storage that
SIGKILLs the process at the Nth occurrence of a named point: after a log append, before its
sync; half-way through writing a snapshot; between a rename and the directory sync; before a
compaction deletes a covered segment; and at random moments. After each kill the database is opened twice: both opens give the
same state, and it is the state the same operations reach in a clean run after exactly the
acknowledged ones, or after one more (the operation in flight may have committed).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnemos import Mnemos

# The operations, shared by the killed child and the clean reference run.
WORKLOAD = r'''
import numpy as np

def vec(seed):
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)

def options():
    return dict(embedder=None, dim=8, durability="full", clock=lambda: 1.7e9,
                snapshot_every_events=7, segment_bytes=4096, log_retention="delete")

def step(db, i):
    """Operation i; the same every run."""
    rng = np.random.default_rng(i)
    live = sorted(mid for mid, row in db._state.rows.items() if not db._state.dseqs[row])
    kind = int(rng.integers(0, 10))
    if kind <= 2 or len(live) < 3:
        db.remember(f"memory {i}", vector=vec(i), importance=float(rng.random()))
    elif kind == 3:
        db.remember_many([{"text": f"batch {i}.{j}", "vector": vec(1000 * i + j)} for j in range(4)])
    elif kind == 4:
        db.update(live[int(rng.integers(len(live)))], text=f"updated {i}", vector=vec(500_000 + i))
    elif kind == 5:
        db.forget(live[int(rng.integers(len(live)))])
    elif kind == 6:
        a, b = rng.choice(len(live), 2, replace=False)
        db.connect(live[int(a)], live[int(b)], relation="r", weight=float(rng.random()))
    elif kind == 7:
        db.checkpoint()
    elif kind == 8 and i % 3 == 0:
        db.compact()
    else:
        db.remember(f"memory {i}", vector=vec(i))
'''

# The workload's functions in this process: ``step``, ``options``, ``vec``.
SCOPE: dict = {}
exec(WORKLOAD, SCOPE)

CHILD = (
    WORKLOAD
    + r'''
import os, signal, sys
from mnemos import Mnemos
import mnemos.db
from mnemos.storage import OSStorage

POINT, COUNT = os.environ["CRASH_POINT"], int(os.environ["CRASH_COUNT"])

class CrashingDisk(OSStorage):
    """Kills the process at the COUNTth occurrence of POINT."""
    seen = 0
    paths = {}
    renamed = False

    def _hit(self, point):
        if point == POINT:
            CrashingDisk.seen += 1
            if CrashingDisk.seen == COUNT:
                os.kill(os.getpid(), signal.SIGKILL)

    def create(self, path):
        fd = super().create(path)
        self.paths[fd] = path
        self.writes.pop(fd, None)
        return fd

    writes = {}

    def write(self, fd, data):
        # A snapshot is written in pieces (header, then sections): a kill half-way through
        # its second piece, once per snapshot file.
        if self.paths.get(fd, "").endswith(".snap.tmp"):
            self.writes[fd] = self.writes.get(fd, 0) + 1
            if self.writes[fd] == 2:
                view = memoryview(data)
                half = len(view) // 2
                super().write(fd, view[:half])
                self._hit("mid-snapshot")
                super().write(fd, view[half:])
                return
        super().write(fd, data)

    def fdatasync(self, fd):
        self._hit("append-before-sync")
        super().fdatasync(fd)

    def rename(self, src, dst):
        super().rename(src, dst)
        self.renamed = True

    def fsync_dir(self, path):
        if self.renamed:
            self.renamed = False
            self._hit("rename-before-dirsync")
        super().fsync_dir(path)

    def unlink(self, path):
        if path.endswith(".wal"):
            self._hit("compaction-unlink")
        super().unlink(path)

mnemos.db.OSStorage = CrashingDisk
db = Mnemos.open(sys.argv[1], **options())
print("READY", flush=True)
for i in range(int(sys.argv[2])):
    step(db, i)
    print("ACK", i, flush=True)
db.close()
print("DONE", flush=True)
'''
)

OPS = 60
POINTS = {
    # point: occurrences to kill at (a bounded CI sweep; `make torture` runs them all)
    "append-before-sync": [1, 2, 5, 11, 23, 40, 57],
    "mid-snapshot": [1, 2, 3, 5, 8],
    "rename-before-dirsync": [1, 2, 4, 7, 12],
    "compaction-unlink": [1, 2, 3, 5],
}
if os.environ.get("MNEMOS_TORTURE"):  # `make torture`: every occurrence the workload reaches
    POINTS = {point: list(range(1, 80)) for point in POINTS}
CASES = [(point, n) for point, counts in POINTS.items() for n in counts]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[str]:
    """The state hash after each prefix of the operations, from a clean run."""
    path = tmp_path_factory.mktemp("reference") / "ref.mem"
    hashes = []
    with Mnemos.open(path, **SCOPE["options"]()) as db:
        hashes.append(db.state_hash())
        for i in range(OPS):
            SCOPE["step"](db, i)
            hashes.append(db.state_hash())
    return hashes


def _run_child(path: Path, point: str, count: int) -> tuple[int, bool]:
    env = {**os.environ, "CRASH_POINT": point, "CRASH_COUNT": str(count)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(OPS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a speed requirement
    )
    lines = proc.stdout.splitlines()
    assert (lines and lines[0] == "READY") or proc.returncode == -signal.SIGKILL, proc.stderr
    killed = proc.returncode == -signal.SIGKILL
    assert killed or proc.returncode == 0, proc.stderr
    acks = [int(line.split()[1]) for line in lines if line.startswith("ACK ")]
    assert acks == list(range(len(acks)))
    return len(acks), killed


@pytest.mark.parametrize(("point", "count"), CASES, ids=[f"{p}-{n}" for p, n in CASES])
def test_a_kill_at_a_named_point_loses_nothing_acknowledged(tmp_path, reference, point, count):
    path = tmp_path / "db.mem"
    acked, killed = _run_child(path, point, count)
    if not killed:  # the workload never reached that occurrence: it must have finished
        assert acked == OPS
    # Exactly the acknowledged operations, or one more: the one in flight when killed.
    assert reopened_hash(path) in reference[acked : acked + 2], (point, count, acked)


KILLS = 200 if os.environ.get("MNEMOS_TORTURE") else 100


def reopened_hash(path: Path) -> str:
    """The state hash of ``path`` opened twice (both opens must agree), with the child's
    options: a kill while the child created the database (before READY) leaves an
    unfinished creation, which this open completes as the child would have."""
    with Mnemos.open(path, **SCOPE["options"]()) as db:
        first = db.state_hash()
    with Mnemos.open(path, **SCOPE["options"]()) as db:
        assert db.state_hash() == first
    return first


def test_kills_at_random_moments_lose_nothing_acknowledged(tmp_path, reference):
    """The same workload SIGKILLed at random moments (no named point), KILLS times."""
    rng = random.Random(20261129)
    env = {**os.environ, "CRASH_POINT": "none", "CRASH_COUNT": "0"}
    for k in range(KILLS):
        path = tmp_path / f"k{k}.mem"
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), str(OPS)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline() == "READY\n"
            time.sleep(rng.uniform(0, 0.07))  # the workload takes about 0.1 s
            proc.send_signal(signal.SIGKILL)
            out = proc.stdout.read()
        finally:
            proc.kill()
            proc.wait(60)
        acked = sum(
            1
            for line in out.splitlines(keepends=True)
            if line.startswith("ACK ") and line.endswith("\n")
        )
        assert reopened_hash(path) in reference[acked : acked + 2], (k, acked)
        shutil.rmtree(path)
