"""The small file-system interface every durable write goes through.

The log and snapshot writers call only these methods, so a test can substitute an
implementation that drops unsynced bytes, tears writes or fails a sync. ``OSStorage``
is the real one and the default.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class OSStorage:
    """Plain POSIX files. Paths are ``str``; files are integer descriptors."""

    def open_append(self, path: str) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def create(self, path: str) -> int:
        """A new empty file for writing; replaces a stale one of the same name."""
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)

    def write(self, fd: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        # Not every platform has fdatasync (macOS); fsync is the stronger fallback.
        getattr(os, "fdatasync", os.fsync)(fd)

    def close(self, fd: int) -> None:
        os.close(fd)

    def dup(self, fd: int) -> int:
        """A second descriptor for the same open file (syncing it syncs the file)."""
        return os.dup(fd)

    def rename(self, src: str, dst: str) -> None:
        os.replace(src, dst)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def truncate(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, size)
            os.fsync(fd)
        finally:
            os.close(fd)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def mkdir(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)


def write_atomically(storage: OSStorage, path: str, parts: Iterable[bytes | memoryview]) -> None:
    """Write ``path`` whole or not at all: temp file, fsync, rename, fsync the directory.

    A crash at any step leaves either the old file or the new one, plus at most an
    orphan ``.tmp`` file that the next writer's open removes.
    """
    tmp = path + ".tmp"
    fd = storage.create(tmp)
    try:
        for part in parts:
            storage.write(fd, part)
        storage.fsync(fd)
    finally:
        storage.close(fd)
    storage.rename(tmp, path)
    storage.fsync_dir(os.path.dirname(path) or ".")
