"""The ANN index agrees with the exact search and is deterministic to the byte.

Guards: recall@10 >= 0.95 against ``VectorIndex.search`` on clustered 384-d data; the same
inserts and deletes give the same ``to_bytes()`` and results however they are batched or
threaded; deleted rows never come back and masks are honoured; bytes round-trip and damaged
bytes are refused; and, against a dict model, random insert/delete sequences never return a
deleted row while every live row is found with ``k = n``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mnemos import MnemosError, _native
from mnemos.errors import InvalidInputError
from mnemos.index import ann
from mnemos.index.ann import AnnIndex
from mnemos.index.vector import VectorIndex

needs_core = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not in use")

DIM = 384
ROWS = 20_000
CLUSTERS = 64


def clustered(seed: int, count: int, dim: int = DIM) -> np.ndarray:
    """Rows near one of CLUSTERS centroids (the startup_bench distribution)."""
    centroids = np.random.default_rng([7, dim]).standard_normal((CLUSTERS, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, CLUSTERS, count)
    noise = rng.standard_normal((count, dim), dtype=np.float32)
    return np.ascontiguousarray(centroids[which] + np.float32(0.5) * noise)


def build(vectors: np.ndarray, **params: int) -> AnnIndex:
    index = AnnIndex(vectors.shape[1], **params)
    rows = np.arange(len(vectors))
    index.insert_many(rows, vectors, [int(r) + 1 for r in rows])
    return index


def exact_index(vectors: np.ndarray) -> VectorIndex:
    exact = VectorIndex(vectors.shape[1], capacity=len(vectors))
    for v in vectors:
        exact.append(v, 0, 0)
    return exact


@pytest.fixture(scope="module")
def corpus() -> tuple[np.ndarray, AnnIndex, VectorIndex]:
    vectors = clustered(1, ROWS)
    return vectors, build(vectors), exact_index(vectors)


def copy(index: AnnIndex) -> AnnIndex:
    return AnnIndex.from_bytes(index.to_bytes())


@needs_core
def test_recall_at_10_against_the_exact_search(corpus):
    _vectors, index, exact = corpus
    queries = clustered(2, 200)
    found = index.search(queries, 10)
    truth = exact.search(queries, 10, np.ones(ROWS, dtype=bool))
    overlap = [{r for r, _ in f} & {r for r, _ in t} for f, t in zip(found, truth, strict=True)]
    recall = np.mean([len(common) / 10 for common in overlap])
    assert recall >= 0.95, f"recall@10 {recall:.3f} at ef={index.ef_search}"
    for query, hits in zip(queries, found, strict=True):
        rows = np.array([r for r, _ in hits])
        scores = np.array([s for _, s in hits])
        assert len(hits) == 10 and np.all(np.diff(scores) <= 0), "best first"
        assert np.all(np.abs(scores - exact.scores(query, rows)) < 1e-5)


@needs_core
def test_batches_and_threads_do_not_change_anything():
    vectors = clustered(3, 1500, dim=32)
    keys = list(range(len(vectors)))

    def script(cuts: list[int]) -> AnnIndex:
        index = AnnIndex(32, m=8, ef_construction=64)
        for lo, hi in [(0, 800), (800, 1500)]:
            bounds = [lo, *[c for c in cuts if lo < c < hi], hi]
            for a, b in itertools.pairwise(bounds):
                if b == a + 1:
                    index.insert(a, vectors[a], keys[a])
                else:
                    index.insert_many(range(a, b), vectors[a:b], keys[a:b])
            for r in range(lo, hi, 3):
                index.delete(r)
        index.insert(3, vectors[4], 12345)
        return index

    reference = script([])
    data = reference.to_bytes()
    queries = clustered(4, 40, dim=32)
    results = reference.search(queries, 10, threads=1)
    for cuts in ([1, 2, 3, 4], [100, 799, 801, 1499], list(range(0, 1500, 7))):
        other = script(cuts)
        assert other.to_bytes() == data
        for threads in (0, 1, 2, 5):
            assert other.search(queries, 10, threads=threads) == results
    assert [reference.search(q, 10)[0] for q in queries] == results


@needs_core
def test_deleted_rows_are_never_returned(corpus):
    _vectors, index, _exact = corpus
    index = copy(index)
    queries = clustered(5, 50)
    before = index.search(queries, 10)
    gone = {r for hits in before for r, _ in hits[:5]}
    for r in sorted(gone):
        index.delete(r)
    assert (len(index), index.deleted) == (ROWS - len(gone), len(gone))
    after = index.search(queries, 10)
    assert all(len(hits) == 10 and not gone & {r for r, _ in hits} for hits in after)
    with pytest.raises(InvalidInputError, match="no live entry"):
        index.delete(min(gone))


@needs_core
def test_masks_are_respected(corpus):
    _vectors, index, exact = corpus
    queries = clustered(6, 30)
    rng = np.random.default_rng(0)
    for share in (0.5, 0.02):
        mask = rng.random(ROWS) < share
        for hits in index.search(queries, 10, mask=mask):
            assert len(hits) == 10 and all(mask[r] for r, _ in hits)
    # So selective that the graph search runs dry: the scan after it makes the result exact.
    mask = np.zeros(ROWS, dtype=bool)
    mask[rng.choice(ROWS, 7, replace=False)] = True
    found = index.search(queries, 10, mask=mask)
    truth = exact.search(queries, 10, mask)
    assert [[r for r, _ in f] for f in found] == [[r for r, _ in t] for t in truth]
    # A short mask: rows past its end are not allowed.
    assert all(
        r < 100 for hits in index.search(queries, 10, mask=np.ones(100, bool)) for r, _ in hits
    )


@needs_core
def test_renumber_follows_compaction():
    vectors = clustered(9, 600, dim=16)
    index = build(vectors, m=8, ef_construction=32)
    for r in range(0, 600, 3):
        index.delete(r)
    kept = [r for r in range(600) if r % 3]
    queries = clustered(10, 20, dim=16)
    before = index.search(queries, 10)
    index.renumber(np.array(kept))
    after = index.search(queries, 10)
    assert after == [[(kept.index(r), s) for r, s in hits] for hits in before]
    with pytest.raises(InvalidInputError, match="not among the kept rows"):
        index.renumber(range(10))


@needs_core
def test_bytes_round_trip_to_the_same_results(corpus):
    _vectors, index, _exact = corpus
    data = index.to_bytes()
    loaded = AnnIndex.from_bytes(data)
    assert loaded.to_bytes() == data
    assert (len(loaded), loaded.m, loaded.ef_construction, loaded.ef_search) == (
        ROWS,
        16,
        200,
        ann.DEFAULT_EF_SEARCH,
    )
    queries = clustered(7, 20)
    assert loaded.search(queries, 10) == index.search(queries, 10)
    assert AnnIndex.from_bytes(memoryview(bytearray(data))).to_bytes() == data
    out = bytearray(index.serialized_len() + 8)
    index.write_into(memoryview(out)[4:-4])
    assert out[4:-4] == data and out[:4] == out[-4:] == bytes(4)
    with pytest.raises(InvalidInputError, match="buffer has"):
        index.write_into(bytearray(10))
    with pytest.raises(InvalidInputError, match="writable"):
        index.write_into(memoryview(data))


@needs_core
def test_damaged_bytes_raise_value_error():
    index = build(clustered(8, 300, dim=8), m=4, ef_construction=16)
    index.delete(5)
    data = index.to_bytes()
    rng = np.random.default_rng(1)
    for bit in [*range(0, 64 * 8, 5), *rng.integers(0, len(data) * 8, 400).tolist()]:
        damaged = bytearray(data)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ValueError, match="damaged ANN index at byte"):
            AnnIndex.from_bytes(bytes(damaged))
    for cut in [0, 1, 63, 64, 67, len(data) // 2, len(data) - 1]:
        with pytest.raises(ValueError, match="damaged ANN index"):
            AnnIndex.from_bytes(data[:cut])
    with pytest.raises(ValueError):
        AnnIndex.from_bytes(data + b"\0")


@needs_core
def test_bad_input_raises_invalid_input_error():
    index = AnnIndex(4)
    index.insert(0, [1, 0, 0, 0], 1)
    for bad in (
        lambda: index.insert(0, [0, 1, 0, 0], 2),  # row already live
        lambda: index.insert(1, [1, 0, 0], 2),  # wrong dimension
        lambda: index.insert(1, [np.nan, 0, 0, 0], 2),
        lambda: index.insert(1, [0, 0, 0, 0], 2),  # no direction
        lambda: index.insert(-1, [1, 0, 0, 0], 2),
        lambda: index.insert(True, [1, 0, 0, 0], 2),
        lambda: index.insert(1, [1, 0, 0, 0], 2**64),
        lambda: index.insert_many([1, 2], np.ones((1, 4)), [1, 2]),
        lambda: index.delete(7),
        lambda: index.search(np.ones((2, 3)), 1),
        lambda: index.search(np.ones((1, 1, 4)), 1),
        lambda: index.search(np.zeros(4), 1),
        lambda: index.search(np.ones(4), 10**6),
        lambda: index.search(np.ones(4), 1, ef=0),
        lambda: AnnIndex(4, m=1),
        lambda: AnnIndex(0),
    ):
        with pytest.raises(InvalidInputError):
            bad()
    assert (len(index), index.nodes) == (1, 1)
    index.insert_many([1, 2], np.eye(4, dtype=np.float64)[1:3], [5, 6])  # converted, in order
    assert index.search(np.eye(4)[2], 1) == [[(2, 1.0)]]
    assert 2 in index and 3 not in index and "2" not in index


def test_without_the_extension_the_error_is_clear(monkeypatch):
    monkeypatch.setattr(_native, "_core", None)
    assert not ann.available()
    with pytest.raises(MnemosError, match="exact search"):
        AnnIndex(4)


# -- against a model ---------------------------------------------------------------------

vectors_4d = st.lists(st.integers(-3, 3), min_size=4, max_size=4).filter(any)


class AnnModel(RuleBasedStateMachine):
    """Random inserts, deletes, re-inserts and reloads; the model is a dict row -> vector.
    Small m so that pruning (one-way links) happens within a few dozen rows."""

    def __init__(self) -> None:
        super().__init__()
        self.index = AnnIndex(4, m=2, ef_construction=4, ef_search=4)
        self.live: dict[int, np.ndarray] = {}
        self.dead: set[int] = set()

    @rule(row=st.integers(0, 60), vector=vectors_4d, key=st.integers(0, 2**64 - 1))
    def insert(self, row, vector, key):
        if row in self.live:
            with pytest.raises(InvalidInputError):
                self.index.insert(row, vector, key)
            return
        self.index.insert(row, vector, key)
        self.live[row] = np.asarray(vector, dtype=np.float32)
        self.dead.discard(row)

    @rule(rows=st.lists(st.integers(61, 120), min_size=1, max_size=6, unique=True), data=st.data())
    def insert_many(self, rows, data):
        fresh = [r for r in rows if r not in self.live]
        vecs = [data.draw(vectors_4d) for _ in fresh]
        keys = [data.draw(st.integers(0, 2**64 - 1)) for _ in fresh]
        self.index.insert_many(fresh, np.array(vecs, dtype=np.float32).reshape(-1, 4), keys)
        for r, v in zip(fresh, vecs, strict=True):
            self.live[r] = np.asarray(v, dtype=np.float32)
            self.dead.discard(r)

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def delete(self, data):
        row = data.draw(st.sampled_from(sorted(self.live)))
        self.index.delete(row)
        del self.live[row]
        self.dead.add(row)

    @rule()
    def reload(self):
        data = self.index.to_bytes()
        self.index = AnnIndex.from_bytes(data)
        assert self.index.to_bytes() == data

    @invariant()
    def counts_match(self):
        assert len(self.index) == len(self.live)
        assert all(r in self.index for r in self.live)
        assert not any(r in self.index for r in self.dead)

    @invariant()
    def every_live_row_and_no_deleted_row_is_found(self):
        if not self.live:
            return
        n = self.index.nodes
        for query in ([1, 0, 0, 0], [-1, 2, 0.5, 1]):
            hits = self.index.search(np.array(query, np.float32), n, ef=n)[0]
            assert sorted(r for r, _ in hits) == sorted(self.live)
            if len(self.live) >= 2:  # a graph walk (more live rows than ef), maybe exhausted
                some = self.index.search(np.array(query, np.float32), len(self.live) - 1)[0]
                assert len(some) == len(self.live) - 1 and {r for r, _ in some} <= set(self.live)
            top = self.index.search(np.array(query, np.float32), 3)[0]
            assert len(top) == min(3, len(self.live))
            assert not {r for r, _ in top} & self.dead


AnnModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestAnnModel = needs_core(AnnModel.TestCase)
