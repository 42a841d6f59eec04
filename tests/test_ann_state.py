"""The approximate index inside the database is a function of the log alone.

Guards: the graph a search sees (and so every approximate answer) is the same whether it
was flushed by many asks or one, written to snapshots or not, reopened or not, and whether
the snapshots were written by the Rust or the Python backend; ``ask`` uses it only above
``ANN_ROWS_MIN`` allowed rows and never with ``exact=True``, and then finds the exact top 10
(recall >= 0.95) with exact scores; a malformed ANN section is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FixedClock, vec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnemos import CorruptDatabaseError, Mnemos, _native
from mnemos._native import crc32
from mnemos.index import ann
from mnemos.index.ann import AnnState

needs_core = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not in use")

SMALL = 12  # a threshold small enough for a quick random history to start the graph


def _graph_fingerprint(db: Mnemos) -> bytes:
    """What decides approximate answers: the graph with every queued operation applied on
    the Rust backend; the queue itself (no graph is ever built) on the Python backend."""
    with db._lock:  # the background builder may be at work
        state = db._state
        if state.ann is None:
            return b""
        if ann.available():
            return state.ann.ready(state.vectors).to_bytes()
        section, graph = state.ann.encode()
        return b"".join(bytes(p) for p in section) + bytes(graph)


# One step of a history: (operation, argument). Asks, checkpoints and reopens change no
# state; only the twin that flushes and snapshots performs them.
_STEP = st.one_of(
    st.tuples(st.just("remember"), st.integers(0, 10_000)),
    st.tuples(st.just("batch"), st.integers(1, 6)),
    st.tuples(st.just("update_vector"), st.integers(0, 10_000)),
    st.tuples(st.just("update_text"), st.integers(0, 10_000)),
    st.tuples(st.just("forget"), st.integers(0, 10_000)),
    st.tuples(st.just("again"), st.integers(0, 10_000)),
    st.tuples(st.just("compact"), st.just(0)),
    st.tuples(st.just("ask"), st.integers(0, 10_000)),
    st.tuples(st.just("checkpoint"), st.just(0)),
    st.tuples(st.just("reopen"), st.just(0)),
)
_NOT_LOGGED = ("ask", "checkpoint", "reopen")


class _Run:
    def __init__(self, path: Path, *, busy: bool):
        self.path, self.busy = path, busy
        self.clock = FixedClock(step=0)  # asks read it too; event times are state
        # The busy twin builds the graph in the background too; the quiet one never.
        self.db = Mnemos.open(path, embedder=None, dim=8, clock=self.clock, ann_background=busy)
        self.forgotten: list[str] = []
        self.counter = 0

    def live(self) -> list[str]:
        s = self.db._state
        return sorted(mid for mid, row in s.rows.items() if not s.dseqs[row])

    def step(self, op: str, arg: int) -> None:
        live = self.live()
        if op in _NOT_LOGGED and not self.busy:
            return
        if op == "remember" or (op in ("update_vector", "update_text", "forget") and not live):
            self.db.remember(f"memory {arg}", vector=vec(arg))
        elif op == "batch":
            self.counter += 1
            base = 50_000 + 100 * self.counter
            self.db.remember_many(
                [{"text": f"batch {base + i}", "vector": vec(base + i)} for i in range(arg)]
            )
        elif op == "update_vector":
            self.db.update(live[arg % len(live)], vector=vec(arg + 7))
        elif op == "update_text":
            self.db.update(live[arg % len(live)], text=f"text {arg}")
        elif op == "forget":
            mid = live[arg % len(live)]
            self.db.forget(mid)
            self.forgotten.append(mid)
        elif op == "again" and self.forgotten:
            mid = self.forgotten.pop(arg % len(self.forgotten))
            if mid in self.db._state.rows:  # not compacted away
                self.db.remember(f"again {arg}", vector=vec(arg + 11), id=mid)
        elif op == "compact":
            self.db.compact()
        elif op == "ask" and live:
            self.db.ask(vector=vec(arg + 3), top_k=3)
        elif op == "checkpoint":
            self.db.checkpoint()
        elif op == "reopen":
            self.db.close()
            self.db = Mnemos.open(
                self.path, embedder=None, clock=self.clock, ann_background=self.busy
            )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_STEP, min_size=15, max_size=60))
def test_graph_depends_on_the_events_not_on_flushes_snapshots_or_reopens(
    steps, tmp_path_factory, monkeypatch
):
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", SMALL)
    root = tmp_path_factory.mktemp("twins")
    busy, quiet = _Run(root / "busy.mem", busy=True), _Run(root / "quiet.mem", busy=False)
    # Enough memories to start the graph early, so the steps exercise it.
    for run in (busy, quiet):
        run.db.remember_many([{"text": f"seed {i}", "vector": vec(i)} for i in range(SMALL)])
    for op, arg in steps:
        busy.step(op, arg)
        quiet.step(op, arg)
    try:
        assert busy.db.state_hash() == quiet.db.state_hash()
        assert busy.db._state.ann is not None
        assert _graph_fingerprint(busy.db) == _graph_fingerprint(quiet.db)
        for seed in range(3):
            query = vec(90_000 + seed)
            assert [(h.id, h.score) for h in busy.db.ask(vector=query, top_k=5)] == [
                (h.id, h.score) for h in quiet.db.ask(vector=query, top_k=5)
            ]
    finally:
        busy.db.close()
        quiet.db.close()


def test_graph_starts_at_the_threshold_with_the_live_rows(db_path, monkeypatch):
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", SMALL)
    with Mnemos.open(db_path, embedder=None, dim=8, ann_background=False) as db:
        ids = db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(SMALL - 1)])
        db.forget(ids[0])
        assert db._state.ann is None
        db.remember_many([{"text": f"n {i}", "vector": vec(100 + i)} for i in range(3)])
        state = db._state.ann
        assert state is not None
        # Started by the event that made SMALL live memories; the other one came after.
        assert (state.live_nodes, state.deleted_nodes, state.pending) == (SMALL + 1, 0, SMALL + 1)
        db.forget(ids[1])
        assert (state.live_nodes, state.deleted_nodes) == (SMALL, 1)
        # Tombstones reaching the live nodes start the graph afresh over the live rows.
        for mid in ids[2:8]:
            db.forget(mid)
        assert (state.live_nodes, state.deleted_nodes) == (SMALL - 6, 0)
        assert state.pending == SMALL - 6


@needs_core
def test_python_backend_snapshots_continue_the_same_graph(tmp_path, monkeypatch):
    """A Python-backend writer never builds the graph but queues and stores its operations,
    so a Rust reader of its snapshot builds the graph a Rust writer would have."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from mnemos import Mnemos
        from mnemos.index import ann
        ann.ANN_ROWS_MIN = {SMALL}
        def vec(seed):
            return np.random.default_rng(seed).standard_normal(8).astype(np.float32)
        def history(db):
            ids = db.remember_many([{{"text": f"m {{i}}", "vector": vec(i)}} for i in range(30)])
            db.update(ids[3], vector=vec(500))
            db.forget(ids[4])
            db.checkpoint()
            db.remember("late", vector=vec(600))
            db.forget(ids[5])
            db.compact()
            db.update(ids[6], vector=vec(700))
            db.remember("last", vector=vec(800))
        import sys
        with Mnemos.open(sys.argv[1], embedder=None, dim=8, clock=lambda: 1.7e9) as db:
            history(db)
        """
    )
    env = {**os.environ, "MNEMOS_BACKEND": "python"}
    written = tmp_path / "python.mem"
    subprocess.run([sys.executable, "-c", script, str(written)], check=True, env=env)
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", SMALL)
    namespace: dict = {}
    exec(compile(script.split("import sys")[0], "history", "exec"), namespace)
    with (
        Mnemos.open(tmp_path / "rust.mem", embedder=None, dim=8, clock=lambda: 1.7e9) as rust,
        Mnemos.open(written, embedder=None) as from_python,
    ):
        namespace["history"](rust)
        assert from_python.state_hash() == rust.state_hash()
        assert _graph_fingerprint(from_python) == _graph_fingerprint(rust)


@needs_core
def test_background_builder_works_off_the_queue_and_stops_on_close(db_path, monkeypatch):
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", SMALL)
    db = Mnemos.open(db_path, embedder=None, dim=8)
    db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(2000)])
    assert db.stats()["ann"]["live"] == 2000
    deadline = time.monotonic() + 120  # a hang guard, not a speed requirement
    while db.stats()["ann"]["pending"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert db.stats()["ann"]["pending"] == 0
    builder = db._builder
    assert builder is not None and builder._thread.is_alive()
    db.remember("one more", vector=vec(5000))  # wakes it again
    db.close()
    assert not builder._thread.is_alive()
    # No snapshot was written, so a reopen queues the whole history again from the log.
    with Mnemos.open(db_path, embedder=None, readonly=True, ann_background=False) as again:
        assert again.stats()["ann"] == {"live": 2001, "deleted": 0, "pending": 2001}


def _clustered(count: int, dim: int, seed: int) -> np.ndarray:
    centroids = np.random.default_rng([5, dim]).standard_normal((32, dim), dtype=np.float32)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((count, dim), dtype=np.float32)
    return np.ascontiguousarray(centroids[rng.integers(0, 32, count)] + 0.5 * noise)


@needs_core
def test_ask_uses_the_graph_above_the_threshold_with_exact_scores(db_path):
    """At the real threshold: exact=True and selective filters leave the graph alone; other
    asks bring it up to date and find the exact top 10 with the exact scores."""
    rows = ann.ANN_ROWS_MIN + 500
    data = _clustered(rows, 16, seed=1)
    queries = _clustered(40, 16, seed=2)
    with Mnemos.open(db_path, embedder=None, dim=16, ann_background=False) as db:
        db.remember_many(
            [
                {"text": f"row {i}", "vector": v, "namespace": "rare" if i < 300 else "main"}
                for i, v in enumerate(data)
            ]
        )
        state = db._state.ann
        assert state is not None and state.pending == rows
        exact = [db.ask(vector=q, top_k=10, exact=True) for q in queries]
        db.ask(vector=queries[0], top_k=10, namespace="rare")  # 300 rows: scanned exactly
        assert state.pending == rows
        approximate = [db.ask(vector=q, top_k=10) for q in queries]
        assert state.pending == 0
        found = 0
        for want, got in zip(exact, approximate, strict=True):
            truth = {h.id: h.score for h in want}
            found += sum(h.id in truth for h in got)
            for h in got:  # a row's score does not depend on the path that found it
                if h.id in truth:
                    assert h.score == truth[h.id]
        assert found / (10 * len(queries)) >= 0.95
        db.remember("one more", vector=queries[0], namespace="main")
        assert state.pending == 1
        db.checkpoint()
        before = [[h.id for h in db.ask(vector=q, top_k=10)] for q in queries[:5]]
    with Mnemos.open(db_path, embedder=None, readonly=True, ann_background=False) as db:
        # The snapshot holds the graph as of the asks above and the one insert after them.
        reopened = db._state.ann
        assert reopened is not None and reopened.pending == 1
        assert [[h.id for h in db.ask(vector=q, top_k=10)] for q in queries[:5]] == before
        assert reopened.pending == 0
        assert db.ask(vector=queries[0], top_k=1)[0].text == "one more"


def test_malformed_ann_sections_are_refused(monkeypatch, db_path):
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", 3)
    with Mnemos.open(db_path, embedder=None, dim=8, ann_background=False) as db:
        ids = db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(5)])
        db.update(ids[0], vector=vec(99))
        rows = len(db._state.ids)
        section, graph = db._state.ann.encode()
        assert not graph  # nothing applied yet: no ANN_GRAPH section
        good = b"".join(bytes(p) for p in section)
    decoded = AnnState.decode(memoryview(good), rows)
    assert decoded is not None and decoded.pending == db._state.ann.pending
    assert AnnState.decode(memoryview(AnnState.inactive_section()), rows) is None
    header = ann.SECTION_HEADER.size
    ops = decoded.pending
    kinds_at = header  # no graph bytes: the operation codes follow the header
    cases = {
        "short": good[:-1],
        "header only": good[:header],
        "bad version": b"\x02" + good[1:],
        "unknown operation": good[:kinds_at] + b"\x07" + good[kinds_at + 1 :],
        "rows out of range": good,  # checked against fewer rows below
    }
    for name, data in cases.items():
        with pytest.raises(ValueError):
            AnnState.decode(memoryview(data), 1 if name == "rows out of range" else rows)
    assert ops > 0


@needs_core
def test_a_damaged_stored_graph_is_reported_at_first_search(monkeypatch, db_path):
    """Open does not read the stored graph; its first use checks the ANN_GRAPH section's CRC
    and the graph's own invariants, and damage raises CorruptDatabaseError, never a wrong
    answer."""
    monkeypatch.setattr(ann, "ANN_ROWS_MIN", 3)
    with Mnemos.open(db_path, embedder=None, dim=8, ann_background=False) as db:
        db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(20)])
        db.ask(vector=vec(1), top_k=2)  # builds the graph
        state = db._state.ann
        section, graph = state.encode()
        vectors = db._state.vectors
    header = b"".join(bytes(p) for p in section)
    assert bytes(graph[:8]) == b"MNEMOANN"
    damaged = bytearray(graph)
    damaged[70] ^= 0x40  # inside the graph's rows
    # A damaged section fails its CRC; one whose CRC was made to match fails the graph's own.
    for crc in (crc32(bytes(graph)), crc32(bytes(damaged))):
        state = AnnState.decode(memoryview(header), 20, (memoryview(bytes(damaged)), crc))
        assert state is not None and state.pending == 0
        with pytest.raises(CorruptDatabaseError, match="ANN_GRAPH"):
            state.ready(vectors)
        with pytest.raises(CorruptDatabaseError, match="ANN_GRAPH"):
            state.check_graph()
    state = AnnState.decode(memoryview(header), 20, (memoryview(bytes(graph)), crc32(graph)))
    assert state is not None and state.ready(vectors).to_bytes() == bytes(graph)


@needs_core
def test_verify_reports_a_damaged_graph_section_that_open_skips(monkeypatch, db_path):
    import mnemos
    from mnemos import format as fmt
    from mnemos.snapshot import read_snapshot_header

    monkeypatch.setattr(ann, "ANN_ROWS_MIN", 3)
    with Mnemos.open(db_path, embedder=None, dim=8, ann_background=False) as db:
        db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(20)])
        db.ask(vector=vec(1), top_k=2)
        db.checkpoint()
    assert mnemos.verify(db_path).ok
    snap = next((db_path / "snapshots").iterdir())
    with open(snap, "rb") as f:
        _seq, _crc, sections = read_snapshot_header(f)
    offset = next(o for k, _c, o, _s, _r, _x in sections if k == fmt.SECTION_ANN_GRAPH)
    data = bytearray(snap.read_bytes())
    data[offset + 100] ^= 0x01
    snap.write_bytes(bytes(data))
    report = mnemos.verify(db_path)
    assert not report.ok and "ANN_GRAPH" in str(report.to_dict()["problems"])
    with Mnemos.open(db_path, embedder=None, readonly=True, ann_background=False) as db:
        assert len(db.ask(vector=vec(1), top_k=2, exact=True)) == 2
        with pytest.raises(CorruptDatabaseError, match="mnemos verify"):
            db.ask(vector=vec(1), top_k=2)
