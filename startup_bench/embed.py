"""Built-in embedder speed: ``python -m startup_bench.embed``.

The issue: "Benchmark and record sentences/s at batch 1, 32 and 128 and the cold
first-embedding time". Measured on :class:`mnemos.embed.MiniLM` (all-MiniLM-L6-v2 on
onnxruntime, fp32) as users get it, ``MiniLM(threads=--threads)`` with the default
``batch_size`` (rows per onnxruntime run; a call of 128 texts is several runs):

- warm throughput, in-process: sentences/s with ``embed()`` called on 1, 32 or 128 texts
  at a time (batch 1: one call per sentence), best of PASSES passes after a warm-up pass,
  on ~500 sentences of mixed length (chat lines of 5-20 words, paragraphs of 60-120, a few
  past the 256-token cut) and on short lines alone (~14 tokens). The cases take turns pass
  by pass, so load from elsewhere on the machine falls on all of them alike;
- the cold first embedding, in fresh processes: from spawn to the first
  ``embed(["hello"])`` returned, and that call alone; once with an empty cache directory
  (the first embed hashes the weights and builds the ONNX graph) and once with both cached.
  A second set of children splits the first embed into its stages;
- that ``import mnemos`` and ``Mnemos.open(path, embedder=None)`` load no onnxruntime.

Everything runs against temporary cache directories (``MNEMOS_CACHE_DIR``), removed
afterwards. The weights file stays in the page cache between runs: "cold" means a new
process, not a cold disk.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from . import machine
from .report import _ms, _rate, _table
from .seed import SEED
from .stats import BenchError, add_json_option, emit, progress, summarize

BATCHES = (1, 32, 128)
PASSES = 3  # timed passes per case, after one warm-up pass; the best counts
COLD_RUNS = 3  # fresh processes per cold case
AGREE_MAX = 1e-4  # max |difference| between a text's rows at batch 1 and batch 128
HEAVY_MODULES = ("onnxruntime", "tokenizers", "onnx")
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# The prototype, on 2 cores, fp32 (sentence lengths not stated).
PROTOTYPE = "~480 sentences/s at batch 1, ~630 at batch 32, ~260 ms cold"

# The sentences. Bump GENERATOR_VERSION when any of this changes.
GENERATOR_VERSION = 1
MIXED_COUNTS = {"chat": 400, "paragraph": 80, "long": 20}
MIXED_WORDS = {"chat": (5, 20), "paragraph": (60, 120), "long": (280, 400)}  # inclusive
SHORT_COUNT = 500
SHORT_WORDS = (10, 12)  # + end mark + [CLS]/[SEP]: ~14 tokens, all words being whole tokens
CLAUSE_WORDS = (6, 18)  # sentence lengths inside a paragraph
ZIPF_S = 1.0
# Common English words: each is one token in the MiniLM vocabulary, so word counts map to
# token counts and the tokenizer does realistic work.
_WORD_TEXT = """
the to and a of i you it is in that for on my me we this be can with have do not at
are will just so was what your but if about get all up out like when time know go
there an one now they from by how some need did as think or today work tomorrow back
meeting call please still new want good make see more been after then should
email remind next week could thanks also over would here day our really going said
tell yes no only sure before take home project send right let us team first last
doctor appointment order number price phone note list check friday monday morning
evening night office report plan trip flight hotel dinner lunch coffee book read
write meet talk ask find keep remember forget buy pay bill rent car train bus late
early done again maybe soon later never always often because while until since
question answer idea problem issue fix update change move share open close start stop
family friend mother father sister brother kid dog cat house room kitchen garden
street city country school class test exam budget money bank account card password
file folder document version code server data database memory search result review
deadline schedule calendar birthday party gift weekend holiday summer winter rain
weather cold warm hot long short big small old young happy tired busy free ready
"""
WORDS = _WORD_TEXT.split()
END_MARKS = (".", ".", ".", "?", "!")

# Runs in a fresh interpreter: argv[1] the parent's time.time() just before spawning,
# argv[2] the thread count (0: the default). Prints one JSON line.
COLD_CHILD = """\
import json, sys, time
ready_s = time.time()
spawned_s = float(sys.argv[1])
started = time.perf_counter()
import mnemos
import_ms = (time.perf_counter() - started) * 1000.0
from mnemos.embed import MiniLM
started = time.perf_counter()
emb = MiniLM(threads=int(sys.argv[2]) or None)
construct_ms = (time.perf_counter() - started) * 1000.0
started = time.perf_counter()
out = emb.embed(["hello"])
first_embed_ms = (time.perf_counter() - started) * 1000.0
done_s = time.time()
started = time.perf_counter()
emb.embed(["hello"])
second_embed_ms = (time.perf_counter() - started) * 1000.0
print(json.dumps({
    "to_first_embedding_ms": (done_s - spawned_s) * 1000.0,
    "interpreter_ms": (ready_s - spawned_s) * 1000.0,
    "import_ms": import_ms,
    "construct_ms": construct_ms,
    "first_embed_ms": first_embed_ms,
    "second_embed_ms": second_embed_ms,
    "shape": list(out.shape),
}))
"""

# Runs in a fresh interpreter: the first embed taken apart. The same work as COLD_CHILD's
# embed, but each stage forced on its own first; "rest" reads the graph cached just before.
STAGES_CHILD = """\
import json, sys, time
import mnemos
from mnemos.embed import MiniLM
from mnemos.embed.minilm import converted_model
emb = MiniLM(threads=int(sys.argv[1]) or None)
ms = {}
started = time.perf_counter()
sha256 = emb.fingerprint
ms["hash_ms"] = (time.perf_counter() - started) * 1000.0
started = time.perf_counter()
import onnxruntime
ms["import_onnxruntime_ms"] = (time.perf_counter() - started) * 1000.0
started = time.perf_counter()
import tokenizers
ms["import_tokenizers_ms"] = (time.perf_counter() - started) * 1000.0
started = time.perf_counter()
converted_model(emb.weights_path, sha256, emb.config)
ms["onnx_graph_ms"] = (time.perf_counter() - started) * 1000.0
started = time.perf_counter()
emb.embed(["hello"])
ms["rest_ms"] = (time.perf_counter() - started) * 1000.0
print(json.dumps(ms))
"""

# Runs in a fresh interpreter: argv[1] a directory for two new databases. Which heavy
# modules are loaded after import, open(embedder=None) and open(embedder="default").
LAZY_CHILD = f"""\
import json, os, sys, time
HEAVY = {HEAVY_MODULES!r}
def loaded():
    return [m for m in HEAVY if m in sys.modules]
started = time.perf_counter()
import mnemos
import_ms = (time.perf_counter() - started) * 1000.0
after = {{"import": loaded()}}
mnemos.Mnemos.open(os.path.join(sys.argv[1], "none"), embedder=None).close()
after["open_none"] = loaded()
mnemos.Mnemos.open(os.path.join(sys.argv[1], "default")).close()
after["open_default"] = loaded()
print(json.dumps({{"import_ms": import_ms, "modules": len(sys.modules), "loaded": after}}))
"""


# -- the sentences ------------------------------------------------------------------------


def _sentence(rng: np.random.Generator, words: int, p: np.ndarray) -> str:
    picked = [WORDS[i] for i in rng.choice(len(WORDS), words, p=p)]
    if words >= 8 and rng.random() < 0.3:  # a comma now and then
        at = int(rng.integers(3, words - 2))
        picked[at] += ","
    picked[0] = picked[0].capitalize()
    return " ".join(picked) + END_MARKS[int(rng.integers(0, len(END_MARKS)))]


def _text(rng: np.random.Generator, words: int, p: np.ndarray) -> str:
    """``words`` words: one sentence if short, else sentences of CLAUSE_WORDS words."""
    if words <= CLAUSE_WORDS[1]:
        return _sentence(rng, words, p)
    parts = []
    while words > 0:
        n = min(words, int(rng.integers(*CLAUSE_WORDS, endpoint=True)))
        parts.append(_sentence(rng, n, p))
        words -= n
    return " ".join(parts)


@cache
def sentences() -> dict[str, list[str]]:
    """The two sets, a pure function of SEED: "mixed" (chat lines, paragraphs and long
    texts, shuffled so every batch mixes them) and "short" (~14-token lines)."""
    weights = 1.0 / np.arange(1, len(WORDS) + 1) ** ZIPF_S
    p = weights / weights.sum()
    rng = np.random.default_rng([SEED, 20])
    mixed = [
        _text(rng, int(rng.integers(*MIXED_WORDS[kind], endpoint=True)), p)
        for kind, count in MIXED_COUNTS.items()
        for _ in range(count)
    ]
    mixed = [mixed[i] for i in rng.permutation(len(mixed))]
    short = [
        _sentence(rng, int(rng.integers(*SHORT_WORDS, endpoint=True)), p)
        for _ in range(SHORT_COUNT)
    ]
    return {"mixed": mixed, "short": short}


def token_counts(tokenizer_path: str, texts: list[str]) -> np.ndarray:
    """Tokens per text with [CLS]/[SEP], before truncation (the embedder cuts at 256)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_path)
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return np.array([len(e.ids) for e in tokenizer.encode_batch(texts)])


# -- the measurements ---------------------------------------------------------------------


def _child(script: str, args: list[str], cache_dir: str) -> dict[str, Any]:
    env = {**os.environ, "MNEMOS_CACHE_DIR": cache_dir}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise BenchError(f"child process failed ({proc.returncode}):\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _cold_run(threads: int, cache_dir: str) -> dict[str, Any]:
    spawned_s = time.time()  # the child subtracts this from its own wall clock
    sample = _child(COLD_CHILD, [repr(spawned_s), str(threads)], cache_dir)
    if sample["shape"] != [1, 384]:
        raise BenchError(f"embed(['hello']) returned shape {sample['shape']}")
    return sample


def cold(
    root: str, threads: int, runs: int, log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], str]:
    """The cold cases, taking turns run by run. Each "empty" run gets a new cache directory;
    the first of them is then the "cached" directory. Returns the rows and that directory."""
    samples: dict[str, list[dict[str, Any]]] = {"empty": [], "cached": []}
    stages: dict[str, list[dict[str, Any]]] = {"empty": [], "cached": []}
    cached_dir = os.path.join(root, "cache-0")
    for r in range(runs):
        log(f"cold first embedding, run {r + 1} of {runs} ...")
        samples["empty"].append(_cold_run(threads, os.path.join(root, f"cache-{r}")))
        samples["cached"].append(_cold_run(threads, cached_dir))
        empty_dir = os.path.join(root, f"stages-{r}")
        stages["empty"].append(_child(STAGES_CHILD, [str(threads)], empty_dir))
        stages["cached"].append(_child(STAGES_CHILD, [str(threads)], cached_dir))
    rows = []
    for case, runs_ in samples.items():
        row: dict[str, Any] = {"cache": case, "runs": len(runs_)}
        for key in (
            "to_first_embedding_ms",
            "interpreter_ms",
            "import_ms",
            "construct_ms",
            "first_embed_ms",
            "second_embed_ms",
        ):
            s = summarize([x[key] for x in runs_])
            row[f"{key.removesuffix('_ms')}_ms_p50"] = s["p50"]
            if key in ("to_first_embedding_ms", "first_embed_ms"):
                row[f"{key.removesuffix('_ms')}_ms_min"] = s["min"]
                row[f"{key.removesuffix('_ms')}_ms_max"] = s["max"]
        row["stages_ms_p50"] = {
            key: statistics.median(x[key] for x in stages[case]) for key in stages[case][0]
        }
        rows.append(row)
    return rows, cached_dir


def lazy_imports(root: str, runs: int, cache_dir: str) -> dict[str, Any]:
    """``import mnemos`` time, and the heavy modules loaded along the way (expected: none)."""
    samples = []
    for r in range(runs):
        directory = os.path.join(root, f"lazy-{r}")
        os.makedirs(directory)
        samples.append(_child(LAZY_CHILD, [directory], cache_dir))
    loaded = samples[0]["loaded"]
    if any(s["loaded"] != loaded for s in samples):
        raise BenchError(f"lazy-import children disagree: {[s['loaded'] for s in samples]}")
    return {
        "runs": runs,
        "import_ms_p50": summarize([s["import_ms"] for s in samples])["p50"],
        "modules_after_import": samples[0]["modules"],
        "loaded": loaded,
    }


def throughput(emb: Any, sets: dict[str, list[str]], passes: int) -> list[dict[str, Any]]:
    """Warm, in-process: one warm-up pass per case, then ``passes`` timed passes, the cases
    taking turns. Best pass, not median: interference only adds time. CPU time is the
    process's (all onnxruntime threads): cpu/wall near the thread count means they were
    busy, well below it means they waited (small runs, or a loaded machine)."""
    cases = [(name, batch) for name in sets for batch in BATCHES]
    wall_s: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    cpu_s: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    call_ms: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    rows_at: dict[tuple[str, int], np.ndarray] = {}
    for p in range(1 + passes):
        for name, batch in cases:
            texts = sets[name]
            calls = [texts[i : i + batch] for i in range(0, len(texts), batch)]
            outs, times = [], []
            cpu_started, started = time.process_time(), time.perf_counter()
            for call in calls:
                call_started = time.perf_counter()
                outs.append(emb.embed(call))
                times.append(time.perf_counter() - call_started)
            elapsed_s = time.perf_counter() - started
            cpu_elapsed_s = time.process_time() - cpu_started
            if p == 0:  # warm-up; keep its vectors to check the batches agree
                rows_at[name, batch] = np.concatenate(outs)
                continue
            wall_s[name, batch].append(elapsed_s)
            cpu_s[name, batch].append(cpu_elapsed_s)
            call_ms[name, batch] += [t * 1000.0 for t in times]
    for name in sets:
        diff = float(np.abs(rows_at[name, BATCHES[0]] - rows_at[name, BATCHES[-1]]).max())
        if diff > AGREE_MAX:
            raise BenchError(
                f"{name}: a text's vector differs by {diff:.2g} between batch "
                f"{BATCHES[0]} and {BATCHES[-1]}"
            )
    results = []
    for name, batch in cases:
        best = int(np.argmin(wall_s[name, batch]))
        n = len(sets[name])
        results.append(
            {
                "set": name,
                "batch": batch,
                "sentences": n,
                "passes": passes,
                "sentences_per_s": n / wall_s[name, batch][best],
                "sentences_per_s_median": n / statistics.median(wall_s[name, batch]),
                "call_ms_p50": summarize(call_ms[name, batch])["p50"],
                "cpu_over_wall": cpu_s[name, batch][best] / wall_s[name, batch][best],
            }
        )
    return results


# -- the command --------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench.embed",
        description="Built-in embedder (MiniLM) speed: warm sentences/s at batch 1, 32 and "
        "128, the cold first embedding with and without the cached ONNX graph, and lazy "
        "imports.",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="onnxruntime threads, MiniLM(threads=...) (default: the usable cores)",
    )
    p.add_argument(
        "--runs",
        type=int,
        default=COLD_RUNS,
        help=f"fresh processes per cold case (default {COLD_RUNS})",
    )
    p.add_argument(
        "--passes",
        type=int,
        default=PASSES,
        help=f"timed passes per throughput case, best counts (default {PASSES})",
    )
    add_json_option(p)
    return p


def run(args: argparse.Namespace, argv: list[str], root: str) -> dict[str, Any]:
    results: dict[str, Any] = {
        "command": shlex.join(["python", "-m", "startup_bench.embed", *argv]),
        "machine": machine.describe(root),
        "settings": {
            "batches": list(BATCHES),
            "passes": args.passes,
            "cold_runs": args.runs,
            "generator_version": GENERATOR_VERSION,
            "seed": SEED,
            "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        },
    }
    started = time.perf_counter()
    results["cold"], cached_dir = cold(root, args.threads, args.runs, progress)
    progress("lazy imports ...")
    results["lazy"] = lazy_imports(root, args.runs, cached_dir)

    # In-process from here on, against the cache the cold runs filled (main() removes it).
    os.environ["MNEMOS_CACHE_DIR"] = cached_dir
    import onnxruntime  # type: ignore[import-untyped]
    import tokenizers

    from mnemos.embed import MiniLM

    emb = MiniLM(threads=args.threads or None)
    sets = sentences()
    described = {}
    for name, texts in sets.items():
        tokens = token_counts(str(emb.tokenizer_path), texts)
        described[name] = {
            "sentences": len(texts),
            "tokens_mean": float(np.minimum(tokens, emb.max_length).mean()),
            "tokens_p50": float(np.median(tokens)),
            "tokens_max": int(tokens.max()),
            "truncated": int((tokens > emb.max_length).sum()),
        }
    results["sets"] = described
    results["settings"].update(
        {
            "onnxruntime": onnxruntime.__version__,
            "tokenizers": tokenizers.__version__,
            "threads": emb.threads,
            "batch_size": emb.batch_size,
            "max_length": emb.max_length,
        }
    )
    progress(f"warm throughput, {1 + args.passes} passes of {2 * len(BATCHES)} cases ...")
    results["throughput"] = throughput(emb, sets, args.passes)
    results["runtime_s"] = time.perf_counter() - started
    results["machine"]["load_average_end"] = machine.load_average()
    return results


def markdown(results: dict[str, Any]) -> str:
    m, s = results["machine"], results["settings"]
    src = m["mnemos_source"]
    sets = results["sets"]
    out = [
        "# Mnemos built-in embedder speed (all-MiniLM-L6-v2, onnxruntime, fp32)",
        "",
        f"- command: `{results['command']}` ({results['runtime_s']:.0f} s)",
        f"- machine: {m['cpu']}, {m['cores_usable']} usable cores, {m['python']}; load "
        f"average {m['load_average_start']} at start, {m['load_average_end']} at end",
        f"- mnemos {m['mnemos']} (commit {src['commit'] or '?'}"
        f"{' + edits' if src['edited'] else ''}, py digest {src['py_digest']}); onnxruntime "
        f"{s['onnxruntime']}, tokenizers {s['tokenizers']}; MiniLM threads={s['threads']}, "
        f"batch_size={s['batch_size']} (rows per onnxruntime run), max_length={s['max_length']}",
        f"- thread settings from the environment: {s['thread_env'] or 'none'}",
        f"- the issue's prototype (2 cores, fp32): {PROTOTYPE}",
        "",
        f"## Warm throughput (sentences/s, best of {s['passes']} passes after a warm-up)",
        "",
        "Sets: mixed is "
        + ", ".join(
            f"{count} {kind} texts of {MIXED_WORDS[kind][0]}-{MIXED_WORDS[kind][1]} words"
            for kind, count in MIXED_COUNTS.items()
        )
        + ", shuffled. "
        + "; ".join(
            f"{name}: {d['sentences']} sentences, {d['tokens_mean']:.1f} tokens mean after the "
            f"{s['max_length']}-token cut (median {d['tokens_p50']:.0f}, max {d['tokens_max']}, "
            f"{d['truncated']} cut)"
            for name, d in sets.items()
        )
        + ". Batch: texts per `embed()` call. cpu/wall: process CPU time over wall time.",
        "",
    ]
    out += _table(
        [
            "set",
            "batch",
            "sentences/s",
            "tokens/s",
            "sentences/s, median pass",
            "call ms p50",
            "cpu/wall",
        ],
        [
            [
                r["set"],
                str(r["batch"]),
                _rate(r["sentences_per_s"]),
                _rate(r["sentences_per_s"] * sets[r["set"]]["tokens_mean"]),
                _rate(r["sentences_per_s_median"]),
                f"{r['call_ms_p50']:.2f}",
                f"{r['cpu_over_wall']:.2f}",
            ]
            for r in results["throughput"]
        ],
    )
    cold = results["cold"]
    out += [
        "",
        f"## Cold first embedding (fresh process each, ms p50 of {cold[0]['runs']})",
        "",
        'to first embedding: from spawn to `embed(["hello"])` returned (interpreter start, '
        "`import mnemos`, `MiniLM()`, the call). empty: a new `MNEMOS_CACHE_DIR`, so the "
        "call hashes the weights and builds the ONNX graph; cached: both already there.",
        "",
    ]
    out += _table(
        [
            "cache",
            "to first embedding",
            "(min..max)",
            "interpreter",
            "import mnemos",
            "MiniLM()",
            "first embed",
            "(min..max)",
            "second embed",
        ],
        [
            [
                r["cache"],
                _ms(r["to_first_embedding_ms_p50"]),
                f"{_ms(r['to_first_embedding_ms_min'])}..{_ms(r['to_first_embedding_ms_max'])}",
                _ms(r["interpreter_ms_p50"]),
                _ms(r["import_ms_p50"]),
                _ms(r["construct_ms_p50"]),
                _ms(r["first_embed_ms_p50"]),
                f"{_ms(r['first_embed_ms_min'])}..{_ms(r['first_embed_ms_max'])}",
                f"{r['second_embed_ms_p50']:.2f}",
            ]
            for r in cold
        ],
    )
    out += [
        "",
        "### The first embed in stages (other fresh processes, ms p50)",
        "",
        "Each stage forced on its own, in order. ONNX graph: `converted_model()`, which builds "
        "and writes the graph (empty) or reads it and checks its sha256 (cached). rest: the "
        "embed after them: tokenizer, the graph read and checked again, session, first run.",
        "",
    ]
    stage_names = {
        "hash_ms": "hash weights",
        "import_onnxruntime_ms": "import onnxruntime",
        "import_tokenizers_ms": "import tokenizers",
        "onnx_graph_ms": "ONNX graph",
        "rest_ms": "rest",
    }
    out += _table(
        ["cache", *stage_names.values(), "sum"],
        [
            [
                r["cache"],
                *(_ms(r["stages_ms_p50"][k]) for k in stage_names),
                _ms(sum(r["stages_ms_p50"][k] for k in stage_names)),
            ]
            for r in cold
        ],
    )
    lazy = results["lazy"]
    step_names = {
        "import": "`import mnemos`",
        "open_none": "`Mnemos.open(path, embedder=None)`",
        "open_default": '`Mnemos.open(path)` (embedder="default", new database)',
    }
    out += [
        "",
        f"## Lazy imports (fresh process each, {lazy['runs']} runs)",
        "",
        f"`import mnemos`: {_ms(lazy['import_ms_p50'])} ms p50, {lazy['modules_after_import']} "
        "modules in sys.modules. Heavy modules loaded after each step "
        f"({', '.join(HEAVY_MODULES)}):",
        "",
    ]
    out += _table(
        ["after", "loaded"],
        [[label, ", ".join(lazy["loaded"][k]) or "none"] for k, label in step_names.items()],
    )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    for label, value in (("--runs", args.runs), ("--passes", args.passes)):
        if value < 1:
            _parser().error(f"{label} must be at least 1")
    if args.threads < 0:
        _parser().error("--threads must be 0 (the default) or more")
    root = tempfile.mkdtemp(prefix="mnemos-bench-embed-")
    cache_dir = os.environ.get("MNEMOS_CACHE_DIR")
    try:
        results = run(args, argv, root)
    except BenchError as exc:
        print(f"startup_bench.embed: {exc}", file=sys.stderr)
        return 1
    finally:
        if cache_dir is None:
            os.environ.pop("MNEMOS_CACHE_DIR", None)
        else:
            os.environ["MNEMOS_CACHE_DIR"] = cache_dir
        shutil.rmtree(root, ignore_errors=True)
    return emit(results, args.json, lambda: markdown(results))


if __name__ == "__main__":
    raise SystemExit(main())
