"""One exception tree: every error Mnemos raises is a ``MnemosError``.

Messages say what was wrong and what to do about it. Where a standard exception
type fits (``ValueError`` for bad arguments, ``KeyError`` for unknown ids,
``OSError`` for storage failures), the Mnemos error also subclasses it so
callers can catch either.
"""

from __future__ import annotations

__all__ = [
    "CorruptDatabaseError",
    "DatabaseClosedError",
    "DatabaseLockedError",
    "EmbedderMismatchError",
    "InvalidInputError",
    "MemoryNotFound",
    "MnemosError",
    "ModelNotFoundError",
    "ReadOnlyError",
    "StorageError",
]


class MnemosError(Exception):
    """Base class of every error raised by Mnemos."""


class InvalidInputError(MnemosError, ValueError):
    """An argument was malformed; nothing was written."""


class MemoryNotFound(MnemosError, KeyError):
    """No live memory has the given id."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "memory not found"


class DatabaseLockedError(MnemosError):
    """Another writer holds the database's lock file."""


class DatabaseClosedError(MnemosError):
    """The database was closed; open it again to continue."""


class ReadOnlyError(MnemosError):
    """A write was attempted on a database opened with ``readonly=True``."""


class EmbedderMismatchError(MnemosError):
    """The database was created with a different embedder than the one given."""


class ModelNotFoundError(MnemosError):
    """The files of an embedding model (weights, tokenizer) could not be found."""


class CorruptDatabaseError(MnemosError):
    """A file of the database is damaged in a way that is not a torn tail.

    ``path`` and ``offset`` locate the first damaged byte when known.
    """

    def __init__(self, message: str, *, path: str | None = None, offset: int | None = None):
        super().__init__(message)
        self.path = path
        self.offset = offset


class StorageError(MnemosError, OSError):
    """A write or sync failed. The database refuses further writes until reopened."""
