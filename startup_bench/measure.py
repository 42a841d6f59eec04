"""The measurements: import and open in fresh processes, ask latency, write throughput.

Open and import are timed in a new interpreter each run because that is what a user
pays: nothing is cached in the process, and the child imports mnemos before the clock
starts so that ``open_ms`` is ``Mnemos.open(path, embedder=None)`` alone, call to ready.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from mnemos import Mnemos
from mnemos.index.ann import ANN_ROWS_MIN

from .seed import DIM, make_items, query_vectors
from .stats import BenchError, summarize

WARMUP_RUNS = 1  # a discarded first run: the interpreter's own files into the page cache
ASK_WARMUP = 5
ASK_QUERIES = 100
ASK_TOP_K = 10
WRITE_BATCH_ITEMS = 1000
# (verb, durability, items): "full" pays one fdatasync per call, so fewer calls suffice.
WRITE_CASES = (
    ("remember", "full", 2_000),
    ("remember", "normal", 20_000),
    ("remember_many", "full", 20_000),
)

# Runs in a fresh interpreter: argv[1] is the database path. Prints one JSON line.
OPEN_CHILD = """\
import json, sys, time
import mnemos
started = time.perf_counter()
db = mnemos.Mnemos.open(sys.argv[1], embedder=None)
open_ms = (time.perf_counter() - started) * 1000.0
stats = db.stats()
db.close()
print(json.dumps({
    "open_ms": open_ms,
    "open": stats["open"],
    "memories": stats["memories"],
    "seq": stats["seq"],
    "backend": stats["backend"],
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
    "peak_rss_mib": next(
        int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")
    ) / 1024.0,
}))
"""

# Runs in a fresh interpreter: argv[1] is the module to import. Nothing else is imported
# before the clock starts.
IMPORT_CHILD = """\
import sys, time
started = time.perf_counter()
__import__(sys.argv[1])
import_ms = (time.perf_counter() - started) * 1000.0
import json
print(json.dumps({"import_ms": import_ms, "modules": len(sys.modules)}))
"""

# Runs in a fresh interpreter: the cost of touching freshly allocated memory (page faults).
# High on some VMs, where it dominates loading a large snapshot and makes open bimodal.
FIRST_TOUCH_CHILD = """\
import json, time
import numpy as np
size = 256 * 1024 * 1024
started = time.perf_counter()
np.empty(size, dtype=np.uint8).fill(1)
elapsed_ms = (time.perf_counter() - started) * 1000.0
print(json.dumps({"first_touch_ms_per_gib": elapsed_ms * (1024**3 / size)}))
"""

# Runs in a fresh interpreter: argv[1] is the database path, argv[2] how many entries.
PROFILE_CHILD = """\
import cProfile, io, json, pstats, sys
import mnemos
profile = cProfile.Profile()
profile.enable()
mnemos.Mnemos.open(sys.argv[1], embedder=None).close()
profile.disable()
out = io.StringIO()
pstats.Stats(profile, stream=out).strip_dirs().sort_stats("tottime").print_stats(int(sys.argv[2]))
print(json.dumps({"profile": out.getvalue()}))
"""
PROFILE_ENTRIES = 15


def run_child(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise BenchError(f"child process failed ({proc.returncode}):\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def first_touch_ms_per_gib(runs: int) -> dict[str, float]:
    ms = summarize([run_child(FIRST_TOUCH_CHILD)["first_touch_ms_per_gib"] for _ in range(runs)])
    return {"first_touch_ms_per_gib_p50": ms["p50"], "first_touch_ms_per_gib_max": ms["max"]}


def evict_from_page_cache(path: str) -> None:
    """Drop one database's files from the page cache (sync first: only clean pages go)."""
    for root, _dirs, names in os.walk(path):
        for name in names:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def import_times(module: str, runs: int) -> dict[str, Any]:
    samples = [run_child(IMPORT_CHILD, module) for _ in range(WARMUP_RUNS + runs)][WARMUP_RUNS:]
    ms = summarize([s["import_ms"] for s in samples])
    return {
        "module": module,
        "import_ms_p50": ms["p50"],
        "import_ms_p90": ms["p90"],
        "modules_loaded": samples[-1]["modules"],
    }


def open_times(
    path: str, runs: int, *, memories: int, snapshot: bool, cold: bool
) -> dict[str, Any]:
    """``Mnemos.open(path, embedder=None)`` in ``runs`` fresh processes, with the split open reports."""
    samples = []
    for i in range(WARMUP_RUNS + runs):
        if cold:
            evict_from_page_cache(path)
        out = run_child(OPEN_CHILD, path)
        if out["memories"] != memories:
            raise BenchError(f"{path} holds {out['memories']} memories, expected {memories}")
        opened = out["open"]
        # The fresh-snapshot database must load its snapshot and replay nothing; the
        # log-only one must replay everything, or the rows below measure something else.
        if snapshot and (opened["snapshot_seq"] != out["seq"] or opened["events_replayed"]):
            raise BenchError(f"{path} did not open from a fresh snapshot: {opened}")
        if not snapshot and (opened["snapshot_seq"] or opened["events_replayed"] != out["seq"]):
            raise BenchError(f"{path} did not replay its whole log: {opened}")
        if i >= WARMUP_RUNS:
            samples.append(out)
    total = summarize([s["open_ms"] for s in samples])
    load = summarize([s["open"]["snapshot_load_ms"] for s in samples])
    replay = summarize([s["open"]["log_replay_ms"] for s in samples])
    events = samples[-1]["open"]["events_replayed"]
    result: dict[str, Any] = {
        "memories": memories,
        "snapshot": "fresh" if snapshot else "none",
        "runs": runs,
        "open_ms_p50": total["p50"],
        "open_ms_p90": total["p90"],
        "snapshot_load_ms_p50": load["p50"],
        "snapshot_load_ms_p90": load["p90"],
        "log_replay_ms_p50": replay["p50"],
        "log_replay_ms_p90": replay["p90"],
        "events_replayed": events,
        "peak_rss_mib": max(s["peak_rss_mib"] for s in samples),
        "backend": samples[-1]["backend"],
    }
    if events:
        # End to end (read, check, decode and apply every record: what open costs per
        # event), and the apply step alone as open reports it.
        result["replay_events_per_s"] = events / (total["p50"] / 1000.0)
        result["apply_events_per_s"] = events / (replay["p50"] / 1000.0)
    return result


def open_profile(path: str) -> str:
    """cProfile of one ``Mnemos.open(path, embedder=None)`` (and close) in a fresh process, by own time."""
    text: str = run_child(PROFILE_CHILD, path, str(PROFILE_ENTRIES))["profile"]
    lines = text.strip().splitlines()
    # Keep the summary line and the table; drop pstats' blank and "Ordered by" lines.
    return "\n".join(
        line
        for line in lines
        if line.strip() and "Ordered by" not in line and "List reduced" not in line
    )


def ask_latency(path: str, memories: int) -> dict[str, Any]:
    """Top-10 by vector, warm (the database open, the matrix in memory): the default
    ``ask`` (through the ANN graph from ANN_ROWS_MIN memories) and ``ask(exact=True)``,
    taking turns query by query, with the graph's recall@10 against the exact answer.
    Also the first ask after open, which loads the stored graph.

    Beside it, the floor: one plain numpy matrix-vector product over a matrix of the same
    shape, which is what "at memory bandwidth" means on this machine.
    """
    queries = query_vectors(ASK_WARMUP + ASK_QUERIES)
    ask_ms, exact_ms, matvec_ms = [], [], []
    found = 0
    with Mnemos.open(path, embedder=None, readonly=True) as db:
        started = time.perf_counter()
        db.ask(vector=queries[0], top_k=ASK_TOP_K)
        first_ms = (time.perf_counter() - started) * 1000.0
        graph = (db.stats()["ann"] or {}).get("live", 0) >= ANN_ROWS_MIN
        for q in queries[:ASK_WARMUP]:
            db.ask(vector=q, top_k=ASK_TOP_K)
            db.ask(vector=q, top_k=ASK_TOP_K, exact=True)
        for q in queries[ASK_WARMUP:]:
            started = time.perf_counter()
            hits = db.ask(vector=q, top_k=ASK_TOP_K)
            ask_ms.append((time.perf_counter() - started) * 1000.0)
            started = time.perf_counter()
            exact = db.ask(vector=q, top_k=ASK_TOP_K, exact=True)
            exact_ms.append((time.perf_counter() - started) * 1000.0)
            if len(hits) != min(ASK_TOP_K, memories) or len(exact) != len(hits):
                raise BenchError(f"ask returned {len(hits)} hits from {memories} memories")
            found += len({h.id for h in hits} & {h.id for h in exact})
    matrix = np.ones((memories, DIM), dtype=np.float32)
    for q in queries[:ASK_WARMUP]:
        matrix @ q
    for q in queries[ASK_WARMUP:]:
        started = time.perf_counter()
        matrix @ q
        matvec_ms.append((time.perf_counter() - started) * 1000.0)
    del matrix
    ask, exact, floor = summarize(ask_ms), summarize(exact_ms), summarize(matvec_ms)
    return {
        "memories": memories,
        "queries": ASK_QUERIES,
        "top_k": ASK_TOP_K,
        "graph": graph,
        "first_ask_ms": first_ms,
        "ask_ms_p50": ask["p50"],
        "ask_ms_p90": ask["p90"],
        "recall_at_10": found / (ASK_TOP_K * ASK_QUERIES),
        "exact_ms_p50": exact["p50"],
        "exact_ms_p90": exact["p90"],
        "matvec_ms_p50": floor["p50"],
        "exact_over_matvec": exact["p50"] / floor["p50"],
        "scan_gb_per_s": memories * DIM * 4 / (exact["p50"] / 1000.0) / 1e9,
    }


def write_throughput(root: str) -> list[dict[str, Any]]:
    """Each verb on a fresh database in ``root`` with precomputed vectors.

    The clock covers the calls and ``close()`` (which syncs what "normal" has not yet);
    the default automatic snapshot policy stays on, as a user would have it.
    """
    items = make_items(0, max(count for _verb, _dur, count in WRITE_CASES))
    results = []
    for verb, durability, count in WRITE_CASES:
        path = tempfile.mkdtemp(prefix=f"write-{verb}-{durability}-", dir=root)
        try:
            db = Mnemos.open(path, embedder=None, dim=DIM, durability=durability)
            calls_ms = []
            started = time.perf_counter()
            if verb == "remember":
                for it in items[:count]:
                    t = time.perf_counter()
                    db.remember(
                        it["text"], vector=it["vector"], metadata=it["metadata"], kind=it["kind"]
                    )
                    calls_ms.append((time.perf_counter() - t) * 1000.0)
            else:
                for start in range(0, count, WRITE_BATCH_ITEMS):
                    t = time.perf_counter()
                    db.remember_many(items[start : start + WRITE_BATCH_ITEMS])
                    calls_ms.append((time.perf_counter() - t) * 1000.0)
            written = db.stats()["memories"]
            db.close()
            elapsed_s = time.perf_counter() - started
        finally:
            shutil.rmtree(path, ignore_errors=True)
        if written != count:
            raise BenchError(f"{verb} wrote {written} memories, expected {count}")
        ms = summarize(calls_ms)
        results.append(
            {
                "verb": verb,
                "durability": durability,
                "items": count,
                "batch_items": 1 if verb == "remember" else WRITE_BATCH_ITEMS,
                "items_per_s": count / elapsed_s,
                "call_ms_p50": ms["p50"],
                "call_ms_p99": ms["p99"],
                "call_ms_max": ms["max"],
            }
        )
    return results
