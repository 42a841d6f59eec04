"""I/O errors swept over a workload (the SQLite method): nothing acknowledged is lost.

The disk fails the Nth write, fsync or fdatasync with EIO or ENOSPC, once or from then on,
for every N the workload reaches. Guards: the operation that hit the failure raises a
``MnemosError`` (a ``StorageError`` for the log) and is not acknowledged; after a failed log
write or sync the handle refuses further writes; reopening on a healthy disk gives the state a
clean run reaches after exactly the acknowledged operations, or one more (the failed one may
have reached the disk whole), and never fails to open.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import ClassVar

import pytest
from test_crash import SCOPE, reopened_hash

import mnemos.db
from mnemos import Mnemos, MnemosError
from mnemos.storage import OSStorage

OPS = 30
CALLS = ("write", "fsync", "fdatasync")


class FaultyDisk(OSStorage):
    """Fails the ``at``th call of ``call`` with ``code``; with ``sticky``, every one after."""

    call = "write"
    at = 1
    code = errno.EIO
    sticky = False
    seen = 0
    paths: ClassVar[dict[int, str]] = {}
    failed_on: str | None = None  # the file of the first failed call

    def _maybe_fail(self, name: str, fd: int) -> None:
        if name != FaultyDisk.call:
            return
        FaultyDisk.seen += 1
        if FaultyDisk.seen == FaultyDisk.at or (
            FaultyDisk.sticky and FaultyDisk.seen > FaultyDisk.at
        ):
            if FaultyDisk.failed_on is None:
                FaultyDisk.failed_on = FaultyDisk.paths.get(fd, "")
            raise OSError(FaultyDisk.code, f"injected {errno.errorcode[FaultyDisk.code]}")

    def create(self, path):
        fd = super().create(path)
        FaultyDisk.paths[fd] = path
        return fd

    def open_append(self, path):
        fd = super().open_append(path)
        FaultyDisk.paths[fd] = path
        return fd

    def write(self, fd, data):
        self._maybe_fail("write", fd)
        super().write(fd, data)

    def fsync(self, fd):
        self._maybe_fail("fsync", fd)
        super().fsync(fd)

    def fdatasync(self, fd):
        self._maybe_fail("fdatasync", fd)
        super().fdatasync(fd)


@pytest.fixture(scope="module")
def workload(tmp_path_factory):
    """The state hash after each prefix of the operations, from a clean run, and how many
    calls of each kind that run made."""
    path = tmp_path_factory.mktemp("reference") / "ref.mem"
    hashes = []
    counter = {name: 0 for name in CALLS}

    class Counting(OSStorage):
        def write(self, fd, data):
            counter["write"] += 1
            super().write(fd, data)

        def fsync(self, fd):
            counter["fsync"] += 1
            super().fsync(fd)

        def fdatasync(self, fd):
            counter["fdatasync"] += 1
            super().fdatasync(fd)

    original = mnemos.db.OSStorage
    mnemos.db.OSStorage = Counting
    try:
        with Mnemos.open(path, **SCOPE["options"]()) as db:
            hashes.append(db.state_hash())
            for i in range(OPS):
                SCOPE["step"](db, i)
                hashes.append(db.state_hash())
    finally:
        mnemos.db.OSStorage = original
    return hashes, dict(counter)


CASES = [
    (call, code, sticky)
    for call in CALLS
    for code in (errno.EIO, errno.ENOSPC)
    for sticky in (False, True)
]


@pytest.mark.parametrize(
    ("call", "code", "sticky"),
    CASES,
    ids=[f"{c}-{errno.errorcode[e]}-{'sticky' if s else 'once'}" for c, e, s in CASES],
)
def test_a_failed_call_at_every_point_loses_nothing_acknowledged(
    tmp_path, monkeypatch, workload, call, code, sticky
):
    reference, calls = workload
    monkeypatch.setattr(mnemos.db, "OSStorage", FaultyDisk)
    points = range(1, calls[call] + 1)
    if (code == errno.ENOSPC or sticky) and not os.environ.get("MNEMOS_TORTURE"):
        points = range(1, calls[call] + 1, 3)  # in CI, every third point for these three
    for at in points:
        monkeypatch.setattr(FaultyDisk, "call", call)
        monkeypatch.setattr(FaultyDisk, "at", at)
        monkeypatch.setattr(FaultyDisk, "code", code)
        monkeypatch.setattr(FaultyDisk, "sticky", sticky)
        monkeypatch.setattr(FaultyDisk, "seen", 0)
        monkeypatch.setattr(FaultyDisk, "failed_on", None)
        path = tmp_path / f"{call}-{at}.mem"
        acked = 0
        try:
            db = Mnemos.open(path, **SCOPE["options"]())
        except MnemosError:
            db = None  # failed while creating: nothing was acknowledged
        if db is not None:
            failed = False
            for i in range(OPS):
                try:
                    SCOPE["step"](db, i)
                except MnemosError:
                    failed = True
                    break
                acked += 1
            log_failed = (FaultyDisk.failed_on or "").endswith(".wal")
            if failed and log_failed:  # after a failed log write or sync: no more writes
                with pytest.raises(MnemosError):
                    db.remember("after the failure", vector=SCOPE["vec"](1))
            with contextlib.suppress(MnemosError):  # a failed final sync is reported here
                db.close()
        monkeypatch.setattr(mnemos.db, "OSStorage", OSStorage)
        assert reopened_hash(path) in reference[acked : acked + 2], (call, at, acked)
        monkeypatch.setattr(mnemos.db, "OSStorage", FaultyDisk)


FSIZE_CHILD = r"""
import resource, signal, sys
import numpy as np
from mnemos import Mnemos, MnemosError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
db = Mnemos.open(sys.argv[1], embedder=None, dim=8, segment_bytes=1 << 20,
                 snapshot_every_events=None, snapshot_every_bytes=None)
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
i = 0
try:
    while True:
        v = np.random.default_rng(i).standard_normal(8).astype(np.float32)
        db.remember(f"item {i} " + "x" * 200, vector=v)
        print("ACK", i, flush=True)
        i += 1
except MnemosError as exc:
    print("ERROR", type(exc).__name__, exc.errno, flush=True)
try:
    db.remember("after", vector=np.ones(8, dtype=np.float32))
    print("ACCEPTED", flush=True)
except MnemosError:
    print("REFUSED", flush=True)
"""


def test_a_real_file_size_limit_fails_the_write_and_loses_nothing(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse to grow the log: the write that crosses it
    raises StorageError (EFBIG), nothing after it is accepted, every acknowledged write is
    there after a reopen without the limit."""
    import subprocess
    import sys

    path = tmp_path / "small.mem"
    out = subprocess.run(
        [sys.executable, "-c", FSIZE_CHILD, str(path), str(48 * 1024)],
        capture_output=True,
        text=True,
        timeout=120,  # a hang guard, not a speed requirement
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    acked = [int(line.split()[1]) for line in lines if line.startswith("ACK ")]
    assert len(acked) > 50
    assert lines[-2] == f"ERROR StorageError {errno.EFBIG}" and lines[-1] == "REFUSED"
    with Mnemos.open(path, embedder=None) as db:
        texts = {db.get(f"m{i + 2}").text for i in acked}  # m1 is the init event's seq
        assert texts == {f"item {i} " + "x" * 200 for i in acked}
        assert db.stats()["memories"] in (len(acked), len(acked) + 1)
