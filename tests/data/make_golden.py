"""Builds the golden database of the current format version, deterministically.

    python tests/data/make_golden.py          # writes tests/data/v<FORMAT_VERSION>.mem
    python tests/data/make_golden.py NAME     # writes tests/data/NAME.mem, same events

The second form keeps a later addition that old readers skip (so the version stays) in a
golden of its own: v1-lexical.mem holds snapshots with the LEXICAL section.

Fixed clock, explicit vectors: the log segments it writes are the same bytes every time,
so a test can tell an accidental format change from an intended one. Old golden
directories are never regenerated: they stay as the versions that wrote them left them.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

from mnemos import FORMAT_VERSION, Mnemos

HERE = Path(__file__).resolve().parent


class Clock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        self.now += 1.5
        return self.now


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def build(path: Path) -> str:
    """Every logged event type but compact (which deletes the log before it), two
    snapshots, and the log from seq 1 continuing after them; returns state_hash."""
    with Mnemos.open(path, embedder=None, dim=8, clock=Clock(), segment_bytes=4096) as db:
        a = db.remember(
            "the user prefers tea",
            vector=vector(1),
            metadata={"topic": "prefs", "tags": ["drink", 1, 2.5, None, True]},
            importance=0.75,
        )
        b = db.remember(
            "Stripe is the payment provider",
            vector=vector(2),
            namespace="work",
            kind="semantic",
            timestamp=1_700_000_000,
        )
        batch = db.remember_many(
            [
                {"text": "deploys on Tuesdays", "vector": vector(3), "kind": "procedural"},
                {"text": "Ada likes chess", "vector": vector(4), "id": "ada"},
                {"text": "ünïcödé ✓ 東京", "vector": vector(5), "metadata": {"ключ": {"n": -7}}},
            ]
        )
        db.connect(a, b, relation="caused", weight=0.5)
        db.connect(b, batch[1])
        db.checkpoint()
        db.update(a, text="the user prefers green tea", vector=vector(6))
        db.forget(batch[0])
        db.disconnect(b, batch[1])
        db.remember("again", vector=vector(7), id=batch[0])
        db.update(batch[2], metadata={"ключ": {"n": 8}}, importance=0.1)
        for i in range(40):  # enough to roll segments at 4 KiB
            db.remember(f"note {i}", vector=vector(100 + i), metadata={"i": i})
        db.checkpoint()
        db.forget("ada")
        return db.state_hash()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else f"v{FORMAT_VERSION}"
    path = HERE / f"{name}.mem"
    shutil.rmtree(path, ignore_errors=True)
    digest = build(path)
    (path / "LOCK").unlink()
    (HERE / f"{name}.state_hash").write_text(digest + "\n")
    print(f"wrote {path} (state_hash {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
