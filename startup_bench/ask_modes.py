"""Warm ``ask`` latency by retrieval mode: ``python -m startup_bench.ask_modes``.

For databases of 10k and 100k memories, p50/p99 of one ``ask(top_k=10)`` in each mode:

- vector ``ask(vector=q)`` (through the HNSW graph from ANN_ROWS_MIN memories, so at 100k;
  the seeded snapshot stores the graph) and ``ask(vector=q, exact=True)``, lexical
  ``ask(text)`` (BM25 alone: the databases have no embedder), hybrid ``ask(text, vector=q)``
  (both, fused);
- hybrid with a filter: one namespace of 10, ``where={"priority": {"$gte": 3}}`` (about
  half the rows), or a ``since``/``until`` window holding ~5% of the memories;
- hybrid with ``use_graph=True`` (~1 edge per memory, within its namespace).

Also ``ask_many`` on a batch of 64 against a loop of ``ask``, the first ask after a fresh
open (indexes a snapshot holds are decoded or built on first use) in fresh processes at
the largest size, and a cProfile of one hybrid ask there.

Each query is made from a random memory: its vector plus noise, and 3 to 6 of its words
(sometimes its order number). Every mode asks the same queries, taking turns query by
query, beside a plain numpy matrix-vector product of the same shape (the floor, and a
witness of a busy machine). ``found`` is the share of queries whose memory came back in
the top 10, a check that each mode did the work it names.

Databases are seeded once into ``--dir`` and reused while their manifest matches.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

import mnemos
from mnemos import Mnemos

from . import machine
from .cli import _sizes
from .report import _ms, _rate, _table
from .seed import DIM, SEED, _files, clustered_vectors
from .stats import BenchError, add_json_option, emit, progress, summarize

DEFAULT_DIR = "/tmp/mnemos-bench/ask-modes"
DEFAULT_SIZES = (10_000, 100_000)
QUERIES = 200
WARMUP = 20
TOP_K = 10
BATCH_QUERIES = 64
BATCH_REPEATS = 5
FIRST_ASK_RUNS = 3  # fresh processes per mode
FIRST_ASK_WARM = 5  # asks after the first, for the warm figure beside it
PROFILE_ENTRIES = 15
PROFILE_ASKS = 20
SEED_BATCH_ITEMS = 1000

# The synthetic memories. Bump GENERATOR_VERSION when any of this changes.
GENERATOR_VERSION = 1
VOCAB_WORDS = 3000
ZIPF_S = 1.07  # word frequency ~ 1 / rank**s, as in natural text: a few words are everywhere
TEXT_WORDS = (12, 20)  # inclusive
TOKEN_SHARE = 0.25  # memories carrying an order number, the exact-match case
NAMESPACES = 10
TOPICS = 20
PRIORITY_MAX = 5
START_S = 1_735_689_600  # 2025-01-01 UTC
YEAR_S = 365 * 86_400
EDGE_WEIGHTS = (0.5, 1.0)

QUERY_WORDS = (3, 6)  # inclusive
QUERY_TOKEN_SHARE = 0.5  # of queries made from a memory that has an order number
QUERY_NOISE = 0.3  # per dimension, on rows of norm ~22: cosine to the memory ~0.97
WHERE = {"priority": {"$gte": 3}}
WINDOW_S = 0.05 * YEAR_S  # since/until span: ~5% of memories

# mode -> the call, as the report shows it
MODES = {
    "vector": "ask(vector=q)",
    "exact": "ask(vector=q, exact=True)",
    "lexical": "ask(text)",
    "hybrid": "ask(text, vector=q)",
    "namespace": "ask(text, vector=q, namespace=ns)",
    "where": 'ask(text, vector=q, where={"priority": {"$gte": 3}})',
    "time": "ask(text, vector=q, since=t0, until=t0 + 18d)",
    "graph": "ask(text, vector=q, use_graph=True)",
}
FLOOR = "floor: numpy `matrix @ q`, same shape"
BATCH_MODES = ("vector", "hybrid")
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# Runs in a fresh interpreter; reads {"path", "asks"} from stdin, prints one JSON line.
FIRST_ASK_CHILD = """\
import json, sys, time
import numpy as np
import mnemos
spec = json.load(sys.stdin)
for kwargs in spec["asks"]:
    if "vector" in kwargs:
        kwargs["vector"] = np.asarray(kwargs["vector"], dtype=np.float32)
started = time.perf_counter()
db = mnemos.Mnemos.open(spec["path"], embedder=None, readonly=True)
open_ms = (time.perf_counter() - started) * 1000.0
ask_ms = []
for kwargs in spec["asks"]:
    started = time.perf_counter()
    db.ask(**kwargs)
    ask_ms.append((time.perf_counter() - started) * 1000.0)
db.close()
print(json.dumps({"open_ms": open_ms, "ask_ms": ask_ms}))
"""


# -- the memories -------------------------------------------------------------------------


@cache
def _vocabulary() -> tuple[list[str], np.ndarray]:
    """Made-up two-syllable words ("kafo"), and their Zipf probabilities by rank."""
    syllables = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
    words = [a + b for a in syllables for b in syllables]
    order = np.random.default_rng([SEED, 10]).permutation(len(words))[:VOCAB_WORDS]
    weights = 1.0 / np.arange(1, VOCAB_WORDS + 1) ** ZIPF_S
    return [words[i] for i in order], weights / weights.sum()


def make_items(start: int, count: int) -> list[dict[str, Any]]:
    """Memories ``start`` .. ``start + count - 1``, a pure function of (SEED, start)."""
    rng = np.random.default_rng([SEED, 11, start])
    vocab, p = _vocabulary()
    vectors, _cluster = clustered_vectors(rng, count)
    items = []
    for j in range(count):
        words = [
            vocab[w] for w in rng.choice(VOCAB_WORDS, rng.integers(*TEXT_WORDS, endpoint=True), p=p)
        ]
        if rng.random() < TOKEN_SHARE:
            words.insert(
                int(rng.integers(0, len(words) + 1)), f"ORD-{rng.integers(10_000, 100_000)}"
            )
        items.append(
            {
                "id": f"m{start + j}",
                "text": " ".join(words),
                "vector": vectors[j],
                "namespace": f"ns{rng.integers(0, NAMESPACES)}",
                "metadata": {
                    "priority": int(rng.integers(0, PRIORITY_MAX, endpoint=True)),
                    "topic": f"topic-{rng.integers(0, TOPICS):02d}",
                },
                "timestamp": START_S + int(rng.integers(0, YEAR_S)),
            }
        )
    return items


def _edges(namespaces: np.ndarray) -> list[tuple[int, int, float]]:
    """~1 edge per memory: each to a random other member of its namespace."""
    rng = np.random.default_rng([SEED, 12, len(namespaces)])
    edges = []
    for ns in range(NAMESPACES):
        members = np.flatnonzero(namespaces == ns)
        partners = rng.permutation(members)
        weights = rng.uniform(*EDGE_WEIGHTS, len(members))
        edges += [
            (int(a), int(b), float(w))
            for a, b, w in zip(members, partners, weights, strict=True)
            if a != b
        ]
    return edges


def _manifest(memories: int) -> dict[str, Any]:
    return {
        "memories": memories,
        "dim": DIM,
        "seed": SEED,
        "generator_version": GENERATOR_VERSION,
        "format_version": mnemos.FORMAT_VERSION,
        "ann_graph_section": True,  # snapshots store the graph (seeded before: re-seed)
    }


def seed(root: str, memories: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The database for ``memories`` (reused from ``root`` when its manifest matches)."""
    path = os.path.join(root, f"n{memories}")
    manifest_path = os.path.join(root, f"n{memories}.json")
    try:
        with open(manifest_path) as f:
            stored = json.load(f)
    except (OSError, ValueError):
        stored = {}
    if {k: stored.get(k) for k in _manifest(memories)} == _manifest(memories) and _files(
        path, "snapshots", ".snap"
    ):
        log(f"reusing seeded {memories:,}-memory database {path}")
        return {"memories": memories, "path": path, "seed_s": None, "edges": stored["edges"]}

    shutil.rmtree(path, ignore_errors=True)
    log(f"seeding {memories:,} memories and edges into {path} ...")
    started = time.perf_counter()
    namespaces = np.zeros(memories, dtype=np.int64)
    # As in seed.py: no syncs and no automatic snapshots, one snapshot at the end.
    with Mnemos.open(
        path,
        embedder=None,
        dim=DIM,
        durability="off",
        snapshot_every_events=None,
        snapshot_every_bytes=None,
        ann_background=False,
    ) as db:
        for start in range(0, memories, SEED_BATCH_ITEMS):
            items = make_items(start, min(SEED_BATCH_ITEMS, memories - start))
            db.remember_many(items)
            namespaces[start : start + len(items)] = [int(it["namespace"][2:]) for it in items]
        edges = _edges(namespaces)
        for a, b, weight in edges:
            db.connect(f"m{a}", f"m{b}", "related", weight)
        # Past ANN_ROWS_MIN: build the graph before the snapshot, so it holds it.
        db.ask(vector=clustered_vectors(np.random.default_rng(0), 1)[0][0], top_k=1)
        db.checkpoint()
        stats = db.stats()
    if stats["memories"] != memories or stats["edges"] != len(edges):
        raise BenchError(f"{path} holds {stats['memories']} memories and {stats['edges']} edges")
    os.sync()  # written with durability="off": make the bytes clean before any timing
    seed_s = time.perf_counter() - started
    with open(manifest_path, "w") as f:
        json.dump({**_manifest(memories), "edges": len(edges)}, f, indent=2)
    log(f"  seeded in {seed_s:.1f} s")
    return {"memories": memories, "path": path, "seed_s": seed_s, "edges": len(edges)}


# -- the queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    source: str  # id of the memory the query was made from
    text: str
    vector: np.ndarray
    namespace: str
    since_s: float  # start of a WINDOW_S window that holds the memory's timestamp


def make_queries(db: Mnemos, memories: int, count: int) -> list[Query]:
    """``count`` queries, each from a random memory. Every mode asks the same ones, so
    the sources are drawn from the memories that pass the ``where`` filter too."""
    rng = np.random.default_rng([SEED, 13, memories])
    queries: list[Query] = []
    while len(queries) < count:
        m = db.get(f"m{rng.integers(0, memories)}")
        if m.metadata["priority"] < WHERE["priority"]["$gte"]:
            continue
        words = m.text.split()
        token = next((w for w in words if w.startswith("ORD-")), None)
        plain = [w for w in words if w != token]
        picked = sorted(
            rng.choice(len(plain), rng.integers(*QUERY_WORDS, endpoint=True), replace=False)
        )
        terms = [plain[i] for i in picked]
        if token is not None and rng.random() < QUERY_TOKEN_SHARE:
            terms[int(rng.integers(0, len(terms)))] = token
        noise = rng.standard_normal(DIM, dtype=np.float32) * np.float32(QUERY_NOISE)
        queries.append(
            Query(
                source=m.id,
                text=" ".join(terms),
                vector=m.vector + noise,
                namespace=m.namespace,
                since_s=m.timestamp.timestamp() - rng.uniform(0, WINDOW_S),
            )
        )
    return queries


def ask_kwargs(mode: str, q: Query) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"top_k": TOP_K}
    if mode not in ("vector", "exact"):
        kwargs["query"] = q.text
    if mode != "lexical":
        kwargs["vector"] = q.vector
    if mode == "namespace":
        kwargs["namespace"] = q.namespace
    elif mode == "where":
        kwargs["where"] = WHERE
    elif mode == "time":
        kwargs["since"], kwargs["until"] = q.since_s, q.since_s + WINDOW_S
    elif mode == "graph":
        kwargs["use_graph"] = True
    elif mode == "exact":
        kwargs["exact"] = True
    return kwargs


# -- the measurements ---------------------------------------------------------------------


def latency(db: Mnemos, memories: int, queries: list[Query]) -> list[dict[str, Any]]:
    """Warm and in-process, the first WARMUP queries discarded. The modes take turns
    query by query, so load from elsewhere on the machine falls on all of them alike.

    Beside them, the floor under every mode that scans vectors: one plain numpy
    matrix-vector product over a matrix of the database's shape. On a busy machine a
    multi-threaded BLAS can wait for a scheduler tick; this row shows when it does.
    CPU time (the process's, all threads) is kept too: well below wall time, the ask
    waited for a CPU; above it, BLAS threads worked beside it.
    """
    calls = {mode: [ask_kwargs(mode, q) for q in queries] for mode in MODES}
    wall_ms: dict[str, list[float]] = {mode: [] for mode in [*MODES, "matvec"]}
    cpu_ms: dict[str, list[float]] = {mode: [] for mode in wall_ms}
    found = dict.fromkeys(MODES, 0)
    matrix = np.ones((memories, DIM), dtype=np.float32)
    for i, q in enumerate(queries):
        for mode in [*MODES, "matvec"]:
            cpu_started, started = time.process_time(), time.perf_counter()
            if mode == "matvec":
                matrix @ q.vector
            else:
                hits = db.ask(**calls[mode][i])
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            cpu_elapsed_ms = (time.process_time() - cpu_started) * 1000.0
            if i < WARMUP:
                continue
            wall_ms[mode].append(elapsed_ms)
            cpu_ms[mode].append(cpu_elapsed_ms)
            if mode != "matvec":
                if len(hits) != TOP_K:
                    raise BenchError(f"{mode} ask returned {len(hits)} hits of {memories}")
                found[mode] += any(h.id == q.source for h in hits)
    del matrix
    results = []
    for mode, samples in wall_ms.items():
        wall, cpu = summarize(samples), summarize(cpu_ms[mode])
        results.append(
            {
                "memories": memories,
                "mode": mode,
                "queries": len(samples),
                "ask_ms_p50": wall["p50"],
                "ask_ms_p99": wall["p99"],
                "ask_ms_max": wall["max"],
                "cpu_ms_p50": cpu["p50"],
                "found": found[mode] / len(samples) if mode in found else None,
            }
        )
    return results


def batch_throughput(db: Mnemos, memories: int, mode: str, queries: list[Query]) -> dict[str, Any]:
    """Queries/s of ``ask_many`` on BATCH_QUERIES queries against a loop of ``ask`` on
    the same ones (which must give the same hits), best of BATCH_REPEATS batches."""
    loop_s, many_s = [], []
    for r in range(BATCH_REPEATS):
        batch = queries[r * BATCH_QUERIES : (r + 1) * BATCH_QUERIES]
        calls = [ask_kwargs(mode, q) for q in batch]
        texts = [c.get("query") for c in calls]
        vectors = np.stack([q.vector for q in batch])
        started = time.perf_counter()
        looped = [db.ask(**c) for c in calls]
        loop_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        many = db.ask_many(texts if mode != "vector" else None, vectors=vectors, top_k=TOP_K)
        many_s.append(time.perf_counter() - started)
        if [[h.id for h in hits] for hits in many] != [[h.id for h in hits] for hits in looped]:
            raise BenchError(f"{mode}: ask_many and a loop of ask disagree on {memories} memories")
    # Best, not median: a batch is one short sample, and interference only adds time.
    loop_qps, many_qps = BATCH_QUERIES / min(loop_s), BATCH_QUERIES / min(many_s)
    return {
        "memories": memories,
        "mode": mode,
        "batch": BATCH_QUERIES,
        "loop_queries_per_s": loop_qps,
        "ask_many_queries_per_s": many_qps,
        "speedup": many_qps / loop_qps,
    }


def first_ask(path: str, memories: int, mode: str, queries: list[Query]) -> dict[str, Any]:
    """In FIRST_ASK_RUNS fresh processes: open, the first ask, then FIRST_ASK_WARM more."""
    asks = []
    for q in queries[: 1 + FIRST_ASK_WARM]:
        kwargs = ask_kwargs(mode, q)
        if "vector" in kwargs:
            kwargs["vector"] = kwargs["vector"].tolist()
        asks.append(kwargs)
    samples = []
    for _ in range(FIRST_ASK_RUNS):
        proc = subprocess.run(
            [sys.executable, "-c", FIRST_ASK_CHILD],
            input=json.dumps({"path": path, "asks": asks}),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise BenchError(f"child process failed ({proc.returncode}):\n{proc.stderr.strip()}")
        samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {
        "memories": memories,
        "mode": mode,
        "runs": FIRST_ASK_RUNS,
        "open_ms_p50": summarize([s["open_ms"] for s in samples])["p50"],
        "first_ask_ms_p50": summarize([s["ask_ms"][0] for s in samples])["p50"],
        "warm_ask_ms_p50": summarize([ms for s in samples for ms in s["ask_ms"][1:]])["p50"],
    }


def profile_ask(db: Mnemos, mode: str, queries: list[Query]) -> str:
    """cProfile of warm asks, by cumulative time (which stage dominates) and by own
    time (which functions). Several asks, since pstats prints whole milliseconds."""
    calls = [ask_kwargs(mode, q) for q in queries]
    profile = cProfile.Profile()
    profile.enable()
    for kwargs in calls:
        db.ask(**kwargs)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(PROFILE_ENTRIES)
    stats.sort_stats("tottime").print_stats(PROFILE_ENTRIES)
    # Keep the summary and the tables; drop pstats' blank and "List reduced" lines.
    return "\n".join(
        line for line in out.getvalue().splitlines() if line.strip() and "List reduced" not in line
    )


# -- the command --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench.ask_modes",
        description="Warm ask latency by retrieval mode (vector, lexical, hybrid, filtered, "
        "graph), ask_many throughput and the first ask after open.",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="memories per database, comma-separated (default 10k,100k)",
    )
    p.add_argument(
        "--queries", type=int, default=QUERIES, help=f"timed asks per mode (default {QUERIES})"
    )
    p.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"where seeded databases live and are reused (default {DEFAULT_DIR})",
    )
    add_json_option(p)
    return p


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "startup_bench.ask_modes", *argv]),
        "machine": machine.describe(args.dir),
        "settings": {
            "sizes": args.sizes,
            "queries": args.queries,
            "warmup": WARMUP,
            "top_k": TOP_K,
            "dim": DIM,
            "namespaces": NAMESPACES,
            "vocab_words": VOCAB_WORDS,
            # Set, these change what a vector scan costs on a loaded machine (see matvec).
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        },
        "seed": [],
        "latency": [],
        "batch": [],
        "first_ask": [],
        "profile": None,
    }
    largest = max(args.sizes)
    for n in args.sizes:
        seeded = seed(args.dir, n, progress)
        results["seed"].append(seeded)
        with Mnemos.open(seeded["path"], embedder=None, readonly=True) as db:
            queries = make_queries(db, n, WARMUP + max(args.queries, BATCH_QUERIES * BATCH_REPEATS))
            progress(f"ask in {len(MODES)} modes on {n:,} memories ...")
            results["latency"] += latency(db, n, queries[: WARMUP + args.queries])
            for mode in BATCH_MODES:
                progress(f"{mode} ask_many on {n:,} memories ...")
                results["batch"].append(batch_throughput(db, n, mode, queries))
            if n == largest:
                results["profile"] = {
                    "memories": n,
                    "mode": "hybrid",
                    "asks": PROFILE_ASKS,
                    "profile": profile_ask(db, "hybrid", queries[-PROFILE_ASKS:]),
                }
        if n == largest:
            for mode in MODES:
                progress(f"first {mode} ask after open, {n:,} memories ...")
                results["first_ask"].append(first_ask(seeded["path"], n, mode, queries))
    results["machine"]["load_average_end"] = machine.load_average()
    return results


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    src = m["mnemos_source"]
    sizes = s["sizes"]
    out = [
        "# Mnemos ask latency by retrieval mode",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['python']}, numpy "
        f"{m['numpy']}; load average {m['load_average_start']} at start, "
        f"{m['load_average_end']} at end",
        f"- mnemos {m['mnemos']} (commit {src['commit'] or '?'}"
        f"{' + edits' if src['edited'] else ''}, py digest {src['py_digest']}), "
        f"backend `{m['backend']}`",
        f"- {s['queries']} timed asks per mode after {s['warmup']} discarded, top_k={s['top_k']}, "
        f"warm and in-process; {s['dim']}-d clustered vectors, 12-20 word texts from a "
        f"{s['vocab_words']:,}-word Zipf vocabulary, 25% with an order number, "
        f"{s['namespaces']} namespaces, ~1 edge per memory; no embedder",
        f"- thread settings from the environment: {s['thread_env'] or 'none'}",
        "- found: share of queries whose source memory is in the top 10",
        "",
        "## Warm `ask` latency (ms; cpu: process CPU time, all threads)",
        "",
    ]
    by = {(r["mode"], r["memories"]): r for r in results["latency"]}
    header = ["mode", "call"]
    for n in sizes:
        header += [f"{n // 1000}k p50", f"{n // 1000}k p99", f"{n // 1000}k cpu p50"]
    header += ["found " + " / ".join(f"{n // 1000}k" for n in sizes)]
    calls = {**{mode: f"`{call}`" for mode, call in MODES.items()}, "matvec": FLOOR}
    rows = []
    for mode, call in calls.items():
        row = [mode, call]
        for n in sizes:
            r = by[mode, n]
            row += [f"{r['ask_ms_p50']:.2f}", f"{r['ask_ms_p99']:.2f}", f"{r['cpu_ms_p50']:.2f}"]
        found = [by[mode, n]["found"] for n in sizes]
        row.append("—" if None in found else " / ".join(f"{f:.2f}" for f in found))
        rows.append(row)
    out += _table(header, rows)
    out += [
        "",
        f"## `ask_many` vs a loop of `ask` (batch of {BATCH_QUERIES}, best of "
        f"{BATCH_REPEATS}, queries/s)",
        "",
    ]
    out += _table(
        ["memories", "mode", "loop of ask", "ask_many", "speedup"],
        [
            [
                f"{r['memories']:,}",
                r["mode"],
                _rate(r["loop_queries_per_s"]),
                _rate(r["ask_many_queries_per_s"]),
                f"{r['speedup']:.2f}x",
            ]
            for r in results["batch"]
        ],
    )
    if results["first_ask"]:
        out += [
            "",
            "## First ask after a fresh open (fresh process each, ms p50 of "
            f"{results['first_ask'][0]['runs']})",
            "",
            "Derived indexes (lexical vocabulary, time index, decoded metadata) are built on "
            "first use; the warm column is the next five asks in the same process.",
            "",
        ]
        out += _table(
            ["memories", "mode", "open_ms", "first_ask_ms", "warm_ask_ms"],
            [
                [
                    f"{r['memories']:,}",
                    r["mode"],
                    _ms(r["open_ms_p50"]),
                    _ms(r["first_ask_ms_p50"]),
                    f"{r['warm_ask_ms_p50']:.2f}",
                ]
                for r in results["first_ask"]
            ],
        )
    seeded = [r for r in results["seed"] if r["seed_s"] is not None]
    if seeded:
        out += [
            "",
            "Seeded: "
            + ", ".join(
                f"{r['memories']:,} memories + {r['edges']:,} edges in {r['seed_s']:.1f} s"
                for r in seeded
            )
            + ".",
        ]
    prof = results["profile"]
    if prof:
        out += [
            "",
            f"## Profile: {prof['asks']} warm {prof['mode']} asks, {prof['memories']:,} memories "
            "(cProfile; its overhead inflates Python-heavy parts)",
            "",
            "```",
            prof["profile"],
            "```",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.queries < 1:
        _parser().error("--queries must be at least 1")
    os.makedirs(args.dir, exist_ok=True)
    try:
        results = run(args, argv)
    except BenchError as exc:
        print(f"startup_bench.ask_modes: {exc}", file=sys.stderr)
        return 1
    return emit(results, args.json, lambda: markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
