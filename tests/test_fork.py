"""Fork: a new database whose history is this one's up to an event, for counterfactual runs.

Guards: the fork at ``at`` has the original's state there (and its history before it), then
diverges on its own while the original and its files stay untouched; the fork survives a
reopen; a point inside a batch, before the retained history, or a used directory is refused
and creates nothing.
"""

from __future__ import annotations

import pytest
from conftest import FixedClock, vec

from mnemos import InvalidInputError, Mnemos


def _files(path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "LOCK"
    }


def test_fork_has_the_history_up_to_at_then_diverges_alone(tmp_path):
    original = tmp_path / "a.mem"
    with Mnemos.open(original, embedder=None, dim=8, clock=FixedClock(step=1)) as db:
        first = db.remember("tea", vector=vec(1))
        db.remember_many([{"text": "coffee", "vector": vec(2)}, {"text": "x", "vector": vec(3)}])
        db.checkpoint()
        db.update(first, text="green tea", vector=vec(4))
        at = db.seq
        db.forget(first)
        db.remember("later", vector=vec(5))
        with db.as_of(at) as view:
            expected = view.state_hash()
        before_hash, before_files = db.state_hash(), _files(original)
        with db.fork(tmp_path / "b.mem", at=at) as fork:
            assert fork.seq == at and fork.state_hash() == expected
            assert fork.get(first).text == "green tea"
            assert [v.op for v in fork.history(first)] == ["remember", "update"]
            fork.remember("only in the fork", vector=vec(6))
            fork.forget(first)
            forked_hash = fork.state_hash()
        assert db.state_hash() == before_hash
        assert _files(original) == before_files
        assert [h.text for h in db.ask(vector=vec(6), top_k=5)].count("only in the fork") == 0
    with Mnemos.open(tmp_path / "b.mem", embedder=None) as reopened:
        assert reopened.state_hash() == forked_hash
        with reopened.as_of(at) as view:
            assert view.state_hash() == expected


def test_fork_now_equals_the_original(tmp_path):
    with Mnemos.open(tmp_path / "a.mem", embedder=None, dim=8) as db:
        db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(30)])
        with db.fork(tmp_path / "b.mem") as fork:
            assert fork.state_hash() == db.state_hash()


def test_bad_forks_are_refused_and_create_nothing(tmp_path):
    with Mnemos.open(tmp_path / "a.mem", embedder=None, dim=8) as db:
        ids = db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(4)])
        inside = db.seq - 1  # the batch runs from seq 2 to seq 5
        with pytest.raises(InvalidInputError, match="inside a transaction of 4 events"):
            db.fork(tmp_path / "b.mem", at=inside)
        assert not (tmp_path / "b.mem").exists()
        for bad in (0, db.seq + 1, "2"):
            with pytest.raises(InvalidInputError, match="outside this database's history"):
                db.fork(tmp_path / "b.mem", at=bad)  # type: ignore[arg-type]
        used = tmp_path / "used"
        used.mkdir()
        (used / "notes.txt").write_text("mine")
        with pytest.raises(InvalidInputError, match="already exists"):
            db.fork(used)
        assert [p.name for p in used.iterdir()] == ["notes.txt"]
        db.forget(ids[0])
        db.compact()
        with pytest.raises(InvalidInputError, match="no longer kept"):
            db.fork(tmp_path / "c.mem", at=1)
        assert not (tmp_path / "c.mem").exists()
        with db.fork(tmp_path / "d.mem") as fork:  # after the compaction: fine
            assert fork.state_hash() == db.state_hash()
