"""The Rust vector kernels give the numpy reference's answers (mnemos/index/kernels.py).

Candidates: the Rust rows contain the reference's, and exact rescoring of either gives the
same top-k (ids, order and scores) as ``VectorIndex.search``; for random, clustered and
small-integer rows (exact ties), any mask, k beyond the rows, dim 1 and odd dims, matrices
in several parts, one query or a batch. int8: the same codes, the same rows and scores,
and recall@10 >= 0.95 on clustered 384-d rows. Bad arrays raise InvalidInputError (a
ValueError), from the wrapper and from the binding alike, never crash.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnemos import _native
from mnemos.errors import InvalidInputError
from mnemos.index import kernels
from mnemos.index.vector import RESCORE_MARGIN, VectorIndex, cosine, row_norms

needs_rust = pytest.mark.skipif(_native._core is None, reason="the Rust extension is not built")


def make_rows(rng: np.random.Generator, n: int, dim: int, kind: str) -> np.ndarray:
    if kind == "clustered":
        centres = rng.standard_normal((max(1, n // 20), dim))
        rows = centres[rng.integers(0, len(centres), n)] + 0.1 * rng.standard_normal((n, dim))
    elif kind == "integers":  # exact scores and many exact ties
        rows = rng.integers(-2, 3, (n, dim)).astype(np.float64)
    else:
        rows = rng.standard_normal((n, dim))
    rows = rows.astype(np.float32)
    rows[~rows.any(axis=1), 0] = 1.0  # a zero vector is invalid input to the database
    if n > 1:  # duplicate rows: tied scores
        rows[rng.integers(0, n, n // 5)] = rows[rng.integers(0, n)]
    return rows


def make_mask(rng: np.random.Generator, n: int, kind: str) -> np.ndarray | None:
    if kind == "none":
        return None
    if kind == "all":
        return np.ones(n, dtype=bool)
    if kind == "empty":
        return np.zeros(n, dtype=bool)
    if kind == "uint8":
        return (rng.random(n) < 0.5).astype(np.uint8) * 3
    return rng.random(n) < 0.1  # sparse


def units_of(queries: np.ndarray) -> np.ndarray:
    """Unit queries in float64, as ``VectorIndex.search`` makes them."""
    wide = np.asarray(queries, dtype=np.float64)
    out: np.ndarray = wide / np.sqrt(np.square(wide).sum(axis=1, keepdims=True))
    return out


def split(rows: np.ndarray, cuts: list[int]) -> list[np.ndarray]:
    bounds = [0, *sorted(cuts), len(rows)]
    return [np.ascontiguousarray(rows[a:b]) for a, b in itertools.pairwise(bounds)]


def rescore(
    rows: np.ndarray, units: np.ndarray, found: list[np.ndarray], top_k: int, selected: int
) -> list[list[tuple[int, float]]]:
    """The exact rescoring that ``VectorIndex.search`` applies to its candidates."""
    k = min(top_k, selected)
    if k <= 0:
        return [[] for _ in units]
    results = []
    for j, rows_j in enumerate(found):
        exact = cosine(rows[rows_j], units[j])
        order = np.lexsort((rows_j, -exact))
        cut = exact[order[k - 1]]
        results.append([(int(rows_j[i]), float(exact[i])) for i in order if exact[i] >= cut])
    return results


def index_of(rows: np.ndarray) -> VectorIndex:
    index = VectorIndex(rows.shape[1])
    for row in rows:
        index.append(row, 0, 0)
    return index


cases = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "n": st.integers(1, 300),
        "dim": st.sampled_from([1, 2, 3, 7, 16, 33, 100, 384]),
        "kind": st.sampled_from(["random", "clustered", "integers"]),
        "mask": st.sampled_from(["none", "all", "empty", "sparse", "uint8"]),
        "k": st.integers(0, 40),
        "queries": st.integers(1, 9),
        "cuts": st.lists(st.floats(0, 1), max_size=3),
    }
)


def build(case: dict) -> tuple:
    rng = np.random.default_rng(case["seed"])
    n, dim = case["n"], case["dim"]
    rows = make_rows(rng, n, dim, case["kind"])
    mask = make_mask(rng, n, case["mask"])
    queries = rng.standard_normal((case["queries"], dim))
    if case["kind"] == "integers":
        queries = np.round(queries)
        queries[~queries.any(axis=1), 0] = 1.0
    else:  # queries near rows, as questions about stored things are
        queries[0] = rows[rng.integers(0, n)]
    parts = split(rows, [int(c * n) for c in case["cuts"]])
    return rows, parts, row_norms(rows), queries, mask


@given(cases)
@settings(max_examples=150, deadline=None)
def test_reference_candidates_rescore_to_the_answer_of_vector_search(case):
    rows, parts, norms, queries, mask = build(case)
    units = units_of(queries)
    found = kernels.candidates_py(parts, norms, units, mask, case["k"], RESCORE_MARGIN)
    selected = len(rows) if mask is None else int(np.count_nonzero(mask))
    full_mask = np.ones(len(rows), dtype=bool) if mask is None else mask.astype(bool)
    want = index_of(rows).search(queries, case["k"], full_mask)
    assert rescore(rows, units, found, case["k"], selected) == want


@needs_rust
@given(cases)
@settings(max_examples=300, deadline=None)
def test_rust_candidates_contain_the_reference_and_rescore_identically(case):
    rows, parts, norms, queries, mask = build(case)
    units, k = units_of(queries), case["k"]
    want = kernels.candidates_py(parts, norms, units, mask, k, RESCORE_MARGIN)
    got = kernels.candidates(parts, norms, units, mask, k, RESCORE_MARGIN)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == np.int64
        assert np.all(np.diff(g) > 0), "ascending"
        assert set(w.tolist()) <= set(g.tolist())
        if mask is not None:
            assert mask[g].all(), "masked rows are never candidates"
    selected = len(rows) if mask is None else int(np.count_nonzero(mask))
    ours = rescore(rows, units, got, k, selected)
    theirs = rescore(rows, units, want, k, selected)
    assert [[r for r, _ in hits] for hits in ours] == [[r for r, _ in hits] for hits in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert np.allclose([s for _, s in a], [s for _, s in b], rtol=0, atol=1e-6)


@needs_rust
@given(cases)
@settings(max_examples=50, deadline=None)
def test_batched_candidates_equal_one_query_at_a_time(case):
    _rows, parts, norms, queries, mask = build(case)
    units = units_of(queries)
    batch = kernels.candidates(parts, norms, units, mask, case["k"], RESCORE_MARGIN)
    for j in range(len(units)):
        (one,) = kernels.candidates(parts, norms, units[j : j + 1], mask, case["k"], 1e-3)
        assert one.tolist() == batch[j].tolist()


@needs_rust
@pytest.mark.parametrize("dim", [1, 5, 384])
def test_k_beyond_the_rows_returns_every_selected_row(dim: int):
    rng = np.random.default_rng(dim)
    rows = make_rows(rng, 30, dim, "random")
    mask = make_mask(rng, 30, "sparse")
    for m in (None, mask):
        for fn in (kernels.candidates, kernels.candidates_py):
            (found,) = fn([rows], row_norms(rows), units_of(rows[:1]), m, 31, RESCORE_MARGIN)
            want = np.arange(30) if m is None else np.flatnonzero(m)
            assert found.tolist() == want.tolist()
            (none,) = fn([rows], row_norms(rows), units_of(rows[:1]), m, 0, RESCORE_MARGIN)
            assert len(none) == 0


@needs_rust
def test_candidates_over_a_read_only_mapped_part_and_an_empty_tail():
    rng = np.random.default_rng(3)
    rows = make_rows(rng, 500, 64, "clustered")
    base = np.frombuffer(rows.tobytes(), dtype="<f4").reshape(500, 64)  # read-only, as mapped
    tail = np.zeros((0, 64), dtype=np.float32)
    units = units_of(rows[:4])
    got = kernels.candidates([base, tail], row_norms(rows), units, None, 10, RESCORE_MARGIN)
    want = kernels.candidates_py([rows], row_norms(rows), units, None, 10, RESCORE_MARGIN)
    for g, w in zip(got, want, strict=True):
        assert set(w.tolist()) <= set(g.tolist())


# -- int8 ----------------------------------------------------------------------------------


@needs_rust
@given(cases)
@settings(max_examples=100, deadline=None)
def test_int8_codes_and_search_equal_the_reference(case):
    rows, parts, norms, queries, mask = build(case)
    units = units_of(queries)
    codes, scales = kernels.quantize(rows)
    ref_codes, ref_scales = kernels.quantize_py(rows)
    assert np.array_equal(codes, ref_codes)
    assert np.array_equal(scales, ref_scales)
    rescore_n = 4 * case["k"]
    got = kernels.search_int8(codes, scales, parts, norms, units, mask, case["k"], rescore_n)
    want = kernels.search_int8_py(
        codes, scales, parts, norms, units.astype(np.float32), mask, case["k"], rescore_n
    )
    for (g_rows, g_scores), (w_rows, w_scores) in zip(got, want, strict=True):
        assert g_rows.tolist() == w_rows.tolist()
        assert np.allclose(g_scores, w_scores, rtol=0, atol=1e-12)


def test_int8_recall_at_10_on_clustered_rows():
    rng = np.random.default_rng(11)
    n, dim, k = 20_000, 384, 10
    centres = rng.standard_normal((50, dim))
    rows = (centres[rng.integers(0, 50, n)] + 0.35 * rng.standard_normal((n, dim))).astype(
        np.float32
    )
    norms = row_norms(rows)
    units = units_of(centres[rng.integers(0, 50, 30)] + 0.35 * rng.standard_normal((30, dim)))
    codes, scales = kernels.quantize(rows)
    assert codes.nbytes + scales.nbytes <= rows.nbytes / 3.9  # a quarter, plus the scales
    found = kernels.search_int8(codes, scales, [rows], norms, units, None, k, 4 * k)
    hits = 0
    for j in range(len(units)):
        exact = (rows.astype(np.float64) @ units[j]) / norms.astype(np.float64)
        truth = np.lexsort((np.arange(n), -exact))[:k]
        hits += len(set(truth.tolist()) & set(found[j][0].tolist()))
    assert hits / (k * len(units)) >= 0.95


# -- bad input -----------------------------------------------------------------------------


def good(n: int = 20, dim: int = 8) -> tuple:
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows, row_norms(rows), units_of(rows[:2]), np.ones(n, dtype=bool)


def bad_calls() -> list:
    rows, norms, units, mask = good()
    return [
        ([rows.astype(np.float64)], norms, units, mask, "float32"),
        ([rows[:, ::2]], norms, units[:, ::2], mask, "C-contiguous"),
        ([np.asfortranarray(rows)], norms, units, mask, "C-contiguous"),
        ([rows], norms[:-1], units, mask, "norms"),
        ([rows], norms.astype(np.float64), units, mask, "norms"),
        ([rows], norms, units, mask[:-1], "mask"),
        ([rows], norms, units, mask.astype(np.int32), "mask"),
        ([rows], norms, units[:, :-1], mask, "rows of"),
        ([rows.ravel()], norms, units, mask, "2-d"),
    ]


@pytest.mark.parametrize("call", bad_calls())
def test_the_wrapper_rejects_bad_arrays_with_invalid_input(call):
    parts, norms, units, mask, words = call
    with pytest.raises(InvalidInputError, match=words):
        kernels.candidates(parts, norms, units, mask, 5, RESCORE_MARGIN)


def test_the_wrapper_rejects_bad_k_and_margin():
    rows, norms, units, mask = good()
    for k in (-1, 1.5, True):
        with pytest.raises(InvalidInputError):
            kernels.candidates([rows], norms, units, mask, k, RESCORE_MARGIN)
    for margin in (-1e-3, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError):
            kernels.candidates([rows], norms, units, mask, 5, margin)
    with pytest.raises(InvalidInputError):
        kernels.quantize(rows.astype(np.float64))
    codes, scales = kernels.quantize(rows)
    with pytest.raises(InvalidInputError):
        kernels.search_int8(codes[:-1], scales, [rows], norms, units, mask, 5, 20)


@needs_rust
@pytest.mark.parametrize("call", bad_calls())
def test_the_binding_rejects_bad_arrays_with_invalid_input(call):
    parts, norms, units, mask, _words = call
    units32 = np.ascontiguousarray(units, dtype=np.float32)
    with pytest.raises(InvalidInputError):
        _native._core.candidates(parts, norms, units32, mask, 5, RESCORE_MARGIN)


@needs_rust
def test_the_binding_rejects_what_the_wrapper_would_never_pass():
    core = _native._core
    rows, norms, units, mask = good()
    units32 = units.astype(np.float32)
    raw = bytearray(rows.tobytes() + b"\0")
    misaligned = np.frombuffer(raw, dtype=np.float32, count=rows.size, offset=1).reshape(20, 8)
    byteswapped = rows.astype(">f4")
    for parts, q in [([misaligned], units32), ([byteswapped], units32), ([rows], units)]:
        with pytest.raises(InvalidInputError):
            core.candidates(parts, norms, q, mask, 5, RESCORE_MARGIN)
    with pytest.raises(InvalidInputError, match="margin"):
        core.candidates([rows], norms, units32, mask, 5, -1.0)
    with pytest.raises(InvalidInputError, match="float32"):
        core.quantize(rows.astype(np.float64))
    codes, scales = kernels.quantize(rows)
    with pytest.raises(InvalidInputError, match="int8"):
        core.search_int8(codes.view(np.uint8), scales, [rows], norms, units32, mask, 5, 20)
    with pytest.raises(InvalidInputError, match="codes are"):
        core.search_int8(codes[:-1], scales, [rows], norms, units32, mask, 5, 20)
    with pytest.raises(TypeError):
        core.candidates([rows.tolist()], norms, units32, mask, 5, RESCORE_MARGIN)
