"""Hybrid retrieval: every signal finds what it should, the fusion is the documented
formula, and the same state gives the same list live, after reopen and after replay.

Exact vector search is checked against a brute-force numpy ranking, ``where`` against a
plain Python evaluator (hypothesis), and the lexical index against one built from
scratch after random edits, to the bit.
"""

from __future__ import annotations

import itertools
import math
import shutil
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, FixedClock, vec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnemos import InvalidInputError, Mnemos
from mnemos import retrieval as R
from mnemos.filters import compile_where
from mnemos.index.lexical import LexicalIndex, tokenize

UTC = timezone.utc
DAY = 86400.0


def open_db(path: Path, **kwargs: Any) -> Mnemos:
    kwargs.setdefault("embedder", None)
    kwargs.setdefault("clock", FixedClock(T0, step=1.0))
    return Mnemos.open(path, **kwargs)


def unit(v: np.ndarray) -> np.ndarray:
    w = v.astype(np.float64)
    return w / np.linalg.norm(w)


# -- the tokenizer -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("We chose Stripe.", ["we", "chose", "stripe"]),
        ("Order ORD-48213 failed", ["order", "ord-48213", "ord", "48213", "failed"]),
        ("see parse_invoice_lines()", ["see", "parse_invoice_lines", "parse", "invoice", "lines"]),
        (
            "mail ops@northwind.example",
            ["mail", "ops@northwind.example", "ops", "northwind", "example"],
        ),
        ("$1,299.00 for v2.3.1", ["1,299.00", "299", "00", "for", "v2.3.1", "v2"]),
        ("Straße \uff21\uff22\uff23 Café", ["strasse", "abc", "café"]),
        ("我们选择", ["我", "们", "选", "择"]),
        ("E1043: disk full", ["e1043", "disk", "full"]),
        ("", []),
    ],
)
def test_tokenizer_keeps_identifiers_whole_and_adds_their_parts(text: str, terms: list[str]):
    assert tokenize(text) == terms


def test_tokenizer_cuts_long_terms():
    assert tokenize("x" * 500) == ["x" * 64]


# -- exact vector search ---------------------------------------------------------------------


def brute_force(vectors: np.ndarray, ids: list[str], query: np.ndarray, k: int) -> list[str]:
    cos = (vectors.astype(np.float64) @ unit(query)) / np.linalg.norm(
        vectors.astype(np.float64), axis=1
    )
    return [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-cos[i], ids[i]))[:k]]


@pytest.mark.parametrize("seed", range(4))
def test_exact_search_equals_brute_force(db_path: Path, seed: int):
    rng = np.random.default_rng(seed)
    n, dim = 700, 16
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    vectors[rng.integers(0, n, 40)] = vectors[0]  # exact ties, broken by id
    namespaces = [f"ns{i % 10}" for i in range(n)]
    with open_db(db_path) as db:
        ids = db.remember_many(
            [{"text": f"m {i}", "vector": vectors[i], "namespace": namespaces[i]} for i in range(n)]
        )
        for q in [vectors[0], *rng.standard_normal((5, dim)).astype(np.float32)]:
            for k in (1, 10, 60):
                assert [h.id for h in db.ask(vector=q, top_k=k)] == brute_force(vectors, ids, q, k)
            # One namespace of ten: the gathered path, same answer as a filtered scan.
            sel = [i for i in range(n) if namespaces[i] == "ns3"]
            expected = brute_force(vectors[sel], [ids[i] for i in sel], q, 10)
            assert [h.id for h in db.ask(vector=q, top_k=10, namespace="ns3")] == expected
            sel = [i for i in range(n) if namespaces[i] != "ns3"]
            expected = brute_force(vectors[sel], [ids[i] for i in sel], q, 10)
            others = [f"ns{i}" for i in range(10) if i != 3]
            assert [h.id for h in db.ask(vector=q, top_k=10, namespace=others)] == expected


def test_vector_score_is_the_cosine_at_default_preferences(db_path: Path):
    with open_db(db_path) as db:
        db.remember("a", id="a", vector=vec(1))
        (hit,) = db.ask(vector=vec(2), top_k=1)
        assert hit.score == pytest.approx(float(unit(vec(1)) @ unit(vec(2))), abs=1e-12)


# -- lexical ------------------------------------------------------------------------------


def test_lexical_finds_an_exact_token_the_vector_misses(db_path: Path):
    """The memory with the order number has a vector far from the query's; BM25 still
    ranks it first, and so does hybrid when the vector has no strong match."""
    with open_db(db_path) as db:
        query = vec(100, dim=64)
        db.remember("refund issued for order ORD-48213", id="order", vector=-query)
        db.remember("the invoice parser is parse_invoice_lines", id="fn", vector=vec(5, dim=64))
        for i in range(30):
            noise = query + 0.01 * vec(i, dim=64)
            db.remember(f"order status update number {i}", id=f"noise{i:02}", vector=noise)
        assert "order" not in [h.id for h in db.ask(vector=query, top_k=10)]
        assert db.ask("what happened to ORD-48213?", top_k=1)[0].id == "order"
        assert db.ask("parse_invoice_lines", top_k=1)[0].id == "fn"
        assert db.ask("invoice parser", top_k=1)[0].id == "fn"
        for fusion in R.FUSIONS:
            hits = db.ask("ORD-48213", vector=vec(999, dim=64), top_k=3, fusion=fusion)
            assert hits[0].id == "order"


def bm25_reference(docs: dict[str, str], query: str) -> dict[str, float]:
    """BM25 written out plainly from FORMAT.md "Lexical scoring"."""
    terms = {mid: tokenize(text) for mid, text in docs.items()}
    n = len(docs)
    avgdl = sum(map(len, terms.values())) / n
    scores: dict[str, float] = {}
    for term in dict.fromkeys(tokenize(query)):
        df = sum(1 for t in terms.values() if term in t)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for mid, t in terms.items():
            tf = t.count(term)
            if tf:
                part = idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * len(t) / avgdl))
                scores[mid] = scores.get(mid, 0.0) + part
    return scores


def test_lexical_scores_are_bm25(db_path: Path):
    docs = {
        "a": "the payment provider is Adyen",
        "b": "Adyen Adyen Adyen everywhere",
        "c": "we moved the standup",
        "d": "",
        "e": "payment failed: E1043",
    }
    with open_db(db_path) as db:
        for i, (mid, text) in enumerate(docs.items()):
            db.remember(text, id=mid, vector=vec(i))
        for query in ("adyen payment", "E1043", "standup the"):
            expected = bm25_reference(docs, query)
            hits = db.ask(query, top_k=10)
            assert {h.id: h.score for h in hits} == pytest.approx(expected, rel=1e-12)
            assert [h.id for h in hits] == sorted(expected, key=lambda m: (-expected[m], m))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["add", "edit", "drop"]),
            st.integers(0, 11),
            st.lists(st.sampled_from(["ord-1", "tea", "adyen", "x_y", "go", "阿"]), max_size=6),
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_incremental_lexical_index_equals_one_built_from_scratch(ops, flush_midway):
    """Edits applied one by one (with or without a snapshot round trip and a compaction
    in between) score bit-identically to an index built from the final texts."""
    texts: list[str] = []
    live: list[bool] = []
    index = LexicalIndex()
    for step, (op, slot, words) in enumerate(ops):
        text = " ".join(words)
        if op == "add" or slot >= len(texts):
            texts.append(text)
            live.append(True)
            index.touch(len(texts) - 1)
        elif op == "edit" and live[slot]:
            texts[slot] = text
            index.touch(slot)
        elif op == "drop" and live[slot]:
            live[slot] = False
            index.touch(slot)
        if flush_midway and step == len(ops) // 2:
            index.flush(texts, live.__getitem__)
            section = b"".join(index.encode(len(texts), np.asarray(live)))
            decoded = LexicalIndex.decode(memoryview(section), len(texts))
            assert decoded is not None
            index = decoded
            kept = np.flatnonzero(live)
            index.remap(kept)
            texts = [texts[i] for i in kept]
            live = [True] * len(texts)
    index.flush(texts, live.__getitem__)
    fresh = LexicalIndex()
    fresh.touch_all(len(texts))
    fresh.flush(texts, live.__getitem__)
    for query in (["tea"], ["ord-1", "adyen"], ["go", "阿", "x_y", "y"], ["missing"]):
        rows_a, scores_a, full_a = index.score(query)
        rows_b, scores_b, full_b = fresh.score(query)
        assert full_a == full_b
        assert rows_a.tolist() == rows_b.tolist()
        assert scores_a.tobytes() == scores_b.tobytes()


# -- where -------------------------------------------------------------------------------

_MISSING = object()
KEYS = ("a", "b", "c")
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, -2.5]),
    st.sampled_from(["x", "y", "Y", ""]),
    st.lists(st.integers(0, 2), max_size=2),
)
metadata = st.dictionaries(st.sampled_from(KEYS), values, max_size=3)


def plain_eq(a: object, b: object) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def reference(where: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    """The documented semantics, written independently of mnemos.filters."""
    results = []
    for key, cond in where.items():
        if key == "$and":
            results.append(all(reference(w, meta) for w in cond))
        elif key == "$or":
            results.append(any(reference(w, meta) for w in cond))
        elif not isinstance(cond, dict):
            results.append(key in meta and plain_eq(meta[key], cond))
        else:
            results.extend(_holds(op, meta.get(key, _MISSING), arg) for op, arg in cond.items())
    return all(results)


def _holds(op: str, v: object, arg: Any) -> bool:
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    if op == "$eq":
        return v is not _MISSING and plain_eq(v, arg)
    if op == "$ne":
        return v is _MISSING or not plain_eq(v, arg)
    if op == "$in":
        return v is not _MISSING and any(plain_eq(v, x) for x in arg)
    if op == "$nin":
        return v is _MISSING or not any(plain_eq(v, x) for x in arg)
    if op == "$exists":
        return (v is not _MISSING) == arg
    compare = {
        "$gt": lambda p, q: p > q,
        "$gte": lambda p, q: p >= q,
        "$lt": lambda p, q: p < q,
        "$lte": lambda p, q: p <= q,
    }[op]
    return _cmp(v, arg, number, compare)


def _cmp(v: object, arg: object, number: bool, f: Any) -> bool:
    if isinstance(arg, str):
        return isinstance(v, str) and f(v, arg)
    return number and f(v, arg)


scalar = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 1.0]), st.sampled_from(["x", "y"]))
field_cond = st.one_of(
    values,
    st.dictionaries(st.sampled_from(["$eq", "$ne"]), values, min_size=1, max_size=2),
    st.dictionaries(
        st.sampled_from(["$in", "$nin"]), st.lists(values, max_size=3), min_size=1, max_size=2
    ),
    st.dictionaries(st.just("$exists"), st.booleans(), min_size=1),
    st.dictionaries(
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), scalar, min_size=1, max_size=3
    ),
)
field_filter = st.dictionaries(st.sampled_from(KEYS), field_cond, min_size=1, max_size=2)
where_filters = st.recursive(
    field_filter,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"$and": xs}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda xs: {"$or": xs}, st.lists(inner, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(where_filters, st.lists(metadata, min_size=1, max_size=12))
def test_where_matches_the_reference(where, metas):
    test = compile_where(where)
    assert [test(m) for m in metas] == [reference(where, m) for m in metas]


def test_where_filters_ask(db_path: Path):
    metas = [{"priority": i % 4, "team": ["core", "web"][i % 2]} for i in range(20)]
    metas[3] = {}
    with open_db(db_path) as db:
        ids = db.remember_many(
            [{"text": f"m{i}", "vector": vec(i), "metadata": m} for i, m in enumerate(metas)]
        )
        for where in (
            {"priority": 2},
            {"priority": {"$gte": 2}, "team": "web"},
            {"$or": [{"priority": {"$lt": 1}}, {"team": {"$in": ["web"]}}]},
            {"team": {"$exists": False}},
            {"priority": {"$ne": 2}},
        ):
            expected = {ids[i] for i, m in enumerate(metas) if reference(where, m)}
            assert {h.id for h in db.ask(vector=vec(99), top_k=20, where=where)} == expected


# -- graph, recency, time -------------------------------------------------------------------


def test_graph_expansion_surfaces_a_linked_memory(db_path: Path):
    """The reply shares no word with the question and its vector points away, but it
    is linked to the question turn that matches: use_graph brings it in."""
    q = vec(7)
    with open_db(db_path) as db:
        db.remember("which provider did we pick for card payments?", id="ask", vector=q)
        db.remember("Adyen, signed yesterday", id="reply", vector=-q)
        for i in range(12):
            db.remember(f"lunch chatter {i}", id=f"n{i:02}", vector=vec(200 + i))
        db.connect("reply", "ask", "reply_to")
        plain = [h.id for h in db.ask("provider for card payments", vector=q, top_k=5)]
        assert "reply" not in plain
        hits = db.ask("provider for card payments", vector=q, top_k=5, use_graph=True, explain=True)
        ranked = [h.id for h in hits]
        assert ranked[:2] == ["ask", "reply"]
        reply = hits[ranked.index("reply")]
        assert reply.components is not None
        top = hits[0].score - hits[0].components["graph"]  # type: ignore[index]
        assert reply.components["graph"] == pytest.approx(top * R.GRAPH_DECAY)
        # Lexical-only too, and a filter that excludes the linked memory wins.
        assert "reply" in [h.id for h in db.ask("provider card payments", use_graph=True)]
        assert "reply" not in [
            h.id
            for h in db.ask(
                "provider card payments",
                use_graph=True,
                where={"x": {"$exists": False}},
                since=T0 + 1e9,
            )
        ]


def test_recency_flips_the_order_of_two_otherwise_equal_hits(db_path: Path):
    clock = FixedClock(T0 + 30 * DAY)
    with open_db(db_path, clock=clock) as db:
        db.remember("the deploy day is Tuesday", id="a-old", vector=vec(1), timestamp=T0)
        db.remember("the deploy day is Tuesday", id="b-new", vector=vec(1), timestamp=T0 + 20 * DAY)
        for kw in ({"vector": vec(1)}, {"query": "deploy day"}):
            assert [h.id for h in db.ask(**kw, top_k=2)] == ["a-old", "b-new"]  # tie: by id
            for bias, half_life in (
                (True, R.RECENCY_HALF_LIFE_S),
                ("7d", 7 * DAY),
                ("36h", 1.5 * DAY),
                (7 * DAY, 7 * DAY),
                (timedelta(days=7), 7 * DAY),
            ):
                hits = db.ask(**kw, top_k=2, recency_bias=bias, explain=True)
                assert [h.id for h in hits] == ["b-new", "a-old"]
                age = 10 * DAY
                expected = 1 - R.RECENCY_WEIGHT + R.RECENCY_WEIGHT * 2 ** (-age / half_life)
                assert hits[0].components["recency"] == pytest.approx(expected)  # type: ignore[index]


def test_since_until_select_a_half_open_range(db_path: Path):
    clock = FixedClock(T0 + 200 * DAY)
    with open_db(db_path, clock=clock) as db:
        ids = db.remember_many(
            [{"text": f"day {i}", "vector": vec(i), "timestamp": T0 + i * DAY} for i in range(100)]
        )
        for lo, hi in ((10, 12), (0, 100), (50, None), (None, 3), (99, 5)):
            since = None if lo is None else T0 + lo * DAY
            until = None if hi is None else datetime.fromtimestamp(T0 + hi * DAY, UTC)
            got = {h.id for h in db.ask(vector=vec(0), top_k=100, since=since, until=until)}
            want = {
                ids[i] for i in range(100) if (lo is None or i >= lo) and (hi is None or i < hi)
            }
            assert got == want, (lo, hi)
        db.forget(ids[10])
        assert {h.id for h in db.ask(vector=vec(0), since=T0 + 10 * DAY, until=T0 + 12 * DAY)} == {
            ids[11]
        }
        # A timedelta counts back from the clock.
        recent = db.ask(vector=vec(0), top_k=100, since=timedelta(days=200 - 95))
        assert {h.id for h in recent} == {ids[i] for i in range(95, 100)}


def test_kind_weights_and_importance_reorder(db_path: Path):
    with open_db(db_path) as db:
        db.remember("same", id="a", vector=vec(1), kind="episodic")
        db.remember("same", id="b", vector=vec(1), kind="semantic")
        db.remember("same", id="c", vector=vec(1), importance=0.9)
        assert [h.id for h in db.ask(vector=vec(1), top_k=3)] == ["c", "a", "b"]
        hits = db.ask(vector=vec(1), top_k=3, kind_weights={"semantic": 2.0})
        assert [h.id for h in hits] == ["b", "c", "a"]
        assert [h.id for h in db.ask(vector=vec(1), kind=["semantic", "procedural"])] == ["b"]


# -- fusion and explain ----------------------------------------------------------------------


@pytest.mark.parametrize("fusion", R.FUSIONS)
def test_explain_adds_up_to_the_score(db_path: Path, fusion: str):
    with open_db(db_path, clock=FixedClock(T0 + 9 * DAY)) as db:
        ids = db.remember_many(
            [
                {
                    "text": f"note {i} about {'tea' if i % 3 else 'coffee'} and ORD-{i % 5}",
                    "vector": vec(i),
                    "importance": (i % 5) / 4,
                    "timestamp": T0 + i * 3600,
                }
                for i in range(40)
            ]
        )
        for a, b in itertools.pairwise(ids):
            db.connect(a, b, "next", 0.8)
        hits = db.ask(
            "tea ORD-3",
            vector=vec(3),
            top_k=8,
            fusion=fusion,
            use_graph=True,
            recency_bias="1d",
            explain=True,
        )
        assert len(hits) == 8
        for h in hits:
            c = h.components
            assert c is not None and c["score"] == h.score
            assert c["fused"] == pytest.approx(c["vector_fused"] + c["lexical_fused"])
            if fusion == "rrf":
                for s in ("vector", "lexical"):
                    expected = 1 / (R.RRF_K + c[f"{s}_rank"]) if c[f"{s}_rank"] else 0.0
                    assert c[f"{s}_fused"] == pytest.approx(expected)
            factor = c["importance"] * c["kind"] * c["recency"]
            base = c["fused"] * factor if c["fused"] >= 0 else c["fused"] / factor
            assert h.score == pytest.approx(base + c["graph"])
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_ask_many_equals_a_loop_of_ask(db_path: Path):
    rng = np.random.default_rng(3)
    with open_db(db_path) as db:
        db.remember_many(
            [
                {
                    "text": f"memo {i} tea {i % 7} ORD-{i % 13}",
                    "vector": rng.standard_normal(8),
                    "namespace": f"n{i % 3}",
                }
                for i in range(300)
            ]
        )
        texts = [f"tea ORD-{i}" for i in range(70)]  # more than one block of queries
        vectors = rng.standard_normal((70, 8)).astype(np.float32)
        for kw in ({}, {"namespace": "n1"}, {"use_graph": True, "top_k": 7}):
            batch = db.ask_many(texts, vectors=vectors, **kw)
            assert batch == [db.ask(t, vector=v, **kw) for t, v in zip(texts, vectors, strict=True)]
            assert db.ask_many(vectors=vectors, **kw) == [db.ask(vector=v, **kw) for v in vectors]
            assert db.ask_many(texts, **kw) == [db.ask(t, **kw) for t in texts]
        assert db.namespace("n2").ask_many(texts[:3]) == [
            db.ask(t, namespace="n2") for t in texts[:3]
        ]


# -- state changes, reopen, replay -----------------------------------------------------------


def answers(db: Mnemos) -> list[list[tuple[str, float]]]:
    asks = [
        {"query": "tea ORD-4"},
        {"vector": vec(5)},
        {"query": "coffee", "vector": vec(8), "use_graph": True},
        {"query": "tea", "where": {"n": {"$gte": 10}}, "since": T0 + 5},
        {"query": "green", "namespace": ["n0", "n2"], "recency_bias": "1h"},
    ]
    return [[(h.id, h.score) for h in db.ask(**kw, top_k=10)] for kw in asks]


def build(db: Mnemos) -> None:
    ids = db.remember_many(
        [
            {
                "text": f"{'green tea' if i % 2 else 'coffee'} note {i} ORD-{i % 9}",
                "vector": vec(i),
                "metadata": {"n": i},
                "namespace": f"n{i % 3}",
                "timestamp": T0 + i,
            }
            for i in range(60)
        ]
    )
    for i in range(0, 50, 5):
        db.connect(ids[i], ids[i + 1], "next")
    db.update(ids[4], text="now about espresso only")
    db.forget(ids[9])
    db.update(ids[12], metadata={"n": -1})


def test_results_identical_live_after_reopen_and_after_replay(tmp_path: Path):
    path = tmp_path / "a.mem"
    clock = FixedClock(T0 + 100, step=0)
    with open_db(path, clock=clock) as db:
        build(db)
        live = answers(db)
        db.checkpoint()  # the snapshot stores the lexical index
        db.remember("green tea after the snapshot", vector=vec(77), timestamp=T0 + 3)
        live2 = answers(db)
        assert live2 != live
    with open_db(path, clock=clock) as db:  # snapshot + log tail
        assert answers(db) == live2
    replay = tmp_path / "b.mem"
    shutil.copytree(path, replay)
    shutil.rmtree(replay / "snapshots")
    (replay / "snapshots").mkdir()
    with open_db(replay, clock=clock) as db:  # the whole log, no snapshot
        assert answers(db) == live2
    with open_db(path, clock=clock) as db:
        db.compact()
    with open_db(path, clock=clock) as db:  # compacted: rows renumbered, same answers
        assert answers(db) == live2


def test_forget_and_update_reach_every_index_at_once(db_path: Path):
    with open_db(db_path) as db:
        db.remember("payment provider is Stripe", id="p", vector=vec(1), metadata={"v": 1})
        db.remember("unrelated", id="u", vector=vec(2))
        db.connect("p", "u")
        assert db.ask("stripe")[0].id == "p"
        db.update("p", text="payment provider is Adyen", metadata={"v": 2}, vector=vec(3))
        assert db.ask("stripe") == []
        assert db.ask("adyen")[0].id == "p"
        assert db.ask(vector=vec(3), top_k=1)[0].id == "p"
        assert [h.id for h in db.ask(vector=vec(3), where={"v": 2})] == ["p"]
        assert db.ask(vector=vec(3), where={"v": 1}) == []
        db.forget("p")
        assert db.ask("adyen") == []
        assert "p" not in [h.id for h in db.ask(vector=vec(3), top_k=5)]
        assert db.ask(vector=vec(3), since=T0 - 10) == [db.ask(vector=vec(3))[0]]
        assert [h.id for h in db.ask("unrelated", use_graph=True)] == ["u"]
        db.remember("payment provider is Adyen again", id="p", vector=vec(3))
        assert db.ask("adyen")[0].id == "p"


def test_a_snapshot_from_another_tokenizer_is_reindexed(db_path: Path, monkeypatch):
    with open_db(db_path) as db:
        db.remember("green tea", id="t", vector=vec(1))
        db.checkpoint()
    import mnemos.index.lexical as lexical

    monkeypatch.setattr(lexical, "TOKENIZER_VERSION", lexical.TOKENIZER_VERSION + 1)
    with open_db(db_path) as db:
        assert db._state.lexical.dirty == {0}
        assert db.ask("tea")[0].id == "t"


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"where": {"k": {"$regex": "x"}}}, r"unknown operator '\$regex'"),
        ({"where": {"$not": {"k": 1}}}, r"unknown operator '\$not'"),
        ({"where": {"k": {"$in": 3}}}, r"\$in.*needs a list"),
        ({"where": {"k": {"$gt": [1]}}}, r"\$gt.*number or a string"),
        ({"where": {"k": {"$exists": 1}}}, r"\$exists.*True or False"),
        ({"where": {"$and": []}}, r"non-empty list"),
        ({"where": {}}, "empty dict"),
        ({"where": "k=1"}, "must be a dict"),
        ({"where": {"k": {"$eq": 1, "x": 2}}}, "mixes operators"),
        ({"where": {"k": float("nan")}}, "NaN"),
        ({"recency_bias": "soon"}, "recency_bias must be"),
        ({"recency_bias": -5}, "recency_bias must be"),
        ({"fusion": "max"}, "fusion must be one of"),
        ({"since": "yesterday"}, "since must be a datetime"),
        ({"until": True}, "until must be a datetime"),
        ({"namespace": []}, "namespace must be a str or a non-empty list"),
        ({"kind": ["fact"]}, "kind must be one of"),
        ({"kind_weights": {"semantic": 0}}, "positive number"),
        ({"kind_weights": {"fact": 1.0}}, "kind must be one of"),
        ({"use_graph": "yes"}, "use_graph must be True or False"),
        ({"explain": 1}, "explain must be True or False"),
        ({"exact": None}, "exact must be True or False"),
    ],
)
def test_bad_ask_arguments_raise_clear_errors(db_path: Path, kwargs: dict[str, Any], message: str):
    with open_db(db_path) as db:
        db.remember("x", vector=vec(1))
        with pytest.raises(InvalidInputError, match=message):
            db.ask("x", **kwargs)
        with pytest.raises(InvalidInputError, match=message):
            db.ask_many(["x"], **kwargs)


def test_ask_many_checks_its_batch(db_path: Path):
    with open_db(db_path) as db:
        db.remember("x", vector=vec(1))
        with pytest.raises(InvalidInputError, match="2 queries but 1 vectors"):
            db.ask_many(["a", "b"], vectors=[vec(1)])
        with pytest.raises(InvalidInputError, match="a list of queries"):
            db.ask_many("abc")
        with pytest.raises(InvalidInputError, match="query 1 has neither"):
            db.ask_many([None, None], vectors=[vec(1), None])
        assert db.ask_many([]) == []


def test_namespace_partitions_follow_every_change(db_path: Path):
    """A namespace-filtered search reads the namespace's partition (a copy of its rows);
    appends, vector updates, a forgotten id remembered into another namespace and a
    compaction must all reach it."""
    rng = np.random.default_rng(11)
    current: dict[str, tuple[np.ndarray, str]] = {}

    def check(db: Mnemos) -> None:
        q = rng.standard_normal(16).astype(np.float32)
        for ns in ("a", "b"):
            ids = sorted(m for m, (_v, n) in current.items() if n == ns)
            vectors = np.stack([current[m][0] for m in ids]) if ids else np.zeros((0, 16))
            expected = brute_force(vectors, ids, q, 5)
            assert [h.id for h in db.ask(vector=q, top_k=5, namespace=ns)] == expected

    with open_db(db_path) as db:
        for i in range(200):
            v = rng.standard_normal(16).astype(np.float32)
            ns = "a" if i % 20 == 0 else f"n{i % 7}"
            current[db.remember(f"m{i}", vector=v, namespace=ns)] = (v, ns)
        check(db)  # builds partition "a"
        for i in range(30):
            v = rng.standard_normal(16).astype(np.float32)
            current[db.remember(f"late {i}", vector=v, namespace="a")] = (v, "a")
        check(db)
        some_a = sorted(m for m, (_v, n) in current.items() if n == "a")[:5]
        for mid in some_a[:3]:
            v = rng.standard_normal(16).astype(np.float32)
            db.update(mid, vector=v)
            current[mid] = (v, "a")
        check(db)
        moved = some_a[4]
        db.forget(moved)
        v = rng.standard_normal(16).astype(np.float32)
        db.remember("moved", id=moved, vector=v, namespace="b")
        current[moved] = (v, "b")
        check(db)
        db.forget(some_a[3])
        del current[some_a[3]]
        check(db)
        db.compact()
        check(db)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["append", "set", "look"]), st.integers(0, 40), st.integers(0, 2)
        ),
        max_size=40,
    )
)
def test_partitions_equal_a_scan_of_the_namespace_column(ops):
    """Against a plain list model: after any appends and overwrites (including moves to
    another namespace), a partition holds exactly its namespace's rows and vectors."""
    from mnemos.index.vector import VectorIndex

    index = VectorIndex(4, capacity=2)
    vectors: list[np.ndarray] = []
    spaces: list[int] = []
    for step, (op, slot, ns) in enumerate(ops):
        v = vec(step, dim=4)
        if op == "append" or not vectors:
            index.append(v, ns, 0)
            vectors.append(v)
            spaces.append(ns)
        elif op == "set":
            row = slot % len(vectors)
            index.set(row, v, ns, 0)
            vectors[row], spaces[row] = v, ns
        else:
            rows, matrix = index.partition(ns)
            expected = [i for i, s in enumerate(spaces) if s == ns]
            assert rows.tolist() == expected
            assert np.array_equal(matrix, np.asarray([vectors[i] for i in expected]).reshape(-1, 4))
