"""Capacity rules: the engine evicts exactly what a plain model of the documented policies
evicts, the evictions are events (a replay and a reopen give the same state), and bad
input changes nothing."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnemos import InvalidInputError, MemoryNotFound, Mnemos, ReadOnlyError


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


class Model:
    """The policies as README "Capacity" states them, by brute force."""

    def __init__(self) -> None:
        self.live: dict[str, dict] = {}  # id -> {ns, imp, ts, used}
        self.rules: dict[str | None, tuple[int, str]] = {}
        self.evicted: list[str] = []
        self.seq = 1  # the init event

    def _rank(self, mid: str, policy: str) -> tuple:
        m = self.live[mid]
        if policy == "importance-then-age":
            return (m["imp"], m["ts"], mid)
        return (m["used"], mid)

    def _enforce(self, rules: dict[str | None, tuple[int, str]]) -> list[str]:
        out = []
        for ns, (limit, policy) in sorted(rules.items(), key=lambda r: (r[0] is None, r[0] or "")):
            scope = [mid for mid, m in self.live.items() if ns is None or m["ns"] == ns]
            excess = len(scope) - limit
            for mid in sorted(scope, key=lambda mid: self._rank(mid, policy))[: max(excess, 0)]:
                del self.live[mid]
                out.append(mid)
        self.seq += len(out)
        self.evicted += out
        return out

    def remember(self, items: list[tuple[str, str, float, int]]) -> None:
        for mid, ns, imp, ts in items:
            self.seq += 1
            self.live[mid] = {"ns": ns, "imp": imp, "ts": ts, "used": self.seq}
        self._enforce(self.rules)

    def update(self, mid: str, imp: float) -> None:
        self.seq += 1
        self.live[mid].update(imp=imp, used=self.seq)

    def forget(self, mid: str) -> None:
        self.seq += 1
        del self.live[mid]

    def recall(self, mids: list[str]) -> None:
        self.seq += 1
        for mid in mids:
            self.live[mid]["used"] = self.seq

    def set_capacity(self, ns: str | None, limit: int | None, policy: str) -> list[str]:
        self.seq += 1
        if limit is None:
            self.rules.pop(ns, None)
            return []
        self.rules[ns] = (limit, policy)
        return self._enforce({ns: (limit, policy)})


NAMESPACES = ("a", "b", "c")
POLICIES = ("importance-then-age", "least-recently-recalled")
step = st.one_of(
    st.tuples(
        st.just("remember"),
        st.lists(
            st.tuples(
                st.sampled_from(NAMESPACES),
                st.sampled_from([i / 10 for i in range(11)]),  # ties, and distinct values
                st.integers(0, 4),  # timestamps collide often: the id decides
            ),
            min_size=1,
            max_size=4,
        ),
    ),
    st.tuples(st.just("update"), st.integers(0, 10**6), st.sampled_from([0.0, 0.5, 1.0])),
    st.tuples(st.just("forget"), st.integers(0, 10**6)),
    st.tuples(st.just("recall"), st.lists(st.integers(0, 10**6), min_size=1, max_size=3)),
    st.tuples(
        st.just("capacity"),
        st.sampled_from([None, *NAMESPACES]),
        st.one_of(st.none(), st.integers(0, 8)),
        st.sampled_from(POLICIES),
    ),
)


def run(db: Mnemos, model: Model, steps: list) -> None:
    for n, op in enumerate(steps):
        live = sorted(model.live)
        if op[0] == "remember":
            items = [
                {"text": f"{n}.{j}", "vector": vec(n * 10 + j), "namespace": ns}
                | {"importance": imp, "timestamp": ts}
                for j, (ns, imp, ts) in enumerate(op[1])
            ]
            ids = db.remember_many(items)
            model.remember(
                [(mid, ns, imp, ts) for mid, (ns, imp, ts) in zip(ids, op[1], strict=True)]
            )
        elif op[0] == "update" and live:
            mid = live[op[1] % len(live)]
            db.update(mid, importance=op[2])
            model.update(mid, op[2])
        elif op[0] == "forget" and live:
            mid = live[op[1] % len(live)]
            db.forget(mid)
            model.forget(mid)
        elif op[0] == "recall" and live:
            mids = list(dict.fromkeys(live[i % len(live)] for i in op[1]))
            db.mark_recalled(mids)
            model.recall(mids)
        elif op[0] == "capacity":
            _, ns, limit, policy = op
            assert db.set_capacity(limit, namespace=ns, policy=policy) == model.set_capacity(
                ns, limit, policy
            )
        assert db.seq == model.seq
    live_ids = {mid for mid in db._state.rows if db._state.live_row(mid) is not None}
    assert live_ids == set(model.live)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(step, max_size=25))
def test_evictions_match_the_model_and_survive_reopen_and_replay(tmp_path_factory, steps):
    path = tmp_path_factory.mktemp("cap") / "db.mem"
    model = Model()
    with Mnemos.open(path, embedder=None, dim=8, clock=lambda: 1.7e9) as db:
        run(db, model, steps)
        digest = db.state_hash()
        assert db.stats()["evicted"] == len(model.evicted)
        for mid in model.evicted:
            assert db.history(mid)[-1].op == "evict"
        db.export_replay(path.parent / "run.log")
        if steps:
            db.checkpoint()
    with Mnemos.open(path, embedder=None) as db:
        assert db.state_hash() == digest
    report = Mnemos.replay(path.parent / "run.log")
    assert report.ok and report.state_hash == digest


def test_a_new_memory_that_ranks_lowest_is_the_one_evicted(tmp_path: Path):
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        keep = [db.remember(f"k{i}", vector=vec(i), importance=0.9) for i in range(3)]
        db.set_capacity(3)
        low = db.remember("unimportant", vector=vec(9), importance=0.1)
        with pytest.raises(MemoryNotFound):
            db.get(low)
        assert [v.op for v in db.history(low)] == ["remember", "evict"]
        assert sorted(m.id for m in (db.get(k) for k in keep)) == sorted(keep)


def test_rules_per_namespace_and_overall_and_namespace_views(tmp_path: Path):
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        a = db.namespace("a")
        a.set_capacity(2, policy="least-recently-recalled")
        first = [a.remember(f"a{i}", vector=vec(i)) for i in range(2)]
        a.mark_recalled([first[0]])
        third = a.remember("a2", vector=vec(2))  # evicts first[1]: least recently used
        assert {first[0], third} == {h.id for h in a.ask(vector=vec(0), top_k=5)}
        assert a.stats()["capacity"] == (2, "least-recently-recalled")
        db.set_capacity(3)  # overall: "a" holds 2 already
        other = [
            db.remember(f"d{i}", vector=vec(10 + i), importance=0.2 + i / 10) for i in range(2)
        ]
        assert db.stats()["memories"] == 3
        assert db.history(other[0])[-1].op == "evict"  # the least important
        with pytest.raises(MemoryNotFound):
            a.mark_recalled([other[1]])  # not in the view's namespace
        assert db.set_capacity(None) == []
        db.remember("free", vector=vec(30))
        assert db.stats()["memories"] == 4


def test_ask_can_mark_its_hits_recalled(tmp_path: Path):
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        ids = [db.remember(f"m{i}", vector=vec(i)) for i in range(4)]
        db.set_capacity(4, policy="least-recently-recalled")
        before = db.seq
        hits = db.ask(vector=vec(0), top_k=1, mark_recalled=True)
        assert [h.id for h in hits] == [ids[0]] and db.seq == before + 1
        db.ask(vector=vec(1), top_k=1)  # a plain ask logs nothing
        assert db.seq == before + 1
        db.remember("new", vector=vec(20))
        with pytest.raises(MemoryNotFound):
            db.get(ids[1])  # the oldest use: ids[0] was recalled after it
        db.get(ids[0])


def test_format_2_only_once_used(tmp_path: Path):
    """A database moves to format 2 at its first capacity rule or recall, not before:
    version-1 readers keep reading databases that never use them."""
    path = tmp_path / "db.mem"

    def version() -> int:
        return struct.unpack_from("<I", (path / "MNEMOS").read_bytes(), 8)[0]

    with Mnemos.open(path, embedder=None, dim=8) as db:
        mid = db.remember("x", vector=vec(1))
        db.checkpoint()
        assert version() == 1 and db.stats()["format_version"] == 1
        with pytest.raises(InvalidInputError):
            db.set_capacity(-1)
        assert version() == 1
        db.mark_recalled([mid])
        assert version() == 2 and db.stats()["format_version"] == 2
    with Mnemos.open(path, embedder=None) as db:
        assert db.stats()["format_version"] == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda db: db.set_capacity(-1), "an int from 0 to"),
        (lambda db: db.set_capacity(2.5), "an int from 0 to"),
        (lambda db: db.set_capacity(True), "an int from 0 to"),
        (lambda db: db.set_capacity(10**30), "an int from 0 to"),
        (lambda db: db.set_capacity(3, policy="random"), "policy must be one of"),
        (lambda db: db.set_capacity(3, namespace=""), "namespace"),
        (lambda db: db.mark_recalled("m2"), "list of ids"),
        (lambda db: db.mark_recalled([{"k": 1}]), "memory id must be a non-empty str"),
        (lambda db: db.mark_recalled(7), "list of ids"),
        (lambda db: db.mark_recalled(["m2", "nope"]), "nope"),
        (lambda db: db.ask(vector=vec(1), mark_recalled="yes"), "True or False"),
    ],
)
def test_bad_input_changes_nothing(tmp_path: Path, call, message):
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        db.remember("x", vector=vec(1))
        digest, seq = db.state_hash(), db.seq
        header = (tmp_path / "db.mem" / "MNEMOS").read_bytes()
        with pytest.raises((InvalidInputError, MemoryNotFound), match=message):
            call(db)
        assert (db.state_hash(), db.seq) == (digest, seq)
        assert (tmp_path / "db.mem" / "MNEMOS").read_bytes() == header  # still version 1


def test_readonly_handles_cannot_mark_recalls(tmp_path: Path):
    path = tmp_path / "db.mem"
    with Mnemos.open(path, embedder=None, dim=8) as db:
        mid = db.remember("x", vector=vec(1))
    with Mnemos.open(path, embedder=None, readonly=True) as ro:
        with pytest.raises(ReadOnlyError):
            ro.mark_recalled([mid])
        with pytest.raises(ReadOnlyError):
            ro.ask(vector=vec(1), mark_recalled=True)
        with pytest.raises(ReadOnlyError):
            ro.set_capacity(1)


def test_a_replay_into_a_new_database_takes_on_format_2(tmp_path: Path):
    """The replayed database starts as version 1 (its init event) and moves to 2 at the
    first capacity event it appends, as the original did."""
    src = tmp_path / "src.mem"
    with Mnemos.open(src, embedder=None, dim=8) as db:
        db.remember_many([{"text": f"m{i}", "vector": vec(i)} for i in range(4)])
        db.set_capacity(2)
        db.export_replay(tmp_path / "run.log")
        expected = db.state_hash()
    report = Mnemos.replay(tmp_path / "run.log", into=tmp_path / "into.mem")
    assert report.ok and report.state_hash == expected
    header = (tmp_path / "into.mem" / "MNEMOS").read_bytes()
    assert struct.unpack_from("<I", header, 8)[0] == 2
    with Mnemos.open(tmp_path / "into.mem", embedder=None) as db:
        assert db.state_hash() == expected and db.stats()["evicted"] == 2


@pytest.mark.parametrize("lower_by", [1, 2, 3, 8, 9, 20])
@pytest.mark.parametrize("policy", ["importance-then-age", "least-recently-recalled"])
def test_lowering_a_bound_evicts_exactly_the_lowest_ranked(tmp_path: Path, lower_by, policy):
    """Distinct keys, so the order is total: a bound lowered by k evicts exactly the k
    first in policy order (both ways of finding them: k up to 8, and beyond)."""
    rng = np.random.default_rng(lower_by)
    importance = rng.permutation(40) / 40
    with Mnemos.open(tmp_path / "db.mem", embedder=None, dim=8) as db:
        ids = [
            db.remember(f"m{i}", vector=vec(i), importance=float(imp), timestamp=1e9 + i)
            for i, imp in enumerate(importance)
        ]
        order = sorted(range(40), key=lambda i: importance[i])
        if policy == "least-recently-recalled":
            recalled = rng.permutation(40).tolist()
            for i in recalled:
                db.mark_recalled([ids[i]])
            order = recalled
        evicted = db.set_capacity(40 - lower_by, policy=policy)
        assert evicted == [ids[i] for i in order[:lower_by]]


def test_a_transaction_that_forgets_and_remembers_is_counted_once(tmp_path: Path):
    """Re-ingesting a changed document forgets its stale chunks and remembers new ones in
    one transaction: at a bound, only the net growth evicts, and never a memory the same
    transaction forgets."""
    from test_api import HashEmbedder

    paragraphs = [f"Section {i}. " + " ".join(f"word{i}x{j}" for j in range(40)) for i in range(6)]
    with Mnemos.open(tmp_path / "db.mem", embedder=HashEmbedder(dim=16)) as db:
        db.remember("unrelated and unimportant", importance=0.0)
        first = db.ingest_document("\n\n".join(paragraphs), chunk_size=64, overlap=0, doc_id="d")
        live = db.stats()["memories"]
        db.set_capacity(live)
        paragraphs[2] = "Section 2. rewritten " + " ".join(f"new{j}" for j in range(120))
        second = db.ingest_document("\n\n".join(paragraphs), chunk_size=64, overlap=0, doc_id="d")
        assert second.removed and second.added  # the rewrite replaced chunks
        grown = len(second.added) - len(second.removed)
        assert grown > 0  # longer: the bound must evict exactly the growth
        assert len(second.chunks) == len(first.chunks) + grown
        assert (db.stats()["memories"], db.stats()["evicted"]) == (
            min(live, live + grown),
            max(grown, 0),
        ), grown
        for mid in second.removed:
            assert db.history(mid)[-1].op == "forget"
        digest = db.state_hash()
    with Mnemos.open(tmp_path / "db.mem", embedder=HashEmbedder(dim=16)) as db:
        assert db.state_hash() == digest
