"""The values the public API returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Memory:
    """One memory as it stands (or stood, inside a ``Version``)."""

    id: str
    text: str
    metadata: dict[str, Any]
    namespace: str
    kind: str
    importance: float
    timestamp: datetime
    vector: np.ndarray = field(repr=False, compare=False)
    version: int = 1

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Memory):
            return NotImplemented
        return (
            self.id,
            self.text,
            self.metadata,
            self.namespace,
            self.kind,
            self.importance,
            self.timestamp,
            self.version,
        ) == (
            other.id,
            other.text,
            other.metadata,
            other.namespace,
            other.kind,
            other.importance,
            other.timestamp,
            other.version,
        ) and np.array_equal(self.vector, other.vector)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Version:
    """One step in a memory's history: what happened (``op``), when, and the content.

    ``op`` is "remember", "update", "forget" or "evict" (forgotten by a capacity rule,
    ``Mnemos.set_capacity``); for "forget" and "evict", ``memory`` is the content
    as it was when forgotten.
    """

    seq: int
    at: datetime
    op: str
    memory: Memory


@dataclass(frozen=True)
class Hit:
    """One result of ``ask``. ``components`` holds per-signal scores with ``explain=True``."""

    id: str
    text: str
    score: float
    metadata: dict[str, Any]
    namespace: str
    kind: str
    timestamp: datetime
    importance: float
    components: dict[str, float] | None = None


@dataclass(frozen=True)
class Neighbor:
    """A memory reached from another along an edge.

    ``via`` is the memory it was reached from, ``depth`` the number of hops from the
    start; ``direction`` is "out" when the edge points from ``via`` to ``id``.
    """

    id: str
    depth: int
    via: str
    relation: str
    weight: float
    direction: str


@dataclass(frozen=True)
class Document:
    """What ``ingest_document`` did: the document's memory, its chunks in order, and
    which chunks this call added and which stale ones it forgot."""

    id: str
    chunks: list[str]
    added: list[str]
    removed: list[str]
