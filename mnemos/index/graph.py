"""Typed, weighted adjacency between memories.

Derived from connect, disconnect and forget events. Edges are keyed by (from, to,
relation); connecting again sets the weight. Walks visit edges in sorted order, so
every traversal is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

Edge = tuple[str, str, str]  # (from, to, relation)
# (other memory, relation, "out" or "in", weight), one step from a memory
Step = tuple[str, str, str, float]


class GraphIndex:
    def __init__(self, stored: list[list[Any]] | None = None) -> None:
        """``stored``: a snapshot's [a, b, rel, weight] rows, indexed at first use (open
        does not pay for the adjacency of a large graph it may never walk)."""
        self._stored = stored
        self._edges: dict[Edge, float] = {}
        self._out: dict[str, dict[tuple[str, str], float]] = {}
        self._in: dict[str, dict[tuple[str, str], float]] = {}

    def _load(self) -> None:
        stored, self._stored = self._stored, None
        if stored:
            for a, b, rel, w in stored:
                self.add(a, b, rel, w)

    @property
    def edges(self) -> dict[Edge, float]:
        if self._stored is not None:
            self._load()
        return self._edges

    @property
    def out_edges(self) -> dict[str, dict[tuple[str, str], float]]:
        if self._stored is not None:
            self._load()
        return self._out

    @property
    def in_edges(self) -> dict[str, dict[tuple[str, str], float]]:
        if self._stored is not None:
            self._load()
        return self._in

    def __len__(self) -> int:
        return len(self._stored) if self._stored is not None else len(self._edges)

    def add(self, a: str, b: str, rel: str, weight: float) -> None:
        self.edges[(a, b, rel)] = weight
        self.out_edges.setdefault(a, {})[(b, rel)] = weight
        self.in_edges.setdefault(b, {})[(a, rel)] = weight

    def remove(self, a: str, b: str, rel: str | None) -> int:
        """Drop the edges from ``a`` to ``b`` (of one relation, or all); returns how many."""
        doomed = [r for other, r in self.out_edges.get(a, {}) if other == b and rel in (None, r)]
        for r in doomed:
            self._drop(a, b, r)
        return len(doomed)

    def count(self, a: str, b: str, rel: str | None) -> int:
        return sum(1 for other, r in self.out_edges.get(a, {}) if other == b and rel in (None, r))

    def drop_node(self, mid: str) -> None:
        for other, rel in list(self.out_edges.get(mid, {})):
            self._drop(mid, other, rel)
        for other, rel in list(self.in_edges.get(mid, {})):
            self._drop(other, mid, rel)

    def _drop(self, a: str, b: str, rel: str) -> None:
        del self.edges[(a, b, rel)]
        out = self.out_edges[a]
        del out[(b, rel)]
        if not out:
            del self.out_edges[a]
        inn = self.in_edges[b]
        del inn[(a, rel)]
        if not inn:
            del self.in_edges[b]

    def steps(self, node: str, direction: str = "both") -> list[Step]:
        """The edges at ``node``, sorted by (other, relation, direction)."""
        found: list[Step] = []
        if direction in ("out", "both"):
            found += [(o, r, "out", w) for (o, r), w in self.out_edges.get(node, {}).items()]
        if direction in ("in", "both"):
            found += [(o, r, "in", w) for (o, r), w in self.in_edges.get(node, {}).items()]
        found.sort()
        return found

    def walk(
        self,
        start: str,
        depth: int,
        *,
        relation: str | None = None,
        direction: str = "both",
        allow: Callable[[str], bool] | None = None,
    ) -> Iterator[tuple[int, str, Step]]:
        """Breadth first from ``start``: (hops, the memory reached from, step) for each
        memory reached the first time, by hops, then by the memory reached from (in
        the order they were reached), then by step."""
        seen = {start}
        frontier = [start]
        for level in range(1, depth + 1):
            nxt: list[str] = []
            for node in frontier:
                for step in self.steps(node, direction):
                    other, rel = step[0], step[1]
                    if other in seen or (relation is not None and rel != relation):
                        continue
                    if allow is not None and not allow(other):
                        continue
                    seen.add(other)
                    nxt.append(other)
                    yield level, node, step
            frontier = nxt
            if not frontier:
                return
