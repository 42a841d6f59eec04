"""Builds the golden database of the current format version, deterministically.

    python tests/data/make_golden.py          # writes tests/data/v<FORMAT_VERSION>.mem
    python tests/data/make_golden.py NAME     # writes tests/data/NAME.mem, same events

The second form keeps a later addition that old readers skip (so the version stays) in a
golden of its own: v1-lexical.mem holds snapshots with the LEXICAL section, v1-ann.mem
(`make_golden.py v1-ann`, with the Rust extension) an ANN section whose graph has started:
it is built with the graph's threshold lowered to ANN_GOLDEN_ROWS so a small database
holds one, a stored graph, queued operations after it and a saved vector. v1-trace.mem
(`make_golden.py v1-trace`) is opened with ``trace=True`` and asks along the way, so it
holds a TRACE file; replay-v1-trace.log is its replay log, traces included. v2.mem
(`make_golden.py v2`) adds format 2's events: capacity rules of both policies, evictions
(in a snapshot and in the log after it) and recalls.

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


ANN_GOLDEN_ROWS = 16


def build(path: Path, *, ann: bool = False, trace: bool = False, v2: bool = False) -> str:
    """Every logged event type but compact (which deletes the log before it), two
    snapshots, and the log from seq 1 continuing after them; returns state_hash.
    ``ann``: also start the graph (see the module docstring); the caller has set
    ``mnemos.index.ann.ANN_ROWS_MIN`` to ``ANN_GOLDEN_ROWS``. ``trace``: open with
    tracing and ask along the way (each traced ask reads the clock once). ``v2``: also
    bound the database with capacity rules, which evict, and mark recalls."""
    with Mnemos.open(
        path, embedder=None, dim=8, clock=Clock(), segment_bytes=4096, trace=trace
    ) as db:
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
        if trace:
            db.ask(vector=vector(8), top_k=3)
            db.ask("payment provider", top_k=2, namespace="work")
        db.checkpoint()
        db.update(a, text="the user prefers green tea", vector=vector(6))
        db.forget(batch[0])
        db.disconnect(b, batch[1])
        db.remember("again", vector=vector(7), id=batch[0])
        db.update(batch[2], metadata={"ключ": {"n": 8}}, importance=0.1)
        notes = []
        for i in range(40):  # enough to roll segments at 4 KiB
            notes.append(db.remember(f"note {i}", vector=vector(100 + i), metadata={"i": i}))
            if ann and i == 20:
                db.ask(vector=vector(8), top_k=3)  # brings the graph up to date
        if ann:
            db.update(notes[-1], vector=vector(300))  # its queued insert keeps the old vector
            db.forget(notes[0])
        if v2:
            db.update(notes[3], importance=0.05)
            db.update("ada", importance=0.9)
            db.set_capacity(40)  # evicts notes[3], then the oldest at default importance
            db.mark_recalled([notes[10], notes[11]])
            db.ask(vector=vector(10), top_k=2, mark_recalled=True)
            db.set_capacity(2, namespace="work", policy="least-recently-recalled")
        db.checkpoint()
        db.forget("ada")
        if v2:
            db.remember("over the bound", vector=vector(400), importance=0.9)
            db.remember_many(
                [
                    {"text": f"work {i}", "vector": vector(500 + i), "namespace": "work"}
                    for i in range(3)
                ]
            )
            db.set_capacity(None, namespace="work")
        if trace:
            db.ask(vector=vector(9), top_k=5, where={"i": {"$gte": 30}})
            db.ask("note", top_k=4, since=1_700_000_000)
        return db.state_hash()


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else f"v{FORMAT_VERSION}"
    path = HERE / f"{name}.mem"
    shutil.rmtree(path, ignore_errors=True)
    ann = name.endswith("-ann")
    if ann:
        from mnemos.index import ann as ann_index

        if not ann_index.available():
            raise SystemExit("v1-ann needs the Rust extension, to store a built graph")
        ann_index.ANN_ROWS_MIN = ANN_GOLDEN_ROWS
    digest = build(path, ann=ann, trace=name.endswith("-trace"), v2=name.startswith("v2"))
    (path / "LOCK").unlink()
    if name.endswith("-trace"):
        with Mnemos.open(path, embedder=None, readonly=True) as db:
            db.export_replay(HERE / f"replay-{name}.log", checkpoint_every=10)
    (HERE / f"{name}.state_hash").write_text(digest + "\n")
    print(f"wrote {path} (state_hash {digest})", file=sys.stderr)


if __name__ == "__main__":
    main()
