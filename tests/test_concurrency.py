"""Concurrency guards "one writer, many readers, threads may share a handle".

A second writer, in another process or the same one, is refused at once with
``DatabaseLockedError`` naming the holder's pid, and the lock goes away with the holder
however it ends (close or SIGKILL); other handles the writer's process opens and closes
(readonly, as-of views, refused writers) never drop it. A readonly handle following a
live writer through ``refresh()`` sees seq only grow, never sees part of a transaction,
sees at every seq exactly the state the writer had at that seq (checked against the
writer's own seq -> state hash ledger over thousands of commits), survives segment
rollovers and compaction deleting the segments under it, and ends at the writer's state
hash. Threads sharing one handle, mixing every verb, lose nothing and see their own
writes: the end state equals a model built from each thread's acknowledged operations.
Everything here runs real processes and threads; nothing is mocked.
"""

from __future__ import annotations

import gc
import json
import os
import queue
import random
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from conftest import vec

from mnemos import DatabaseLockedError, MemoryNotFound, Mnemos

TIMEOUT_S = 30.0  # "it did not hang" guard for anything involving a child process


class Child:
    """A Python child process running ``code`` whose stdout lines we can wait for."""

    def __init__(self, code: str, *args: object):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, args)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, prefix: str, timeout: float = TIMEOUT_S) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"child did not print {prefix!r} in {timeout} s") from None
            if line is None:
                self.proc.wait(TIMEOUT_S)
                assert self.proc.stderr is not None
                raise AssertionError(
                    f"child exited ({self.proc.returncode}) before printing {prefix!r}:\n"
                    + self.proc.stderr.read()
                )
            self.seen.append(line)
            if line.startswith(prefix):
                return line.rstrip("\n")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(TIMEOUT_S)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


HOLD_LOCK = """
import sys
from mnemos import Mnemos
db = Mnemos.open(sys.argv[1], embedder=None, dim=8)
print("READY", flush=True)
sys.stdin.readline()
db.close()
print("CLOSED", flush=True)
"""

TRY_OPEN = """
import sys
from mnemos import DatabaseLockedError, Mnemos
try:
    Mnemos.open(sys.argv[1], embedder=None).close()
    print("OPENED")
except DatabaseLockedError as exc:
    print("LOCKED", exc)
"""


def try_open_elsewhere(path: Path) -> str:
    """Open ``path`` for writing in a fresh process: "OPENED", or "LOCKED <message>".

    Any other error fails the child (and so the caller); the timeout makes an open that
    waited for the lock instead of refusing a failure rather than a hang.
    """
    proc = subprocess.run(
        [sys.executable, "-c", TRY_OPEN, str(path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def assert_locked_elsewhere(path: Path, holder_pid: int) -> None:
    """Another process is refused the writer lock, told which pid holds it."""
    outcome = try_open_elsewhere(path)
    assert outcome.startswith("LOCKED "), outcome
    assert f"(pid {holder_pid})" in outcome, outcome


@pytest.mark.parametrize("ending", ["close", "sigkill"])
def test_writer_lock_refuses_a_second_process_until_the_holder_ends(db_path: Path, ending: str):
    holder = Child(HOLD_LOCK, db_path)
    try:
        holder.expect("READY")
        # The holder keeps the lock until told to let go, so a blocking open would never
        # return: raising at all shows the refusal does not wait. First from a third
        # process under a timeout (a hang is a failure), then from this one.
        assert_locked_elsewhere(db_path, holder.proc.pid)
        with pytest.raises(DatabaseLockedError) as info:
            Mnemos.open(db_path, embedder=None)
        assert str(holder.proc.pid) in str(info.value)
        assert holder.proc.poll() is None  # it really was held all along
        with Mnemos.open(
            db_path, embedder=None, readonly=True
        ) as reader:  # readers are never locked out
            assert reader.seq == 1
        if ending == "close":
            holder.send("")
            holder.expect("CLOSED")
            assert holder.proc.wait(TIMEOUT_S) == 0
        else:
            holder.proc.kill()
            holder.proc.wait(TIMEOUT_S)
        with Mnemos.open(db_path, embedder=None) as db:
            db.remember("the lock is free again", vector=vec(1))
            assert db.seq == 2
    finally:
        holder.stop()


def test_other_handles_in_the_same_process_keep_the_writer_lock(db_path: Path):
    """The lock must outlive every other descriptor this process opens and closes on the
    database: POSIX ``fcntl`` locks would not (closing any descriptor of the file drops
    the process's lock), ``flock`` locks belong to the one open file that took them."""
    db = Mnemos.open(db_path, embedder=None, dim=8)
    try:
        first = db.remember("the writer's first memory", vector=vec(1))
        # Readonly handles, closed explicitly, dropped to the garbage collector, and an
        # as-of view (a readonly handle of its own), each having read the database.
        with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
            reader.refresh()
            assert reader.get(first).text == "the writer's first memory"
        dropped = Mnemos.open(db_path, embedder=None, readonly=True)
        assert dropped.seq == db.seq
        del dropped
        gc.collect()
        view = db.as_of(1)
        assert view.stats()["memories"] == 0
        view.close()
        assert_locked_elsewhere(db_path, os.getpid())
        db.remember("written after the readers closed", vector=vec(2))
        # Writable opens refused here close the descriptor they opened on LOCK.
        for _ in range(2):
            with pytest.raises(DatabaseLockedError) as info:
                Mnemos.open(db_path, embedder=None)
            assert "another handle in this process" in str(info.value)
        assert_locked_elsewhere(db_path, os.getpid())
        db.remember("written after the refused writers", vector=vec(3))
        assert db.seq == 4
    finally:
        db.close()
    assert try_open_elsewhere(db_path) == "OPENED"
    with Mnemos.open(db_path, embedder=None) as again:
        assert again.seq == 4
        assert again.get(first).text == "the writer's first memory"


FOLLOWED_WRITER = """
import sys, time
import numpy as np
from mnemos import Mnemos
path, batches, compact_every = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(7)
db = Mnemos.open(path, embedder=None, dim=8, segment_bytes=4096, snapshot_every_events=400)
print("READY", flush=True)
for b in range(batches):
    db.remember_many([
        {"text": f"batch {b} item {j}", "vector": rng.standard_normal(8).astype(np.float32),
         "metadata": {"batch": b}}
        for j in range(50)
    ])
    if compact_every and (b + 1) % compact_every == 0:
        db.compact()
    time.sleep(0.004)
print("DONE", db.seq, db.state_hash(), db.stats()["memories"], flush=True)
db.close()
"""

BATCH = 50


@pytest.mark.parametrize("compact_every", [0, 3], ids=["append", "compacting"])
def test_readonly_follows_a_live_writer(db_path: Path, compact_every: int):
    batches = 60
    writer = Child(FOLLOWED_WRITER, db_path, batches, compact_every)
    try:
        writer.expect("READY")
        reader = Mnemos.open(db_path, embedder=None, readonly=True)
        last_seq = reader.seq
        seen_counts = set()
        deadline = time.monotonic() + TIMEOUT_S
        while writer.proc.poll() is None and time.monotonic() < deadline:
            reader.refresh()
            stats = reader.stats()
            assert stats["seq"] >= last_seq, "seq went backwards"
            last_seq = stats["seq"]
            # Only whole batches: the live count is always a multiple of the batch size,
            # and without compaction (one event of its own) seq is 1 + a multiple of it.
            assert stats["memories"] % BATCH == 0, f"partial batch visible: {stats}"
            if not compact_every:
                assert (stats["seq"] - 1) % BATCH == 0, f"partial batch visible: {stats}"
            seen_counts.add(stats["memories"])
        done = writer.expect("DONE").split()
        assert writer.proc.wait(TIMEOUT_S) == 0
        final_seq, final_hash, final_count = int(done[1]), done[2], int(done[3])
        assert final_count == batches * BATCH
        reader.refresh()
        assert reader.seq == final_seq
        assert reader.state_hash() == final_hash
        assert reader.stats()["memories"] == final_count
        assert len(seen_counts) >= 2, "the reader never saw the writer in progress"
        reader.close()
        with Mnemos.open(db_path, embedder=None, readonly=True) as fresh:
            assert fresh.state_hash() == final_hash
    finally:
        writer.stop()


LEDGER_WRITER = """
import json, sys
import numpy as np
from mnemos import Mnemos
path, total, ledger_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
compact_after = {int(n) for n in sys.argv[4].split(",")}
rng = np.random.default_rng(11)
db = Mnemos.open(path, embedder=None, dim=8, durability="normal", segment_bytes=4096,
                 snapshot_every_events=700, log_retention="delete")
ledger = {db.seq: [0, db.state_hash()]}  # seq -> (memories, state hash) after that commit
print("READY", flush=True)
for i in range(total):
    db.remember(f"memory {i}", vector=rng.standard_normal(8).astype(np.float32), id=f"i{i}")
    ledger[db.seq] = [i + 1, db.state_hash()]
    if (i + 1) % 500 == 0:
        db.checkpoint()
    if i + 1 in compact_after:
        db.compact()
        ledger[db.seq] = [i + 1, db.state_hash()]
        print("PAUSED", db.seq, flush=True)  # until the test has seen the follower here
        sys.stdin.readline()
with open(ledger_path, "w") as f:
    json.dump(ledger, f)
print("DONE", db.seq, db.state_hash(), flush=True)
db.close()
"""

PREFIX_FOLLOWER = """
import json, sys, time
from mnemos import MemoryNotFound, Mnemos
path, final_seq, seen_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + float(sys.argv[4])
db = Mnemos.open(path, embedder=None, readonly=True)
print("FOLLOWING", flush=True)

def text(k):
    try:
        return db.get(f"i{k}").text
    except MemoryNotFound:
        return None

seen, last = [], None  # one entry per distinct seq observed
while True:
    seq = db.seq
    if seq != last:
        n = db.stats()["memories"]
        # The live set is {0..n-1}: each of those is there with its text, and i<n> is not.
        wrong = [k for k in range(n) if text(k) != f"memory {k}"][:5]
        seen.append([seq, n, db.state_hash(), wrong, text(n)])
        print("SEQ", seq, flush=True)
        last = seq
        time.sleep(0.005)  # after an O(n) check: leave the writer CPU on a small machine
    if seq >= final_seq or time.monotonic() > deadline:
        break
    if not db.refresh():
        time.sleep(0.001)
with open(seen_path, "w") as f:
    json.dump(seen, f)
db.close()
print("DONE", flush=True)
"""


def test_readonly_process_sees_only_committed_prefixes(db_path: Path, tmp_path: Path):
    """A follower process refreshing behind a writer process through 2,000 commits (one
    remember each), automatic and explicit snapshots, segment rollovers, pruning and two
    compactions: at every seq it observes, the live set is exactly the first n memories
    and the state hash is the one the writer had at that seq. (The writer hashes after
    every commit, which costs O(n) each: 2,000 keeps the test a few seconds.)"""
    total, compact_after = 2000, (800, 1700)
    final_seq = 1 + total + len(compact_after)  # the init event, one per remember, compacts
    ledger_path, seen_path = tmp_path / "ledger.json", tmp_path / "seen.json"
    writer = Child(LEDGER_WRITER, db_path, total, ledger_path, ",".join(map(str, compact_after)))
    follower: Child | None = None
    paused_at: list[int] = []
    try:
        writer.expect("READY")
        follower = Child(PREFIX_FOLLOWER, db_path, final_seq, seen_path, 4 * TIMEOUT_S)
        follower.expect("FOLLOWING")
        for _ in compact_after:
            # The writer waits just after a compaction deleted the log under the follower,
            # which must get there.
            paused_at.append(int(writer.expect("PAUSED").split()[1]))
            while int(follower.expect("SEQ").split()[1]) < paused_at[-1]:
                pass
            if len(paused_at) == 1:  # the writer mid-run holds the lock
                assert_locked_elsewhere(db_path, writer.proc.pid)
            writer.send("")
        done = writer.expect("DONE").split()
        assert writer.proc.wait(TIMEOUT_S) == 0
        follower.expect("DONE")
        assert follower.proc.wait(TIMEOUT_S) == 0
    finally:
        writer.stop()
        if follower is not None:
            follower.stop()
    final_hash = done[2]
    assert int(done[1]) == final_seq
    ledger = {int(seq): tuple(v) for seq, v in json.loads(ledger_path.read_text()).items()}
    assert sorted(ledger) == list(range(1, final_seq + 1))
    seen = json.loads(seen_path.read_text())
    seqs, counts = [o[0] for o in seen], [o[1] for o in seen]
    assert seqs == sorted(set(seqs)), f"seq went backwards: {seqs}"
    assert counts == sorted(counts), f"the live count went down: {counts}"
    for seq, n, digest, wrong, beyond in seen:
        assert not wrong and beyond is None, (
            f"at seq {seq} the follower's {n} live memories are not memory 0..{n - 1}: "
            f"wrong or missing {wrong}, i{n} is {beyond!r}"
        )
        assert (n, digest) == ledger[seq], f"at seq {seq} the follower's state differs"
    assert set(paused_at) <= set(seqs)
    assert seqs[-1] == final_seq
    assert seen[-1][1:3] == [total, final_hash]
    with Mnemos.open(db_path, embedder=None, readonly=True) as fresh:
        assert (fresh.seq, fresh.state_hash()) == (final_seq, final_hash)


def test_readonly_refresh_after_compaction_deleted_its_segment(db_path: Path):
    writer = Mnemos.open(
        db_path, embedder=None, dim=8, segment_bytes=4096, snapshot_every_events=None
    )
    reader = Mnemos.open(db_path, embedder=None, readonly=True)
    try:
        for round_ in range(3):
            writer.remember_many(
                [{"text": f"r{round_} i{i}", "vector": vec(round_ * 100 + i)} for i in range(60)]
            )
        reader.refresh()
        assert reader.state_hash() == writer.state_hash()
        first_segment = db_path / "wal" / f"{1:020d}.wal"
        for round_ in range(2):
            writer.forget(f"m{2 + round_}")
            writer.compact()
            writer.remember("after compaction", vector=vec(1000 + round_))
        assert not first_segment.exists()
        reader.refresh()
        assert reader.seq == writer.seq
        assert reader.state_hash() == writer.state_hash()
    finally:
        reader.close()
        writer.close()


def test_readonly_open_beside_a_compacting_writer(db_path: Path):
    """Each compaction writes a new snapshot, then deletes the previous one and the
    segments it covered. A reader opening (or re-opening from a refresh) meanwhile must
    retry rather than report the deleted files as corruption."""
    writer = Child(FOLLOWED_WRITER, db_path, 100, 1)
    failures: list[str] = []
    opens = 0
    try:
        writer.expect("READY")
        deadline = time.monotonic() + TIMEOUT_S
        while writer.proc.poll() is None and time.monotonic() < deadline:
            try:
                with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
                    assert reader.stats()["memories"] % BATCH == 0
                opens += 1
            except Exception as exc:
                failures.append(repr(exc))
        final_hash = writer.expect("DONE").split()[2]
    finally:
        writer.stop()
    assert opens > 0
    assert not failures, f"{len(failures)} of {opens + len(failures)} opens failed: {failures[:3]}"
    with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
        assert reader.state_hash() == final_hash


class ThreadModel:
    """What one worker thread knows it did: the memories it was told were stored (id ->
    last acknowledged text, and the seed of each one's vector), the ones it was told were
    forgotten, its live edges, and how many events its acknowledged calls logged."""

    def __init__(self) -> None:
        self.live: dict[str, str] = {}
        self.seeds: dict[str, int] = {}
        self.gone: set[str] = set()
        self.edges: set[tuple[str, str, str]] = set()
        self.ids: list[str] = []  # every id remember handed out, in order
        self.events = 0
        self.calls: dict[str, int] = {}


OPS = {  # verb -> weight in the mix
    "remember": 20,
    "remember_many": 8,
    "update": 12,
    "forget": 8,
    "connect": 8,
    "get": 12,
    "ask": 12,
    "gone": 8,  # a verb on a memory this thread forgot: MemoryNotFound, nothing written
    "checkpoint": 3,
    "compact": 1,
}
OPS_MAX = 600  # per thread; the deadline usually ends the run first
WORKLOAD_S = 2.0  # bounds the workload only: nothing asserts how much got done


def run_worker(db: Mnemos, t: int, m: ThreadModel, deadline: float, ops_min: int) -> None:
    """A seeded mix of every verb on one shared handle. Updates, forgets and edges touch
    only this thread's memories (tagged ``{"thread": t}``), so ``m`` stays exact whatever
    the other threads do, and every read can be checked against it on the spot. The
    verbs a thread runs depend only on its seed, never on the other threads: the first
    ``ops_min`` of the eight threads include every verb."""
    rng = random.Random(t)
    verbs, weights = list(OPS), list(OPS.values())
    seed = t * 1_000_000

    def remembered(mid: str, s: int) -> None:
        m.live[mid] = f"thread {t} seed {s}"
        m.seeds[mid] = s
        m.ids.append(mid)

    for k in range(OPS_MAX):
        if k >= ops_min and time.monotonic() > deadline:
            break
        verb = rng.choices(verbs, weights)[0]
        if verb not in ("remember", "remember_many", "checkpoint", "compact") and not m.live:
            verb = "remember"
        if verb == "gone" and not m.gone:
            verb = "get"
        if verb == "connect" and len(m.live) < 2:
            verb = "remember"
        m.calls[verb] = m.calls.get(verb, 0) + 1
        mine = sorted(m.live)
        if verb == "remember":
            seed += 1
            mid = db.remember(f"thread {t} seed {seed}", vector=vec(seed), metadata={"thread": t})
            remembered(mid, seed)
            m.events += 1
        elif verb == "remember_many":
            seeds = [seed + 1 + i for i in range(rng.randint(1, 5))]
            seed = seeds[-1]
            ids = db.remember_many(
                [
                    {"text": f"thread {t} seed {s}", "vector": vec(s), "metadata": {"thread": t}}
                    for s in seeds
                ]
            )
            assert len(ids) == len(seeds)
            for mid, s in zip(ids, seeds, strict=True):
                remembered(mid, s)
            m.events += len(seeds)
        elif verb == "update":
            mid = rng.choice(mine)
            text = f"thread {t} seed {m.seeds[mid]} version {k}"
            db.update(mid, text=text)
            m.live[mid] = text
            m.events += 1
        elif verb == "forget":
            mid = rng.choice(mine)
            db.forget(mid)
            del m.live[mid]
            m.gone.add(mid)
            m.edges = {e for e in m.edges if mid not in e[:2]}
            m.events += 1
        elif verb == "connect":
            a, b = rng.sample(mine, 2)
            relation = rng.choice(["related", "follows"])
            db.connect(a, b, relation, weight=rng.random())
            m.edges.add((a, b, relation))
            m.events += 1
        elif verb == "get":
            mid = rng.choice(mine)
            got = db.get(mid)
            assert (got.id, got.text, got.metadata) == (mid, m.live[mid], {"thread": t})
        elif verb == "ask":
            # Only this thread writes memories tagged with it, so the filtered answer is
            # known exactly: its live memories ranked by cosine, ties by id.
            query = vec(rng.randrange(1 << 30))
            top_k = rng.randint(1, 8)
            hits = db.ask(vector=query, top_k=top_k, where={"thread": t}, exact=True)
            vectors = np.array([vec(m.seeds[mid]) for mid in mine], dtype=np.float64)
            q = query.astype(np.float64)
            cosines = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
            expected = sorted(zip(mine, cosines, strict=True), key=lambda p: (-p[1], p[0]))
            assert [h.id for h in hits] == [mid for mid, _ in expected[:top_k]]
            assert [h.text for h in hits] == [m.live[h.id] for h in hits]
            assert [h.score for h in hits] == pytest.approx([c for _, c in expected[:top_k]])
        elif verb == "gone":
            mid = rng.choice(sorted(m.gone))
            refused = rng.choice(["forget", "update", "get", "connect"])
            with pytest.raises(MemoryNotFound) as info:
                if refused == "forget":
                    db.forget(mid)
                elif refused == "update":
                    db.update(mid, text="never stored")
                elif refused == "get":
                    db.get(mid)
                else:
                    db.connect(rng.choice(mine), mid)
            assert type(info.value) is MemoryNotFound, repr(info.value)
        elif verb == "checkpoint":
            before = db.seq
            assert before <= db.checkpoint() <= db.seq
        elif verb == "compact":
            db.compact()
            m.events += 1


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_threads_share_one_writable_handle(db_path: Path, durability: str):
    threads_n, ops_min = 8, 40
    db = Mnemos.open(
        db_path,
        embedder=None,
        dim=8,
        durability=durability,
        segment_bytes=4096,
        snapshot_every_events=150,
    )
    models = [ThreadModel() for _ in range(threads_n)]
    errors: list[str] = []
    barrier = threading.Barrier(threads_n)

    def work(t: int) -> None:
        try:
            barrier.wait()
            run_worker(db, t, models[t], time.monotonic() + WORKLOAD_S, ops_min)
        except BaseException:  # reported below, in the main thread
            errors.append(f"thread {t}:\n{traceback.format_exc()}")

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(TIMEOUT_S)
    try:
        assert not any(w.is_alive() for w in workers), "a worker thread hung"
        assert not errors, "\n".join(errors)
        calls = {verb: sum(m.calls.get(verb, 0) for m in models) for verb in OPS}
        assert all(calls.values()), f"some verb never ran: {calls}"
        all_ids = [mid for m in models for mid in m.ids]
        assert len(all_ids) == len(set(all_ids)), "an id was handed out twice"
        live = {mid: text for m in models for mid, text in m.live.items()}
        edges = {e for m in models for e in m.edges}

        def check(handle: Mnemos) -> None:
            for mid, text in live.items():
                assert handle.get(mid).text == text
            for m in models:
                for mid in m.gone:
                    with pytest.raises(MemoryNotFound):
                        handle.get(mid)
                for a, b, relation in m.edges:
                    assert any(
                        n.id == b and n.relation == relation
                        for n in handle.neighbors(a, relation=relation, direction="out")
                    )
            # Every model memory is live, and nothing else is.
            stats = handle.stats()
            assert (stats["memories"], stats["edges"]) == (len(live), len(edges))
            # Acknowledged calls logged their events; refused ones logged nothing.
            assert handle.seq == 1 + sum(m.events for m in models)

        check(db)
        expected = db.state_hash()
    finally:
        db.close()
    with Mnemos.open(db_path, embedder=None, readonly=True) as reader:
        assert reader.state_hash() == expected
    with Mnemos.open(db_path, embedder=None) as again:
        assert again.state_hash() == expected
        check(again)
