"""ANN recall and latency next to hnswlib: ``python -m startup_bench.ann``.

For each data set and size (default 100k and 1M vectors of 384 dimensions; queries from the
same distribution, not among them):

- ``seed``: the clustered vectors of ``seed.py`` that the other benchmarks use: 64 centroids
  plus independent noise of 0.5 in every one of the 384 dimensions. Within a cluster the
  points are a 384-dimensional Gaussian blob, the hardest case for any graph index (the
  nearest neighbours are barely nearer than the rest);
- ``lowrank``: the same 64 centroids, but the noise spans a 24-dimensional subspace per
  cluster (same total spread) plus a little isotropic noise: clustered data of low intrinsic
  dimension, as text embeddings are.

What is measured:

- build: Mnemos' deterministic HNSW (``mnemos.index.ann.AnnIndex``, single-threaded by
  design) and hnswlib (``space="cosine"``) with the same ``M`` and ``ef_construction``,
  hnswlib on one thread too so the two do the same work. Both insert in chunks; a build that
  runs out of its time budget stops at a chunk boundary and is measured at the size it
  reached (a chunked build is the same graph as one call). Builds are saved in ``--dir`` and
  reused while their manifest matches (same data, size, parameters and, for Mnemos, the same
  compiled extension); the report then gives the original build time;
- recall@10 against the exact top 10 (float32 brute force, numpy) and p50/p99 latency of one
  ``search``/``knn_query`` call per query at each ``ef``, warm and in-process, the two
  libraries taking turns query by query so a busy moment of the machine lands on both;
- ``VectorIndex.search`` (the exact path, ``ask(exact=True)``) p50 for scale;
- ``to_bytes`` size and time, and ``from_bytes`` (the load at open) time.

hnswlib is optional (``pip install hnswlib``); without it its columns say so.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

import mnemos
from mnemos.index.ann import AnnIndex, available
from mnemos.index.vector import VectorIndex, row_norms

from . import machine
from .cli import _sizes
from .seed import CLUSTERS, DIM, NOISE, SEED, _centroids, clustered_vectors
from .stats import BenchError, add_json_option, emit, progress, summarize

DEFAULT_DIR = "/tmp/mnemos-bench/ann"
DEFAULT_SIZES = (100_000, 1_000_000)
DEFAULT_EFS = (32, 64, 96, 128, 200, 400, 800)
DATA_SETS = ("seed", "lowrank")
M = 16
EF_CONSTRUCTION = 200
QUERIES = 1000
WARMUP = 50
TOP_K = 10
CHUNK_ROWS = 50_000  # inserts per call, so a build can stop at its time budget
EXACT_QUERIES = 50  # the exact scan is slow at 1M; its p50 needs few samples
HNSWLIB_SEED = 100
LOWRANK_DIMS = 24  # the latent dimensions of each lowrank cluster
LOWRANK_ISOTROPIC = 0.1  # per-dimension noise off the subspace
# Bump when a generator changes, so saved builds are made again.
GENERATOR_VERSION = 1
# OpenBLAS threads spin for a while after a matrix product (the exact top 10) and take a core
# from a 2-core machine: let them go to sleep before timing anything.
SETTLE_S = 1.0


@cache
def _bases() -> np.ndarray:
    """Per cluster, LOWRANK_DIMS directions scaled so the noise has NOISE spread per dimension."""
    rng = np.random.default_rng([SEED, 4])
    scale = np.float32(NOISE / np.sqrt(LOWRANK_DIMS))
    return rng.standard_normal((CLUSTERS, LOWRANK_DIMS, DIM), dtype=np.float32) * scale


def lowrank_vectors(rng: np.random.Generator, count: int) -> np.ndarray:
    cluster = rng.integers(0, CLUSTERS, count)
    latent = rng.standard_normal((count, LOWRANK_DIMS), dtype=np.float32)
    out = _centroids()[cluster] + np.float32(LOWRANK_ISOTROPIC) * rng.standard_normal(
        (count, DIM), dtype=np.float32
    )
    bases = _bases()
    for c in range(CLUSTERS):
        rows = np.flatnonzero(cluster == c)
        out[rows] += latent[rows] @ bases[c]
    return np.ascontiguousarray(out, dtype=np.float32)


def _generate(data: str, rng: np.random.Generator, count: int) -> np.ndarray:
    if data == "seed":
        return clustered_vectors(rng, count)[0]
    return lowrank_vectors(rng, count)


def make_vectors(data: str, count: int) -> np.ndarray:
    """Rows 0..count-1, generated in fixed chunks so a prefix of a larger set is the same."""
    parts = []
    for start in range(0, count, CHUNK_ROWS):
        rng = np.random.default_rng([SEED, 3, DATA_SETS.index(data), start])
        parts.append(_generate(data, rng, min(CHUNK_ROWS, count - start)))
    return np.ascontiguousarray(np.concatenate(parts))


def make_queries(data: str, count: int) -> np.ndarray:
    return _generate(data, np.random.default_rng([SEED, 5, DATA_SETS.index(data)]), count)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the k best cosines per query, by float32 brute force in chunks."""
    units = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), CHUNK_ROWS):
        chunk = vectors[start : start + CHUNK_ROWS]
        scores = (units @ chunk.T) / np.linalg.norm(chunk, axis=1)
        scores = np.concatenate([best_scores, scores.astype(np.float32)], axis=1)
        ids = np.broadcast_to(np.arange(start, start + len(chunk)), (len(queries), len(chunk)))
        rows = np.concatenate([best_rows, ids], axis=1)
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    return best_rows


def recall(found: list[set[int]], truth: np.ndarray) -> float:
    per_query = [
        len(f & set(t.tolist())) / truth.shape[1] for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(per_query))


def interleaved(
    calls: dict[str, Callable[[np.ndarray], Any]], warm: np.ndarray, queries: np.ndarray
) -> dict[str, tuple[list[Any], dict[str, float]]]:
    """Each query through every call, taking turns query by query (the order rotating), so
    that a busy moment of the machine lands on all of them alike; after ``warm`` (discarded).
    Per call: its results and a summary of the milliseconds per call."""
    time.sleep(SETTLE_S)
    names = list(calls)
    for q in warm:
        for name in names:
            calls[name](q)
    results: dict[str, list[Any]] = {name: [] for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for i, q in enumerate(queries):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.perf_counter()
            results[name].append(calls[name](q))
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {name: (results[name], summarize(times[name])) for name in names}


# -- builds, saved and reused ------------------------------------------------------------


@cache
def _extension_digest() -> str:
    """Which compiled extension built an index: a saved build is reused only by the same one."""
    with open(mnemos._core.__file__, "rb") as f:
        return hashlib.blake2b(f.read(), digest_size=8).hexdigest()


def _manifest(data: str, n: int, library: str) -> dict[str, Any]:
    return {
        "data": data,
        "requested": n,
        "library": library,
        "m": M,
        "ef_construction": EF_CONSTRUCTION,
        "generator_version": GENERATOR_VERSION,
        "builder": _extension_digest() if library == "mnemos" else _hnswlib_version(),
    }


def _saved(
    args: argparse.Namespace, data: str, n: int, library: str
) -> tuple[str, dict[str, Any] | None]:
    """The path to save a build at, and the saved build's info if it can be reused."""
    path = os.path.join(args.dir, f"{data}-{n}.{library}")
    if args.rebuild:
        return path, None
    try:
        with open(path + ".json") as f:
            saved: dict[str, Any] = json.load(f)
    except (OSError, ValueError):
        return path, None
    return path, saved["info"] if saved.get("manifest") == _manifest(data, n, library) else None


def _save(path: str, data: str, n: int, library: str, info: dict[str, Any]) -> None:
    with open(path + ".json", "w") as f:
        json.dump({"manifest": _manifest(data, n, library), "info": info}, f)


def get_mnemos(
    args: argparse.Namespace, data: str, vectors: np.ndarray
) -> tuple[AnnIndex, dict[str, Any]]:
    n = len(vectors)
    path, info = _saved(args, data, n, "mnemos")
    if info is not None:
        progress(f"{data} {n:,}: loading the saved Mnemos build ...")
        with open(path, "rb") as f:
            return AnnIndex.from_bytes(f.read()), {**info, "reused": True}
    progress(f"{data} {n:,}: building the Mnemos index (budget {args.budget_min} min) ...")
    index = AnnIndex(DIM, m=M, ef_construction=EF_CONSTRUCTION)
    t0 = time.perf_counter()
    built = 0
    while built < n:
        end = min(built + CHUNK_ROWS, n)
        rows = np.arange(built, end)
        index.insert_many(rows, vectors[built:end], [int(r) + 1 for r in rows])
        built = end
        elapsed = time.perf_counter() - t0
        progress(f"  mnemos: {built:,} rows in {elapsed:.0f} s")
        if elapsed > args.budget_min * 60 and built < n:
            break
    info = {"rows": built, "build_s": time.perf_counter() - t0}
    with open(path, "wb") as f:
        f.write(index.to_bytes())
    _save(path, data, n, "mnemos", info)
    return index, {**info, "reused": False}


def get_hnswlib(
    args: argparse.Namespace, data: str, vectors: np.ndarray
) -> tuple[Any, dict[str, Any]]:
    import hnswlib

    n = len(vectors)
    index = hnswlib.Index(space="cosine", dim=DIM)
    path, info = _saved(args, data, n, "hnswlib")
    if info is not None:
        progress(f"{data} {n:,}: loading the saved hnswlib build ...")
        index.load_index(path, max_elements=n)
        index.set_num_threads(1)
        return index, {**info, "reused": True}
    progress(f"{data} {n:,}: building hnswlib (one thread, budget {args.budget_min} min) ...")
    index.init_index(max_elements=n, M=M, ef_construction=EF_CONSTRUCTION, random_seed=HNSWLIB_SEED)
    index.set_num_threads(1)
    t0 = time.perf_counter()
    built = 0
    while built < n:
        end = min(built + CHUNK_ROWS, n)
        index.add_items(vectors[built:end], np.arange(built, end))
        built = end
        elapsed = time.perf_counter() - t0
        progress(f"  hnswlib: {built:,} rows in {elapsed:.0f} s")
        if elapsed > args.budget_min * 60 and built < n:
            break
    info = {"rows": built, "build_s": time.perf_counter() - t0, "version": _hnswlib_version()}
    index.save_index(path)
    _save(path, data, n, "hnswlib", info)
    return index, {**info, "reused": False}


def _hnswlib_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("hnswlib")
    except Exception:
        return None


def _has_hnswlib() -> bool:
    try:
        import hnswlib  # noqa: F401
    except ImportError:
        return False
    return True


# -- measurements ------------------------------------------------------------------------


def save_and_load(index: AnnIndex) -> dict[str, Any]:
    """``to_bytes`` once and ``from_bytes`` (best of 3): what a checkpoint and an open pay."""
    t0 = time.perf_counter()
    data = index.to_bytes()
    to_bytes_ms = (time.perf_counter() - t0) * 1e3
    loads = []
    for _ in range(3):
        t0 = time.perf_counter()
        AnnIndex.from_bytes(data)
        loads.append((time.perf_counter() - t0) * 1e3)
    return {"bytes": len(data), "to_bytes_ms": to_bytes_ms, "from_bytes_ms": min(loads)}


def measure_exact(vectors: np.ndarray, warm: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    """``VectorIndex.search`` over all of ``vectors``: the exact path ANN replaces."""
    rows = len(vectors)
    progress(f"{rows:,}: exact VectorIndex.search ...")
    exact = VectorIndex.from_snapshot(
        vectors,
        row_norms(vectors),
        np.ones(rows, dtype=bool),
        np.zeros(rows, dtype=np.int32),
        np.zeros(rows, dtype=np.int8),
    )
    mask = np.ones(rows, dtype=bool)
    found = interleaved({"exact": lambda q: exact.search(q[None, :], TOP_K, mask)}, warm, queries)
    return {"rows": rows, "ms": found["exact"][1]}


def measure_ann(
    args: argparse.Namespace, data: str, vectors: np.ndarray, warm: np.ndarray, queries: np.ndarray
) -> dict[str, Any]:
    """Both builds, then both searched at each ef, taking turns; Mnemos' save and load."""
    n = len(vectors)
    out: dict[str, Any] = {"data": data, "requested": n, "hnswlib": None}
    index, out["mnemos"] = get_mnemos(args, data, vectors)
    h = None
    if _has_hnswlib():
        h, out["hnswlib"] = get_hnswlib(args, data, vectors)
    built = {"mnemos": out["mnemos"]["rows"]}
    if h is not None:
        built["hnswlib"] = out["hnswlib"]["rows"]
    truth = {}
    for rows in sorted(set(built.values())):
        progress(
            f"{data} {n:,}: exact top {TOP_K} of {len(queries)} queries over {rows:,} rows ..."
        )
        truth[rows] = exact_top(vectors[:rows], queries, TOP_K)
    for part in built:
        out[part]["runs"] = []
    for ef in args.efs:
        calls: dict[str, Callable[[np.ndarray], Any]] = {
            "mnemos": lambda q, ef=ef: {r for r, _ in index.search(q, TOP_K, ef=ef)[0]}
        }
        if h is not None:
            h.set_ef(ef)
            calls["hnswlib"] = lambda q: set(h.knn_query(q, k=TOP_K, num_threads=1)[0][0].tolist())
        line = []
        for part, (found, ms) in interleaved(calls, warm, queries).items():
            hits = recall(found, truth[built[part]])
            out[part]["runs"].append({"ef": ef, "recall": hits, "ms": ms})
            line.append(f"{part} recall {hits:.4f} p50 {ms['p50']:.3f} ms")
        progress(f"  ef={ef}: " + ", ".join(line))
    out["mnemos"].update(save_and_load(index), unreachable=index.unreachable())
    return out


def measure(args: argparse.Namespace, data: str, n: int) -> dict[str, Any]:
    progress(f"{data} {n:,}: generating ...")
    vectors = make_vectors(data, n)
    queries = make_queries(data, WARMUP + args.queries)
    warm, timed_queries = queries[:WARMUP], queries[WARMUP:]
    out = measure_ann(args, data, vectors, warm, timed_queries)
    gc.collect()  # the indexes are gone: the exact scan gets the memory bandwidth alone
    rows = out["mnemos"]["rows"]
    out["exact"] = measure_exact(vectors[:rows], warm, timed_queries[:EXACT_QUERIES])
    return out


# -- the command -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench.ann",
        description="ANN recall@10 and latency of Mnemos' deterministic HNSW next to hnswlib "
        "with the same M / ef_construction / ef on the same clustered 384-d data.",
    )
    p.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES),
        help="vectors, comma-separated (default 100k,1m)",
    )
    p.add_argument(
        "--data",
        type=lambda t: [d for d in DATA_SETS if d in t.split(",")] or list(DATA_SETS),
        default=list(DATA_SETS),
        help="data sets, comma-separated: seed, lowrank (default both)",
    )
    p.add_argument(
        "--efs",
        type=lambda t: sorted({int(x) for x in t.split(",")}),
        default=list(DEFAULT_EFS),
        help="ef values to search with (default 32,64,96,128,200,400,800)",
    )
    p.add_argument(
        "--queries", type=int, default=QUERIES, help=f"timed queries (default {QUERIES})"
    )
    p.add_argument(
        "--budget-min",
        type=float,
        default=30.0,
        help="time budget per build, minutes: a build stops at the next chunk after it (default 30)",
    )
    p.add_argument(
        "--dir",
        default=DEFAULT_DIR,
        help=f"where builds are saved and reused (default {DEFAULT_DIR})",
    )
    p.add_argument(
        "--rebuild", action="store_true", help="build again even if a saved build matches"
    )
    add_json_option(p)
    return p


def run(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    if not available():
        raise BenchError("the ANN index needs the Rust extension (unset MNEMOS_BACKEND, rebuild)")
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "startup_bench.ann", *argv]),
        "machine": machine.describe(args.dir),
        "settings": {
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "efs": args.efs,
            "queries": args.queries,
            "warmup": WARMUP,
            "top_k": TOP_K,
            "dim": DIM,
            "clusters": CLUSTERS,
            "noise": NOISE,
            "lowrank_dims": LOWRANK_DIMS,
            "budget_min": args.budget_min,
            "hnswlib": _hnswlib_version() if _has_hnswlib() else None,
        },
        "sizes": [],
    }
    for data in args.data:
        for n in args.sizes:
            results["sizes"].append(measure(args, data, n))
    results["machine"]["load_average_end"] = machine.load_average()
    return results


def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    hn = s["hnswlib"]
    out = [
        "# ANN: Mnemos deterministic HNSW next to hnswlib",
        "",
        f"- command: `{results['command']}`",
        f"- machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['python']}, numpy {m['numpy']}; "
        f"load average {m['load_average_start']} at start, {m['load_average_end']} at end",
        f"- M={s['m']}, ef_construction={s['ef_construction']}, top {s['top_k']}, {s['dim']}-d vectors "
        f"around {s['clusters']} centroids: `seed` with independent noise {s['noise']} per dimension, "
        f"`lowrank` with the same spread in a {s['lowrank_dims']}-d subspace per cluster",
        f"- {s['queries']} timed single-query calls per ef after {s['warmup']} discarded, the "
        "libraries taking turns, one thread; recall against float32 brute force",
        f"- hnswlib {hn} (space='cosine', one thread for build and search)"
        if hn
        else "- hnswlib: not installed",
        "",
        "| data | vectors | ef | Mnemos recall@10 | Mnemos p50 ms | Mnemos p99 ms | hnswlib recall@10 | hnswlib p50 ms | hnswlib p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        mn, hl = size["mnemos"], size["hnswlib"]
        hruns = {r["ef"]: r for r in hl["runs"]} if hl else {}
        for r in mn["runs"]:
            h = hruns.get(r["ef"])
            out.append(
                f"| {size['data']} | {mn['rows']:,} | {r['ef']} | {r['recall']:.4f} | {_f(r['ms']['p50'])} | "
                f"{_f(r['ms']['p99'])} | {_f(h and h['recall'], 4)} | {_f(h and h['ms']['p50'])} | "
                f"{_f(h and h['ms']['p99'])} |"
            )
    out += [
        "",
        "| data | vectors | Mnemos build s | hnswlib build s (1 thread) | exact search p50 ms | index bytes | to_bytes ms | from_bytes ms | unreachable |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        mn, hl, ex = size["mnemos"], size["hnswlib"], size["exact"]
        partial = "" if mn["rows"] == size["requested"] else f" (of {size['requested']:,}: budget)"
        hbuild = "—"
        if hl:
            hbuild = f"{hl['build_s']:.1f}"
            if hl["rows"] != size["requested"]:
                hbuild += f" ({hl['rows']:,} rows)"
        out.append(
            f"| {size['data']} | {mn['rows']:,}{partial} | {mn['build_s']:.1f} | {hbuild} | "
            f"{ex['ms']['p50']:.2f} | {mn['bytes']:,} | {mn['to_bytes_ms']:.0f} | "
            f"{mn['from_bytes_ms']:.0f} | {mn['unreachable']} |"
        )
    if any(size["mnemos"].get("reused") for size in results["sizes"]):
        out += ["", "Build times of builds reused from `--dir` are those of the original build."]
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
        print(f"startup_bench.ann: {exc}", file=sys.stderr)
        return 1
    return emit(results, args.json, lambda: markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
