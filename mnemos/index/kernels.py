"""Vector kernels: the candidate scan of exact search, and int8 search with exact rescoring.

Each function has a numpy reference (``*_py``) and runs the Rust kernel
(``mnemos._core``, ``crates/mnemos-core/src/kernels.rs``) when the native module is
loaded (``mnemos._native.backend() == "rust"``). Arrays go to Rust without a copy: the
matrix parts, norms and mask must already be C-contiguous float32 (bool or uint8 for the
mask); only the small block of queries is converted, explicitly.

The matrix is a list of parts, rows numbered across them, as ``VectorIndex.parts()``
returns it (the rows a snapshot mapped, then the rows added since). The kernels take the
whole list, so the k-th best score they compare against is the global one.
"""

from __future__ import annotations

import numpy as np

from .._native import _core
from ..errors import InvalidInputError

# A float32 score may differ from the true cosine by up to (dim + 4) units of 2**-24 (to
# first order), whatever the order of summation: ``score_error_bound``.
_F32_UNIT = 2.0**-24


def score_error_bound(dim: int) -> float:
    """The most a float32 score ``dot(row, unit) / norm`` can differ from the true cosine.

    For any summation order (BLAS blocks, FMA or not, our lanes), a float32 dot product of
    length ``dim`` is within ``dim * 2**-24 * |row| * |unit|`` of the exact one; rounding
    the query to float32, the norm to float32 and the division add about 3 units more.
    """
    return (dim + 4) * _F32_UNIT


def cross_backend_slack(dim: int) -> float:
    """What the Rust scan adds to the margin so that its candidates contain numpy's.

    Both scans are within ``E = score_error_bound(dim)`` of the true scores, so they differ
    by at most ``2E`` per row and per k-th score: a row numpy keeps (within ``margin`` of its
    k-th) is within ``margin + 4E`` of the Rust k-th. Four more units cover the rounding of
    ``kth - margin`` on each side. About 9e-5 at 384 dimensions.
    """
    return 4 * score_error_bound(dim) + 4 * _F32_UNIT


def _check(
    parts: list[np.ndarray], norms: np.ndarray, units: np.ndarray, mask: np.ndarray | None
) -> tuple[int, int]:
    """Validates the shared arguments; returns (rows, dim)."""
    if not isinstance(units, np.ndarray) or units.ndim != 2 or units.shape[1] < 1:
        raise InvalidInputError("queries must be a 2-d array with at least one column")
    if units.dtype not in (np.float32, np.float64):
        raise InvalidInputError(f"queries must be float32 or float64, not {units.dtype}")
    dim = units.shape[1]
    rows = 0
    for i, part in enumerate(parts):
        if not isinstance(part, np.ndarray) or part.dtype != np.float32 or part.ndim != 2:
            raise InvalidInputError(f"parts[{i}] must be a 2-d float32 array")
        if part.shape[1] != dim:
            raise InvalidInputError(
                f"parts[{i}] has rows of {part.shape[1]} values; the queries have {dim}"
            )
        if not part.flags.c_contiguous:
            raise InvalidInputError(f"parts[{i}] must be C-contiguous (no implicit copy)")
        rows += part.shape[0]
    _check_column(norms, "norms", rows, (np.dtype(np.float32),))
    if mask is not None:
        _check_column(mask, "mask", rows, (np.dtype(np.bool_), np.dtype(np.uint8)))
    return rows, dim


def _check_column(array: np.ndarray, name: str, rows: int, dtypes: tuple[np.dtype, ...]) -> None:
    if not isinstance(array, np.ndarray) or array.ndim != 1 or array.dtype not in dtypes:
        kinds = " or ".join(str(d) for d in dtypes)
        raise InvalidInputError(f"{name} must be a 1-d {kinds} array")
    if len(array) != rows:
        raise InvalidInputError(f"{name} has {len(array)} values for {rows} rows")
    if not array.flags.c_contiguous:
        raise InvalidInputError(f"{name} must be C-contiguous (no implicit copy)")


def _check_k(k: int, name: str = "k") -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise InvalidInputError(f"{name} must be an int >= 0; got {k!r}")


# -- the candidate scan of exact search ----------------------------------------------------


def candidates(
    parts: list[np.ndarray],
    norms: np.ndarray,
    units: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    margin: float,
) -> list[np.ndarray]:
    """For each query (row of ``units``, unit length), the rows to rescore: every row where
    ``mask`` is true (no mask: every row) whose float32 score ``row @ unit / norm`` is within
    ``margin`` of the k-th best, as ascending int64 row numbers; all of them when at most
    ``k`` rows are selected, none when ``k`` is 0.

    A drop-in for the ``found`` of ``VectorIndex.search``. Both backends return every row of
    the exact top-k (ties included) once ``margin >= 2 * score_error_bound(dim)``; the Rust
    scan widens the margin by ``cross_backend_slack(dim)`` so that its rows also contain the
    reference's, and the exact rescoring after it gives the same answer.
    """
    _rows, dim = _check(parts, norms, units, mask)
    _check_k(k)
    if not (np.isfinite(margin) and margin >= 0):
        raise InvalidInputError(f"margin must be finite and >= 0; got {margin!r}")
    if _core is None:
        return candidates_py(parts, norms, units, mask, k, margin)
    queries = np.ascontiguousarray(units, dtype=np.float32)  # the one copy: q x dim
    found = _core.candidates(
        parts, norms, queries, mask, int(k), float(margin) + cross_backend_slack(dim)
    )
    return [np.frombuffer(b, dtype="<u4").astype(np.int64) for b in found]


def candidates_py(
    parts: list[np.ndarray],
    norms: np.ndarray,
    units: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    margin: float,
) -> list[np.ndarray]:
    """The numpy reference of ``candidates``: the full-scan path of ``VectorIndex.search``."""
    n = sum(len(part) for part in parts)
    selected = n if mask is None else int(np.count_nonzero(mask))
    k = min(k, selected)
    if k <= 0:
        return [np.zeros(0, dtype=np.int64) for _ in units]
    approx = np.concatenate([part @ units.T.astype(np.float32) for part in parts])
    approx /= norms[:, None]
    keep = None if mask is None else mask.astype(bool, copy=False)
    if keep is not None:
        approx[~keep] = -np.inf
    found = []
    for j in range(len(units)):
        column = approx[:, j]
        if k < n:
            kth = column[np.argpartition(-column, k - 1)[k - 1]]
            found.append(np.flatnonzero(column >= kth - margin))
        else:
            found.append(np.arange(n) if keep is None else np.flatnonzero(keep))
    return found


# -- int8 scalar quantisation --------------------------------------------------------------


def quantize(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 codes of each row of ``matrix`` (2-d float32) and the per-row scales:
    ``scale = max|x| / 127``, ``code = rint(x / scale)`` in float32, so ``x ~ code * scale``;
    a zero row gets scale 0 and codes 0. A quarter of the bytes, plus 4 per row."""
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float32 or matrix.ndim != 2:
        raise InvalidInputError("matrix must be a 2-d float32 array")
    if matrix.shape[1] < 1:
        raise InvalidInputError("matrix must have at least one column")
    if not matrix.flags.c_contiguous:
        raise InvalidInputError("matrix must be C-contiguous (no implicit copy)")
    if _core is None:
        return quantize_py(matrix)
    codes, scales = _core.quantize(matrix)
    return (
        np.frombuffer(codes, dtype=np.int8).reshape(matrix.shape),
        np.frombuffer(scales, dtype="<f4"),
    )


def quantize_py(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference of ``quantize``: the same float32 operations, the same bits."""
    peak = np.abs(matrix).max(axis=1, initial=np.float32(0))
    scales = (peak / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        codes = np.rint(matrix / scales[:, None])
    codes = np.where(scales[:, None] > 0, codes, 0)
    return np.clip(codes, -127, 127).astype(np.int8), scales


def search_int8(
    codes: np.ndarray,
    scales: np.ndarray,
    parts: list[np.ndarray],
    norms: np.ndarray,
    units: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    rescore: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query, the best ``min(k, selected rows)`` rows as (int64 rows, float64
    scores), best first (higher score, then lower row).

    The query is quantised like the rows; the best ``max(rescore, k)`` rows by the int8
    score ``(codes @ qcodes) * scale * query_scale / norm`` (exact integer product, then
    float32: both backends compute the same bits, ties to the lower row) are rescored
    exactly, ``row @ unit / norm`` over the float32 ``parts`` in float64. ``codes`` and
    ``scales`` are ``quantize`` of the rows of ``parts``.
    """
    rows, dim = _check(parts, norms, units, mask)
    _check_k(k)
    _check_k(rescore, "rescore")
    if not isinstance(codes, np.ndarray) or codes.dtype != np.int8 or codes.ndim != 2:
        raise InvalidInputError("codes must be a 2-d int8 array")
    if codes.shape != (rows, dim):
        raise InvalidInputError(f"codes are {codes.shape} for a matrix of {(rows, dim)}")
    if not codes.flags.c_contiguous:
        raise InvalidInputError("codes must be C-contiguous (no implicit copy)")
    _check_column(scales, "scales", rows, (np.dtype(np.float32),))
    queries = np.ascontiguousarray(units, dtype=np.float32)
    if _core is None:
        return search_int8_py(codes, scales, parts, norms, queries, mask, k, rescore)
    found = _core.search_int8(codes, scales, parts, norms, queries, mask, int(k), int(rescore))
    return [
        (np.frombuffer(r, dtype="<u4").astype(np.int64), np.frombuffer(s, dtype="<f8"))
        for r, s in found
    ]


def search_int8_py(
    codes: np.ndarray,
    scales: np.ndarray,
    parts: list[np.ndarray],
    norms: np.ndarray,
    queries: np.ndarray,
    mask: np.ndarray | None,
    k: int,
    rescore: int,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The numpy reference of ``search_int8`` (``queries`` float32)."""
    n = len(codes)
    selected = np.arange(n) if mask is None else np.flatnonzero(mask)
    if k == 0 or len(selected) == 0:
        return [(np.zeros(0, np.int64), np.zeros(0)) for _ in queries]
    keep = max(rescore, k)
    qcodes, qscales = quantize_py(queries)
    # Integer products summed in float64 are exact (|sum| < 2**53), whatever BLAS does.
    idot = codes[selected].astype(np.float64) @ qcodes.astype(np.float64).T
    approx = idot.astype(np.float32) * scales[selected, None] * qscales / norms[selected, None]
    found = []
    for j in range(len(queries)):
        column = approx[:, j]
        valid = ~np.isnan(column)
        rows, column = selected[valid], column[valid]
        top = rows[np.lexsort((rows, -column))[:keep]]
        # Row by row, not a matrix product: BLAS may round a row differently depending on
        # where it sits, and equal rows must get equal scores (ties go to the lower row).
        wide = _take(parts, top).astype(np.float64)
        exact = (wide * queries[j].astype(np.float64)).sum(axis=1) / norms[top].astype(np.float64)
        order = np.lexsort((top, -exact))[:k]
        found.append((top[order], exact[order]))
    return found


def _take(parts: list[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """The given rows of the matrix made of ``parts``, in that order (a copy)."""
    out = np.empty((len(rows), parts[0].shape[1]), dtype=np.float32)
    first = 0
    for part in parts:
        inside = (rows >= first) & (rows < first + len(part))
        out[inside] = part[rows[inside] - first]
        first += len(part)
    return out
