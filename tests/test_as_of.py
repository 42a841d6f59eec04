"""Time travel: ``as_of`` shows the state right after any retained event, without touching
the live database.

Guards: at every seq of a scripted history (batches, updates, forgets, edges, re-remembered
ids, snapshots at several points) the view's ``state_hash`` equals the state the pure state
machine reaches by applying the log's first events, whatever snapshot it started from; a
``datetime`` picks the last event written by then; views refuse writes and never move; the
live handle keeps writing; points outside the retained history are refused clearly.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from conftest import T0, FixedClock, vec

from mnemos import InvalidInputError, Mnemos, ReadOnlyError
from mnemos.events import decode_event
from mnemos.state import State
from mnemos.wal import LogCursor


def _history(db: Mnemos) -> None:
    a = db.remember("tea", vector=vec(1), metadata={"k": 1})
    b, c, d = db.remember_many(
        [
            {"text": "coffee", "vector": vec(2)},
            {"text": "water", "vector": vec(3), "namespace": "work"},
            {"text": "juice", "vector": vec(4), "kind": "semantic"},
        ]
    )
    db.connect(a, b, relation="likes", weight=0.5)
    db.checkpoint()
    db.update(a, text="green tea", vector=vec(5))
    db.forget(c)
    db.remember("water again", vector=vec(6), id=c)
    db.disconnect(a, b)
    for i in range(12):  # past snapshot_every_events: automatic snapshots land mid-way
        db.remember(f"note {i}", vector=vec(100 + i), importance=i / 12)
    db.update(d, metadata={"k": 2}, importance=0.9)
    db.connect(d, a)


def _replayed_hashes(path) -> dict[int, str]:
    """The state hash after each event, from the pure state machine over the whole log."""
    records, _tail = LogCursor(str(path / "wal"), 0).read()
    state, hashes = State(), {}
    for seq, payload in records:
        state.apply(seq, decode_event(payload))
        hashes[seq] = state.state_hash()
    return hashes


def test_as_of_every_event_equals_the_log_applied_up_to_it(db_path):
    clock = FixedClock(step=1)
    with Mnemos.open(db_path, embedder=None, dim=8, clock=clock, snapshot_every_events=7) as db:
        _history(db)
        live_hash, last = db.state_hash(), db.seq
        assert len(list((db_path / "snapshots").iterdir())) >= 2
        expected = _replayed_hashes(db_path)
        assert expected[last] == live_hash
        for seq in range(1, last + 1):
            with db.as_of(seq) as view:
                assert view.seq == seq
                assert view.state_hash() == expected[seq], seq
        # The live handle was not disturbed and still writes.
        assert db.state_hash() == live_hash
        db.remember("after", vector=vec(9))
        assert db.seq == last + 1


def test_a_view_reads_like_a_database_and_never_moves(db_path):
    with Mnemos.open(db_path, embedder=None, dim=8, clock=FixedClock(step=1)) as db:
        _history(db)
        view = db.as_of(6)  # after the batch and the edge, before the update
        try:
            assert view.get("m2").text == "tea"
            assert [n.id for n in view.neighbors("m2")] == ["m3"]
            assert [v.op for v in view.history("m2")] == ["remember"]
            assert view.stats()["memories"] == 4 and view.stats()["seq"] == 6
            assert view.ask(vector=vec(1), top_k=1)[0].id == "m2"
            assert db.get("m2").text == "green tea"
            with pytest.raises(ReadOnlyError):
                view.remember("x", vector=vec(7))
            db.remember("later", vector=vec(8))
            assert view.refresh() == 0 and view.seq == 6
        finally:
            view.close()


def test_as_of_a_datetime_is_the_last_event_written_by_then(db_path):
    clock = FixedClock(start=T0, step=10)  # event k (from 1) is written at T0 + 10 (k - 1)
    with Mnemos.open(db_path, embedder=None, dim=8, clock=clock) as db:
        for i in range(5):
            db.remember(f"m {i}", vector=vec(i))
        records, _tail = LogCursor(str(db_path / "wal"), 0).read()
        times = {seq: decode_event(p)["at"] for seq, p in records}
        target = times[4] / 1e6 + 3  # between events 4 and 5
        with db.as_of(datetime.fromtimestamp(target, tz=timezone.utc)) as view:
            assert view.seq == 4
        naive = datetime.fromtimestamp(times[5] / 1e6, tz=timezone.utc).replace(tzinfo=None)
        with db.as_of(naive) as view:  # naive means UTC; an event at exactly that time counts
            assert view.seq == 5
        with pytest.raises(InvalidInputError, match="no event at or before"):
            db.as_of(datetime.fromtimestamp(times[1] / 1e6 - 60, tz=timezone.utc))


def test_points_outside_the_retained_history_are_refused(db_path):
    with Mnemos.open(db_path, embedder=None, dim=8) as db:
        ids = [db.remember(f"m {i}", vector=vec(i)) for i in range(5)]
        for bad in (0, db.seq + 1, -3):
            with pytest.raises(InvalidInputError, match="outside this database's history"):
                db.as_of(bad)
        with pytest.raises(InvalidInputError, match="seq"):
            db.as_of("3")  # type: ignore[arg-type]
        db.forget(ids[0])
        db.compact()  # deletes the log the compaction snapshot covers
        with pytest.raises(InvalidInputError, match="no longer kept"):
            db.as_of(3)
        with db.as_of(db.seq) as view:
            assert view.state_hash() == db.state_hash()
