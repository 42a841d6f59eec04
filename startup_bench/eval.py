"""``python -m startup_bench.eval``: how well ``ask`` finds the memories that answer a question.

Builds a database from ``corpus.make_corpus`` (about 3,200 turns of a team chat, 280
reply and correction edges, 330 questions with the ids of their evidence), then asks every
question in each retrieval mode and reports recall@1/5/10 and MRR over the top 10, and the
median time per ask (informational):

- vector-only: ``db.ask(vector=embed(question))``
- lexical-only: ``ask(question)`` on a read-only handle opened with ``embedder=None``,
  which answers a text query by BM25 alone
- hybrid: ``db.ask(question)``, alone and with ``use_graph``, ``recency_bias`` or both

Temporal questions pass their ``since``/``until`` in every mode. The databases' clock is
fixed an hour after the last session, as if the agent asked right after the conversation:
recency is relative to "now", and the real date would make it depend on the day of the
run. ``--fusion`` picks how hybrid combines its signals (``ask(fusion=...)``); give it
more than once to compare. A mode the database does not support (the call raises
``TypeError`` or ``InvalidInputError``, or the read-only handle cannot be opened) is
reported as n/a with the reason.

The recorded figures use ``--embedder minilm`` (``mnemos.embed.MiniLM``). ``hashing`` is a
feature-hashing bag of words and character trigrams with no model to load: for smoke runs
and tests only, its vector-only figures say nothing about a real embedder.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from mnemos import EmbedderMismatchError, Hit, InvalidInputError, Mnemos

from . import machine
from .corpus import QUESTION_KINDS, Corpus, Question, make_corpus, overlap
from .stats import add_json_option, emit

TOP_K = 10
KS = (1, 5, 10)
EMBED_BATCH = 256
ASKED_AFTER = timedelta(hours=1)  # the clock: this long after the last turn
# What an unsupported mode raises: an unknown keyword, a refused query, a refused open.
UNSUPPORTED = (TypeError, InvalidInputError, EmbedderMismatchError)


class HashingEmbedder:
    """Signed feature hashing of words (weight 1) and character trigrams (weight 0.5)
    into 256 dimensions, L2-normalised. Deterministic and instant; a smoke-test stand-in
    for a real model, not a retrieval baseline."""

    name = "hashing-256"
    dim = 256
    fingerprint = "hashing-v1"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                self._add(out[i], "w:" + word, 1.0)
                padded = f" {word} "
                for j in range(len(padded) - 2):
                    self._add(out[i], "c:" + padded[j : j + 3], 0.5)
            norm = float(np.linalg.norm(out[i]))
            if norm == 0.0:  # no word at all (an emoji): any fixed non-zero vector will do
                out[i, 0] = 1.0
            else:
                out[i] /= norm
        return out

    def _add(self, row: np.ndarray, feature: str, weight: float) -> None:
        # crc32, not hash(): Python salts str hashes per process.
        h = zlib.crc32(feature.encode())
        row[h % self.dim] += weight if h & 0x80000000 else -weight


def make_embedder(name: str) -> Any:
    if name == "hashing":
        return HashingEmbedder()
    try:
        from mnemos.embed import MiniLM  # lazy: loads onnxruntime and the tokenizer
    except ImportError as exc:
        raise SystemExit(
            f"startup_bench.eval: mnemos.embed.MiniLM is not available ({exc}); "
            "use --embedder hashing for a smoke run"
        ) from None
    return MiniLM()


# -- metrics --------------------------------------------------------------------------


def recall_at(ranked: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """The share of the evidence found in the first ``k`` results."""
    if not evidence:
        raise ValueError("a question needs at least one evidence id")
    return len(set(ranked[:k]) & set(evidence)) / len(set(evidence))


def reciprocal_rank(ranked: Sequence[str], evidence: Sequence[str], k: int = TOP_K) -> float:
    """1 / rank of the first evidence id in the first ``k`` results, 0 if none is there."""
    wanted = set(evidence)
    for rank, mid in enumerate(ranked[:k], 1):
        if mid in wanted:
            return 1.0 / rank
    return 0.0


def score(ranked: dict[str, list[str]], questions: Sequence[Question]) -> dict[str, float]:
    """Mean recall@1/5/10 and MRR of ``ranked`` (question id -> result ids) over ``questions``."""
    if not questions:
        return {}
    out = {
        f"recall@{k}": statistics.fmean(recall_at(ranked[q.id], q.evidence, k) for q in questions)
        for k in KS
    }
    out["mrr"] = statistics.fmean(reciprocal_rank(ranked[q.id], q.evidence) for q in questions)
    return out


# -- building the store -----------------------------------------------------------------


def asked_at(corpus: Corpus) -> datetime:
    """The fixed "now" of the evaluation: just after the conversation ends."""
    last: datetime = max(m["timestamp"] for m in corpus.memories)
    return last + ASKED_AFTER


def build(path: str, corpus: Corpus, embedder: Any) -> Mnemos:
    """The corpus in a new database at ``path``, vectors computed here in batches so that
    ingestion is one ``remember_many``; then one ``connect`` per edge."""
    texts = [m["text"] for m in corpus.memories]
    vectors = np.concatenate(
        [
            np.asarray(embedder.embed(texts[i : i + EMBED_BATCH]), dtype=np.float32)
            for i in range(0, len(texts), EMBED_BATCH)
        ]
    )
    # A throwaway store: no syncs, no automatic snapshots.
    now = asked_at(corpus)
    db = Mnemos.open(
        path,
        embedder=embedder,
        clock=lambda: now,
        durability="off",
        snapshot_every_events=None,
        snapshot_every_bytes=None,
    )
    db.remember_many([{**m, "vector": v} for m, v in zip(corpus.memories, vectors, strict=True)])
    for a, b, relation in corpus.edges:
        db.connect(a, b, relation)
    stats = db.stats()
    if stats["memories"] != len(corpus.memories) or stats["edges"] != len(corpus.edges):
        raise RuntimeError(
            f"built {stats['memories']} memories and {stats['edges']} edges, expected "
            f"{len(corpus.memories)} and {len(corpus.edges)}"
        )
    return db


# -- modes ------------------------------------------------------------------------------


@dataclass
class Handles:
    db: Mnemos  # the writer, with the embedder
    ro: Mnemos | None  # read-only, embedder=None: lexical only
    ro_error: str | None  # why ro could not be opened
    vectors: dict[str, np.ndarray]  # question id -> query vector
    hybrid: dict[str, Any] = field(default_factory=dict)  # fusion= for the hybrid modes


def _window(q: Question) -> dict[str, Any]:
    return {} if q.since is None else {"since": q.since, "until": q.until}


def _lexical(h: Handles, q: Question, top_k: int = TOP_K) -> list[Hit]:
    if h.ro is None:
        raise EmbedderMismatchError(h.ro_error or "no read-only handle")
    return h.ro.ask(q.text, top_k=top_k, **_window(q))


AskFn = Callable[[Handles, Question], list[Hit]]
MODES: dict[str, AskFn] = {
    "vector-only": lambda h, q: h.db.ask(vector=h.vectors[q.id], top_k=TOP_K, **_window(q)),
    "lexical-only": _lexical,
    "hybrid": lambda h, q: h.db.ask(q.text, top_k=TOP_K, **h.hybrid, **_window(q)),
    "hybrid+graph": lambda h, q: h.db.ask(
        q.text, top_k=TOP_K, use_graph=True, **h.hybrid, **_window(q)
    ),
    "hybrid+recency": lambda h, q: h.db.ask(
        q.text, top_k=TOP_K, recency_bias=True, **h.hybrid, **_window(q)
    ),
    "hybrid+graph+recency": lambda h, q: h.db.ask(
        q.text, top_k=TOP_K, use_graph=True, recency_bias=True, **h.hybrid, **_window(q)
    ),
}


def run_mode(ask: AskFn, h: Handles, questions: Sequence[Question]) -> dict[str, Any]:
    """Every question through ``ask``: the ranked ids and the time per call, or n/a and
    why if the database refuses the call."""
    ranked: dict[str, list[str]] = {}
    ms: list[float] = []
    for q in questions:
        started = time.perf_counter()
        try:
            hits = ask(h, q)
        except UNSUPPORTED as exc:
            return {"status": "n/a", "reason": f"{type(exc).__name__}: {exc}"}
        ms.append((time.perf_counter() - started) * 1000.0)
        ranked[q.id] = [x.id for x in hits]
    by_kind = {
        kind: score(ranked, [q for q in questions if q.kind == kind])
        for kind in QUESTION_KINDS
        if any(q.kind == kind for q in questions)
    }
    return {
        "status": "ok",
        "metrics": score(ranked, questions),
        "by_kind": by_kind,
        "ask_ms_p50": statistics.median(ms),
        "first_hit_rank": {
            q.id: next((i for i, m in enumerate(ranked[q.id], 1) if m in q.evidence), None)
            for q in questions
        },
    }


def evaluate(
    db: Mnemos,
    path: str,
    embedder: Any,
    questions: Sequence[Question],
    *,
    modes: Sequence[str] = tuple(MODES),
    fusions: Sequence[str] = (),
    now: datetime | None = None,
) -> dict[str, dict[str, Any]]:
    """Each mode's results over ``questions`` on the built database ``db`` at ``path``.
    With ``fusions``, the hybrid modes run once per ``ask(fusion=...)`` value, else with
    the default. ``now`` is the read-only handle's clock (lexical ranking ignores it)."""
    vectors = embedder.embed([q.text for q in questions])
    ro: Mnemos | None = None
    ro_error = None
    try:
        clock = None if now is None else (lambda: now)
        ro = Mnemos.open(path, embedder=None, readonly=True, clock=clock)
    except EmbedderMismatchError as exc:
        ro_error = f"{type(exc).__name__}: {exc}"
    h = Handles(db, ro, ro_error, {q.id: vectors[i] for i, q in enumerate(questions)})
    try:
        results = {}
        for name in modes:
            if not name.startswith("hybrid") or not fusions:
                results[name] = run_mode(MODES[name], h, questions)
                continue
            for fusion in fusions:
                h.hybrid = {"fusion": fusion}
                results[f"{name} ({fusion})"] = run_mode(MODES[name], h, questions)
            h.hybrid = {}
    finally:
        if ro is not None:
            ro.close()
    return results


def corpus_stats(corpus: Corpus) -> dict[str, Any]:
    by_id = {m["id"]: m for m in corpus.memories}
    kinds = Counter(q.kind for q in corpus.questions)
    stamps = [m["timestamp"] for m in corpus.memories]
    return {
        "memories": len(corpus.memories),
        "by_kind": dict(Counter(m["kind"] for m in corpus.memories)),
        "by_namespace": dict(Counter(m["namespace"] for m in corpus.memories)),
        "sessions": len({m["metadata"]["session"] for m in corpus.memories}),
        "first": min(stamps).isoformat(),
        "last": max(stamps).isoformat(),
        "edges": dict(Counter(rel for _a, _b, rel in corpus.edges)),
        "questions": {kind: kinds[kind] for kind in QUESTION_KINDS},
        "evidence_per_question": {
            kind: statistics.fmean(len(q.evidence) for q in corpus.questions if q.kind == kind)
            for kind in QUESTION_KINDS
            if kinds[kind]
        },
        # Highest content-word Jaccard between a question and one piece of its evidence.
        "question_evidence_overlap": {
            kind: statistics.fmean(
                overlap(q.text, [by_id[e]["text"] for e in q.evidence])
                for q in corpus.questions
                if q.kind == kind
            )
            for kind in QUESTION_KINDS
            if kinds[kind]
        },
    }


def _beats(modes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """For each hybrid mode: its margin over the better single signal, per metric."""
    singles = [modes.get(m) for m in ("vector-only", "lexical-only")]
    out: dict[str, Any] = {}
    for name, result in modes.items():
        if not name.startswith("hybrid"):
            continue
        if result["status"] != "ok" or any(s is None or s["status"] != "ok" for s in singles):
            out[name] = None
            continue
        out[name] = {
            metric: result["metrics"][metric]
            - max(s["metrics"][metric] for s in singles if s is not None)
            for metric in result["metrics"]
        }
    return out


# -- report -----------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def markdown(results: dict[str, Any], by_kind: bool) -> str:
    c = results["corpus"]
    modes = results["modes"]
    metrics = [f"recall@{k}" for k in KS] + ["mrr"]
    out = [
        f"# Retrieval quality: {results['settings']['embedder']}, seed {results['settings']['seed']}",
        "",
        f"`{results['command']}` — mnemos {results['machine']['mnemos_source']['commit']}"
        f"{' (edited)' if results['machine']['mnemos_source']['edited'] else ''}, "
        f"backend {results['machine']['backend']}; build {results['build_s']:.1f} s, "
        f"asks {results['eval_s']:.1f} s.",
        "",
        f"Corpus: {c['memories']:,} memories ({', '.join(f'{n:,} {k}' for k, n in c['by_kind'].items())}; "
        f"{', '.join(f'{n:,} in {ns}' for ns, n in c['by_namespace'].items())}) in {c['sessions']} "
        f"sessions, {c['first'][:10]} to {c['last'][:10]}; edges "
        f"{', '.join(f'{n} {r}' for r, n in c['edges'].items())}.",
        "",
    ]
    out += _table(
        ["questions", *QUESTION_KINDS, "all"],
        [
            [
                "count",
                *(str(c["questions"][k]) for k in QUESTION_KINDS),
                str(sum(c["questions"].values())),
            ],
            [
                "evidence ids (mean)",
                *(f"{c['evidence_per_question'].get(k, 0):.1f}" for k in QUESTION_KINDS),
                "",
            ],
            [
                "word overlap with evidence (mean max Jaccard)",
                *(f"{c['question_evidence_overlap'].get(k, 0):.2f}" for k in QUESTION_KINDS),
                "",
            ],
        ],
    )
    out += ["", f"## All questions, top {TOP_K}", ""]
    rows = []
    for name, r in modes.items():
        if r["status"] == "ok":
            rows.append(
                [name, *(f"{r['metrics'][m]:.3f}" for m in metrics), f"{r['ask_ms_p50']:.2f}"]
            )
        else:
            rows.append([name, *("n/a" for _ in metrics), "n/a"])
    out += _table(["mode", *metrics, "ask_ms_p50"], rows)
    out += [
        "",
        "ask_ms_p50 of hybrid modes includes embedding the question; vector-only gets a "
        "precomputed vector.",
    ]
    verdicts = []
    for name, margin in results["hybrid_over_best_single"].items():
        if margin is None:
            continue
        verdict = "beats" if margin["mrr"] > 0 and margin["recall@10"] > 0 else "does NOT beat"
        verdicts.append(
            f"- {name} {verdict} both single signals: MRR {margin['mrr']:+.3f}, "
            f"recall@10 {margin['recall@10']:+.3f} over the better one"
        )
    if verdicts:
        out += ["", *verdicts]
    missing = [(name, r["reason"]) for name, r in modes.items() if r["status"] != "ok"]
    if missing:
        out += ["", "Not measured:", ""]
        out += [f"- {name}: {reason}" for name, reason in missing]
    if by_kind:
        for metric in ("mrr", "recall@10"):
            out += ["", f"## {metric} by question kind", ""]
            kinds = [k for k in QUESTION_KINDS if c["questions"][k]]
            out += _table(
                ["mode", *kinds],
                [
                    [name, *(f"{r['by_kind'][k][metric]:.3f}" for k in kinds)]
                    for name, r in modes.items()
                    if r["status"] == "ok"
                ],
            )
    return "\n".join(out) + "\n"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m startup_bench.eval",
        description="Retrieval quality (recall@k, MRR) of ask's modes on a generated team-chat corpus.",
    )
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    p.add_argument(
        "--sessions", type=int, default=60, help="chat sessions (default 60, ~3,200 memories)"
    )
    p.add_argument(
        "--embedder",
        choices=("minilm", "hashing"),
        default="minilm",
        help="minilm (the recorded figures) or hashing (no model; smoke runs only)",
    )
    p.add_argument(
        "--dir",
        help="build the database under this directory and keep it (default: a temporary one)",
    )
    p.add_argument(
        "--fusion",
        action="append",
        default=[],
        metavar="NAME",
        help="ask(fusion=NAME) for the hybrid modes, e.g. rrf or weighted; repeat to compare "
        "(default: ask's default)",
    )
    p.add_argument(
        "--by-kind", action="store_true", help="also print MRR and recall@10 per question kind"
    )
    add_json_option(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    if args.sessions < 2:
        _parser().error("--sessions must be at least 2")
    started = time.perf_counter()
    corpus = make_corpus(args.seed, args.sessions)
    embedder = make_embedder(args.embedder)
    root = tempfile.mkdtemp(prefix="mnemos-eval-") if args.dir is None else args.dir
    path = os.path.join(root, f"eval-seed{args.seed}-sessions{args.sessions}-{embedder.name}")
    shutil.rmtree(path, ignore_errors=True)  # our own output from an earlier run
    os.makedirs(root, exist_ok=True)
    try:
        db = build(path, corpus, embedder)
        built = time.perf_counter()
        try:
            modes = evaluate(
                db, path, embedder, corpus.questions, fusions=args.fusion, now=asked_at(corpus)
            )
        finally:
            db.close()
        results: dict[str, Any] = {
            "command": shlex.join(["python", "-m", "startup_bench.eval", *argv]),
            "settings": {
                "seed": args.seed,
                "sessions": args.sessions,
                "embedder": embedder.name,
                "top_k": TOP_K,
                "fusion": args.fusion,
                "now": asked_at(corpus).isoformat(),
            },
            "machine": machine.describe(root),
            "corpus": corpus_stats(corpus),
            "build_s": built - started,
            "eval_s": time.perf_counter() - built,
            "modes": modes,
            "hybrid_over_best_single": _beats(modes),
        }
    finally:
        if args.dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return emit(results, args.json, lambda: markdown(results, args.by_kind))


if __name__ == "__main__":
    raise SystemExit(main())
