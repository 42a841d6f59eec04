"""The embedder protocol, the checks every embedder's output goes through, and small helpers.

Kept apart from ``mnemos/embed/__init__.py`` so that ``minilm.py`` and ``cache.py`` can use
them without importing the package that imports them. Everything here is re-exported from
``mnemos.embed``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import numpy as np

from ..errors import InvalidInputError

try:  # POSIX only; elsewhere two processes may both build the same cache file, which is harmless
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CallableEmbedder",
    "Embedder",
    "check_embeddings",
    "check_texts",
    "default_cache_dir",
    "wrap_callable",
]

PROTOCOL_ATTRS = ("name", "dim", "fingerprint", "embed")


@runtime_checkable
class Embedder(Protocol):
    """What Mnemos needs from an embedder.

    ``name``, ``dim`` and ``fingerprint`` are the identity a database records; reopening it
    with an embedder whose identity differs is an error, so ``fingerprint`` must change
    whenever the vectors would (new weights, new code). ``embed`` returns a C-contiguous
    float32 array of shape ``(len(texts), dim)`` with finite values, row ``i`` for
    ``texts[i]``. ``dim`` is ``None`` only for a wrapped callable before its first call.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int | None: ...

    @property
    def fingerprint(self) -> str: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def check_texts(texts: Any) -> list[str]:
    """``texts`` as a list of ``str``, or ``InvalidInputError``."""
    if isinstance(texts, (str, bytes)):
        raise InvalidInputError(
            "embed() takes a list of texts, not a single string; pass [text] to embed one"
        )
    if not isinstance(texts, Sequence):
        raise InvalidInputError(f"embed() takes a list of str, not {type(texts).__name__}")
    out: list[str] = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InvalidInputError(
                f"embed() takes a list of str, but item {i} is {type(text).__name__}"
            )
    return out


def check_embeddings(emb: Any, texts: Sequence[str], out: Any) -> np.ndarray:
    """Return ``out`` if it is a valid result of ``emb.embed(texts)``, else raise.

    Valid means: a numpy float32 array of shape ``(len(texts), emb.dim)`` (any width when
    ``emb.dim`` is still ``None``), every value finite. The error names the embedder, so a
    bug in a user-supplied model is reported as such and nothing gets written.
    """
    name = getattr(emb, "name", type(emb).__name__)
    if not isinstance(out, np.ndarray):
        raise InvalidInputError(
            f"embedder {name!r} returned {type(out).__name__}; embed() must return a numpy "
            "float32 array of shape (len(texts), dim)"
        )
    if out.dtype != np.float32:
        raise InvalidInputError(
            f"embedder {name!r} returned dtype {out.dtype}; embed() must return float32 "
            "(convert with .astype(numpy.float32))"
        )
    dim = getattr(emb, "dim", None)
    if out.ndim != 2 or out.shape[0] != len(texts) or (dim is not None and out.shape[1] != dim):
        want = f"({len(texts)}, {dim if dim is not None else 'dim'})"
        raise InvalidInputError(
            f"embedder {name!r} returned shape {out.shape} for {len(texts)} texts; expected {want}"
        )
    if out.shape[1] == 0:
        raise InvalidInputError(f"embedder {name!r} returned zero-width vectors")
    if not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise InvalidInputError(
            f"embedder {name!r} returned NaN or infinity for text {bad} ({texts[bad][:60]!r})"
        )
    return np.ascontiguousarray(out)


class CallableEmbedder:
    """A plain function ``texts -> array`` dressed as an embedder; see :func:`wrap_callable`."""

    def __init__(self, fn: Callable[[list[str]], Any], name: str | None, dim: int | None):
        module = getattr(fn, "__module__", None) or "?"
        qualname = f"{module}.{getattr(fn, '__qualname__', type(fn).__qualname__)}"
        self.fn = fn
        self.name: str = name if name is not None else qualname
        self.fingerprint: str = f"callable:{qualname}"
        self.dim: int | None = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        if not texts:  # nothing to learn from; don't bother the function
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        raw = self.fn(texts)
        try:
            # Plain callables often return lists or float64; converting is the point of wrapping.
            out = np.asarray(raw, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                f"embedder {self.name!r} returned {type(raw).__name__}, which is not an "
                f"array of numbers: {exc}"
            ) from exc
        out = check_embeddings(self, texts, out)
        if self.dim is None:
            self.dim = int(out.shape[1])
        return out

    def __repr__(self) -> str:
        return f"CallableEmbedder(name={self.name!r}, dim={self.dim})"


def wrap_callable(
    fn: Callable[[list[str]], Any], name: str | None = None, *, dim: int | None = None
) -> CallableEmbedder:
    """Turn ``fn(texts) -> array-like (len(texts), dim)`` into an embedder.

    ``dim`` is learned from the first call unless given. The fingerprint is derived from the
    function's module and qualified name only, not its code or weights: when the function
    starts producing different vectors, it is the caller's job to change ``name=`` (which is
    part of the identity a database records), or old and new vectors will be mixed.
    """
    if not callable(fn):
        raise InvalidInputError(f"wrap_callable() needs a callable, not {type(fn).__name__}")
    if name is not None and (not isinstance(name, str) or not name):
        raise InvalidInputError("name= must be a non-empty string")
    if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0):
        raise InvalidInputError(f"dim= must be a positive int, not {dim!r}")
    return CallableEmbedder(fn, name, dim)


def default_cache_dir() -> Path:
    """Where Mnemos keeps converted models and hashes: ``$MNEMOS_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/mnemos``, else ``~/.cache/mnemos``. Not created here."""
    explicit = os.environ.get("MNEMOS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "mnemos"


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a unique temp file beside it, fsync, rename,
    fsync the directory. Readers never see a partial file, even across a crash."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # not every platform can open a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[IO[bytes]]:
    """Hold an exclusive ``flock`` on ``path`` (created if needed) for the ``with`` block,
    so two processes filling the same cache entry do the work once."""
    with open(path, "ab") as f:
        if fcntl is not None:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield f
        finally:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
