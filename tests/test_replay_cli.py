"""The replay commands: ``mnemos export-replay``, ``replay``, ``diff`` and ``log``.

Guards: an exported run replays clean (exit 0) and an edited one reports its divergence
(exit 2); ``diff`` names the first diverging event and the memories only in one side or
changed, between logs and databases alike (exit 4 when they differ, 0 when not); ``log``
prints every event, as text or JSON lines, and ``--follow`` (a real subprocess) prints
events a writer commits after it started.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading

from conftest import FixedClock, vec

from mnemos import Mnemos
from mnemos.cli import main


def _db(path, notes: int, *, extra: str | None = None) -> None:
    with Mnemos.open(path, embedder=None, dim=8, clock=FixedClock(step=1)) as db:
        a = db.remember("tea", vector=vec(1))
        db.remember_many([{"text": f"note {i}", "vector": vec(10 + i)} for i in range(notes)])
        db.update(a, text="green tea")
        if extra:
            db.remember(extra, vector=vec(99))


def test_export_then_replay_from_the_shell(tmp_path, capsys):
    _db(tmp_path / "a.mem", 5)
    log = tmp_path / "a.log"
    assert main(["export-replay", str(tmp_path / "a.mem"), str(log), "--json"]) == 0
    written = json.loads(capsys.readouterr().out)
    assert written["events"] == 8 and log.exists()
    assert main(["replay", str(log), "--into", str(tmp_path / "b.mem"), "--table"]) == 0
    out = capsys.readouterr().out
    assert "replayed 8 events" in out and written["state_hash"] in out
    assert main(["replay", str(log), "--stop-at", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["events_applied"] == 3 and report["ok"] and not report["complete"]
    assert main(["replay", str(tmp_path / "missing.log")]) == 1
    capsys.readouterr()
    ns_log = str(tmp_path / "ns.log")
    assert (
        main(["export-replay", str(tmp_path / "a.mem"), ns_log, "--namespace", "x", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["events"] == 1  # only init: nothing in "x"


def test_diff_names_the_first_diverging_event_and_the_memories(tmp_path, capsys):
    _db(tmp_path / "a.mem", 5)
    _db(tmp_path / "b.mem", 5, extra="only in b")
    _db(tmp_path / "c.mem", 5)
    with Mnemos.open(tmp_path / "c.mem", embedder=None) as db:
        db.update("m2", text="changed in c")
    assert main(["diff", str(tmp_path / "a.mem"), str(tmp_path / "a.mem")]) == 0
    capsys.readouterr()
    assert main(["diff", str(tmp_path / "a.mem"), str(tmp_path / "b.mem"), "--json"]) == 4
    result = json.loads(capsys.readouterr().out)
    assert result["first_diverging_seq"] == 9 and result["only_in_b"] == ["m9"]
    assert result["only_in_a"] == [] and result["changed"] == []
    # A replay log against a database: the same comparison.
    assert main(["export-replay", str(tmp_path / "a.mem"), str(tmp_path / "a.log")]) == 0
    capsys.readouterr()
    assert main(["diff", str(tmp_path / "a.log"), str(tmp_path / "c.mem"), "--json"]) == 4
    result = json.loads(capsys.readouterr().out)
    assert result["first_diverging_seq"] == 9 and result["changed"] == ["m2"]


def test_log_prints_every_event(tmp_path, capsys):
    _db(tmp_path / "a.mem", 2)
    assert main(["log", str(tmp_path / "a.mem"), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["seq"], e["t"]) for e in lines] == [
        (1, "init"),
        (2, "remember"),
        (3, "remember"),
        (4, "remember"),
        (5, "update"),
    ]
    assert lines[1]["text"] == "tea" and lines[1]["dim"] == 8 and "vec" not in lines[1]
    assert main(["log", str(tmp_path / "a.mem"), "--since", "5", "--table"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and "update" in out[0] and "green tea" in out[0]
    # Piped (not a terminal), without --json: JSON lines all the same.
    assert main(["log", str(tmp_path / "a.mem"), "--since", "5"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert json.loads(line)["text"] == "green tea"


def test_log_follow_prints_what_a_writer_commits_later(tmp_path):
    path = tmp_path / "a.mem"
    _db(path, 1)
    follower = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mnemos.cli",
            "log",
            str(path),
            "--follow",
            "--json",
            "--interval",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    # A hang guard, not a speed requirement: a follower that never prints is killed, its
    # output ends, and the reads below fail instead of waiting forever.
    watchdog = threading.Timer(60, follower.kill)
    watchdog.start()
    try:
        seen = [json.loads(follower.stdout.readline()) for _ in range(4)]  # the history
        assert seen[-1]["t"] == "update"
        with Mnemos.open(path, embedder=None) as db:
            db.remember("while following", vector=vec(5))
        event = json.loads(follower.stdout.readline())
        assert (event["seq"], event["text"]) == (5, "while following")
    finally:
        watchdog.cancel()
        follower.kill()
        follower.wait()
