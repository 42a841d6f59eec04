"""Replay-log export and replay rates: ``python -m startup_bench.replay``.

For each size, the seeded database of ``seed.py`` (one ``remember`` event per memory,
384-d vectors, ~100-byte texts) is exported with ``export_replay`` (which also applies every
event to compute its state-hash checkpoints) and the log replayed with ``Mnemos.replay``, in
memory, with and without ``verify``. Reported: events per second for each, the log's bytes
per event (zstd over the raw event bytes, which are mostly float32 vectors and barely
compress) against the database log's, and the time of one ``state_hash()`` at that size
(what each checkpoint costs). Each figure is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from typing import Any

from mnemos import Mnemos

from . import machine
from .cli import _sizes
from .seed import seed
from .stats import add_json_option, emit, progress, summarize

DEFAULT_DIR = "/tmp/mnemos-bench"


def measure(path: str, memories: int, runs: int, checkpoint_every: int) -> dict[str, Any]:
    export_s, replay_s, unverified_s, hash_s = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "run.log")
        with Mnemos.open(path, embedder=None, readonly=True, ann_background=False) as db:
            events = db.seq
            for _ in range(runs):
                started = time.perf_counter()
                written = db.export_replay(log, checkpoint_every=checkpoint_every)
                export_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            expected = db.state_hash()
            hash_s.append(time.perf_counter() - started)
            log_bytes = sum(
                os.path.getsize(os.path.join(path, "wal", n))
                for n in os.listdir(os.path.join(path, "wal"))
            )
        for verify, out in ((True, replay_s), (False, unverified_s)):
            for _ in range(runs):
                started = time.perf_counter()
                report = Mnemos.replay(log, verify=verify)
                out.append(time.perf_counter() - started)
                if report.state_hash != expected or not report.ok:
                    raise SystemExit(f"replay of {path} diverged: {report.divergence}")
    export, replayed, unverified = summarize(export_s), summarize(replay_s), summarize(unverified_s)
    return {
        "memories": memories,
        "events": events,
        "checkpoint_every": checkpoint_every,
        "checkpoints": written["checkpoints"],
        "export_s_p50": export["p50"],
        "export_events_per_s": events / export["p50"],
        "replay_s_p50": replayed["p50"],
        "replay_events_per_s": events / replayed["p50"],
        "replay_unverified_events_per_s": events / unverified["p50"],
        "state_hash_ms": hash_s[0] * 1000.0,
        "log_bytes_per_event": written["bytes"] / events,
        "db_log_bytes_per_event": log_bytes / events,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m startup_bench.replay", description=__doc__)
    p.add_argument("--sizes", type=_sizes, default=[100_000], help="memories (default 100k)")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    p.add_argument("--checkpoint-every", type=int, default=10_000)
    p.add_argument("--dir", default=DEFAULT_DIR, help=f"seeded databases (default {DEFAULT_DIR})")
    add_json_option(p)
    args = p.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python -m startup_bench.replay " + shlex.join(argv or sys.argv[1:]),
        "machine": machine.describe(args.dir),
        "rows": [],
    }
    for n in args.sizes:
        db = seed(args.dir, n, log=progress)
        progress(f"export and replay {n:,} events ...")
        results["rows"].append(measure(db.snap_path, n, args.runs, args.checkpoint_every))
    results["machine"]["load_average_end"] = machine.load_average()
    return emit(results, args.json, lambda: markdown(results))


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"command: `{results['command']}`; load {results['machine']['load_average_start']}",
        "| events | export events/s | replay events/s (verify) | (no verify) | state_hash ms "
        "| checkpoints | replay log B/event | db log B/event |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['events']:,} | {r['export_events_per_s']:,.0f} "
            f"| {r['replay_events_per_s']:,.0f} | {r['replay_unverified_events_per_s']:,.0f} "
            f"| {r['state_hash_ms']:.0f} | {r['checkpoints']} "
            f"| {r['log_bytes_per_event']:,.0f} | {r['db_log_bytes_per_event']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
