"""The retrieval evaluation measures what it claims: the corpus is deterministic and
self-consistent (every evidence id and edge end exists, "current" evidence is the newest
word on a fact, paraphrase questions are not copies of their evidence), the metrics are
right on rankings worked by hand, and the harness runs through the real API with ids
that line up with the database's.
"""

from __future__ import annotations

import itertools
import json
import statistics
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from mnemos import Mnemos
from startup_bench import eval as ev
from startup_bench.corpus import (
    COLLEAGUES,
    QUESTION_KINDS,
    START,
    Corpus,
    content_words,
    make_corpus,
    overlap,
)


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return make_corpus(0)


def _texts(corpus: Corpus) -> dict[str, str]:
    return {m["id"]: m["text"] for m in corpus.memories}


# -- the corpus ---------------------------------------------------------------------------


def test_same_seed_same_corpus_other_seed_other_corpus(corpus: Corpus) -> None:
    again = make_corpus(0)
    assert again.memories == corpus.memories
    assert again.edges == corpus.edges
    assert again.questions == corpus.questions
    other = make_corpus(1)
    assert [m["text"] for m in other.memories] != [m["text"] for m in corpus.memories]
    assert [q.text for q in other.questions] != [q.text for q in corpus.questions]


def test_size_and_shape(corpus: Corpus) -> None:
    assert 2000 <= len(corpus.memories) <= 4000
    assert 250 <= len(corpus.questions) <= 400
    kinds = {q.kind for q in corpus.questions}
    assert kinds == set(QUESTION_KINDS)
    speakers = {m["metadata"]["speaker"] for m in corpus.memories}
    assert set(COLLEAGUES) | {"Sam", "Assistant"} <= speakers
    assert {m["kind"] for m in corpus.memories} == {"episodic", "semantic"}
    namespaces = [m["namespace"] for m in corpus.memories]
    assert namespaces.count("atlas") > len(namespaces) / 2 and "orion" in namespaces
    assert {rel for _a, _b, rel in corpus.edges} == {"reply_to", "updates"}


def test_ids_unique_and_every_reference_exists(corpus: Corpus) -> None:
    ids = [m["id"] for m in corpus.memories]
    assert len(ids) == len(set(ids))
    known = set(ids)
    for q in corpus.questions:
        assert q.evidence, q
        assert set(q.evidence) <= known, q
    for a, b, _rel in corpus.edges:
        assert a in known and b in known and a != b
    for statements in corpus.statements.values():
        assert {st.id for st in statements} <= known
    assert len({q.id for q in corpus.questions}) == len(corpus.questions)


def test_sessions_are_dated_weekdays_with_increasing_turns(corpus: Corpus) -> None:
    sessions: dict[str, list[dict]] = {}
    for m in corpus.memories:
        sessions.setdefault(m["metadata"]["session"], []).append(m)
    assert len(sessions) == 60
    for turns in sessions.values():
        stamps = [m["timestamp"] for m in turns]
        assert all(b > a for a, b in itertools.pairwise(stamps)), turns[0]["id"]
        assert all(b - a <= timedelta(minutes=3) for a, b in itertools.pairwise(stamps))
        assert stamps[0].weekday() < 5 and stamps[0].date() == stamps[-1].date()
        assert stamps[0].tzinfo is not None
    first = min(m["timestamp"] for m in corpus.memories)
    last = max(m["timestamp"] for m in corpus.memories)
    assert first.date() >= START.date()
    assert timedelta(days=75) <= last - first <= timedelta(days=100)


def test_facts_are_restated_changed_and_contradicted(corpus: Corpus) -> None:
    roles = {st.role for items in corpus.statements.values() for st in items}
    assert {"state", "restate", "change", "wrong", "correct", "reply", "note"} <= roles
    assert len(corpus.statements) >= 40
    for items in corpus.statements.values():
        # A wrong claim is always corrected: the last word on a fact is right.
        assert items[-1].correct


def test_current_evidence_is_the_newest_word_on_its_topic(corpus: Corpus) -> None:
    current = [q for q in corpus.questions if q.kind == "current"]
    assert len(current) >= 40
    for q in current:
        statements = corpus.statements[q.topic]
        newest = max(statements, key=lambda st: st.timestamp)
        assert newest.id in q.evidence, q
        by_id = {st.id: st for st in statements}
        for mid in q.evidence:
            assert by_id[mid].correct and by_id[mid].value == newest.value, q
        # Superseded values are in the corpus too: that is what makes the question hard.
        assert any(st.value != newest.value for st in statements), q


def test_paraphrase_questions_do_not_copy_their_evidence(corpus: Corpus) -> None:
    texts = _texts(corpus)
    paraphrase = [q for q in corpus.questions if q.kind == "paraphrase"]
    assert len(paraphrase) >= 40
    scores = [overlap(q.text, [texts[e] for e in q.evidence]) for q in paraphrase]
    assert statistics.fmean(scores) < 0.3
    assert max(scores) < 0.5
    # ... and never contain the answer.
    for q in paraphrase:
        value = corpus.statements[q.topic][-1].value
        assert value.lower() not in q.text.lower(), q


def test_exact_questions_name_a_token_their_evidence_contains(corpus: Corpus) -> None:
    texts = _texts(corpus)
    exact = [q for q in corpus.questions if q.kind == "exact"]
    assert len(exact) >= 50
    for q in exact:
        tokens = [
            w.strip("?,`") for w in q.text.split() if any(c.isdigit() or c in "_@" for c in w)
        ]
        assert tokens, q
        assert all(tokens[0] in texts[e] for e in q.evidence), q


def test_linked_evidence_is_a_reply_that_shares_no_words_with_the_question(
    corpus: Corpus,
) -> None:
    texts = _texts(corpus)
    replies = {a: b for a, b, rel in corpus.edges if rel == "reply_to"}
    linked = [q for q in corpus.questions if q.kind == "linked"]
    assert len(linked) >= 40
    for q in linked:
        (answer,) = q.evidence
        asked = replies[answer]
        assert overlap(q.text, [texts[asked]]) > overlap(q.text, [texts[answer]]), q


def test_temporal_evidence_lies_in_the_window(corpus: Corpus) -> None:
    stamps = {m["id"]: m["timestamp"] for m in corpus.memories}
    temporal = [q for q in corpus.questions if q.kind == "temporal"]
    assert len(temporal) >= 40
    for q in temporal:
        assert q.since is not None and q.until is not None
        assert q.since.weekday() == 0 and q.until - q.since < timedelta(days=7)
        assert all(q.since <= stamps[e] <= q.until for e in q.evidence), q
        assert f"{q.since.day} " in q.text


def test_content_words_drop_speaker_stopwords_and_plurals() -> None:
    assert content_words("Bob: we're going with Adyen for payments") == {"adyen", "payment"}
    assert overlap("which payments?", ["Bob: payments"]) == 1.0
    assert overlap("anything", ["Bob: nothing"]) == 0.0


# -- metrics --------------------------------------------------------------------------------


def test_recall_and_reciprocal_rank_by_hand() -> None:
    ranked = ["a", "b", "c", "d", "e", "f"]
    assert ev.recall_at(ranked, ["c", "x"], 1) == 0.0
    assert ev.recall_at(ranked, ["c", "x"], 5) == 0.5
    assert ev.recall_at(ranked, ["a", "f"], 5) == 0.5
    assert ev.recall_at(ranked, ["a", "f"], 10) == 1.0
    assert ev.reciprocal_rank(ranked, ["c", "x"]) == pytest.approx(1 / 3)
    assert ev.reciprocal_rank(ranked, ["f", "b"]) == 0.5
    assert ev.reciprocal_rank(ranked, ["z"]) == 0.0
    assert ev.reciprocal_rank(ranked, ["f"], k=5) == 0.0
    with pytest.raises(ValueError):
        ev.recall_at(ranked, [], 1)


def test_score_averages_over_questions() -> None:
    from startup_bench.corpus import Question

    questions = [Question("q1", "?", ["a"], "exact"), Question("q2", "?", ["y", "z"], "exact")]
    ranked = {"q1": ["a", "b"], "q2": ["b", "z", "c", "d", "e", "y"]}
    got = ev.score(ranked, questions)
    assert got["recall@1"] == pytest.approx((1 + 0) / 2)
    assert got["recall@5"] == pytest.approx((1 + 0.5) / 2)
    assert got["recall@10"] == pytest.approx((1 + 1) / 2)
    assert got["mrr"] == pytest.approx((1 + 1 / 2) / 2)


def test_hashing_embedder_is_deterministic_and_unit_length() -> None:
    e = ev.HashingEmbedder()
    a = e.embed(["ORD-48213 is stuck in customs", "👍", ""])
    assert a.shape == (3, 256) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert np.array_equal(
        a, ev.HashingEmbedder().embed(["ORD-48213 is stuck in customs", "👍", ""])
    )


# -- the harness through the real API ----------------------------------------------------------


def test_vector_only_end_to_end(tmp_path: Path) -> None:
    small = make_corpus(3, sessions=6)
    embedder = ev.HashingEmbedder()
    path = str(tmp_path / "eval.mem")
    now = ev.asked_at(small)
    db = ev.build(path, small, embedder)
    try:
        vectors = embedder.embed([q.text for q in small.questions])
        h = ev.Handles(
            db, None, "not needed", {q.id: v for q, v in zip(small.questions, vectors, strict=True)}
        )
        result = ev.run_mode(ev.MODES["vector-only"], h, small.questions)
    finally:
        db.close()
    if result["status"] != "ok":  # since/until are part of the API contract (DESIGN.md)
        pytest.fail(f"vector-only ask failed: {result['reason']}")
    metrics = result["metrics"]
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics["recall@1"] <= metrics["recall@5"] <= metrics["recall@10"]
    assert metrics["recall@10"] > 0
    # Ids line up: a question that names an order number or error code finds its turn.
    exact = [q for q in small.questions if q.kind == "exact"]
    found = [result["first_hit_rank"][q.id] is not None for q in exact]
    assert sum(found) / len(found) >= 0.6
    with Mnemos.open(path, embedder=None, readonly=True, clock=lambda: now) as ro:
        assert ro.stats()["memories"] == len(small.memories)
        assert ro.stats()["edges"] == len(small.edges)


def test_command_writes_json_for_every_mode(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    code = ev.main(
        ["--embedder", "hashing", "--sessions", "4", "--dir", str(tmp_path), "--json", str(out)]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result["modes"]) == set(ev.MODES)
    for name, mode in result["modes"].items():
        if mode["status"] == "ok":
            assert all(0.0 <= v <= 1.0 for v in mode["metrics"].values()), name
        else:
            assert mode["reason"], name
    assert sum(result["corpus"]["questions"].values()) == len(make_corpus(0, sessions=4).questions)
