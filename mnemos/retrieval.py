"""Hybrid retrieval: the ranking behind ``ask`` and ``ask_many`` (README "Retrieval").

For one query, in order:

1. Filters (namespace, kind, since/until, where) make a row mask; every signal sees only
   the rows it lets through.
2. Each active signal ranks its candidates: the vector signal the ``pool`` rows of
   highest cosine (exact), the lexical signal the ``pool`` rows of highest BM25.
3. Fusion, over every row either signal ranked, with each signal's raw score for it (the
   exact cosine; BM25, 0 without a matching term): with one signal the fused score is
   that raw score; with both, by default (``fusion="weighted"``) the normalised sum
   ``W_VECTOR * max(cosine, 0) + W_LEXICAL * min(bm25 / full, 1)``, where ``full`` is the
   BM25 of a row of average length holding each query term once (the sum of the terms'
   idf; FORMAT.md "Lexical scoring"), or with
   ``fusion="rrf"`` reciprocal-rank fusion, ``sum 1 / (RRF_K + rank)`` over the pools
   that hold the row (ranks from 1).
4. Preferences: the product of importance ``1 + IMPORTANCE_WEIGHT * (importance - 0.5)``,
   the kind's weight, and with a recency half-life ``h`` the recency factor
   ``1 - RECENCY_WEIGHT + RECENCY_WEIGHT * 2 ** (-age / h)`` multiplies the fused score
   (divides it, if negative, so a preferred memory always moves up). At the defaults
   every factor is exactly 1 and a vector-only score is the cosine.
5. With ``use_graph``, the best ``top_k`` rows spread score along edges (either
   direction, any relation) for up to GRAPH_DEPTH hops, breadth first: a memory reached
   gets ``seed score * prod(GRAPH_DECAY * min(max(weight, 0), 1))`` along the path the
   walk took, the best over seeds, added to its own score. It need not have matched
   the query at all; it must pass the filters.
6. Order: score descending, then memory id ascending (the documented stable key).

Everything is computed in float64 from the state alone (and ``now``, resolved once per
ask from the clock), so the same state and parameters always give the same list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from . import format as fmt
from .errors import InvalidInputError
from .events import check_kind, check_namespace, to_micros
from .filters import compile_where
from .index.lexical import tokenize
from .state import KIND_CODE, State

# The fusion constants were chosen on the evaluation corpus (README "Retrieval quality").
RRF_K = 60
W_VECTOR = 0.7
W_LEXICAL = 0.3
IMPORTANCE_WEIGHT = 0.2
RECENCY_WEIGHT = 0.2
RECENCY_HALF_LIFE_S = 30 * 24 * 3600.0  # recency_bias=True
GRAPH_DEPTH = 2
GRAPH_DECAY = 0.7
POOL_MIN = 50  # candidates per signal: max(POOL_MIN, POOL_PER_HIT * top_k)
POOL_PER_HIT = 4
QUERY_BLOCK = 64  # queries per matrix product in ask_many (bounds its memory)
FUSIONS = ("weighted", "rrf")
TIME_INDEX_BELOW = 1 / 16  # ranges under this share of rows are read from the time index

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class AskParams:
    """An ask's parameters, checked and resolved (times in microseconds)."""

    top_k: int
    namespaces: tuple[str, ...] | None = None
    kinds: tuple[str, ...] | None = None
    where: Mapping[str, Any] | None = None
    since: int | None = None
    until: int | None = None
    use_graph: bool = False
    half_life_s: float | None = None
    now: int = 0
    fusion: str = "weighted"
    kind_weights: Mapping[str, float] = field(default_factory=dict)
    explain: bool = False
    exact: bool = False


@dataclass
class Ranked:
    row: int
    score: float
    components: dict[str, float] | None


def resolve(
    *,
    top_k: object,
    namespace: object,
    kind: object,
    where: object,
    since: object,
    until: object,
    use_graph: object,
    recency_bias: object,
    fusion: object,
    kind_weights: object,
    explain: object,
    exact: object,
    now: int,
    top_k_max: int,
) -> AskParams:
    """Check every ask parameter (raising ``InvalidInputError``) and resolve it."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= top_k_max:
        raise InvalidInputError(f"top_k must be an int from 1 to {top_k_max}; got {top_k!r}")
    if fusion not in FUSIONS:
        raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}; got {fusion!r}")
    for name, flag in (("use_graph", use_graph), ("explain", explain), ("exact", exact)):
        if not isinstance(flag, bool):
            raise InvalidInputError(f"{name} must be True or False; got {flag!r}")
    if where is not None:
        compile_where(where)  # validates
    lo = _time_bound(since, "since", now)
    hi = _time_bound(until, "until", now)
    return AskParams(
        top_k=top_k,
        namespaces=_names(namespace, "namespace", check_namespace),
        kinds=_names(kind, "kind", check_kind),
        where=where,  # type: ignore[arg-type]
        since=lo,
        until=hi,
        use_graph=use_graph,  # type: ignore[arg-type]
        half_life_s=half_life(recency_bias),
        now=now,
        fusion=str(fusion),
        kind_weights=_kind_weights(kind_weights),
        explain=explain,  # type: ignore[arg-type]
        exact=exact,  # type: ignore[arg-type]
    )


def _names(value: object, what: str, check: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, (list, tuple, set, frozenset)) or not values:
        raise InvalidInputError(f"{what} must be a str or a non-empty list of str; got {value!r}")
    return tuple(sorted({check(v) for v in values}))


def _time_bound(value: object, what: str, now: int) -> int | None:
    """A datetime or epoch seconds, or a timedelta meaning that long before now."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return now - value // timedelta(microseconds=1)
    if not isinstance(value, (datetime, int, float)) or isinstance(value, bool):
        raise InvalidInputError(
            f"{what} must be a datetime, epoch seconds or a timedelta; got {value!r}"
        )
    return to_micros(value, what)


def half_life(recency_bias: object) -> float | None:
    """Seconds, from True (the default half-life), a number of seconds, a timedelta or a
    duration string like "7d", "12h", "30m", "90s", "2w"; False/None means no bias."""
    if recency_bias is None or recency_bias is False:
        return None
    if recency_bias is True:
        return RECENCY_HALF_LIFE_S
    seconds: float | None = None
    if isinstance(recency_bias, timedelta):
        seconds = recency_bias.total_seconds()
    elif isinstance(recency_bias, (int, float)):
        seconds = float(recency_bias)
    elif isinstance(recency_bias, str):
        match = _DURATION.match(recency_bias)
        if match:
            seconds = float(match[1]) * _UNIT_S[match[2]]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInputError(
            "recency_bias must be True, a positive number of seconds, a timedelta or a "
            f"duration like '7d', '12h', '30m'; got {recency_bias!r}"
        )
    return seconds


def _kind_weights(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInputError("kind_weights must be a dict like {'semantic': 1.2}")
    weights = {}
    for kind, weight in value.items():
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not 0 < weight < math.inf
        ):
            raise InvalidInputError(f"kind_weights[{kind!r}] must be a positive number")
        weights[check_kind(kind)] = float(weight)
    return weights


# -- the mask ---------------------------------------------------------------------------


def row_mask(state: State, p: AskParams) -> np.ndarray:
    """Live rows that pass every filter."""
    vectors = state.vectors
    n = len(state.ids)
    if vectors is None:
        return np.zeros(n, dtype=bool)
    mask: np.ndarray = vectors.alive[:n].copy()
    if p.namespaces is not None:
        codes = [state.ns_codes[ns] for ns in p.namespaces if ns in state.ns_codes]
        mask &= np.isin(vectors.ns[:n], codes)
    if p.kinds is not None:
        mask &= np.isin(vectors.kind[:n], [KIND_CODE[k] for k in p.kinds])
    if p.since is not None or p.until is not None:
        mask &= _time_mask(state, p.since, p.until, n)
    if p.where is not None:
        test = compile_where(p.where)
        rows = np.flatnonzero(mask)
        keep = np.fromiter((test(state.meta(int(r))) for r in rows), dtype=bool, count=len(rows))
        mask[rows[~keep]] = False
    return mask


def _time_mask(state: State, lo: int | None, hi: int | None, n: int) -> np.ndarray:
    """Rows with lo <= timestamp < hi: from the sorted time index when the range holds
    few memories, else by comparing the whole timestamp column (same answer)."""
    index = state.temporal_index()
    out = np.zeros(n, dtype=bool)
    if index.count(lo, hi) < TIME_INDEX_BELOW * n:
        out[index.rows(lo, hi)] = True
        return out
    tss = np.frombuffer(state.tss, dtype=np.int64, count=n)
    out[:] = True
    if lo is not None:
        out &= tss >= lo
    if hi is not None:
        out &= tss < hi
    return out


# -- ranking ----------------------------------------------------------------------------


@dataclass
class _Signal:
    """One signal's answer to a query: its ranked pool, and for the lexical signal every
    matching row with its score (so any candidate's raw score is known)."""

    pool: list[tuple[int, float]]  # (row, raw score), best first, ties by id
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    full: float = 0.0  # lexical: the score of a full match (see FORMAT.md)


def rank(
    state: State,
    p: AskParams,
    queries: Sequence[tuple[str | None, np.ndarray | None]],
    mask: np.ndarray | None = None,
) -> list[list[Ranked]]:
    """The ranked hits for each (text, vector) query, over the rows ``p`` lets through
    (``mask``, if the caller has already computed ``row_mask``). A text is scored
    lexically; a vector by cosine."""
    if mask is None:
        mask = row_mask(state, p)
    pool = max(POOL_MIN, POOL_PER_HIT * p.top_k)
    vector_pools: dict[int, list[tuple[int, float]]] = {}
    with_vectors = [i for i, (_t, v) in enumerate(queries) if v is not None]
    codes = None
    if p.namespaces is not None:
        codes = [state.ns_codes[ns] for ns in p.namespaces if ns in state.ns_codes]
    if with_vectors and state.vectors is not None:
        for start in range(0, len(with_vectors), QUERY_BLOCK):
            block = with_vectors[start : start + QUERY_BLOCK]
            matrix = np.stack([np.asarray(queries[i][1]) for i in block])
            found_all = state.vector_search(matrix, pool, mask, codes, exact=p.exact)
            for i, found in zip(block, found_all, strict=True):
                vector_pools[i] = found
    lexical = state.lexical_index() if any(t is not None for t, _v in queries) else None
    results = []
    for i, (text, vector) in enumerate(queries):
        signals: dict[str, _Signal] = {}
        if i in vector_pools:
            signals["vector"] = _Signal(_by_score(state, vector_pools[i]))
        if text is not None and lexical is not None:
            rows, scores, full = lexical.score(tokenize(text))
            keep = mask[rows]
            rows, scores = rows[keep], scores[keep]
            signals["lexical"] = _Signal(_top(state, rows, scores, pool), rows, scores, full)
        results.append(_fuse(state, p, mask, vector, signals))
    return results


def _by_score(state: State, found: list[tuple[int, float]]) -> list[tuple[int, float]]:
    ids = state.ids
    return sorted(found, key=lambda rs: (-rs[1], ids[rs[0]]))


def _top(state: State, rows: np.ndarray, scores: np.ndarray, pool: int) -> list[tuple[int, float]]:
    """The best ``pool`` (row, score) by score, then id."""
    if len(rows) > pool:  # keep every row tied with the pool-th, then sort the few
        kth = scores[np.argpartition(-scores, pool - 1)[pool - 1]]
        near = scores >= kth
        rows, scores = rows[near], scores[near]
    return _by_score(state, list(zip(rows.tolist(), scores.tolist(), strict=True)))[:pool]


def _raw_scores(
    state: State, vector: np.ndarray | None, signals: dict[str, _Signal], rows: list[int]
) -> dict[str, dict[int, float]]:
    """Each signal's raw score for every candidate, also for candidates only the other
    signal ranked: the exact cosine, and the BM25 score (0 for no matching term)."""
    raw: dict[str, dict[int, float]] = {}
    if "vector" in signals:
        known = dict(signals["vector"].pool)
        missing = [row for row in rows if row not in known]
        if missing and vector is not None and state.vectors is not None:
            exact = state.vectors.scores(vector, np.asarray(missing, dtype=np.int64))
            known.update(zip(missing, exact.tolist(), strict=True))
        raw["vector"] = known
    if "lexical" in signals:
        sig = signals["lexical"]
        inside = np.isin(sig.rows, rows)
        matched = dict(zip(sig.rows[inside].tolist(), sig.scores[inside].tolist(), strict=True))
        raw["lexical"] = {row: matched.get(row, 0.0) for row in rows}
    return raw


def _fuse(
    state: State,
    p: AskParams,
    mask: np.ndarray,
    vector: np.ndarray | None,
    signals: dict[str, _Signal],
) -> list[Ranked]:
    ids = state.ids
    ranks = {
        name: {row: r for r, (row, _s) in enumerate(sig.pool, 1)} for name, sig in signals.items()
    }
    candidates = sorted({row for by_row in ranks.values() for row in by_row})
    raw = _raw_scores(state, vector, signals, candidates)
    full = signals["lexical"].full if "lexical" in signals else 0.0

    fused: dict[int, float] = {}
    parts: dict[int, dict[str, float]] = {}
    for row in candidates:
        total = 0.0
        detail: dict[str, float] = {}
        for name in signals:
            score, rank_ = raw[name][row], ranks[name].get(row, 0)
            if len(signals) == 1:
                share = score
            elif p.fusion == "rrf":
                share = 1.0 / (RRF_K + rank_) if rank_ else 0.0
            elif name == "vector":
                share = W_VECTOR * max(score, 0.0)
            else:
                share = W_LEXICAL * min(score / full, 1.0) if full else 0.0
            total += share
            detail[name], detail[f"{name}_rank"], detail[f"{name}_fused"] = score, rank_, share
        fused[row] = total
        parts[row] = detail

    base = {row: _prefer(score, _preference(state, p, row)) for row, score in fused.items()}
    graph: dict[int, float] = {}
    if p.use_graph and base:
        graph = _spread(state, p, mask, base)
    final = dict(base)
    for row, extra in graph.items():
        final[row] = final.get(row, 0.0) + extra
    order = sorted(final, key=lambda row: (-final[row], ids[row]))[: p.top_k]

    out = []
    for row in order:
        components = None
        if p.explain:
            components = _explain(state, p, row, vector, signals, parts, fused, graph)
            components["score"] = final[row]
        out.append(Ranked(row, final[row], components))
    return out


def _prefer(score: float, factor: float) -> float:
    """Apply a preference factor so that a larger factor always ranks a memory higher,
    for negative scores (a cosine below zero) as well."""
    return score * factor if score >= 0 else score / factor


def _preference(state: State, p: AskParams, row: int) -> float:
    factor = 1.0 + IMPORTANCE_WEIGHT * (state.imps[row] - fmt.DEFAULT_IMPORTANCE)
    factor *= p.kind_weights.get(state.kinds[row], 1.0)
    if p.half_life_s is not None:
        factor *= _recency(state, p, row)
    return factor


def _recency(state: State, p: AskParams, row: int) -> float:
    assert p.half_life_s is not None
    age_s = max(p.now - state.tss[row], 0) / 1e6
    decay: float = 2.0 ** (-age_s / p.half_life_s)
    return 1.0 - RECENCY_WEIGHT + RECENCY_WEIGHT * decay


def _spread(
    state: State, p: AskParams, mask: np.ndarray, base: dict[int, float]
) -> dict[int, float]:
    """Score each memory reached from the best ``top_k`` rows along edges."""
    ids, rows_of = state.ids, state.rows
    seeds = sorted(base, key=lambda row: (-base[row], ids[row]))[: p.top_k]
    reached: dict[int, float] = {}

    def allowed(mid: str) -> bool:
        return bool(mask[rows_of[mid]])

    for seed in seeds:
        carried = {ids[seed]: base[seed]}
        for _level, via, (other, _rel, _way, weight) in state.graph.walk(
            ids[seed], GRAPH_DEPTH, allow=allowed
        ):
            score = carried[via] * GRAPH_DECAY * min(max(weight, 0.0), 1.0)
            carried[other] = score
            row = rows_of[other]
            if score > reached.get(row, 0.0):
                reached[row] = score
    return reached


def _explain(
    state: State,
    p: AskParams,
    row: int,
    vector: np.ndarray | None,
    signals: dict[str, _Signal],
    parts: dict[int, dict[str, float]],
    fused: dict[int, float],
    graph: dict[int, float],
) -> dict[str, float]:
    out = dict(parts.get(row, {}))
    if row not in parts:  # reached only through the graph: its raw scores, no share
        for name, scores in _raw_scores(state, vector, signals, [row]).items():
            out[name], out[f"{name}_rank"], out[f"{name}_fused"] = scores[row], 0.0, 0.0
    out["fused"] = fused.get(row, 0.0)
    out["importance"] = 1.0 + IMPORTANCE_WEIGHT * (state.imps[row] - fmt.DEFAULT_IMPORTANCE)
    out["kind"] = p.kind_weights.get(state.kinds[row], 1.0)
    if p.half_life_s is not None:
        out["recency"] = _recency(state, p, row)
    if p.use_graph:
        out["graph"] = graph.get(row, 0.0)
    return out
