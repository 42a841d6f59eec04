"""The deterministic state machine: ``State.apply(seq, event)`` and ``state_hash``.

Nothing here performs I/O or reads a clock, a random source, the environment or an
embedder: an event carries every value it needs (ids, timestamps, vectors, resolved
parameters), so applying the same events always gives the same state, on any machine.
Events are validated before they are logged (see ``events.py``); ``apply`` trusts them.

Memories live in row-aligned columns (row = position in creation order) so snapshots
load without building an object per memory. The indexes (vector, lexical, graph,
temporal) are derived from the same events; the lexical and temporal ones are brought
up to date lazily, when a query first needs them.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from typing import Any

import msgpack
import numpy as np

from . import format as fmt
from .events import decode_meta, pack_meta
from .index import ann
from .index.graph import GraphIndex
from .index.lexical import LexicalIndex
from .index.temporal import TemporalIndex
from .index.vector import VectorIndex

KIND_CODE = {kind: code for code, kind in enumerate(fmt.KINDS)}

# A superseded version or tombstone, oldest first per memory. Field order is FORMAT.md's.
# (seq, at, op, version, text, meta, namespace, kind, importance, timestamp, vector bytes)
Version = tuple[int, int, str, int, str, bytes, str, str, float, int, bytes]


class State:
    def __init__(self) -> None:
        self.seq = 0
        self.format = fmt.CREATED_VERSION  # the init event sets it
        self.dim: int | None = None
        self.embedder: dict[str, Any] | None = None
        self.rows: dict[str, int] = {}
        self.ids: list[str] = []
        self.texts: list[str] = []
        self.metas: list[bytes] = []
        self.nss: list[str] = []
        self.kinds: list[str] = []
        # Number columns are typed arrays: compact, and a snapshot loads them with a copy.
        self.imps = array("d")
        self.tss = array("q")
        self.vers = array("q")
        self.vops: list[str] = []  # "remember" or "update": what made the current version
        self.vseqs = array("q")  # seq of the event that made the current version
        self.vats = array("q")  # its time (microseconds since the epoch)
        self.dseqs = array("q")  # seq of the forget that tombstoned the row, 0 if live
        self.dats = array("q")
        # Format 2: the seq of the last recall event naming the row (0: none), whether its
        # tombstone is an eviction, the capacity rules (namespace or None for the whole
        # database -> (max live memories, policy)) and the number of evictions applied.
        self.rseqs = array("q")
        self.evicted = bytearray()
        self.capacity: dict[str | None, tuple[int, str]] = {}
        self.evictions = 0
        self.history: dict[str, list[Version]] = {}
        self.ns_codes: dict[str, int] = {}
        self.ns_live: dict[str, int] = {}
        self.live = 0
        self.vectors: VectorIndex | None = None
        # The approximate index: None until the live memories first reach ANN_ROWS_MIN.
        self.ann: ann.AnnState | None = None
        self._reserve_rows = 0  # rows a replay announced before the dimension was known
        self.graph = GraphIndex()
        self.lexical = LexicalIndex()
        self.temporal = TemporalIndex()
        # row -> (vseq, decoded metadata): vseq names one version of one memory, so a
        # cached entry is valid exactly while the row's vseq is unchanged.
        self._meta_cache: dict[int, tuple[int, dict[str, Any]]] = {}

    # -- lookups ------------------------------------------------------------------

    def live_row(self, mid: str) -> int | None:
        row = self.rows.get(mid)
        if row is None or self.dseqs[row]:
            return None
        return row

    def meta(self, row: int) -> dict[str, Any]:
        """The row's metadata, decoded (cached; do not modify the result)."""
        vseq = self.vseqs[row]
        cached = self._meta_cache.get(row)
        if cached is None or cached[0] != vseq:
            cached = self._meta_cache[row] = (vseq, decode_meta(self.metas[row]))
        return cached[1]

    def lexical_index(self) -> LexicalIndex:
        """The lexical index, up to date."""
        self.lexical.flush(self.texts, self._is_live)
        return self.lexical

    def _is_live(self, row: int) -> bool:
        return not self.dseqs[row]

    def temporal_index(self) -> TemporalIndex:
        """The temporal index, built on first use."""
        if not self.temporal.built:
            n = len(self.ids)
            tss = np.frombuffer(self.tss, dtype=np.int64, count=n)
            live = np.frombuffer(self.dseqs, dtype=np.int64, count=n) == 0
            self.temporal.build(tss, live)
        return self.temporal

    def vector_search(
        self,
        queries: np.ndarray,
        top_k: int,
        mask: np.ndarray,
        namespaces: list[int] | None = None,
        *,
        exact: bool = False,
    ) -> list[list[tuple[int, float]]]:
        """``VectorIndex.search``, through the approximate index when it is worth it: the
        graph has started, the Rust extension is in use, ``exact`` is false, and the mask
        lets through at least ``ANN_ROWS_MIN`` rows and ``EXACT_MASK_BELOW`` of them. The
        graph's candidates are rescored exactly, so a row's score does not depend on the
        path that found it."""
        vectors = self.vectors
        assert vectors is not None
        if self.graph_applies(mask, exact=exact):
            assert self.ann is not None
            graph = self.ann.ready(vectors)
            wide = np.asarray(queries, dtype=np.float64)
            units = wide / np.sqrt(np.square(wide).sum(axis=1, keepdims=True))
            ef = max(graph.ef_search, top_k)
            found_all = graph.search(units.astype(np.float32), top_k, mask[: vectors.n], ef)
            return [
                vectors.rescore(np.asarray([row for row, _ in found], dtype=np.int64), unit)
                for found, unit in zip(found_all, units, strict=True)
            ]
        return vectors.search(queries, top_k, mask, namespaces)

    def graph_applies(self, mask: np.ndarray, *, exact: bool) -> bool:
        """Whether a vector search over ``mask`` goes through the ANN graph (see
        ``vector_search``)."""
        if exact or self.ann is None or self.vectors is None or not ann.available():
            return False
        n = self.vectors.n
        selected = int(np.count_nonzero(mask[:n]))
        return selected >= ann.ANN_ROWS_MIN and selected >= ann.EXACT_MASK_BELOW * n

    def vector(self, row: int) -> np.ndarray:
        assert self.vectors is not None
        row_copy: np.ndarray = self.vectors.row(row).copy()
        return row_copy

    def _content(self, row: int) -> tuple[int, int, str, int, str, bytes, str, str, float, int]:
        """The current version of a row, without its vector: a ``Version`` less one field."""
        return (
            self.vseqs[row],
            self.vats[row],
            self.vops[row],
            self.vers[row],
            self.texts[row],
            self.metas[row],
            self.nss[row],
            self.kinds[row],
            self.imps[row],
            self.tss[row],
        )

    def version_of(self, row: int) -> Version:
        return (*self._content(row), self.vector(row).astype("<f4").tobytes())

    def ns_code(self, ns: str) -> int:
        code = self.ns_codes.get(ns)
        if code is None:
            code = self.ns_codes[ns] = len(self.ns_codes)
        return code

    def reserve(self, events: int) -> None:
        """Room for ``events`` more memories, before a replay of that many events (kept
        for later if the dimension is not known yet: a replay from the ``init`` event)."""
        self._reserve_rows = events
        if self.vectors is None and self.dim is not None:
            self.vectors = VectorIndex(self.dim)
        if self.vectors is not None:
            self.vectors.reserve(self.vectors.n + events)
            self._reserve_rows = 0

    # -- apply ----------------------------------------------------------------------

    def apply(self, seq: int, event: dict[str, Any]) -> None:
        """Apply one validated event. Pure: the result depends only on state and event."""
        handler = _HANDLERS.get(event["t"])
        if handler is None:
            raise ValueError(f"unknown event type {event['t']!r} at seq {seq}")
        handler(self, seq, event)
        self.seq = seq

    def _init(self, seq: int, e: dict[str, Any]) -> None:
        self.format = e["format"]
        self.dim = e["dim"]
        self.embedder = e["embedder"]

    def _remember(self, seq: int, e: dict[str, Any]) -> None:
        mid = e["id"]
        vec = np.frombuffer(e["vec"], dtype="<f4")
        if self.dim is None:
            self.dim = len(vec)
        if self.vectors is None:
            self.vectors = VectorIndex(len(vec), capacity=max(self._reserve_rows, 1024))
        ns, kind, at = e["ns"], e["kind"], e["at"]
        meta = pack_meta(e["meta"])
        row = self.rows.get(mid)
        if row is None:
            row = len(self.ids)
            self.rows[mid] = row
            self.ids.append(mid)
            self.texts.append(e["text"])
            self.metas.append(meta)
            self.nss.append(ns)
            self.kinds.append(kind)
            self.imps.append(float(e["imp"]))
            self.tss.append(e["ts"])
            self.vers.append(1)
            self.vops.append("remember")
            self.vseqs.append(seq)
            self.vats.append(at)
            self.dseqs.append(0)
            self.dats.append(0)
            self.rseqs.append(0)
            self.evicted.append(0)
            self.vectors.append(vec, self.ns_code(ns), KIND_CODE[kind])
        else:  # a forgotten id remembered again: its past stays in history
            past = self.history.setdefault(mid, [])
            past.append(self.version_of(row))
            past.append(self._tombstone(row))
            self.texts[row], self.metas[row], self.nss[row] = e["text"], meta, ns
            self.kinds[row], self.imps[row], self.tss[row] = kind, float(e["imp"]), e["ts"]
            self.vers[row] += 1
            self.vops[row] = "remember"
            self.vseqs[row], self.vats[row] = seq, at
            self.dseqs[row] = self.dats[row] = self.rseqs[row] = self.evicted[row] = 0
            if self.ann is not None:
                self.ann.keep_vector(row, self.vectors.row(row))
            self.vectors.set(row, vec, self.ns_code(ns), KIND_CODE[kind])
        self.lexical.touch(row)
        self.temporal.add(e["ts"], row)
        self.live += 1
        self.ns_live[ns] = self.ns_live.get(ns, 0) + 1
        if self.ann is not None:
            self.ann.insert(row, seq)
        else:
            self.start_ann_if_due()

    def _tombstone(self, row: int) -> Version:
        v = self.version_of(row)
        op = "evict" if self.evicted[row] else "forget"
        return (self.dseqs[row], self.dats[row], op, *v[3:])

    def _update(self, seq: int, e: dict[str, Any]) -> None:
        mid = e["id"]
        row = self.rows[mid]
        self.history.setdefault(mid, []).append(self.version_of(row))
        if "text" in e:
            self.texts[row] = e["text"]
            self.lexical.touch(row)
        if "meta" in e:
            self.metas[row] = pack_meta(e["meta"])
        if "imp" in e:
            self.imps[row] = float(e["imp"])
        if "vec" in e:
            assert self.vectors is not None
            vec = np.frombuffer(e["vec"], dtype="<f4")
            if self.ann is not None:
                self.ann.keep_vector(row, self.vectors.row(row))
            self.vectors.set(row, vec, self.vectors.ns[row], self.vectors.kind[row])
        self.vers[row] += 1
        self.vops[row] = "update"
        self.vseqs[row], self.vats[row] = seq, e["at"]
        if "vec" in e and self.ann is not None:
            if self.ann.delete(row):
                self._ann_rebuild()
            else:
                self.ann.insert(row, seq)

    def _forget(self, seq: int, e: dict[str, Any]) -> None:
        mid = e["id"]
        row = self.rows[mid]
        self.dseqs[row], self.dats[row] = seq, e["at"]
        assert self.vectors is not None
        self.vectors.alive[row] = False
        self.lexical.touch(row)
        self.temporal.remove(self.tss[row], row)
        self.live -= 1
        ns = self.nss[row]
        self.ns_live[ns] -= 1
        if not self.ns_live[ns]:
            del self.ns_live[ns]
        self.graph.drop_node(mid)
        if self.ann is not None and self.ann.delete(row):
            self._ann_rebuild()

    def _evict(self, seq: int, e: dict[str, Any]) -> None:
        """A forget decided by a capacity rule; its tombstone says so."""
        self._forget(seq, e)
        self.evicted[self.rows[e["id"]]] = 1
        self.evictions += 1

    def _capacity(self, seq: int, e: dict[str, Any]) -> None:
        if e["max"] is None:
            self.capacity.pop(e["ns"], None)
        else:
            self.capacity[e["ns"]] = (e["max"], e["policy"])

    def _recall(self, seq: int, e: dict[str, Any]) -> None:
        for mid in e["ids"]:
            self.rseqs[self.rows[mid]] = seq

    def start_ann_if_due(self) -> None:
        """Start the graph once the live memories reach ``ANN_ROWS_MIN`` (FORMAT.md "ANN
        section"): by the event that gets there, or at the load of a snapshot written before
        snapshots stored the graph."""
        if self.ann is None and self.vectors is not None and self.live >= ann.ANN_ROWS_MIN:
            self.ann = ann.AnnState(self.vectors.dim)
            self._ann_rebuild()

    def _ann_rebuild(self) -> None:
        """Start the graph afresh over the live rows, in row order (see ``AnnState``)."""
        assert self.ann is not None
        n = len(self.ids)
        rows = np.flatnonzero(np.frombuffer(self.dseqs, dtype=np.int64, count=n) == 0).tolist()
        self.ann.rebuild(rows, [self.vseqs[r] for r in rows])

    def _connect(self, seq: int, e: dict[str, Any]) -> None:
        self.graph.add(e["a"], e["b"], e["rel"], float(e["w"]))

    def _disconnect(self, seq: int, e: dict[str, Any]) -> None:
        self.graph.remove(e["a"], e["b"], e["rel"])

    def _compact(self, seq: int, e: dict[str, Any]) -> None:
        """Drop tombstoned memories and all but the newest ``keep`` superseded versions."""
        keep = e["keep"]
        kept = [row for row in range(len(self.ids)) if not self.dseqs[row]]
        if len(kept) != len(self.ids):
            if self.ann is not None:
                assert self.vectors is not None
                self.ann.renumber(np.asarray(kept, dtype=np.int64), self.vectors.row)
            self.lexical_index().remap(np.asarray(kept, dtype=np.int64))
            self.temporal.reset()
            self._meta_cache.clear()
            cols = (
                "ids",
                "texts",
                "metas",
                "nss",
                "kinds",
                "imps",
                "tss",
                "vers",
                "vops",
                "vseqs",
                "vats",
                "dseqs",
                "dats",
                "rseqs",
            )
            for name in cols:
                old = getattr(self, name)
                new = [old[row] for row in kept]
                setattr(self, name, array(old.typecode, new) if isinstance(old, array) else new)
            self.evicted = bytearray(self.evicted[row] for row in kept)
            assert self.vectors is not None
            self.vectors.keep(np.asarray(kept, dtype=np.int64))
            self.rows = {mid: row for row, mid in enumerate(self.ids)}
        history: dict[str, list[Version]] = {}
        for mid, past in self.history.items():
            if mid in self.rows and keep > 0:
                history[mid] = past[-keep:]
        self.history = history

    # -- digest ---------------------------------------------------------------------

    def state_hash(self) -> str:
        """BLAKE2b-256 of the canonical encoding of the logical state (FORMAT.md
        "State hash"): independent of rows, snapshots, batching and backend."""
        h = hashlib.blake2b(digest_size=32)
        pack = msgpack.Packer(use_bin_type=True, use_single_float=False).pack
        # seq is state: the ids the next writes get depend on it.
        h.update(
            pack(["mnemos-state", self.format, self.seq, self.dim, _sorted_map(self.embedder)])
        )
        order = sorted(range(len(self.ids)), key=self.ids.__getitem__)
        h.update(pack(len(order)))
        for row in order:
            fields = [
                self.ids[row],
                *self._content(row),
                self.dseqs[row],
                self.dats[row],
                self.history.get(self.ids[row], []),
            ]
            if self.rseqs[row] or self.evicted[row]:  # format 2 only: v1 hashes stay
                fields += [self.rseqs[row], self.evicted[row]]
            h.update(pack(fields))
        if self.vectors is not None and order:
            h.update(self.vectors.take(np.asarray(order)).astype("<f4", copy=False).tobytes())
        h.update(pack(sorted([a, b, rel, w] for (a, b, rel), w in self.graph.edges.items())))
        if self.capacity or self.evictions:
            h.update(pack(["capacity", self.capacity_rules(), self.evictions]))
        return h.hexdigest()

    def capacity_rules(self) -> list[list[Any]]:
        """[namespace or None, max, policy] per rule, the whole database's last."""
        return [
            [ns, limit, policy]
            for ns, (limit, policy) in sorted(
                self.capacity.items(), key=lambda item: (item[0] is None, item[0] or "")
            )
        ]


def _sorted_map(value: dict[str, Any] | None) -> list[Any] | None:
    return None if value is None else sorted(value.items())


_HANDLERS: dict[str, Callable[[State, int, dict[str, Any]], None]] = {
    "init": State._init,
    "remember": State._remember,
    "update": State._update,
    "forget": State._forget,
    "connect": State._connect,
    "disconnect": State._disconnect,
    "compact": State._compact,
    "capacity": State._capacity,
    "evict": State._evict,
    "recall": State._recall,
}
