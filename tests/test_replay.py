"""Replay logs: an agent's run exported, replayed and checked.

Guards: a scripted run (writes of every kind, documents, asks in between) exports and
replays, in memory and into a new database, to the same state hash on both backends with
every checkpoint verified; an event edited in the log (its checksum recomputed) is the
divergence, at exactly that event, and an edit that also forges the running digest is
caught at the next checkpoint; damaged, truncated and foreign files are refused; stop_at
equals as_of; a log that starts later replays onto a fork at its base.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

import msgpack
import numpy as np
import pytest
import zstandard
from conftest import FixedClock, vec

from mnemos import CorruptDatabaseError, InvalidInputError, Mnemos, _native
from mnemos import replay as rp
from mnemos._native import crc32


class WordEmbedder:
    """A deterministic embedder: each word adds a fixed pseudo-random vector."""

    name, dim, fingerprint = "test-words", 16, "words-v1"

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                seed = int.from_bytes(word.encode()[:8].ljust(8, b"\0"), "little")
                out[i] += np.random.default_rng(seed).standard_normal(self.dim)
            out[i, 0] += 0.01  # never all zeros
        return out


def _agent_run(db: Mnemos) -> None:
    """A small agent session: every kind of write, with asks between them, and a capacity
    bound on one namespace that evicts."""
    a = db.remember("the user prefers green tea", metadata={"topic": "prefs"}, importance=0.8)
    ids = db.remember_many(
        ["deploys happen on tuesdays", {"text": "Ada likes chess", "namespace": "people"}]
    )
    db.ask("what does the user drink", top_k=2)
    db.ask_many(["chess", "tuesday deploys"], top_k=3, namespace=["default", "people"])
    db.connect(a, ids[0], relation="context", weight=0.5)
    db.update(a, text="the user prefers black coffee")
    db.ingest_document("Mnemos keeps memories. " * 40, chunk_size=32, overlap=4, doc_id="doc")
    db.forget(ids[0])
    db.ask("chess", top_k=3, use_graph=True)
    db.remember("again", id=ids[0])
    grace = db.remember("Grace likes go", namespace="people")
    db.ask("likes chess", top_k=1, namespace="people", mark_recalled=True)  # Ada's
    assert db.set_capacity(1, namespace="people", policy="least-recently-recalled") == [grace]
    db.remember("Alan likes puzzles", namespace="people")  # evicts Ada's, at the bound
    assert db.history(ids[1])[-1].op == "evict"
    for i in range(8):
        db.remember(f"note number {i}", kind="semantic" if i % 2 else "episodic")
    db.ask("note", top_k=5, kind="semantic", explain=True, recency_bias=True)
    db.ask(vector=db.get(a).vector, top_k=4, where={"topic": "prefs"}, exact=True)


@pytest.fixture
def run(tmp_path):
    """A database after the agent run, its replay log (checkpoints every 5 events)."""
    path = tmp_path / "agent.mem"
    with Mnemos.open(path, embedder=WordEmbedder(), clock=FixedClock(step=1), trace=True) as db:
        _agent_run(db)
        written = db.export_replay(tmp_path / "run.log", checkpoint_every=5)
        yield db, tmp_path / "run.log", written


def test_replay_reproduces_the_run_in_memory_and_into_a_database(run, tmp_path):
    db, log, written = run
    assert written["events"] == db.seq and written["state_hash"] == db.state_hash()
    report = Mnemos.replay(log)
    assert report.ok and report.complete, report.divergence
    assert report.events_applied == db.seq
    # Every 5 events, or as many as the state has rows, at the end of a transaction (the
    # document is one transaction of over 100 events), and at the end.
    assert report.checkpoints_verified == written["checkpoints"] >= 3
    assert report.state_hash == db.state_hash()
    # Every traced ask (two single asks, a batch of two, three more) was asked again alike.
    assert written["traces"] == report.traces_verified == 7 and report.traces_skipped == 0
    into = tmp_path / "replayed.mem"
    report = Mnemos.replay(log, into=into)
    assert report.ok and report.state_hash == db.state_hash()
    with Mnemos.open(into, embedder=None) as again:
        assert again.state_hash() == db.state_hash()
        assert again.get("doc").text == db.get("doc").text
        assert [v.op for v in again.history("m2")] == [v.op for v in db.history("m2")]


def test_both_backends_replay_to_the_same_hashes(run):
    db, log, _written = run
    script = (
        "import sys, mnemos; r = mnemos.Mnemos.replay(sys.argv[1]); "
        "print(mnemos.backend(), r.ok, r.checkpoints_verified, r.traces_verified, r.state_hash)"
    )
    for backend in ("python", "rust"):
        env = {**os.environ, "MNEMOS_BACKEND": backend}
        if backend == "rust" and _native._core is None:
            continue  # this run is on the Python path only
        out = subprocess.run(
            [sys.executable, "-c", script, str(log)], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        name, ok, checkpoints, traces, digest = out.stdout.split()
        assert (name, ok, digest) == (backend, "True", db.state_hash())
        assert int(checkpoints) > 0 and int(traces) == 7


def _rewrite(log, change) -> None:
    """Decode the log's entries, let ``change(entries)`` edit them, write it back with every
    entry's CRC recomputed (the chain digests are left as ``change`` leaves them)."""
    data = log.read_bytes()
    _magic, _version, size = rp.PREFIX.unpack_from(data)
    prefix_end = rp.PREFIX.size + size + 4
    body = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data[prefix_end:])).read()
    entries, at = [], 0
    while at < len(body):
        kind, seq, index, count, length = rp.ENTRY.unpack_from(body, at)
        payload = body[at + rp.ENTRY.size : at + rp.ENTRY.size + length]
        entries.append([kind, seq, index, count, payload])
        at += rp.ENTRY.size + length + 4
    change(entries)
    out = io.BytesIO()
    with zstandard.ZstdCompressor().stream_writer(out, closefd=False) as w:
        for kind, seq, index, count, payload in entries:
            head = rp.ENTRY.pack(kind, seq, index, count, len(payload))
            w.write(head + payload + crc32(payload, crc32(head)).to_bytes(4, "little"))
    log.write_bytes(data[:prefix_end] + out.getvalue())


def _edit_event(entries, seq: int, *, forge_chain: bool) -> None:
    chain = bytes(rp.CHAIN_BYTES)
    for entry in entries:
        if entry[0] != rp.KIND_EVENT:
            continue
        event = entry[4][rp.CHAIN_BYTES :]
        if entry[1] == seq:
            decoded = msgpack.unpackb(event, raw=False)
            decoded["text"] = decoded["text"] + " (edited)"
            event = msgpack.packb(decoded, use_bin_type=True)
            entry[4] = entry[4][: rp.CHAIN_BYTES] + event
        chain = rp.chain_next(chain, entry[1], event)
        if forge_chain:
            entry[4] = chain + event


def test_an_edited_event_is_the_divergence_at_exactly_that_event(run):
    db, log, _written = run
    target = db.seq - 3  # one of the notes
    _rewrite(log, lambda entries: _edit_event(entries, target, forge_chain=False))
    report = Mnemos.replay(log)
    assert not report.ok
    d = report.divergence
    assert (d.seq, d.kind) == (target, "event") and d.expected != d.actual
    assert report.events_applied == target - 1


def test_an_edit_with_a_forged_digest_is_caught_at_the_next_checkpoint(run):
    db, log, _written = run
    target = db.seq  # the last note: the final checkpoint follows it, before the last asks
    _rewrite(log, lambda entries: _edit_event(entries, target, forge_chain=True))
    report = Mnemos.replay(log)
    d = report.divergence
    assert d is not None and (d.kind, d.seq) == ("state", target)
    assert d.expected_state_hash != d.actual_state_hash
    assert Mnemos.replay(log, verify=False).ok


def test_damaged_truncated_and_foreign_files_are_refused(run, tmp_path):
    _db, log, _written = run
    good = log.read_bytes()
    flipped = bytearray(good)
    flipped[20] ^= 0x01  # inside the header
    log.write_bytes(bytes(flipped))
    with pytest.raises(CorruptDatabaseError, match="header fails its checksum"):
        Mnemos.replay(log)
    # An entry whose bytes changed but whose CRC did not.
    _magic, _version, size = rp.PREFIX.unpack_from(good)
    prefix_end = rp.PREFIX.size + size + 4
    body = bytearray(
        zstandard.ZstdDecompressor().stream_reader(io.BytesIO(good[prefix_end:])).read()
    )
    body[rp.ENTRY.size + 20] ^= 0x01  # the first entry's payload
    log.write_bytes(good[:prefix_end] + zstandard.ZstdCompressor().compress(bytes(body)))
    with pytest.raises(CorruptDatabaseError, match=r"entry at body offset 0 \(seq 1\) fails"):
        Mnemos.replay(log)
    log.write_bytes(good[: len(good) - 40])
    with pytest.raises(CorruptDatabaseError, match=r"replay log .* is damaged"):
        Mnemos.replay(log)
    other = tmp_path / "notes.txt"
    other.write_text("not a log at all")
    with pytest.raises(InvalidInputError, match="not a Mnemos replay log"):
        Mnemos.replay(other)


def test_stop_at_equals_as_of(run):
    """as_of at every tenth event (and the last) equals a replay stopped there."""
    db, log, _written = run
    for stop in [*range(1, db.seq, 10), db.seq - 1]:
        report = Mnemos.replay(log, stop_at=stop)
        with db.as_of(stop) as view:
            assert report.state_hash == view.state_hash(), stop
        assert report.events_applied == stop and not report.complete


def test_a_later_range_replays_onto_a_fork_at_its_base(run, tmp_path):
    db, _log, _written = run
    since = db.seq - 5  # among the single-event notes at the end
    part = tmp_path / "part.log"
    written = db.export_replay(part, since=since)
    assert written["first_seq"] == since and written["state_hash"] == db.state_hash()
    with pytest.raises(InvalidInputError, match=f"continues a database from seq {since - 1}"):
        Mnemos.replay(part)
    db.fork(tmp_path / "base.mem", at=since - 1).close()
    report = Mnemos.replay(part, into=tmp_path / "base.mem")
    assert report.ok and report.state_hash == db.state_hash()
    db.fork(tmp_path / "other.mem", at=since - 2).close()
    with pytest.raises(InvalidInputError, match="the database is at seq"):
        Mnemos.replay(part, into=tmp_path / "other.mem")
    with pytest.raises(InvalidInputError, match="inside a transaction"):
        db.export_replay(tmp_path / "bad.log", since=4)  # seq 4 is inside remember_many


def test_tracing_changes_no_state_and_an_edited_read_is_the_divergence(run, tmp_path):
    db, log, _written = run
    with Mnemos.open(
        tmp_path / "plain.mem", embedder=WordEmbedder(), clock=FixedClock(step=1)
    ) as plain:
        _agent_run(plain)
        assert plain.state_hash() == db.state_hash()
        assert not (tmp_path / "plain.mem" / "TRACE").exists()

    def swap_hits(entries):
        """Swap the first two hits of the first traced ask whose two scores differ."""
        for entry in entries:
            if entry[0] != rp.KIND_TRACE:
                continue
            record = msgpack.unpackb(entry[4], raw=False)
            hits = record["hits"]
            if len(hits) >= 2 and abs(hits[0][1] - hits[1][1]) > 1e-5:
                hits[0], hits[1] = hits[1], hits[0]
                entry[4] = msgpack.packb(record, use_bin_type=True)
                return entry[1]
        raise AssertionError("no traced ask with two distinct scores")

    seqs = []
    _rewrite(log, lambda entries: seqs.append(swap_hits(entries)))
    report = Mnemos.replay(log)
    d = report.divergence
    assert d is not None and (d.kind, d.seq) == ("read", seqs[0])
    assert d.expected != d.actual and d.expected.split()[0] == d.actual.split()[1]


def test_a_torn_trace_tail_is_dropped_at_open(tmp_path):
    path = tmp_path / "t.mem"
    with Mnemos.open(path, embedder=None, dim=8, trace=True) as db:
        db.remember("tea", vector=vec(1))
        db.ask(vector=vec(1), top_k=1)
        db.ask(vector=vec(2), top_k=1)
    whole = (path / "TRACE").read_bytes()
    (path / "TRACE").write_bytes(whole[:-7])  # the second trace cut short
    with Mnemos.open(path, embedder=None, trace=True) as db:
        assert len((path / "TRACE").read_bytes()) < len(whole) - 7
        db.ask(vector=vec(3), top_k=1)
        written = db.export_replay(tmp_path / "t.log")
    assert written["traces"] == 2
    report = Mnemos.replay(tmp_path / "t.log")
    assert report.ok and report.traces_verified == 2
    with pytest.raises(InvalidInputError, match="open it writable"):
        Mnemos.open(path, embedder=None, readonly=True, trace=True)


def test_reads_the_graph_answered_replay_through_the_same_graph(tmp_path, monkeypatch):
    """Traced asks the ANN graph answered are asked again through the graph the replayed
    events rebuild (the same one: it is a function of the log); the Python reference,
    which has no graph, counts them as skipped rather than comparing exact answers."""
    from mnemos.index import ann

    monkeypatch.setattr(ann, "ANN_ROWS_MIN", 12)
    path = tmp_path / "g.mem"
    with Mnemos.open(path, embedder=None, dim=8, trace=True) as db:
        ids = db.remember_many([{"text": f"m {i}", "vector": vec(i)} for i in range(200)])
        for i in range(5):
            db.ask(vector=vec(1000 + i), top_k=5)
        db.forget(ids[3])
        db.update(ids[4], vector=vec(77))
        db.ask(vector=vec(77), top_k=5)
        db.export_replay(tmp_path / "g.log")
    paths = {t["path"] for t in rp.trace.read(str(path / "TRACE"))[0]}
    assert paths == ({"ann"} if ann.available() else {"exact"})
    report = Mnemos.replay(tmp_path / "g.log")
    assert report.ok
    assert (report.traces_verified, report.traces_skipped) == (6, 0)
    if ann.available():  # the same log on the Python reference: the graph's reads skipped
        script = (
            "import sys, mnemos; r = mnemos.Mnemos.replay(sys.argv[1]); "
            "print(r.ok, r.traces_verified, r.traces_skipped, r.state_hash)"
        )
        env = {**os.environ, "MNEMOS_BACKEND": "python"}
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / "g.log")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["True", "0", "6", report.state_hash]


def test_a_namespace_exports_one_agents_run(tmp_path):
    """``namespaces=`` keeps the events of memories in them (edges between two of them),
    renumbered: the replay holds exactly those memories and edges, with verified
    checkpoints, in memory and in a database alike."""
    with Mnemos.open(tmp_path / "many.mem", embedder=None, dim=8) as db:
        a = db.namespace("agent_a")
        b = db.namespace("agent_b")
        a1 = a.remember("a one", vector=vec(1))
        b1 = b.remember("b one", vector=vec(2))
        a2, a3 = a.remember_many(
            [{"text": "a two", "vector": vec(3)}, {"text": "a three", "vector": vec(4)}]
        )
        db.remember_many(
            [
                {"text": "b two", "vector": vec(5), "namespace": "agent_b"},
                {"text": "a four", "vector": vec(6), "namespace": "agent_a"},
            ]
        )
        db.connect(a1, a2, relation="next")
        db.connect(a1, b1, relation="across")
        db.update(a3, text="a three, revised", vector=vec(7))
        db.update(b1, text="b one, revised")
        db.forget(a2)
        written = db.export_replay(tmp_path / "a.log", namespaces="agent_a", checkpoint_every=2)
        expected = {
            m.id: (m.text, m.vector.tobytes())
            for m in (db.get(i) for i in db._state.ids if db._state.live_row(i) is not None)
            if m.namespace == "agent_a"
        }
        with pytest.raises(InvalidInputError, match="from seq 1"):
            db.export_replay(tmp_path / "x.log", namespaces=["agent_a"], since=3)
    # init, a1, a2+a3, a four (of the mixed batch), the a1->a2 edge, a3's update, a2's forget
    assert written["events"] == 8 and written["traces"] == 0
    report = Mnemos.replay(tmp_path / "a.log", into=tmp_path / "a.mem")
    assert report.ok and report.checkpoints_verified >= 2
    assert report.state_hash == Mnemos.replay(tmp_path / "a.log").state_hash
    with Mnemos.open(tmp_path / "a.mem", embedder=None) as only_a:
        s = only_a._state
        live = {mid for mid, row in s.rows.items() if not s.dseqs[row]}
        assert live == set(expected)
        assert {
            mid: (only_a.get(mid).text, only_a.get(mid).vector.tobytes()) for mid in live
        } == expected
        assert only_a.stats()["edges"] == 0  # a1->a2 went with a2's forget; a1->b1 was across
        assert [v.op for v in only_a.history(a2)] == ["remember", "forget"]
