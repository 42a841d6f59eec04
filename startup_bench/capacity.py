"""Writes at a capacity bound, and backups: ``python -m startup_bench.capacity``.

For each size N, a database of N memories (384-d random vectors, ~40-byte texts, importance
spread over [0, 1], ``durability="off"`` so the figures are the engine's, not the disk's) is
written with ``remember_many``. Then ``--writes`` single ``remember`` calls are timed three
ways: with no bound (the baseline), and at ``set_capacity(N)`` under each policy, where
every write also evicts one memory in its transaction. Reported: writes per second and the
eviction's cost per write. Last, ``backup`` of the whole database (verified) is timed.
Each figure is the median of ``--runs`` runs.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from typing import Any

import numpy as np

from mnemos import Mnemos

from . import machine
from .cli import _sizes
from .stats import add_json_option, emit, progress, summarize

DIM = 384
POLICIES = ("importance-then-age", "least-recently-recalled")


def _build(path: str, n: int) -> None:
    rng = np.random.default_rng(n)
    with Mnemos.open(path, embedder=None, dim=DIM, durability="off") as db:
        for start in range(0, n, 10_000):
            count = min(10_000, n - start)
            vectors = rng.standard_normal((count, DIM)).astype(np.float32)
            importance = rng.random(count)
            db.remember_many(
                {"text": f"memory {start + i}", "vector": vectors[i], "importance": imp}
                for i, imp in enumerate(importance.tolist())
            )
        db.checkpoint()


def _writes_per_s(path: str, writes: int, policy: str | None) -> float:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((writes, DIM)).astype(np.float32)
    with Mnemos.open(path, embedder=None, durability="off", ann_background=False) as db:
        if policy is not None:
            db.set_capacity(db.stats()["memories"], policy=policy)
        started = time.perf_counter()
        for i in range(writes):
            db.remember(f"new {i}", vector=vectors[i], importance=0.5)
        elapsed = time.perf_counter() - started
        if policy is not None:
            assert db.stats()["evicted"] == writes
    return writes / elapsed


def measure(n: int, writes: int, runs: int) -> dict[str, Any]:
    row: dict[str, Any] = {"memories": n, "writes": writes}
    with tempfile.TemporaryDirectory() as tmp:
        base = f"{tmp}/base.mem"
        _build(base, n)
        for label, policy in (("none", None), *((p, p) for p in POLICIES)):
            rates = []
            for run in range(runs):
                path = f"{tmp}/run-{label}-{run}.mem"
                shutil.copytree(base, path)
                rates.append(_writes_per_s(path, writes, policy))
                shutil.rmtree(path)
            row[f"writes_per_s_{label}"] = summarize(rates)["p50"]
        for policy in POLICIES:
            extra = 1 / row[f"writes_per_s_{policy}"] - 1 / row["writes_per_s_none"]
            row[f"eviction_us_{policy}"] = extra * 1e6
        seconds = []
        with Mnemos.open(base, embedder=None, readonly=True) as db:
            for run in range(runs):
                result = db.backup(f"{tmp}/backup-{run}.mem")
                seconds.append(result["seconds"])
                row["backup_bytes"] = result["bytes"]
        row["backup_s"] = summarize(seconds)["p50"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m startup_bench.capacity", description=__doc__)
    p.add_argument("--sizes", type=_sizes, default=[10_000, 100_000], help="memories")
    p.add_argument("--writes", type=int, default=2000, help="timed writes per run")
    p.add_argument("--runs", type=int, default=3, help="runs per figure (default 3)")
    add_json_option(p)
    args = p.parse_args(argv)
    results: dict[str, Any] = {
        "command": "python -m startup_bench.capacity " + shlex.join(argv or sys.argv[1:]),
        "machine": machine.describe(tempfile.gettempdir()),
        "rows": [],
    }
    for n in args.sizes:
        progress(f"writes at capacity and backup, {n:,} memories ...")
        results["rows"].append(measure(n, args.writes, args.runs))
    results["machine"]["load_average_end"] = machine.load_average()
    return emit(results, args.json, lambda: markdown(results))


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"command: `{results['command']}`; load {results['machine']['load_average_start']}",
        "| memories | writes/s, no bound | at bound, importance-then-age | eviction µs "
        "| at bound, least-recently-recalled | eviction µs | backup s | backup MB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['memories']:,} | {r['writes_per_s_none']:,.0f} "
            f"| {r['writes_per_s_importance-then-age']:,.0f} "
            f"| {r['eviction_us_importance-then-age']:,.0f} "
            f"| {r['writes_per_s_least-recently-recalled']:,.0f} "
            f"| {r['eviction_us_least-recently-recalled']:,.0f} "
            f"| {r['backup_s']:.2f} | {r['backup_bytes'] / 1e6:,.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
