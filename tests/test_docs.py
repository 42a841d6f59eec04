"""The README's Python examples and the demo run as written (docs that run)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(_python_blocks(ROOT / "README.md"))))
def test_readme_python_block_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    code = _python_blocks(ROOT / "README.md")[index]
    exec(compile(code, f"README.md block {index}", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "agent.mem" / "MNEMOS").is_file()


def test_readme_has_python_examples():
    assert _python_blocks(ROOT / "README.md"), "the README lost its runnable example"


def test_demo_runs_and_reopens_to_the_same_state():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert "remembered 7 memories" in out
    # Each question, asked in other words, finds its note first (by meaning, through the
    # built-in embedder), and the order number is found by the exact token.
    expected = ["Stripe", "tea over coffee", "Deploys", "ORD-48213"]
    answers = [part.splitlines()[1] for part in out.split("ask:")[1:]]
    assert len(answers) == len(expected)
    for answer, words in zip(answers, expected, strict=True):
        assert words in answer, answer
    assert "same state_hash" in out
    # The past before the update, and the run replayed from its exported log alone.
    assert "as of seq 8 -> The user prefers tea over coffee" in out
    assert "replayed 11 events" in out and "checkpoints verified: same state_hash" in out
    # A backup of the whole run, then a bound: the oldest of equal importance goes.
    assert "backed up seq 11" in out and "bytes): same state_hash" in out
    assert out.rstrip().endswith("capacity 5: evicted ['m2'], live memories 5")
