"""Simulated power loss at every point of a workload loses nothing acknowledged (ALICE-style).

The crash tests' workload (remember, remember_many, update, forget, connect, checkpoint,
compact under ``durability="full"``) runs once on the real file system through a storage
that records every call. The record is then replayed into a model of durable versus
unsynced bytes and directory entries (``tests/power_loss.py``), and at every point between
two calls each crash variant's disk image is written out and opened twice: both opens give
the same state, and it is the state after exactly the operations acknowledged before that
point, or after one more (the one in flight).
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import pytest
from power_loss import VARIANTS, DiskModel, RecordingDisk, image_digest, write_image
from test_crash import SCOPE

import mnemos
import mnemos.db
from mnemos import Mnemos

TORTURE = bool(os.environ.get("MNEMOS_TORTURE"))
OPS = 150 if TORTURE else 40
SEEDS = 4 if TORTURE else 1  # random images per variant and point
Recording = tuple[str, list[tuple], list[str]]  # durability, storage calls, hashes


def options(durability: str) -> dict:
    return {**SCOPE["options"](), "durability": durability}


@pytest.fixture(scope="module", params=["full", "normal", "off"])
def recording(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Recording:
    """The workload's storage calls, with an ("mark", "ack", i) after operation i returned,
    and the state hash after each prefix of the operations."""
    durability = request.param
    root = tmp_path_factory.mktemp("recorded")
    disk = RecordingDisk(str(root))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mnemos.db, "OSStorage", lambda: disk)
        db = Mnemos.open(root / "db.mem", **options(durability))
        hashes = [db.state_hash()]
        disk.mark("ack", -1)  # the open itself: creating the database
        for i in range(OPS):
            SCOPE["step"](db, i)
            disk.mark("ack", i)
            hashes.append(db.state_hash())
        db.close()
    disk.check_against_disk()
    return durability, disk.ops, hashes


def reopened_hash(image: dict[str, bytes | None], root: Path, durability: str) -> str:
    write_image(image, str(root))
    path = root / "db.mem"
    with Mnemos.open(path, **options(durability)) as db:
        first = db.state_hash()
    with Mnemos.open(path, **options(durability)) as db:
        assert db.state_hash() == first
    assert mnemos.verify(path).ok
    return first


def test_a_power_loss_at_every_point_loses_nothing_acknowledged(
    tmp_path: Path, recording: Recording
) -> None:
    durability, ops, hashes = recording
    model = DiskModel()
    acked = 0  # operations acknowledged so far, counting the open as the first
    seen: dict[str, str] = {}  # image digest -> reopened state hash
    points = 0
    for index, op in enumerate(ops):
        if op[0] == "mark":
            acked += 1
            continue
        model.apply(op)
        points += 1
        for variant, seed in itertools.product(VARIANTS, range(SEEDS)):
            image = model.image(variant, random.Random(f"{index}-{variant}-{seed}"))
            digest = image_digest(image)
            if digest not in seen:
                seen[digest] = reopened_hash(image, tmp_path / digest, durability)
            # "full" keeps every acknowledged operation; the others may lose the last few,
            # but never one without all before it. A crash before the open returned may
            # leave no database: opening creates it.
            first = max(acked - 1, 0) if durability == "full" else 0
            assert seen[digest] in hashes[first : acked + 1], (index, op[0], variant, acked)
    assert acked == OPS + 1
    print(
        f"{durability}: {points} crash points x {len(VARIANTS)} variants x {SEEDS}, {len(seen)} images"
    )
