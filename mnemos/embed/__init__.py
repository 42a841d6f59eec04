"""Embedders: turn texts into float32 vectors for Mnemos.

An embedder is any object with ``name``, ``dim``, ``fingerprint`` and
``embed(texts) -> (len(texts), dim) float32`` (see :class:`Embedder`). Built in:

- :class:`MiniLM`: sentence-transformers/all-MiniLM-L6-v2 on onnxruntime, the default;
- :class:`BertEmbedder`: the same machinery for another BERT checkpoint;
- :class:`CachedEmbedder`: remembers vectors in memory and, optionally, on disk;
- :func:`wrap_callable`: a plain function ``texts -> array`` as an embedder.

Importing this package is cheap: onnxruntime, tokenizers and onnx load at the first embed.
"""

from __future__ import annotations

from typing import Any, cast

from ..errors import InvalidInputError
from .base import (
    PROTOCOL_ATTRS,
    CallableEmbedder,
    Embedder,
    check_embeddings,
    check_texts,
    default_cache_dir,
    wrap_callable,
)
from .cache import CachedEmbedder
from .minilm import CONVERTER_VERSION, MODEL_NAME, MODEL_SHA256, BertEmbedder, MiniLM

__all__ = [
    "Embedder",
    "resolve_embedder",
    "check_embeddings",
    "check_texts",
    "wrap_callable",
    "CallableEmbedder",
    "MiniLM",
    "BertEmbedder",
    "CachedEmbedder",
    "default_cache_dir",
    "CONVERTER_VERSION",
    "MODEL_NAME",
    "MODEL_SHA256",
]


def resolve_embedder(value: Any) -> Embedder | None:
    """The embedder meant by ``Mnemos.open(embedder=value)``.

    ``None``: none (a vector-only database). ``"default"`` or the model name: :class:`MiniLM`,
    which raises ``ModelNotFoundError`` (with the pip command) when its files are missing and
    loads nothing heavy until the first embed. An object with ``name``, ``dim``,
    ``fingerprint`` and ``embed``: itself. Any other callable: :func:`wrap_callable`.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value in ("default", MODEL_NAME):
            return MiniLM()
        raise InvalidInputError(
            f"unknown embedder {value!r}: use 'default' ({MODEL_NAME}), an object with name, "
            "dim, fingerprint and embed(texts), a function texts -> vectors, or None"
        )
    missing = [a for a in PROTOCOL_ATTRS if not hasattr(value, a)]
    if not missing:
        return cast(Embedder, value)
    if hasattr(value, "embed") or not callable(value):
        # Half an embedder is more likely a bug than a function to wrap.
        raise InvalidInputError(
            f"embedder {type(value).__name__} lacks {', '.join(missing)}; give an object with "
            "name, dim, fingerprint and embed(texts), a function texts -> vectors, or None "
            "for a vector-only database"
        )
    return wrap_callable(value)
