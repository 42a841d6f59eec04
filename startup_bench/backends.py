"""The Rust core against the Python reference path: ``python -m startup_bench.backends``.

For each size (default 100k and 1M memories, seeded by ``seed.py``: 384-d clustered float32
vectors, ~100-byte texts, one ``remember`` event per memory written by ``remember_many`` in
transactions of 1000), each figure is taken with the Rust extension (``mnemos._core``) and on
the pure-Python reference path:

- replay: ``Mnemos.open`` of the copy without a snapshot, so every event is replayed from
  the log, in a fresh process per run (``measure.open_times``), once with MNEMOS_BACKEND
  unset and once with MNEMOS_BACKEND=python: events/s over the whole open, and over the
  apply step (decode and apply, as ``stats()["open"]`` reports it);
- decode: in a fresh process per run, what open does before applying:
  ``LogCursor.read_events()`` (segment headers, every record checked: the Rust or the
  Python scan), then every event decoded (the Rust decoder, a chunk of records per call,
  or ``decode_event``, msgpack, on the Python path), nothing applied: records/s of the
  scan, of the decode and of both together, the rate of the target "replay >= 500k
  events/s decoded". ``--profile`` adds a cProfile of one such run per backend at the
  largest size;
- exact top-10: ``VectorIndex.search`` over all rows with a full mask, one query at a time,
  warm, on the Rust path (the ``kernels.candidates`` scan, then exact rescoring) and on the
  numpy path (the index module's ``_core`` set to None around the call: the code that
  MNEMOS_BACKEND=python runs; both must give the same rows and scores), beside the Rust
  kernel alone (``kernels.candidates``) and the floor, numpy ``matrix @ q``. Measured in a
  child process with OPENBLAS_NUM_THREADS=1 (and OMP/MKL), then in one with the BLAS
  default; the Rust scan uses every core the process may run on either way. The paths run
  in blocks, taking turns, after a pause that lets BLAS threads go to sleep;
- int8: ``kernels.quantize`` of the same rows, bytes per row (codes and scale) against
  float32, recall@10 of ``kernels.search_int8`` (int8 scan, then the best ``rescore`` rows
  scored exactly) against the exact top 10 above, and its latency, Rust and numpy
  (``search_int8_py``, on fewer queries: it converts the whole code matrix to float64 per
  query). Both must return the same rows (and scores within 1e-12).

Vectors and queries are those of ``seed.py`` (the queries from the same distribution, not
among the memories). Seeded databases are kept in ``--dir`` and reused while they match.
Load average is recorded beside every figure: the machine may be shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

import mnemos

from . import machine, measure
from .cli import _sizes
from .report import _ms, _rate, _table
from .seed import DIM, SEED_BATCH_ITEMS, make_items, query_vectors, seed
from .stats import BenchError, add_json_option, emit, progress, summarize

DEFAULT_DIR = "/tmp/mnemos-bench"
DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_RUNS = 3
SECTIONS = ("replay", "decode", "exact", "int8")
BACKENDS = ("rust", "python")
DECODE_TARGET_PER_S = 500_000.0  # the issue: "replay >= 500k events/s decoded"
TOP_K = 10
QUERIES = 300
WARMUP = 5  # discarded queries at the start of each block
ROUNDS = 3  # blocks per path, taking turns: a busy spell of the machine lands on each
SETTLE_S = 1.0  # BLAS threads spin a while after a product; let them sleep before a block
RESCORES = (10, 40, 100)  # int8: rows scored exactly per query (10 = only the int8 top 10)
INT8_PY_RESCORE = 40
INT8_PY_ROWS = 5_000_000  # numpy int8 queries: about this many rows scanned in all (min 10)
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PROFILE_ENTRIES = 15

# Runs in a fresh interpreter: argv[1] is the database path, argv[2] "profile" or "time".
# Prints one JSON line.
DECODE_CHILD = """\
import cProfile, io, json, os, pstats, sys, time
import mnemos
from mnemos.events import decode_event
from mnemos.wal import LogCursor

def run():
    started = time.perf_counter()
    records, tail = LogCursor(os.path.join(sys.argv[1], "wal"), 0).read_events()
    scanned = time.perf_counter()
    for _seq, event in records:  # as open does: the Rust core decodes, chunk by chunk
        if not isinstance(event, dict):
            decode_event(event)
    decoded = time.perf_counter()
    return len(records), tail.seq, scanned - started, decoded - scanned

out = {"backend": mnemos.backend()}
if sys.argv[2] == "profile":
    profile = cProfile.Profile()
    profile.runcall(run)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).strip_dirs().sort_stats("tottime").print_stats(int(sys.argv[3]))
    out["profile"] = text.getvalue()
else:
    out["records"], out["seq"], out["scan_s"], out["decode_s"] = run()
print(json.dumps(out))
"""

# Runs in a fresh interpreter with the thread settings to measure: argv[1] is the directory
# holding startup_bench; the spec comes on stdin. Prints one JSON line.
VECTOR_CHILD = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from startup_bench.backends import vector_child
print(json.dumps(vector_child(json.load(sys.stdin))))
"""


@contextmanager
def _environ(**changes: str | None) -> Iterator[None]:
    """Environment variables set (None: removed) for the children started meanwhile."""
    saved = {name: os.environ.get(name) for name in changes}
    try:
        for name, value in changes.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _backend_env(backend: str) -> dict[str, str | None]:
    return {"MNEMOS_BACKEND": "python" if backend == "python" else None}


def _extension() -> dict[str, Any]:
    """Which compiled extension the Rust figures come from."""
    core = mnemos._native._core
    if core is None:
        return {"path": None, "digest": None}
    with open(core.__file__, "rb") as f:
        digest = hashlib.blake2b(f.read(), digest_size=8).hexdigest()
    return {"path": core.__file__, "digest": digest}


def _child(script: str, args: list[str], stdin: str | None = None) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter; its last line of output is the JSON result.
    Its stderr (progress) goes to ours when it is given a spec on stdin."""
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        input=stdin,
        stdout=subprocess.PIPE,
        stderr=None if stdin is not None else subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        said = (proc.stderr or "(its stderr is above)").strip()
        raise BenchError(f"child process failed ({proc.returncode}):\n{said}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# -- replay and decode, fresh processes ------------------------------------------------------


def replay(path: str, memories: int, backend: str, runs: int) -> dict[str, Any]:
    """``Mnemos.open`` of a log-only database on one backend, in fresh processes."""
    load = machine.load_average()
    with _environ(**_backend_env(backend)):
        out = measure.open_times(path, runs, memories=memories, snapshot=False, cold=False)
    if out["backend"] != backend:
        raise BenchError(f"asked for the {backend} backend, the child ran {out['backend']}")
    return {**out, "load_average": load}


def decode(path: str, memories: int, backend: str, runs: int) -> dict[str, Any]:
    """Scan every record of the log and decode every payload, nothing applied."""
    load = machine.load_average()
    samples = []
    with _environ(**_backend_env(backend)):
        for i in range(measure.WARMUP_RUNS + runs):
            out = _child(DECODE_CHILD, [path, "time"])
            if out["backend"] != backend or out["records"] != out["seq"]:
                raise BenchError(f"decode child on {path}: {out}")
            if i >= measure.WARMUP_RUNS:
                samples.append(out)
    records = samples[-1]["records"]
    scan = summarize([s["scan_s"] for s in samples])["p50"]
    dec = summarize([s["decode_s"] for s in samples])["p50"]
    both = summarize([s["scan_s"] + s["decode_s"] for s in samples])["p50"]
    return {
        "memories": memories,
        "backend": backend,
        "runs": runs,
        "records": records,
        "scan_ms_p50": scan * 1e3,
        "decode_ms_p50": dec * 1e3,
        "total_ms_p50": both * 1e3,
        "scan_per_s": records / scan,
        "decode_per_s": records / dec,
        "total_per_s": records / both,
        "scan_ns_per_record": scan / records * 1e9,
        "decode_ns_per_record": dec / records * 1e9,
        "load_average": load,
        "load_average_end": machine.load_average(),
    }


def decode_profile(path: str, backend: str) -> str:
    with _environ(**_backend_env(backend)):
        text: str = _child(DECODE_CHILD, [path, "profile", str(PROFILE_ENTRIES)])["profile"]
    return "\n".join(
        line
        for line in text.strip().splitlines()
        if line.strip() and "Ordered by" not in line and "List reduced" not in line
    )


# -- vector search, in a child with the thread settings under test ----------------------------


def seeded_vectors(memories: int) -> np.ndarray:
    """The vectors of the seeded database of that size, in row order."""
    out = np.empty((memories, DIM), dtype=np.float32)
    for start in range(0, memories, SEED_BATCH_ITEMS):
        items = make_items(start, min(SEED_BATCH_ITEMS, memories - start))
        out[start : start + len(items)] = [it["vector"] for it in items]
    return out


def _blocks(
    calls: dict[str, Callable[[np.ndarray], Any]], warm: np.ndarray, queries: np.ndarray
) -> dict[str, tuple[list[Any], dict[str, float]]]:
    """Each call over every query, in ROUNDS blocks per call taking turns (the order
    rotating), each block after SETTLE_S of quiet and its own warm-up. Per call: its results
    in query order and a summary of the milliseconds per call."""
    names = list(calls)
    results: dict[str, list[Any]] = {name: [None] * len(queries) for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    bounds = np.linspace(0, len(queries), ROUNDS + 1).astype(int)
    for r in range(ROUNDS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            call = calls[name]
            time.sleep(SETTLE_S)
            for q in warm:
                call(q)
            for i in range(bounds[r], bounds[r + 1]):
                t0 = time.perf_counter()
                results[name][i] = call(queries[i])
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: (results[name], summarize(times[name])) for name in names}


@contextmanager
def _numpy_path() -> Iterator[None]:
    """``VectorIndex.search`` without the extension: what MNEMOS_BACKEND=python runs."""
    from mnemos.index import vector

    saved = vector._core
    vector._core = None
    try:
        yield
    finally:
        vector._core = saved


def _ms_summary(ms: dict[str, float]) -> dict[str, float]:
    return {"p50": ms["p50"], "p99": ms["p99"], "min": ms["min"], "max": ms["max"]}


def _exact(vectors: np.ndarray, warm: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    from mnemos.index import kernels
    from mnemos.index.vector import RESCORE_MARGIN, VectorIndex, row_norms

    n = len(vectors)
    norms = row_norms(vectors)
    index = VectorIndex.from_snapshot(
        vectors,
        norms,
        np.ones(n, dtype=bool),
        np.zeros(n, dtype=np.int32),
        np.zeros(n, dtype=np.int8),
    )
    mask = np.ones(n, dtype=bool)
    parts = index.parts()

    def unit(q: np.ndarray) -> np.ndarray:
        wide = q.astype(np.float64)
        one: np.ndarray = (wide / np.sqrt(np.square(wide).sum()))[None, :]
        return one

    def on_numpy(q: np.ndarray) -> list[tuple[int, float]]:
        with _numpy_path():
            return index.search(q[None, :], TOP_K, mask)[0]

    calls: dict[str, Callable[[np.ndarray], Any]] = {
        "rust": lambda q: index.search(q[None, :], TOP_K, mask)[0],
        "numpy": on_numpy,
        "kernel": lambda q: kernels.candidates(parts, norms, unit(q), mask, TOP_K, RESCORE_MARGIN),
        "matvec": lambda q: vectors @ q,
    }
    found = _blocks(calls, warm, queries)
    rust, numpy_ = found["rust"][0], found["numpy"][0]
    return {
        "ms": {name: _ms_summary(ms) for name, (_r, ms) in found.items()},
        "identical": rust == numpy_,
        "candidates_mean": float(np.mean([len(c[0]) for c in found["kernel"][0]])),
        "truth": [[row for row, _score in hits[:TOP_K]] for hits in rust],
        "norms": norms,
        "index": index,
    }


def _int8(
    exact: dict[str, Any], vectors: np.ndarray, warm: np.ndarray, queries: np.ndarray
) -> dict[str, Any]:
    from mnemos.index import kernels

    n = len(vectors)
    norms, parts = exact["norms"], exact["index"].parts()
    t0 = time.perf_counter()
    codes, scales = kernels.quantize(vectors)
    quantize_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    codes_py, scales_py = kernels.quantize_py(vectors)
    quantize_py_ms = (time.perf_counter() - t0) * 1e3
    same_codes = bool(np.array_equal(codes, codes_py) and np.array_equal(scales, scales_py))
    del codes_py, scales_py
    mask = np.ones(n, dtype=bool)
    units = queries / np.linalg.norm(queries.astype(np.float64), axis=1, keepdims=True)
    wunits = warm / np.linalg.norm(warm.astype(np.float64), axis=1, keepdims=True)
    truth = exact["truth"]

    def rust_call(rescore: int) -> Callable[[np.ndarray], Any]:
        return lambda u: kernels.search_int8(
            codes, scales, parts, norms, u[None, :], mask, TOP_K, rescore
        )[0]

    calls = {f"rust_{r}": rust_call(r) for r in RESCORES}
    found = _blocks(calls, wunits, units)
    runs = []
    for r in RESCORES:
        hits, ms = found[f"rust_{r}"]
        recall = np.mean(
            [
                len(set(rows.tolist()) & set(t)) / TOP_K
                for (rows, _s), t in zip(hits, truth, strict=True)
            ]
        )
        runs.append({"rescore": r, "recall": float(recall), "ms": _ms_summary(ms)})
    # The numpy reference, on fewer queries, checked against the Rust answers.
    py_queries = min(len(units), max(10, INT8_PY_ROWS // n))
    py_ms, same = [], True
    rust_hits = found[f"rust_{INT8_PY_RESCORE}"][0]
    time.sleep(SETTLE_S)
    for i in range(py_queries):
        u = units[i][None, :].astype(np.float32)
        t0 = time.perf_counter()
        rows, scores = kernels.search_int8_py(
            codes, scales, parts, norms, u, mask, TOP_K, INT8_PY_RESCORE
        )[0]
        py_ms.append((time.perf_counter() - t0) * 1e3)
        # Same rows; the exact scores may differ in the last bits (another summation
        # order in float64), as tests/test_kernels.py allows.
        same = same and bool(
            np.array_equal(rows, rust_hits[i][0])
            and np.allclose(scores, rust_hits[i][1], rtol=0, atol=1e-12)
        )
    return {
        "float32_bytes_per_row": vectors.itemsize * DIM,
        "int8_bytes_per_row": (codes.nbytes + scales.nbytes) / n,
        "saving": vectors.itemsize * DIM / ((codes.nbytes + scales.nbytes) / n),
        "quantize_ms": quantize_ms,
        "quantize_py_ms": quantize_py_ms,
        "quantize_identical": same_codes,
        "runs": runs,
        "numpy": {
            "rescore": INT8_PY_RESCORE,
            "queries": py_queries,
            "ms": _ms_summary(summarize(py_ms)),
            "identical": same,
        },
    }


def vector_child(spec: dict[str, Any]) -> dict[str, Any]:
    """In the child: exact (and int8, if asked) search at each size, as the module says."""
    out: dict[str, Any] = {
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "backend": mnemos.backend(),
        "sizes": [],
    }
    if mnemos.backend() != "rust":
        raise BenchError("the vector comparison needs the Rust extension (unset MNEMOS_BACKEND)")
    all_queries = query_vectors(WARMUP + spec["queries"])
    warm, queries = all_queries[:WARMUP], all_queries[WARMUP:]
    for n in spec["sizes"]:
        progress(f"  {n:,} vectors: generating ...")
        vectors = seeded_vectors(n)
        row: dict[str, Any] = {"vectors": n, "load_average": machine.load_average()}
        progress(f"  {n:,} vectors: exact search, Rust and numpy paths ...")
        exact = _exact(vectors, warm, queries)
        row["exact"] = {k: exact[k] for k in ("ms", "identical", "candidates_mean")}
        if spec["int8"]:
            progress(f"  {n:,} vectors: int8 search ...")
            row["int8"] = _int8(exact, vectors, warm, queries)
        row["load_average_end"] = machine.load_average()
        out["sizes"].append(row)
        del exact, vectors
    return out


def vector_search(
    sizes: list[int], queries: int, *, one_thread: bool, int8: bool
) -> dict[str, Any]:
    """``vector_child`` in a fresh process, BLAS on one thread or at its default."""
    threads = {name: ("1" if one_thread else None) for name in THREAD_ENV}
    spec = {"sizes": sizes, "queries": queries, "int8": int8}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with _environ(**threads):
        return _child(VECTOR_CHILD, [root], json.dumps(spec))


# -- the command -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench.backends",
        description="Rust core against the Python reference path: log replay and decode "
        "rates, exact top-10 latency, int8 search memory, recall and latency.",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="memories per database, comma-separated (default 100k,1m)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=DEFAULT_RUNS,
        help=f"fresh processes per replay and decode figure (default {DEFAULT_RUNS}, +1 discarded)",
    )
    p.add_argument(
        "--queries",
        type=int,
        default=QUERIES,
        help=f"timed queries per search figure (default {QUERIES})",
    )
    p.add_argument(
        "--only",
        type=lambda t: [s for s in SECTIONS if s in t.split(",")] or list(SECTIONS),
        default=list(SECTIONS),
        help="sections, comma-separated: replay, decode, exact, int8 (default all)",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also cProfile one decode run per backend at the largest size",
    )
    p.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"where seeded databases live and are reused (default {DEFAULT_DIR})",
    )
    add_json_option(p)
    return p


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    if mnemos.backend() != "rust":
        raise BenchError("comparing the backends needs the Rust extension (unset MNEMOS_BACKEND)")
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "startup_bench.backends", *argv]),
        "machine": machine.describe(args.dir),
        "settings": {
            "sizes": args.sizes,
            "runs": args.runs,
            "warmup_runs": measure.WARMUP_RUNS,
            "queries": args.queries,
            "warmup_queries": WARMUP,
            "rounds": ROUNDS,
            "top_k": TOP_K,
            "rescores": list(RESCORES),
            "dim": DIM,
            "sections": args.only,
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
            "extension": _extension(),
        },
        "replay": [],
        "decode": [],
        "vectors": [],
        "profiles": [],
    }
    for n in args.sizes:
        db = seed(args.dir, n, log=progress)
        for backend in BACKENDS:
            if "replay" in args.only:
                progress(f"replay {n:,} events, {backend} ...")
                results["replay"].append(replay(db.log_path, n, backend, args.runs))
            if "decode" in args.only:
                progress(f"scan and decode {n:,} records, {backend} ...")
                results["decode"].append(decode(db.log_path, n, backend, args.runs))
            if args.profile and n == max(args.sizes):
                progress(f"profile of scan and decode, {backend} ...")
                results["profiles"].append(
                    {
                        "memories": n,
                        "backend": backend,
                        "profile": decode_profile(db.log_path, backend),
                    }
                )
    if "exact" in args.only or "int8" in args.only:
        for one_thread in (True, False):
            int8 = "int8" in args.only and one_thread
            if "exact" not in args.only and not int8:
                continue
            progress(f"vector search, BLAS threads {'1' if one_thread else 'default'} ...")
            out = vector_search(args.sizes, args.queries, one_thread=one_thread, int8=int8)
            results["vectors"].append({"blas": "1" if one_thread else "default", **out})
    results["machine"]["load_average_end"] = machine.load_average()
    return results


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) if values else "?"


def _p(ms: dict[str, float]) -> str:
    return f"{ms['p50']:.2f} / {ms['p99']:.2f}"


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    src, ext = m["mnemos_source"], s["extension"]
    mem = "?" if m["mem_total_gib"] is None else f"{m['mem_total_gib']:.1f}"
    out = [
        "# Mnemos backends: Rust core against the Python reference",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {m['cpu']}, {m['cores_logical']} logical cores ({m['cores_usable']} "
        f"usable), {mem} GiB RAM; {m['python']}, numpy {m['numpy']}",
        f"- mnemos {m['mnemos']} (commit {src['commit'] or '?'}"
        f"{' + edits' if src['edited'] else ''}, py digest {src['py_digest']}), extension "
        f"digest {ext['digest']}",
        f"- load average (1, 5, 15 min) at start {_load(m['load_average_start'])}, at end "
        f"{_load(m.get('load_average_end', []))}; each row gives the 1-min load at its start",
        f"- replay and decode: {s['runs']} fresh processes per row (+{s['warmup_runs']} "
        "discarded), median, page cache warm; 384-d float32 vectors, ~100-byte texts",
        f"- search: {s['queries']} timed single queries per figure (+{s['warmup_queries']} "
        f"warm-up per block, {s['rounds']} blocks per path taking turns), top {s['top_k']}",
    ]
    if results["replay"]:
        out += [
            "",
            "## Replay: `Mnemos.open` of a log-only database (fresh process)",
            "",
            "events/s over the whole open, and over the apply step (decode + apply).",
            "",
        ]
        out += _table(
            [
                "events",
                "backend",
                "open ms p50",
                "events/s",
                "apply ms p50",
                "apply events/s",
                "peak RSS MiB",
                "load",
            ],
            [
                [
                    f"{r['events_replayed']:,}",
                    r["backend"],
                    _ms(r["open_ms_p50"]),
                    _rate(r["replay_events_per_s"]),
                    _ms(r["log_replay_ms_p50"]),
                    _rate(r["apply_events_per_s"]),
                    f"{r['peak_rss_mib']:,.0f}",
                    f"{r['load_average'][0]:.2f}" if r["load_average"] else "?",
                ]
                for r in results["replay"]
            ],
        )
    if results["decode"]:
        out += [
            "",
            "## Decode: `LogCursor.read_events()`, every event decoded as open decodes them, not applied",
            "",
            f"Target: scan + decode >= {DECODE_TARGET_PER_S:,.0f} records/s.",
            "",
        ]
        out += _table(
            [
                "records",
                "backend",
                "scan /s (ns each)",
                "decode /s (ns each)",
                "scan + decode /s",
                "target",
                "load",
            ],
            [
                [
                    f"{r['records']:,}",
                    r["backend"],
                    f"{_rate(r['scan_per_s'])} ({r['scan_ns_per_record']:,.0f})",
                    f"{_rate(r['decode_per_s'])} ({r['decode_ns_per_record']:,.0f})",
                    _rate(r["total_per_s"]),
                    "met" if r["total_per_s"] >= DECODE_TARGET_PER_S else "**missed**",
                    f"{r['load_average'][0]:.2f}" if r["load_average"] else "?",
                ]
                for r in results["decode"]
            ],
        )
    exact_rows = []
    for v in results["vectors"]:
        for size in v["sizes"]:
            ms = size["exact"]["ms"]
            exact_rows.append(
                [
                    f"{size['vectors']:,}",
                    v["blas"],
                    _p(ms["rust"]),
                    _p(ms["numpy"]),
                    f"{ms['numpy']['p50'] / ms['rust']['p50']:.2f}x",
                    _p(ms["kernel"]),
                    _p(ms["matvec"]),
                    "yes" if size["exact"]["identical"] else "**no**",
                    f"{size['load_average'][0]:.2f}" if size["load_average"] else "?",
                ]
            )
    if exact_rows:
        out += [
            "",
            "## Exact top-10: `VectorIndex.search`, full mask, one query (ms p50 / p99)",
            "",
            "BLAS threads: OPENBLAS/OMP/MKL_NUM_THREADS=1, or the library default. The Rust "
            "scan uses every usable core either way. same: the numpy path gave the same rows "
            "and scores.",
            "",
        ]
        out += _table(
            [
                "vectors",
                "BLAS threads",
                "Rust search",
                "numpy search",
                "numpy / Rust",
                "Rust kernel alone",
                "numpy `matrix @ q`",
                "same",
                "load",
            ],
            exact_rows,
        )
    int8_rows, size_rows = [], []
    for v in results["vectors"]:
        for size in v["sizes"]:
            q = size.get("int8")
            if q is None:
                continue
            size_rows.append(
                [
                    f"{size['vectors']:,}",
                    f"{q['float32_bytes_per_row']:,}",
                    f"{q['int8_bytes_per_row']:.0f}",
                    f"{q['saving']:.2f}x",
                    f"{q['quantize_ms']:,.0f} / {q['quantize_py_ms']:,.0f}",
                    "yes" if q["quantize_identical"] else "**no**",
                ]
            )
            exact_p50 = size["exact"]["ms"]["rust"]["p50"]
            for r in q["runs"]:
                py = q["numpy"] if r["rescore"] == q["numpy"]["rescore"] else None
                int8_rows.append(
                    [
                        f"{size['vectors']:,}",
                        str(r["rescore"]),
                        f"{r['recall']:.4f}",
                        _p(r["ms"]),
                        f"{exact_p50 / r['ms']['p50']:.2f}x",
                        "—" if py is None else f"{_p(py['ms'])} ({py['queries']} queries)",
                        "—" if py is None else ("yes" if py["identical"] else "**no**"),
                    ]
                )
    if size_rows:
        out += ["", "## int8: memory per row (codes + float32 scale) against float32", ""]
        out += _table(
            [
                "vectors",
                "float32 B/row",
                "int8 B/row",
                "saving",
                "quantize ms Rust / numpy",
                "same",
            ],
            size_rows,
        )
        out += [
            "",
            "## int8 search: recall@10 against the exact top 10, latency (ms p50 / p99)",
            "",
            "rescore: the best rows by int8 score that are then scored exactly over float32 "
            "(the float32 rows must stay reachable for that). Exact / int8: Rust exact search "
            "p50 over Rust int8 p50, one BLAS thread. same: numpy gave the same rows (scores "
            "within 1e-12).",
            "",
        ]
        out += _table(
            ["vectors", "rescore", "recall@10", "Rust", "exact / int8", "numpy", "same"],
            int8_rows,
        )
    for prof in results["profiles"]:
        out += [
            "",
            f"## Profile: scan + decode, {prof['memories']:,} memories, {prof['backend']} "
            "(cProfile; its overhead inflates the Python parts)",
            "",
            "```",
            prof["profile"],
            "```",
        ]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.runs < 1 or args.queries < ROUNDS:
        _parser().error(f"--runs must be at least 1 and --queries at least {ROUNDS}")
    os.makedirs(args.dir, exist_ok=True)
    try:
        results = run(args, argv)
    except BenchError as exc:
        print(f"startup_bench.backends: {exc}", file=sys.stderr)
        return 1
    return emit(results, args.json, lambda: markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
