"""The store behaves like a plain dict model, across reopen, snapshots, compaction and replay.

A hypothesis ``RuleBasedStateMachine`` drives random remembers, batches, updates, forgets,
edges, checkpoints, compactions, reopens and replays-from-scratch against the real store
and a dict model, and after every step checks that every read (``get``, ``history``,
``neighbors``, ``ask``, ``stats``) agrees with the model and that ``state_hash`` survives
every reopen and replay unchanged. Further tests check that ``state_hash`` does not depend
on batching or snapshot timing (DESIGN.md, determinism rule 2).
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest
from conftest import T0, FixedClock, vec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from mnemos import InvalidInputError, MemoryNotFound, Mnemos

DIM = 8
KINDS = ("episodic", "semantic", "procedural")
NAMESPACES = (None, "default", "alpha", "βeta")
EXPLICIT_IDS = ("a", "b", "c", "d", "e", "m3", "m9", "m12", "ü-id")
RELATIONS = ("related", "causes", "part_of")
UNKNOWN_ID = "never-used"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# -- strategies ------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
metadatas = st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=4)
texts = st.text(max_size=24)
importances = st.none() | st.floats(min_value=0.0, max_value=1.0) | st.sampled_from([0, 1])


def _nonzero(values: list[float]) -> bool:
    return math.sqrt(sum(v * v for v in values)) > 1e-3


vectors = st.one_of(
    st.integers(min_value=0, max_value=2**32).map(vec),
    st.integers(min_value=0, max_value=2**32).map(lambda s: vec(s).astype(np.float64)),
    st.lists(st.floats(-100.0, 100.0, width=32), min_size=DIM, max_size=DIM).filter(_nonzero),
    st.sampled_from([[1.0] * DIM, [0.0] * (DIM - 1) + [2.5]]),  # exact ties across memories
)
# Timestamps as integer microseconds, passed as an aware or naive datetime or epoch seconds.
timestamp_micros = st.integers(min_value=0, max_value=4_000_000_000_000_000)


def _as_timestamp(micros: int, form: str) -> Any:
    aware = EPOCH + timedelta(microseconds=micros)
    if form == "aware":
        return aware
    if form == "naive":
        return aware.replace(tzinfo=None)
    return micros // 1_000_000  # "int": whole epoch seconds


@st.composite
def remember_items(draw: st.DrawFn, explicit_id: bool | None = None) -> dict[str, Any]:
    """One ``remember`` argument set, and the expected stored values."""
    item: dict[str, Any] = {"text": draw(texts), "vector": draw(vectors)}
    if explicit_id is None:
        explicit_id = draw(st.booleans())
    if explicit_id:
        item["id"] = draw(st.sampled_from(EXPLICIT_IDS))
    for key, strategy in (
        ("metadata", metadatas),
        ("namespace", st.sampled_from(NAMESPACES)),
        ("kind", st.sampled_from(KINDS)),
        ("importance", importances),
    ):
        if draw(st.booleans()):
            item[key] = draw(strategy)
    if draw(st.booleans()):
        form = draw(st.sampled_from(["aware", "naive", "int"]))
        micros = draw(timestamp_micros)
        if form == "int":
            micros -= micros % 1_000_000
        item["timestamp"] = _as_timestamp(micros, form)
        item["_ts"] = micros
    return item


# -- the model ---------------------------------------------------------------------------


@dataclass
class Mem:
    text: str
    metadata: dict[str, Any]
    namespace: str
    kind: str
    importance: float
    ts: int
    vector: np.ndarray
    live: bool = True
    cur_op: str = "remember"
    past: list[str] = field(default_factory=list)  # ops of superseded versions/tombstones

    def ops(self) -> list[str]:
        return [*self.past, self.cur_op] + ([] if self.live else ["forget"])


def strict_equal(a: Any, b: Any) -> bool:
    """Equality that also requires equal types at every level (1 != 1.0 != True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


def _jsonish(value: Any) -> Any:
    """What metadata reads back as: tuples become lists (none are generated here)."""
    if isinstance(value, dict):
        return {k: _jsonish(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonish(v) for v in value]
    return value


def _expected_ts(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


class MnemosModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="mnemos-model-")
        self.path = os.path.join(self.dir, "agent.mem")
        self.clock = FixedClock(T0, step=0.0)
        self.ticks = 0
        self.mems: dict[str, Mem] = {}
        self.edges: dict[tuple[str, str, str], float] = {}
        self.compacted = False
        self.db: Mnemos | None = None
        self.options: dict[str, Any] = {}

    # -- plumbing -------------------------------------------------------------------

    def _open(self) -> Mnemos:
        return Mnemos.open(self.path, embedder=None, clock=self.clock, **self.options)

    def _tick(self) -> int:
        """Move the clock to a fresh instant before an operation; returns it in µs."""
        self.ticks += 1
        self.clock.now = T0 + self.ticks * 0.25
        return round(self.clock.now * 1_000_000)

    def teardown(self) -> None:
        if self.db is not None:
            self.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _live_ids(self) -> list[str]:
        return sorted(mid for mid, m in self.mems.items() if m.live)

    def _expect_unchanged(self, before: tuple[int, str]) -> None:
        assert self.db is not None
        assert (self.db.seq, self.db.state_hash()) == before

    def _snapshot_of_db(self) -> tuple[int, str]:
        assert self.db is not None
        return self.db.seq, self.db.state_hash()

    def _apply_remember(self, mid: str, item: dict[str, Any], at: int) -> None:
        old = self.mems.get(mid)
        assert old is None or not old.live
        mem = Mem(
            text=item["text"],
            metadata=_jsonish(item.get("metadata") or {}),
            namespace=item.get("namespace") or "default",
            kind=item.get("kind", "episodic"),
            importance=float(0.5 if item.get("importance") is None else item["importance"]),
            ts=item.get("_ts", at),
            vector=np.asarray(item["vector"], dtype=np.float32).copy(),
        )
        if old is not None:  # remembered again after a forget: the past stays in history
            mem.past = [*old.past, old.cur_op, "forget"]
        self.mems[mid] = mem

    def _drop_edges_of(self, mid: str) -> None:
        for key in [k for k in self.edges if mid in (k[0], k[1])]:
            del self.edges[key]

    # -- rules ----------------------------------------------------------------------

    @initialize(
        snapshot_every_events=st.sampled_from([None, 7, 10_000]),
        segment_bytes=st.sampled_from([4096, 64 * 1024 * 1024]),
        durability=st.sampled_from(["full", "off"]),
        retention=st.sampled_from(["keep", "keep", "delete"]),
        dim=st.sampled_from([None, DIM]),
    )
    def open_db(
        self,
        snapshot_every_events: int | None,
        segment_bytes: int,
        durability: str,
        retention: str,
        dim: int | None,
    ) -> None:
        self.options = {
            "snapshot_every_events": snapshot_every_events,
            "segment_bytes": segment_bytes,
            "durability": durability,
            "log_retention": retention,
            "dim": dim,
        }
        self._tick()
        self.db = self._open()

    @rule(item=remember_items())
    def remember(self, item: dict[str, Any]) -> None:
        assert self.db is not None
        at = self._tick()
        kwargs = {k: v for k, v in item.items() if not k.startswith("_")}
        explicit = kwargs.get("id")
        if explicit is not None and explicit in self.mems and self.mems[explicit].live:
            before = self._snapshot_of_db()
            with pytest.raises(InvalidInputError, match="already exists"):
                self.db.remember(kwargs.pop("text"), **kwargs)
            self._expect_unchanged(before)
            return
        seq = self.db.seq
        mid = self.db.remember(kwargs.pop("text"), **kwargs)
        assert self.db.seq == seq + 1
        if explicit is not None:
            assert mid == explicit
        else:
            assert mid not in self.mems, f"auto id {mid!r} collides with a known id"
        self._apply_remember(mid, item, at)

    @rule(items=st.lists(remember_items(), min_size=1, max_size=4))
    def remember_many(self, items: list[dict[str, Any]]) -> None:
        assert self.db is not None
        at = self._tick()
        explicit = [it["id"] for it in items if "id" in it]
        clash = len(set(explicit)) != len(explicit) or any(
            mid in self.mems and self.mems[mid].live for mid in explicit
        )
        batch = [{k: v for k, v in it.items() if not k.startswith("_")} for it in items]
        before = self._snapshot_of_db()
        if clash:
            with pytest.raises(InvalidInputError):
                self.db.remember_many(batch)
            self._expect_unchanged(before)
            return
        ids = self.db.remember_many(batch)
        assert len(ids) == len(items)
        assert self.db.seq == before[0] + len(items)
        assert len(set(ids)) == len(ids)
        for mid, item in zip(ids, items, strict=True):
            if "id" in item:
                assert mid == item["id"]
            else:
                assert mid not in self.mems, f"auto id {mid!r} collides with a known id"
            self._apply_remember(mid, item, at)

    @precondition(lambda self: any(m.live for m in self.mems.values()))
    @rule(
        data=st.data(),
        text=st.none() | texts,
        metadata=st.none() | st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        importance=importances,
        vector=st.none() | vectors,
    )
    def update(
        self,
        data: st.DataObject,
        text: str | None,
        metadata: dict[str, Any] | None,
        importance: float | None,
        vector: Any,
    ) -> None:
        assert self.db is not None
        mid = data.draw(st.sampled_from(self._live_ids()), label="id")
        self._tick()
        before = self._snapshot_of_db()
        if text is None and metadata is None and importance is None and vector is None:
            with pytest.raises(InvalidInputError, match="at least one"):
                self.db.update(mid)
            self._expect_unchanged(before)
            return
        self.db.update(mid, text=text, metadata=metadata, importance=importance, vector=vector)
        assert self.db.seq == before[0] + 1
        mem = self.mems[mid]
        mem.past.append(mem.cur_op)
        mem.cur_op = "update"
        if text is not None:
            mem.text = text
        if metadata is not None:
            mem.metadata = _jsonish(metadata)
        if importance is not None:
            mem.importance = float(importance)
        if vector is not None:
            mem.vector = np.asarray(vector, dtype=np.float32).copy()

    @rule(data=st.data())
    def forget(self, data: st.DataObject) -> None:
        assert self.db is not None
        live = self._live_ids()
        mid = data.draw(st.sampled_from([*live, UNKNOWN_ID]), label="id")
        self._tick()
        before = self._snapshot_of_db()
        if mid == UNKNOWN_ID:
            with pytest.raises(MemoryNotFound):
                self.db.forget(mid)
            self._expect_unchanged(before)
            return
        self.db.forget(mid)
        assert self.db.seq == before[0] + 1
        self.mems[mid].live = False
        self._drop_edges_of(mid)

    @precondition(lambda self: sum(m.live for m in self.mems.values()) >= 2)
    @rule(
        data=st.data(),
        relation=st.sampled_from(RELATIONS),
        weight=st.sampled_from([1.0, 0.5, -2.0, 3]),
    )
    def connect(self, data: st.DataObject, relation: str, weight: float) -> None:
        assert self.db is not None
        live = self._live_ids()
        a = data.draw(st.sampled_from(live), label="a")
        b = data.draw(st.sampled_from([x for x in live if x != a]), label="b")
        self._tick()
        seq = self.db.seq
        self.db.connect(a, b, relation, weight)
        assert self.db.seq == seq + 1
        self.edges[(a, b, relation)] = float(weight)

    @precondition(lambda self: sum(m.live for m in self.mems.values()) >= 2)
    @rule(data=st.data(), relation=st.none() | st.sampled_from(RELATIONS))
    def disconnect(self, data: st.DataObject, relation: str | None) -> None:
        assert self.db is not None
        live = self._live_ids()
        touching = sorted({(a, b) for (a, b, _r) in self.edges})
        pairs = [*touching, *((a, b) for a in live[:3] for b in live[:3] if a != b)]
        a, b = data.draw(st.sampled_from(pairs), label="pair")
        self._tick()
        matching = [k for k in self.edges if k[:2] == (a, b) and relation in (None, k[2])]
        before = self._snapshot_of_db()
        removed = self.db.disconnect(a, b, relation)
        assert removed == len(matching)
        if not matching:
            self._expect_unchanged(before)
        else:
            assert self.db.seq == before[0] + 1
        for key in matching:
            del self.edges[key]

    @rule()
    def checkpoint(self) -> None:
        assert self.db is not None
        before = self._snapshot_of_db()
        assert self.db.checkpoint() == before[0]
        self._expect_unchanged(before)

    @rule(keep=st.integers(min_value=0, max_value=2))
    def compact(self, keep: int) -> None:
        assert self.db is not None
        self._tick()
        dead = [mid for mid, m in self.mems.items() if not m.live]
        versions_before = sum(len(m.past) for m in self.mems.values())
        seq = self.db.seq
        report = self.db.compact(keep_versions=keep)
        assert self.db.seq == seq + 1
        for mid in dead:
            del self.mems[mid]
        for mem in self.mems.values():
            mem.past = mem.past[-keep:] if keep else []
        versions_after = sum(len(m.past) for m in self.mems.values())
        assert report["memories_dropped"] == len(dead)
        assert report["versions_dropped"] == versions_before - versions_after
        assert report["bytes_before"] > 0 and report["bytes_after"] > 0
        self.compacted = True

    @rule(readonly_peek=st.booleans())
    def reopen(self, readonly_peek: bool) -> None:
        assert self.db is not None
        before = self._snapshot_of_db()
        if readonly_peek:
            with Mnemos.open(self.path, embedder=None, readonly=True) as reader:
                assert (reader.seq, reader.state_hash()) == before
        self.db.close()
        self.db = self._open()
        self._expect_unchanged(before)

    @rule()
    def replay_from_scratch(self) -> None:
        """Reopen with no snapshot to start from (or, once compaction or log pruning has
        removed the start of the log, only the oldest snapshot the log still covers)."""
        assert self.db is not None
        before = self._snapshot_of_db()
        self.db.close()
        snap_dir = os.path.join(self.path, "snapshots")
        snaps = sorted(n for n in os.listdir(snap_dir) if n.endswith(".snap"))
        whole_log = not self.compacted and self.options["log_retention"] == "keep"
        for name in snaps if whole_log else snaps[1:]:
            os.unlink(os.path.join(snap_dir, name))
        self.db = self._open()
        self._expect_unchanged(before)
        if whole_log:
            assert self.db.stats()["open"]["events_replayed"] == before[0]

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def reads_match_model(self) -> None:
        db = self.db
        if db is None:
            return
        for mid, mem in self.mems.items():
            if not mem.live:
                with pytest.raises(MemoryNotFound):
                    db.get(mid)
                continue
            got = db.get(mid)
            assert got.id == mid
            assert got.text == mem.text
            assert strict_equal(got.metadata, mem.metadata), (got.metadata, mem.metadata)
            assert got.namespace == mem.namespace
            assert got.kind == mem.kind
            assert type(got.importance) is float and got.importance == mem.importance
            assert got.timestamp == _expected_ts(mem.ts)
            assert got.timestamp.tzinfo is not None
            assert got.vector.dtype == np.float32
            assert np.array_equal(got.vector, mem.vector)
        for mid in (UNKNOWN_ID, *(i for i in EXPLICIT_IDS if i not in self.mems)):
            with pytest.raises(MemoryNotFound):
                db.get(mid)

    @invariant()
    def history_matches_model(self) -> None:
        db = self.db
        if db is None:
            return
        for mid, mem in self.mems.items():
            versions = db.history(mid)
            assert [v.op for v in versions] == mem.ops(), mid
            seqs = [v.seq for v in versions]
            assert seqs == sorted(seqs), mid
            last = versions[-1].memory
            assert last.text == mem.text
            assert strict_equal(last.metadata, mem.metadata)
            assert np.array_equal(last.vector, mem.vector)
        for mid in (UNKNOWN_ID, *(i for i in EXPLICIT_IDS if i not in self.mems)):
            with pytest.raises(MemoryNotFound):
                db.history(mid)

    @invariant()
    def stats_match_model(self) -> None:
        db = self.db
        if db is None:
            return
        stats = db.stats()
        live = [m for m in self.mems.values() if m.live]
        assert stats["memories"] == len(live)
        assert stats["edges"] == len(self.edges)
        assert stats["namespaces"] == len({m.namespace for m in live})
        assert stats["seq"] == db.seq

    @invariant()
    def neighbors_match_model(self) -> None:
        db = self.db
        if db is None:
            return
        for mid in self._live_ids():
            out = sorted((b, r, w) for (a, b, r), w in self.edges.items() if a == mid)
            # One entry per memory reached; of several relations, the first by name.
            expected, seen = [], set()
            for b, r, w in out:
                if b not in seen:
                    seen.add(b)
                    expected.append((b, 1, mid, r, w, "out"))
            got = db.neighbors(mid, depth=1, direction="out")
            assert [
                (n.id, n.depth, n.via, n.relation, n.weight, n.direction) for n in got
            ] == expected

    @invariant()
    def ask_finds_every_live_memory(self) -> None:
        db = self.db
        if db is None:
            return
        live = {mid: m for mid, m in self.mems.items() if m.live}
        query = vec(7)
        for ns in ("default", "alpha", "βeta"):
            want = {mid for mid, m in live.items() if m.namespace == ns}
            hits = db.ask(vector=query, top_k=max(1, len(want)), namespace=ns)
            assert {h.id for h in hits} == want
            keys = [(-h.score, h.id) for h in hits]
            assert keys == sorted(keys)
        for kind in KINDS:
            want = {mid for mid, m in live.items() if m.kind == kind}
            hits = db.ask(vector=query, top_k=max(1, len(want)), kind=[kind])
            assert {h.id for h in hits} == want


MnemosModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestMnemosModel = MnemosModel.TestCase


# -- state_hash independent of batching and snapshot timing ---------------------------

plain_items = st.lists(
    st.fixed_dictionaries(
        {"text": texts, "vector": vectors},
        optional={
            "metadata": metadatas,
            "namespace": st.sampled_from(NAMESPACES),
            "kind": st.sampled_from(KINDS),
            "importance": importances,
        },
    ),
    min_size=1,
    max_size=6,
)


def _with_ids(items: list[dict[str, Any]], explicit: list[bool]) -> list[dict[str, Any]]:
    """Give items distinct explicit ids (letters only, so never an auto id ``m<seq>``)."""
    out = []
    for i, (item, use_id) in enumerate(zip(items, explicit, strict=False)):
        entry = dict(item)
        if use_id:
            entry["id"] = f"item-{chr(ord('a') + i)}"
        out.append(entry)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=plain_items, explicit=st.lists(st.booleans(), min_size=6, max_size=6))
def test_batch_and_single_remembers_give_the_same_state(
    tmp_path_factory: pytest.TempPathFactory, items: list[dict[str, Any]], explicit: list[bool]
) -> None:
    """remember() one by one, remember_many() at once, and remember() with a checkpoint
    after every call all build the same state (same ids, same hash), before and after
    a reopen. The clock is constant: a batch stamps all its events with one time."""
    items = _with_ids(items, explicit)
    base = tmp_path_factory.mktemp("batch")
    results = []
    for how in ("single", "batch", "single+checkpoint"):
        path = base / how
        with Mnemos.open(path, embedder=None, clock=FixedClock(T0)) as db:
            if how == "batch":
                ids = db.remember_many(items)
            else:
                ids = []
                for item in items:
                    kwargs = dict(item)
                    ids.append(db.remember(kwargs.pop("text"), **kwargs))
                    if how == "single+checkpoint":
                        db.checkpoint()
            result = (ids, db.seq, db.state_hash())
        with Mnemos.open(path, embedder=None, clock=FixedClock(T0)) as db:
            assert (db.seq, db.state_hash()) == result[1:]
        results.append(result)
    assert results[0] == results[1] == results[2]


ops = st.lists(
    st.one_of(
        st.tuples(st.just("remember"), st.integers(0, 5), vectors),
        st.tuples(st.just("update"), st.integers(0, 5), st.text(max_size=5)),
        st.tuples(st.just("forget"), st.integers(0, 5)),
        st.tuples(st.just("connect"), st.integers(0, 5), st.integers(0, 5)),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops, every=st.sampled_from([1, 2, 5]))
def test_state_hash_is_independent_of_checkpoint_timing(
    tmp_path_factory: pytest.TempPathFactory, script: list[tuple[Any, ...]], every: int
) -> None:
    """The same operations give the same state_hash whether a snapshot is written after
    every operation, every few, or never (and after a reopen from those snapshots)."""
    base = tmp_path_factory.mktemp("timing")
    hashes = []
    for run, snap_every in enumerate((None, every, "manual")):
        path = base / f"run{run}"
        clock = FixedClock(T0, step=0.5)
        opts: dict[str, Any] = {"embedder": None, "clock": clock}
        opts["snapshot_every_events"] = snap_every if isinstance(snap_every, int) else None
        with Mnemos.open(path, **opts) as db:
            for op in script:
                _run_op(db, op)
                if snap_every == "manual":
                    db.checkpoint()
            digest = db.state_hash()
        with Mnemos.open(path, **opts) as db:
            assert db.state_hash() == digest
        hashes.append(digest)
    assert hashes[0] == hashes[1] == hashes[2]


def _run_op(db: Mnemos, op: tuple[Any, ...]) -> None:
    """Apply one scripted op; ops that do not apply to the current state are skipped."""
    name, *args = op
    ids = [f"n{i}" for i in range(6)]

    def live(mid: str) -> bool:
        try:
            db.get(mid)
        except MemoryNotFound:
            return False
        return True

    if name == "remember" and not live(ids[args[0]]):
        db.remember(f"text {args[0]}", id=ids[args[0]], vector=args[1])
    elif name == "update" and live(ids[args[0]]):
        db.update(ids[args[0]], text=args[1])
    elif name == "forget" and live(ids[args[0]]):
        db.forget(ids[args[0]])
    elif name == "connect" and args[0] != args[1] and live(ids[args[0]]) and live(ids[args[1]]):
        db.connect(ids[args[0]], ids[args[1]])
