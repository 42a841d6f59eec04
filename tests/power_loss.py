"""A model of what a power loss leaves on disk, for the ALICE-style crash tests.

``RecordingDisk`` is the real file system (the engine runs normally on it) that also
records every call the engine makes through its storage interface. ``DiskModel`` replays
that record and knows, at any point, which bytes and which directory entries are durable:

- a file's bytes become durable when the file is fsynced or fdatasynced (the sync also
  makes its size durable); ``truncate`` syncs, so it is durable at once;
- a directory entry (a create, mkdir, rename or unlink) becomes durable when its directory
  is fsynced; a rename is atomic, and entry changes reach the disk in the order they were
  made (as on a journaling file system), but not necessarily all of them.

``DiskModel.image`` writes what a crash at the current point could leave, in one of the
``VARIANTS``:

- ``synced``: exactly the durable state, every unsynced byte and entry dropped;
- ``subset``: the durable state plus a random subset of the unsynced writes and a random
  prefix of the unsynced entry changes;
- ``torn``: every write and entry change made it, except that the most recent write is cut
  at a 512-byte boundary of the file (or lost, if it crosses none);
- ``garbage``: the durable entries, with every unsynced byte range present but filled with
  random bytes (the size reached the disk, the data did not).
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field

from mnemos.storage import OSStorage

VARIANTS = ("synced", "subset", "torn", "garbage")
SECTOR = 512
DIRECTORY = -1  # the value of a directory's entry (files hold their inode number)


@dataclass
class Inode:
    durable: bytes = b""
    live: bytearray = field(default_factory=bytearray)
    pending: list[tuple[int, bytes]] = field(default_factory=list)  # unsynced (offset, data)


@dataclass
class DiskModel:
    """The file system as the recorded calls left it, split into durable and unsynced."""

    inodes: dict[int, Inode] = field(default_factory=dict)
    live: dict[str, int] = field(default_factory=dict)  # path -> inode, or DIRECTORY
    durable: dict[str, int] = field(default_factory=dict)
    # Unsynced entry changes in the order made: (directory, [(path, inode or None)]).
    entries: list[tuple[str, list[tuple[str, int | None]]]] = field(default_factory=list)
    last_write: tuple[int, int] | None = None  # (inode, index in its pending list)

    def apply(self, op: tuple) -> None:
        kind = op[0]
        if kind == "mkdir":
            self._link(op[1], DIRECTORY)
        elif kind == "create":
            path = op[1]
            if path in self.live:  # O_TRUNC on a leftover: same inode, emptied
                inode = self.inodes[self.live[path]]
                inode.live.clear()
                inode.pending.clear()
            else:
                number = len(self.inodes) + 1
                self.inodes[number] = Inode()
                self._link(path, number)
        elif kind == "write":
            _, number, data = op
            inode = self.inodes[number]
            offset = len(inode.live)  # every file is written sequentially or appended to
            inode.live += data
            inode.pending.append((offset, data))
            self.last_write = (number, len(inode.pending) - 1)
        elif kind == "sync":
            inode = self.inodes[op[1]]
            inode.durable = bytes(inode.live)
            inode.pending.clear()
            if self.last_write and self.last_write[0] == op[1]:
                self.last_write = None
        elif kind == "truncate":
            inode = self.inodes[self.live[op[1]]]
            del inode.live[op[2] :]
            inode.durable = bytes(inode.live)
            inode.pending.clear()
        elif kind == "rename":
            _, src, dst = op
            number = self.live.pop(src)
            self.live[dst] = number
            self.entries.append((os.path.dirname(dst), [(src, None), (dst, number)]))
        elif kind == "unlink":
            self.live.pop(op[1])
            self.entries.append((os.path.dirname(op[1]), [(op[1], None)]))
        elif kind == "fsync_dir":
            kept = []
            for directory, changes in self.entries:
                if directory == op[1]:
                    _change(self.durable, changes)
                else:
                    kept.append((directory, changes))
            self.entries = kept
        else:
            raise AssertionError(f"unknown operation {op!r}")

    def _link(self, path: str, number: int) -> None:
        self.live[path] = number
        self.entries.append((os.path.dirname(path), [(path, number)]))

    def image(self, variant: str, rng: random.Random) -> dict[str, bytes | None]:
        """What a crash now could leave: path -> file bytes, or None for a directory."""
        names = dict(self.durable)
        if variant == "subset":
            for _directory, changes in self.entries[: rng.randint(0, len(self.entries))]:
                _change(names, changes)
        elif variant == "torn":
            names = dict(self.live)
        contents = {}
        for number in set(names.values()) - {DIRECTORY}:
            inode = self.inodes[number]
            data = bytearray(inode.durable)
            for index, (offset, piece) in enumerate(inode.pending):
                if variant == "subset" and rng.random() < 0.5:
                    continue
                if variant == "torn" and self.last_write == (number, index):
                    end = (offset + len(piece)) // SECTOR * SECTOR
                    piece = piece[: max(0, end - offset)]
                if variant == "garbage":
                    piece = rng.randbytes(len(piece))
                if variant != "synced":
                    _put(data, offset, piece)
            contents[number] = bytes(data)
        # An entry whose directory did not survive is gone with it.
        return {
            path: (None if number == DIRECTORY else contents[number])
            for path, number in names.items()
            if _reachable(path, names)
        }


def _change(names: dict[str, int], changes: list[tuple[str, int | None]]) -> None:
    for path, number in changes:
        if number is None:
            names.pop(path, None)
        else:
            names[path] = number


def _put(data: bytearray, offset: int, piece: bytes) -> None:
    if len(data) < offset:
        data += bytes(offset - len(data))  # a hole reads as zeros
    data[offset : offset + len(piece)] = piece


def _reachable(path: str, names: dict[str, int]) -> bool:
    parent = os.path.dirname(path)
    return parent == "" or (names.get(parent) == DIRECTORY and _reachable(parent, names))


def write_image(image: dict[str, bytes | None], root: str) -> None:
    for path in sorted(image, key=lambda p: p.count(os.sep)):
        target = os.path.join(root, path)
        content = image[path]
        if content is None:
            os.makedirs(target, exist_ok=True)
        else:
            with open(target, "wb") as f:
                f.write(content)


def image_digest(image: dict[str, bytes | None]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(image):
        content = image[path]
        h.update(f"{path}\0{-1 if content is None else len(content)}\0".encode())
        h.update(content or b"")
    return h.hexdigest()


class RecordingDisk(OSStorage):
    """The real file system, recording each storage call (paths relative to ``root``)
    as an operation ``DiskModel.apply`` understands; ``mark`` adds test markers."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.ops: list[tuple] = []
        self.model = DiskModel()  # kept current, to name the inode each descriptor writes
        self._inodes: dict[int, int] = {}

    def _rel(self, path: str) -> str:
        rel = os.path.relpath(os.path.abspath(path), self.root)
        return "" if rel == "." else rel  # the root, as os.path.dirname names it

    def _record(self, op: tuple) -> None:
        self.ops.append(op)
        self.model.apply(op)

    def mark(self, label: str, value: object) -> None:
        self.ops.append(("mark", label, value))

    def create(self, path: str) -> int:
        fd = super().create(path)
        self._record(("create", self._rel(path)))
        self._inodes[fd] = self.model.live[self._rel(path)]
        return fd

    def open_append(self, path: str) -> int:
        fd = super().open_append(path)
        self._inodes[fd] = self.model.live[self._rel(path)]
        return fd

    def write(self, fd: int, data: bytes | memoryview) -> None:
        super().write(fd, data)
        self._record(("write", self._inodes[fd], bytes(data)))
        assert os.fstat(fd).st_size == len(self.model.inodes[self._inodes[fd]].live)

    def fsync(self, fd: int) -> None:
        super().fsync(fd)
        self._record(("sync", self._inodes[fd]))

    def fdatasync(self, fd: int) -> None:
        super().fdatasync(fd)
        self._record(("sync", self._inodes[fd]))

    def dup(self, fd: int) -> int:
        copy = super().dup(fd)
        self._inodes[copy] = self._inodes[fd]
        return copy

    def close(self, fd: int) -> None:
        super().close(fd)
        self._inodes.pop(fd, None)

    def rename(self, src: str, dst: str) -> None:
        super().rename(src, dst)
        self._record(("rename", self._rel(src), self._rel(dst)))

    def fsync_dir(self, path: str) -> None:
        super().fsync_dir(path)
        self._record(("fsync_dir", self._rel(path)))

    def truncate(self, path: str, size: int) -> None:
        super().truncate(path, size)
        self._record(("truncate", self._rel(path), size))

    def unlink(self, path: str) -> None:
        super().unlink(path)
        self._record(("unlink", self._rel(path)))

    def mkdir(self, path: str) -> None:
        missing = []
        rel = self._rel(path)
        while rel and rel not in self.model.live:
            missing.append(rel)
            rel = os.path.dirname(rel)
        super().mkdir(path)
        for rel in reversed(missing):
            self._record(("mkdir", rel))

    def check_against_disk(self) -> None:
        """The model's live view is what is really on disk (the model tracks the engine)."""
        for path, number in self.model.live.items():
            real = os.path.join(self.root, path)
            if number == DIRECTORY:
                assert os.path.isdir(real), path
            else:
                with open(real, "rb") as f:
                    assert f.read() == bytes(self.model.inodes[number].live), path
