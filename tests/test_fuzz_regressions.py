"""Every stored fuzz input keeps passing its target: the seeds in ``tests/data/fuzz/`` and
any input a fuzzer once found there (``fuzz/targets.py`` says what each target allows)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "fuzz"))

from targets import TARGETS  # noqa: E402

INPUTS = sorted(
    (target, path)
    for target in TARGETS
    for path in (ROOT / "tests" / "data" / "fuzz" / target).iterdir()
)


def test_every_target_has_inputs():
    assert {target for target, _path in INPUTS} == set(TARGETS)


@pytest.mark.parametrize(("target", "path"), INPUTS, ids=[f"{t}-{p.name}" for t, p in INPUTS])
def test_stored_input(target: str, path: Path):
    TARGETS[target](path.read_bytes())
