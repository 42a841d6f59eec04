"""Mnemos: an embedded, event-sourced memory database for AI agents.

from mnemos import Mnemos
with Mnemos.open("agent.mem") as db:
    mid = db.remember("the user prefers tea", vector=v)
    hits = db.ask(vector=q, top_k=5)
"""

from ._native import backend
from .db import Mnemos, Namespace
from .errors import (
    CorruptDatabaseError,
    DatabaseClosedError,
    DatabaseLockedError,
    EmbedderMismatchError,
    InvalidInputError,
    MemoryNotFound,
    MnemosError,
    ModelNotFoundError,
    ReadOnlyError,
    StorageError,
)
from .format import FORMAT_VERSION
from .recovery import VerifyReport, repair, verify
from .replay import Divergence, ReplayReport
from .types import Document, Hit, Memory, Neighbor, Version

__version__ = "0.1.0"

__all__ = [
    "FORMAT_VERSION",
    "CorruptDatabaseError",
    "DatabaseClosedError",
    "DatabaseLockedError",
    "EmbedderMismatchError",
    "Document",
    "Hit",
    "InvalidInputError",
    "Memory",
    "MemoryNotFound",
    "Mnemos",
    "MnemosError",
    "ModelNotFoundError",
    "Namespace",
    "Neighbor",
    "ReadOnlyError",
    "StorageError",
    "Version",
    "VerifyReport",
    "ReplayReport",
    "Divergence",
    "backend",
    "repair",
    "verify",
]
