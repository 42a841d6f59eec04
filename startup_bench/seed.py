"""Synthetic memories and the seeded databases the open benchmarks read.

Every value is a pure function of (``SEED``, row number), so a database seeded today and
one seeded tomorrow hold the same memories, and a batch does not depend on the batches
before it. Each size gets two databases holding the same events:

- ``n<N>-snap``: a snapshot taken right after seeding (the normal case for open);
- ``n<N>-log``: a copy with its snapshots deleted, so open replays the whole log.

A manifest ``n<N>.json`` beside them records how they were made; a rerun reuses them when
the manifest matches, and otherwise deletes and reseeds only these directories.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

import mnemos
from mnemos import Mnemos

from .stats import BenchError

DIM = 384
SEED = 20240611
SEED_BATCH_ITEMS = 1000
CLUSTERS = 64
NOISE = 0.5  # per-dimension noise around a unit-variance centroid: cosine to it is ~0.9
TEXT_BYTES = 100
AGENTS = 4
# Bump when the generator changes, so stale seeded databases are rebuilt, not reused.
GENERATOR_VERSION = 1

_WORDS = (
    "user",
    "prefers",
    "green",
    "tea",
    "meeting",
    "moved",
    "to",
    "thursday",
    "the",
    "report",
    "is",
    "due",
    "after",
    "lunch",
    "asked",
    "about",
    "flight",
    "prices",
    "to",
    "lisbon",
    "remember",
    "that",
    "allergy",
    "peanuts",
    "project",
    "deadline",
    "slipped",
    "a",
    "week",
    "deploy",
    "failed",
    "on",
    "staging",
    "because",
    "of",
    "timeout",
    "budget",
    "approved",
    "for",
    "q3",
    "likes",
    "short",
    "answers",
    "with",
    "code",
    "examples",
    "in",
    "python",
    "calendar",
    "invite",
    "sent",
    "password",
    "reset",
    "requested",
    "weather",
    "in",
    "paris",
    "sunny",
    "order",
    "shipped",
    "tracking",
    "number",
    "issued",
    "yesterday",
)


@cache
def _centroids() -> np.ndarray:
    return np.random.default_rng([SEED, 0]).standard_normal((CLUSTERS, DIM), dtype=np.float32)


def clustered_vectors(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` float32 rows near one of ``CLUSTERS`` centroids, and each row's cluster."""
    cluster = rng.integers(0, CLUSTERS, count)
    noise = rng.standard_normal((count, DIM), dtype=np.float32)
    vectors = _centroids()[cluster] + np.float32(NOISE) * noise
    return np.ascontiguousarray(vectors, dtype=np.float32), cluster


def query_vectors(count: int) -> np.ndarray:
    """Query vectors from the same distribution as the memories (but not among them)."""
    vectors, _ = clustered_vectors(np.random.default_rng([SEED, 1]), count)
    return vectors


def make_items(start: int, count: int) -> list[dict[str, Any]]:
    """Memories ``start`` .. ``start + count - 1``: ~100-byte text, vector, a little metadata."""
    rng = np.random.default_rng([SEED, 2, start])
    vectors, cluster = clustered_vectors(rng, count)
    words = rng.integers(0, len(_WORDS), (count, 24))
    items = []
    for j in range(count):
        i = start + j
        text = f"memory {i}: " + " ".join(_WORDS[w] for w in words[j])
        items.append(
            {
                "text": text[:TEXT_BYTES].rstrip(),
                "vector": vectors[j],
                "metadata": {"agent": f"agent-{i % AGENTS}", "turn": i, "topic": int(cluster[j])},
                "kind": "semantic" if i % 10 == 9 else "episodic",
            }
        )
    return items


@dataclass(frozen=True)
class Seeded:
    """One size's pair of databases and how they came to be."""

    memories: int
    snap_path: str  # snapshot taken right after seeding
    log_path: str  # same log, no snapshot
    seed_s: float | None  # None when reused from an earlier run
    checkpoint_ms: float | None
    disk_bytes: dict[str, int]

    @property
    def seed_items_per_s(self) -> float | None:
        return None if self.seed_s is None else self.memories / self.seed_s


def _manifest(memories: int) -> dict[str, Any]:
    return {
        "memories": memories,
        "dim": DIM,
        "seed": SEED,
        "generator_version": GENERATOR_VERSION,
        "format_version": mnemos.FORMAT_VERSION,
        "ann_graph_section": True,  # snapshots store the graph (seeded before: re-seed)
    }


def _files(path: str, sub: str, suffix: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(os.path.join(path, sub)) if n.endswith(suffix))
    except FileNotFoundError:
        return []


def _tree_bytes(path: str) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _dirs, names in os.walk(path)
        for name in names
    )


def _reusable(root: str, memories: int, snap_path: str, log_path: str) -> dict[str, Any] | None:
    """The stored manifest if both databases are there as this generator would make them."""
    try:
        with open(os.path.join(root, f"n{memories}.json")) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None
    if {k: stored.get(k) for k in _manifest(memories)} != _manifest(memories):
        return None
    # The log copy must have no snapshot (else open would not replay), the other must.
    if _files(log_path, "snapshots", ".snap") or not _files(snap_path, "snapshots", ".snap"):
        return None
    if not _files(log_path, "wal", ".wal"):
        return None
    return dict(stored)


def seed(root: str, memories: int, *, log: Any = print) -> Seeded:
    """Both databases for ``memories``, reused from ``root`` when they match."""
    snap_path = os.path.join(root, f"n{memories}-snap")
    log_path = os.path.join(root, f"n{memories}-log")
    stored = _reusable(root, memories, snap_path, log_path)
    if stored is not None:
        log(f"reusing seeded {memories:,}-memory databases in {root}")
        return Seeded(memories, snap_path, log_path, None, None, stored["disk_bytes"])

    for path in (snap_path, log_path):
        shutil.rmtree(path, ignore_errors=True)
    log(f"seeding {memories:,} memories into {snap_path} ...")
    started = time.perf_counter()
    # Seeding speed is not what is measured here: no syncs, and no automatic snapshots
    # (each would rewrite the whole state); one snapshot is taken at the end instead.
    with Mnemos.open(
        snap_path,
        embedder=None,
        dim=DIM,
        durability="off",
        snapshot_every_events=None,
        snapshot_every_bytes=None,
        ann_background=False,
    ) as db:
        for start in range(0, memories, SEED_BATCH_ITEMS):
            db.remember_many(make_items(start, min(SEED_BATCH_ITEMS, memories - start)))
        seed_s = time.perf_counter() - started
        # Past ANN_ROWS_MIN the graph is built (here in the foreground, timed) before the
        # snapshot, so the snapshot holds it and open does not rebuild it.
        before = time.perf_counter()
        db.ask(vector=query_vectors(1)[0], top_k=1)
        graph_s = time.perf_counter() - before
        before = time.perf_counter()
        db.checkpoint()
        checkpoint_ms = (time.perf_counter() - before) * 1000.0
        count = db.stats()["memories"]
    if count != memories:
        raise BenchError(f"seeded {count} memories into {snap_path}, expected {memories}")

    # The same log with no snapshot: open must replay every event from seq 1.
    shutil.copytree(snap_path, log_path)
    for name in _files(log_path, "snapshots", ".snap"):
        os.unlink(os.path.join(log_path, "snapshots", name))
    os.sync()  # written with durability="off": make the bytes clean before any timing
    disk_bytes = {
        "graph_build_s": graph_s,
        "snap_db_bytes": _tree_bytes(snap_path),
        "log_db_bytes": _tree_bytes(log_path),
        "snapshot_bytes": sum(
            os.path.getsize(os.path.join(snap_path, "snapshots", n))
            for n in _files(snap_path, "snapshots", ".snap")
        ),
    }
    with open(os.path.join(root, f"n{memories}.json"), "w") as f:
        json.dump({**_manifest(memories), "disk_bytes": disk_bytes}, f, indent=2)
    log(
        f"  seeded in {seed_s:.2f} s ({memories / seed_s:,.0f} items/s), graph {graph_s:.1f} s, "
        f"checkpoint {checkpoint_ms:.0f} ms"
    )
    return Seeded(memories, snap_path, log_path, seed_s, checkpoint_ms, disk_bytes)
