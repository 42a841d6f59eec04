"""An embedder wrapper that remembers vectors: an in-memory LRU, optionally backed by SQLite.

Entries are keyed by (inner fingerprint, sha256 of the UTF-8 text), so new weights never
reuse old vectors. A cached vector is the very array the inner embedder returned, stored as
raw little-endian float32: results are bitwise identical to the call that computed them.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InvalidInputError
from .base import PROTOCOL_ATTRS, check_embeddings, check_texts

if TYPE_CHECKING:
    import sqlite3

__all__ = ["CachedEmbedder"]

log = logging.getLogger("mnemos.embed")

STORE_FILE = "embeddings.sqlite3"
_SQL_VARS_MAX = 500  # keys per SELECT ... IN (...); old SQLite builds allow only 999 variables

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    fingerprint TEXT NOT NULL,
    text_sha256 BLOB NOT NULL,
    vector BLOB NOT NULL,  -- dim little-endian float32 values
    PRIMARY KEY (fingerprint, text_sha256)
) WITHOUT ROWID
"""


class CachedEmbedder:
    """``inner`` with a cache in front: same ``name``, ``dim``, ``fingerprint`` and results.

    ``lru_items`` vectors stay in memory (0 disables that). With ``persistent_dir``, vectors
    are also kept in ``<persistent_dir>/embeddings.sqlite3`` and survive the process; it may
    be shared by several processes and embedders. ``hits`` and ``misses`` count texts:
    a miss is a distinct text the inner embedder had to compute.
    """

    def __init__(
        self,
        inner: Any,
        *,
        lru_items: int = 4096,
        persistent_dir: str | os.PathLike[str] | None = None,
    ):
        missing = [a for a in PROTOCOL_ATTRS if not hasattr(inner, a)]
        if missing:
            raise InvalidInputError(
                f"CachedEmbedder needs an embedder; {type(inner).__name__} lacks {', '.join(missing)}"
            )
        if isinstance(lru_items, bool) or not isinstance(lru_items, int) or lru_items < 0:
            raise InvalidInputError(f"lru_items= must be an int >= 0, not {lru_items!r}")
        self.inner = inner
        self.lru_items = lru_items
        self.hits = 0
        self.misses = 0
        self._lru: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.path: Path | None = None
        if persistent_dir is not None:
            directory = Path(persistent_dir)
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInputError(
                    f"cannot create the embedding cache directory {directory}: {exc}; "
                    "give a writable persistent_dir= or None"
                ) from exc
            self.path = directory / STORE_FILE

    @property
    def name(self) -> str:
        return str(self.inner.name)

    @property
    def dim(self) -> int | None:
        return self.inner.dim  # type: ignore[no-any-return]

    @property
    def fingerprint(self) -> str:
        return str(self.inner.fingerprint)

    def stats(self) -> dict[str, float]:
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hits / total if total else 0.0,
        }

    def embed(self, texts: list[str]) -> np.ndarray:
        texts = check_texts(texts)
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts]
        with self._lock:
            found: dict[bytes, np.ndarray] = {}
            for key in keys:
                vec = self._lru.get(key)
                if vec is not None:
                    self._lru.move_to_end(key)
                    found[key] = vec
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
            # A wrapped callable has no dim before its first call: nothing to check rows against.
            if todo and self.path is not None and self.dim is not None:
                from_disk = self._load(list(todo))
                found.update(from_disk)
                for key in from_disk:
                    del todo[key]
            computed: dict[bytes, np.ndarray] = {}
            if todo:
                miss_texts = list(todo.values())
                out = check_embeddings(self.inner, miss_texts, self.inner.embed(miss_texts))
                for key, row in zip(todo, out, strict=True):
                    computed[key] = row.copy()
                if self.path is not None:
                    self._store(computed)
            found.update(computed)
            for key, vec in found.items():
                self._remember(key, vec)
            self.misses += len(computed)
            self.hits += len(texts) - len(computed)
        if not texts:
            return np.zeros((0, self.dim or 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def _remember(self, key: bytes, vec: np.ndarray) -> None:
        if self.lru_items == 0:
            return
        vec.flags.writeable = False  # shared between calls: nobody may change it in place
        self._lru[key] = vec
        self._lru.move_to_end(key)
        while len(self._lru) > self.lru_items:
            self._lru.popitem(last=False)

    # --- the persistent store: failures degrade to a memory-only cache, never a failed embed

    def _connect(self) -> sqlite3.Connection | None:
        if self._db is None and self.path is not None:
            import sqlite3  # only persistent caches pay for the import

            try:
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                # WAL: readers and one writer across processes. NORMAL: a power cut may lose
                # the last entries, which are recomputed; the file stays consistent.
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SCHEMA)
                db.commit()
            except sqlite3.Error as exc:
                self._disable(exc)
                return None
            self._db = db
        return self._db

    def _disable(self, exc: Exception) -> None:
        log.warning("embedding cache %s is unusable (%s); caching in memory only", self.path, exc)
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
        self._db = None
        self.path = None

    def _load(self, keys: list[bytes]) -> dict[bytes, np.ndarray]:
        import sqlite3

        db = self._connect()
        if db is None:
            return {}
        fingerprint = self.fingerprint
        width = 4 * (self.dim or 0)
        out = {}
        try:
            for i in range(0, len(keys), _SQL_VARS_MAX):
                chunk = keys[i : i + _SQL_VARS_MAX]
                marks = ",".join("?" * len(chunk))
                rows = db.execute(
                    "SELECT text_sha256, vector FROM embeddings "
                    f"WHERE fingerprint = ? AND text_sha256 IN ({marks})",
                    [fingerprint, *chunk],
                )
                for key, blob in rows:
                    if len(blob) == width:  # else: written by another dim; recompute
                        out[bytes(key)] = np.frombuffer(blob, dtype="<f4").astype(np.float32)
        except sqlite3.Error as exc:
            self._disable(exc)
            return {}
        return out

    def _store(self, vectors: dict[bytes, np.ndarray]) -> None:
        import sqlite3

        db = self._connect()
        if db is None:
            return
        fingerprint = self.fingerprint
        rows = [(fingerprint, key, vec.astype("<f4").tobytes()) for key, vec in vectors.items()]
        try:
            with db:
                db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
        except sqlite3.Error as exc:
            self._disable(exc)

    def close(self) -> None:
        """Close the persistent store (reopened on the next miss). Safe to call twice."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, lru_items={self.lru_items}, path={self.path})"
