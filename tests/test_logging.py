"""What Mnemos does to data is told through the ``mnemos`` logger, and nothing is printed."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from mnemos import Mnemos


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "mnemos" and r.levelno == level]


def test_writes_recovery_and_maintenance_print_nothing(tmp_path: Path, capfd):
    path = tmp_path / "db.mem"
    with Mnemos.open(path, embedder=None, dim=8, segment_bytes=4096) as db:
        ids = db.remember_many([{"text": f"n{i}", "vector": vec(i)} for i in range(50)])
        db.ask(vector=vec(1))
        db.set_capacity(40)
        db.forget(ids[-1])
        db.checkpoint()
        db.compact()
        db.backup(tmp_path / "copy.mem")
    segment = sorted((path / "wal").iterdir())[-1]
    with open(segment, "ab") as f:
        f.write(b"\0" * 40)  # a torn tail for the next open to cut
    with Mnemos.open(path, embedder=None) as db:
        db.remember("after", vector=vec(99))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_evictions_backups_and_upgrades_are_info(tmp_path: Path, caplog):
    with (
        caplog.at_level(logging.INFO, logger="mnemos"),
        Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db,
    ):
        first = db.remember("first", vector=vec(1), importance=0.1)
        db.remember("second", vector=vec(2))
        db.set_capacity(1)
        db.backup(tmp_path / "copy.mem")
    info = messages(caplog, logging.INFO)
    assert any("upgraded to format version 2" in m for m in info)
    assert any(f"evicting {first}" in m and "'max': 1" in m for m in info)
    assert any("backed up at seq" in m for m in info)


def test_recovery_actions_are_warnings(tmp_path: Path, caplog):
    path = tmp_path / "db.mem"
    with Mnemos.open(path, embedder=None, dim=8) as db:
        db.remember("one", vector=vec(1))
        db.checkpoint()
        db.remember("two", vector=vec(2))
        db.checkpoint()
    snaps = sorted((path / "snapshots").iterdir())
    damaged = bytearray(snaps[-1].read_bytes())
    damaged[100] ^= 0xFF
    snaps[-1].write_bytes(bytes(damaged))
    segment = sorted((path / "wal").iterdir())[-1]
    with open(segment, "ab") as f:
        f.write(b"\1" * 10)
    (path / "snapshots" / "00000000000000000009.snap.tmp").write_bytes(b"orphan")
    with caplog.at_level(logging.INFO, logger="mnemos"), Mnemos.open(path, embedder=None) as db:
        assert db.stats()["memories"] == 2
    warnings = messages(caplog, logging.WARNING)
    assert any("truncating torn log tail" in m and os.fspath(segment) in m for m in warnings)
    assert any("skipping damaged snapshot" in m for m in warnings)
    assert any("removing orphan file" in m for m in messages(caplog, logging.INFO))
