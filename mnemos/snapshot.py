"""Snapshots: the whole state at one seq, so open replays only the log after it.

FORMAT.md "Snapshots" is the specification: a checksummed header and section table,
then a zstd-compressed msgpack STATE section and raw little-endian float32 VECTORS and
NORMS sections (vectors barely compress, and raw rows read straight into the matrix).
A snapshot is written to a temp file, synced, renamed and its directory synced, so it
is either whole or absent; a damaged one is skipped in favour of an older one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgpack
import numpy as np
import zstandard

from . import format as fmt
from ._native import crc32
from .index.vector import VectorIndex
from .state import State
from .storage import OSStorage, write_atomically

_ZSTD_LEVEL = 3


class SnapshotError(Exception):
    """A snapshot file is damaged or unreadable (the caller falls back)."""


@dataclass(frozen=True)
class SnapshotInfo:
    seq: int
    last_crc: int
    path: str
    size_bytes: int


def _state_map(state: State) -> dict[str, Any]:
    rows = len(state.ids)
    vec = state.vectors
    return {
        "format": state.format,
        "seq": state.seq,
        "dim": state.dim,
        "embedder": state.embedder,
        "rows": rows,
        "id": state.ids,
        "text": state.texts,
        "meta": state.metas,
        "ns": state.nss,
        "kind": state.kinds,
        "imp": state.imps,
        "ts": state.tss,
        "ver": state.vers,
        "vseq": state.vseqs,
        "vat": state.vats,
        "dseq": state.dseqs,
        "dat": state.dats,
        "history": sorted([mid, past] for mid, past in state.history.items()),
        "edges": sorted([a, b, rel, w] for (a, b, rel), w in state.edges.items()),
        "ns_codes": sorted(state.ns_codes, key=state.ns_codes.__getitem__),
        "ns_live": state.ns_live,
        "live": state.live,
        "row_ns": b"" if vec is None else vec.ns[:rows].astype("<i4").tobytes(),
        "row_kind": b"" if vec is None else vec.kind[:rows].astype("i1").tobytes(),
    }


def write_snapshot(storage: OSStorage, snap_dir: str, state: State, last_crc: int) -> SnapshotInfo:
    sections: list[tuple[int, int, memoryview, int]] = []  # kind, codec, data, raw length
    packed = msgpack.packb(_state_map(state), use_bin_type=True)
    body = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(packed)
    sections.append((fmt.SECTION_STATE, fmt.CODEC_ZSTD, memoryview(body), len(packed)))
    if state.vectors is not None and state.vectors.n:
        n = len(state.ids)
        mat = np.ascontiguousarray(state.vectors.mat[:n], dtype="<f4")
        norms = np.ascontiguousarray(state.vectors.norms[:n], dtype="<f4")
        for kind, arr in ((fmt.SECTION_VECTORS, mat), (fmt.SECTION_NORMS, norms)):
            view = memoryview(arr).cast("B")  # type: ignore[arg-type]
            sections.append((kind, fmt.CODEC_RAW, view, len(view)))

    table_end = fmt.SNAP_HEADER_BYTES + fmt.SNAP_SECTION_BYTES * len(sections)
    offset = _align(table_end)
    table = bytearray()
    parts: list[bytes | memoryview] = []
    for kind, codec, data, raw in sections:
        table += fmt.SNAP_SECTION.pack(kind, codec, offset, len(data), raw, crc32(data), 0)
        end = offset + len(data)
        parts.append(data)
        parts.append(bytes(_align(end) - end))
        offset = _align(end)
    head = fmt.SNAP_HEADER.pack(
        fmt.SNAP_MAGIC, fmt.FORMAT_VERSION, len(sections), state.seq, last_crc, 0
    )[:28]
    crc = crc32(bytes(table), crc32(head))
    prefix = head + crc.to_bytes(4, "little") + bytes(table)
    prefix += bytes(_align(table_end) - table_end)
    path = os.path.join(snap_dir, fmt.snapshot_name(state.seq))
    write_atomically(storage, path, [prefix, *parts])
    return SnapshotInfo(state.seq, last_crc, path, offset)


def _align(offset: int) -> int:
    return -(-offset // fmt.SNAP_ALIGN_BYTES) * fmt.SNAP_ALIGN_BYTES


def _read_exact(f: BinaryIO, size: int, what: str) -> bytes:
    data = f.read(size)
    if len(data) != size:
        raise SnapshotError(f"snapshot ends inside its {what}")
    return data


def read_snapshot_header(f: BinaryIO) -> tuple[int, int, list[tuple[int, int, int, int, int, int]]]:
    """(seq, last_crc, sections) after checking magic, version and the header CRC."""
    head = _read_exact(f, fmt.SNAP_HEADER_BYTES, "header")
    magic, version, count, seq, last_crc, crc = fmt.SNAP_HEADER.unpack(head)
    if magic != fmt.SNAP_MAGIC:
        raise SnapshotError("not a Mnemos snapshot (bad magic)")
    if version != fmt.FORMAT_VERSION:
        raise SnapshotError(f"snapshot format version {version} is not {fmt.FORMAT_VERSION}")
    if not 1 <= count <= 16:
        raise SnapshotError(f"snapshot declares {count} sections")
    table = _read_exact(f, fmt.SNAP_SECTION_BYTES * count, "section table")
    if crc32(table, crc32(head[:28])) != crc:
        raise SnapshotError("snapshot header checksum mismatch")
    sections = []
    for i in range(count):
        kind, codec, offset, stored, raw, scrc, _ = fmt.SNAP_SECTION.unpack_from(
            table, i * fmt.SNAP_SECTION_BYTES
        )
        sections.append((kind, codec, offset, stored, raw, scrc))
    return seq, last_crc, sections


def load_snapshot(path: str) -> tuple[State, int]:
    """The state stored in ``path`` and the CRC of its last log record.

    Raises ``SnapshotError`` if any byte fails its checksum or the contents disagree.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        seq, last_crc, sections = read_snapshot_header(f)
        by_kind = {}
        for kind, codec, offset, stored, raw, scrc in sections:
            if offset + stored > size:
                raise SnapshotError(f"section {kind} runs past the end of the file")
            by_kind[kind] = (codec, offset, stored, raw, scrc)
        if fmt.SECTION_STATE not in by_kind:
            raise SnapshotError("snapshot has no STATE section")
        codec, offset, stored, raw, scrc = by_kind[fmt.SECTION_STATE]
        f.seek(offset)
        body = _read_exact(f, stored, "STATE section")
        if crc32(body) != scrc:
            raise SnapshotError("STATE section checksum mismatch")
        if codec != fmt.CODEC_ZSTD:
            raise SnapshotError(f"STATE section codec {codec} is unknown")
        try:
            packed = zstandard.ZstdDecompressor().decompress(body, max_output_size=raw)
            m = msgpack.unpackb(packed, raw=False)
        except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
            raise SnapshotError(f"STATE section does not decode: {exc}") from exc
        if m.get("seq") != seq:
            raise SnapshotError("STATE section seq disagrees with the header")
        state = _state_from_map(m)
        rows = m["rows"]
        if rows and state.dim:
            mat = _read_rows(f, by_kind, fmt.SECTION_VECTORS, rows, state.dim)
            norms = _read_rows(f, by_kind, fmt.SECTION_NORMS, rows, 0)
            state.vectors = _index(m, mat, norms, rows)
    return state, last_crc


def _read_rows(f: BinaryIO, by_kind: dict[int, Any], kind: int, rows: int, dim: int) -> np.ndarray:
    """A raw float32 section read straight into an array with room to grow."""
    if kind not in by_kind:
        raise SnapshotError(f"snapshot lacks section {kind}")
    codec, offset, stored, _raw, scrc = by_kind[kind]
    width = dim if dim else 1
    if codec != fmt.CODEC_RAW or stored != rows * width * 4:
        raise SnapshotError(f"section {kind} has the wrong codec or size")
    capacity = rows + max(1024, rows // 4)
    arr = np.zeros((capacity, dim) if dim else capacity, dtype="<f4")
    view = memoryview(arr[:rows]).cast("B")  # type: ignore[arg-type]
    f.seek(offset)
    if f.readinto(view) != stored:  # type: ignore[attr-defined]
        raise SnapshotError(f"section {kind} is truncated")
    if crc32(view) != scrc:
        raise SnapshotError(f"section {kind} checksum mismatch")
    return arr


def _index(m: dict[str, Any], mat: np.ndarray, norms: np.ndarray, rows: int) -> VectorIndex:
    capacity = len(mat)
    alive = np.zeros(capacity, dtype=bool)
    alive[:rows] = np.asarray(m["dseq"], dtype=np.int64) == 0
    ns = np.zeros(capacity, dtype=np.int32)
    ns[:rows] = np.frombuffer(m["row_ns"], dtype="<i4")
    kind = np.zeros(capacity, dtype=np.int8)
    kind[:rows] = np.frombuffer(m["row_kind"], dtype="i1")
    index = VectorIndex.from_arrays(mat, norms, alive, ns, kind)
    index.n = rows
    return index


def _state_from_map(m: dict[str, Any]) -> State:
    state = State()
    state.seq, state.format, state.dim, state.embedder = (
        m["seq"],
        m["format"],
        m["dim"],
        m["embedder"],
    )
    state.ids, state.texts, state.metas = m["id"], m["text"], m["meta"]
    state.nss, state.kinds, state.imps, state.tss = m["ns"], m["kind"], m["imp"], m["ts"]
    state.vers, state.vseqs, state.vats = m["ver"], m["vseq"], m["vat"]
    state.dseqs, state.dats = m["dseq"], m["dat"]
    rows = m["rows"]
    columns = (
        state.ids,
        state.texts,
        state.metas,
        state.nss,
        state.kinds,
        state.imps,
        state.tss,
        state.vers,
        state.vseqs,
        state.vats,
        state.dseqs,
        state.dats,
    )
    if any(len(col) != rows for col in columns):
        raise SnapshotError("STATE section columns have different lengths")
    state.rows = {mid: row for row, mid in enumerate(state.ids)}
    state.history = {mid: [tuple(v) for v in past] for mid, past in m["history"]}
    state.ns_codes = {ns: code for code, ns in enumerate(m["ns_codes"])}
    state.ns_live = m["ns_live"]
    state.live = m["live"]
    for a, b, rel, w in m["edges"]:
        state.edges[(a, b, rel)] = w
        state.out_edges.setdefault(a, {})[(b, rel)] = w
        state.in_edges.setdefault(b, {})[(a, rel)] = w
    return state
