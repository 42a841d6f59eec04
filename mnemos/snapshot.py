"""Snapshots: the whole state at one seq, so open replays only the log after it.

FORMAT.md "Snapshots" is the specification: a checksummed header and section table,
then a zstd-compressed msgpack STATE section and raw little-endian float32 VECTORS and
NORMS sections (vectors barely compress, and raw rows read straight into the matrix),
the raw LEXICAL section (the BM25 postings, so open does not re-tokenize), and the ANN
and ANN_GRAPH sections (the approximate index's queue and graph; the graph is read and
checked at its first use, not at open).
A snapshot is written to a temp file, synced, renamed and its directory synced, so it
is either whole or absent; a damaged one is skipped in favour of an older one.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from array import array
from dataclasses import dataclass
from typing import Any, BinaryIO

import msgpack
import numpy as np
import zstandard

from . import format as fmt
from ._native import crc32
from .index.ann import AnnState
from .index.graph import GraphIndex
from .index.lexical import LexicalIndex
from .index.vector import VectorIndex
from .state import State
from .storage import OSStorage, write_atomically

_ZSTD_LEVEL = 3
_BACKGROUND_CRC_BYTES = 1 << 20


class SnapshotError(Exception):
    """A snapshot file is damaged or unreadable (the caller falls back)."""


@dataclass(frozen=True)
class SnapshotInfo:
    seq: int
    last_crc: int
    path: str
    size_bytes: int


_INT_COLUMNS = (
    ("ts", "tss"),
    ("ver", "vers"),
    ("vseq", "vseqs"),
    ("vat", "vats"),
    ("dseq", "dseqs"),
    ("dat", "dats"),
)
_OPS = ("remember", "update")
_V2_KEYS = frozenset({"rseq", "evicted", "capacity", "evictions"})  # FORMAT.md, version 2


def _state_map(state: State) -> dict[str, Any]:
    """The STATE section. Number columns are raw little-endian arrays: they decode with
    one ``frombuffer`` instead of one msgpack object per value."""
    rows = len(state.ids)
    vec = state.vectors
    m: dict[str, Any] = {
        "format": state.format,
        "seq": state.seq,
        "dim": state.dim,
        "embedder": state.embedder,
        "rows": rows,
        "id": state.ids,
        "text": state.texts,
        "meta": state.metas,
        "imp": _le_bytes(state.imps),
        "vop": bytes(_OPS.index(op) for op in state.vops),
        "history": sorted([mid, past] for mid, past in state.history.items()),
        "edges": sorted([a, b, rel, w] for (a, b, rel), w in state.graph.edges.items()),
        "ns_codes": sorted(state.ns_codes, key=state.ns_codes.__getitem__),
        "ns_live": state.ns_live,
        "live": state.live,
        "row_ns": b"" if vec is None else vec.ns[:rows].astype("<i4").tobytes(),
        "row_kind": b"" if vec is None else vec.kind[:rows].astype("i1").tobytes(),
    }
    for key, attr in _INT_COLUMNS:
        m[key] = _le_bytes(getattr(state, attr))
    # Format 2 keys, present only when used (so a version-1 state writes version-1 bytes).
    if any(state.rseqs):
        m["rseq"] = _le_bytes(state.rseqs)
    if any(state.evicted):
        m["evicted"] = bytes(state.evicted)
    if state.capacity:
        m["capacity"] = state.capacity_rules()
    if state.evictions:
        m["evictions"] = state.evictions
    return m


def _le_bytes(column: array[Any]) -> bytes:
    if sys.byteorder == "little":
        return column.tobytes()
    swapped = array(column.typecode, column)
    swapped.byteswap()
    return swapped.tobytes()


def _from_le(typecode: str, data: bytes, rows: int) -> array[Any]:
    column = array(typecode)
    column.frombytes(data)
    if len(column) != rows:
        raise SnapshotError(f"a STATE column has {len(column)} values for {rows} rows")
    if sys.byteorder != "little":
        column.byteswap()
    return column


def _bytes_view(arr: np.ndarray) -> memoryview:
    contiguous = np.ascontiguousarray(arr, dtype="<f4")
    return memoryview(contiguous).cast("B")  # type: ignore[arg-type]


def write_snapshot(storage: OSStorage, snap_dir: str, state: State, last_crc: int) -> SnapshotInfo:
    # kind, codec, the section's bytes in pieces (written one after another), decoded size
    sections: list[tuple[int, int, list[memoryview], int]] = []
    state_map = _state_map(state)
    packed = msgpack.packb(state_map, use_bin_type=True)
    body = zstandard.ZstdCompressor(level=_ZSTD_LEVEL).compress(packed)
    sections.append((fmt.SECTION_STATE, fmt.CODEC_ZSTD, [memoryview(body)], len(packed)))
    if state.vectors is not None and state.vectors.n:
        norms = state.vectors.fresh_norms()
        pieces = [_bytes_view(part) for part in state.vectors.parts() if len(part)]
        sections.append((fmt.SECTION_VECTORS, fmt.CODEC_RAW, pieces, sum(map(len, pieces))))
        sections.append((fmt.SECTION_NORMS, fmt.CODEC_RAW, [_bytes_view(norms)], 4 * len(norms)))
    rows = len(state.ids)
    live = np.frombuffer(state.dseqs, dtype=np.int64, count=rows) == 0
    lexical = [memoryview(p) for p in state.lexical_index().encode(rows, live)]
    sections.append((fmt.SECTION_LEXICAL, fmt.CODEC_RAW, lexical, sum(map(len, lexical))))
    ann: list[bytes]
    graph: bytes | memoryview = b""
    if state.ann is None:
        ann = [AnnState.inactive_section()]
    else:
        ann, graph = state.ann.encode()
    pieces = [memoryview(p).cast("B") for p in ann if len(p)]
    sections.append((fmt.SECTION_ANN, fmt.CODEC_RAW, pieces, sum(map(len, pieces))))
    if len(graph):
        graph_view = memoryview(graph).cast("B")
        sections.append((fmt.SECTION_ANN_GRAPH, fmt.CODEC_RAW, [graph_view], len(graph_view)))

    table_end = fmt.SNAP_HEADER_BYTES + fmt.SNAP_SECTION_BYTES * len(sections)
    offset = _align(table_end)
    table = bytearray()
    out: list[bytes | memoryview] = []
    for kind, codec, pieces, raw in sections:
        stored = sum(map(len, pieces))
        crc = 0
        for piece in pieces:
            crc = crc32(piece, crc)
        table += fmt.SNAP_SECTION.pack(kind, codec, offset, stored, raw, crc, 0)
        end = offset + stored
        out += pieces
        out.append(bytes(_align(end) - end))
        offset = _align(end)
    version = fmt.FORMAT_VERSION if _V2_KEYS & state_map.keys() else fmt.CREATED_VERSION
    head = fmt.SNAP_HEADER.pack(fmt.SNAP_MAGIC, version, len(sections), state.seq, last_crc, 0)[:28]
    crc = crc32(bytes(table), crc32(head))
    prefix = head + crc.to_bytes(4, "little") + bytes(table)
    prefix += bytes(_align(table_end) - table_end)
    path = os.path.join(snap_dir, fmt.snapshot_name(state.seq))
    write_atomically(storage, path, [prefix, *out])
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
    if not 1 <= version <= fmt.FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format version {version} is not one of 1 to {fmt.FORMAT_VERSION}"
        )
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

    The file is mapped copy-on-write: the VECTORS section becomes the index's base rows
    without a copy (writes to those rows stay private to this process). Raises
    ``SnapshotError`` if any byte fails its checksum or the contents disagree.
    """
    with open(path, "rb") as f:
        seq, last_crc, sections = read_snapshot_header(f)
        try:
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        except (ValueError, OSError) as exc:
            raise SnapshotError(f"snapshot cannot be mapped: {exc}") from exc
    data = memoryview(mapped)
    by_kind: dict[int, tuple[int, memoryview, int]] = {}
    checks: list[tuple[int, memoryview, int]] = []
    graph_crc = 0
    for kind, codec, offset, stored, raw, scrc in sections:
        if offset + stored > len(data):
            raise SnapshotError(f"section {kind} runs past the end of the file")
        by_kind[kind] = (codec, data[offset : offset + stored], raw)
        if kind == fmt.SECTION_ANN_GRAPH:  # checked at first use (FORMAT.md "ANN_GRAPH")
            graph_crc = scrc
        else:
            checks.append((kind, by_kind[kind][1], scrc))
    # The big checksums (VECTORS, a long ANN queue) run beside the STATE decoding (the CRC
    # releases the GIL); the small ones here.
    big = [check for check in checks if len(check[1]) >= _BACKGROUND_CRC_BYTES]
    failed: list[int] = []
    worker = threading.Thread(
        target=lambda: failed.extend(kind for kind, sec, scrc in big if crc32(sec) != scrc)
    )
    worker.start()
    try:
        for kind, section, scrc in checks:
            if len(section) < _BACKGROUND_CRC_BYTES and crc32(section) != scrc:
                raise SnapshotError(f"section {kind} checksum mismatch")
        state, m = _decode_state(by_kind, seq)
    finally:
        worker.join()
    if failed:
        raise SnapshotError(f"section {failed[0]} checksum mismatch")
    rows = m["rows"]
    if rows:
        if not state.dim:
            raise SnapshotError("snapshot has rows but no vector dimension")
        base = _raw_rows(by_kind, fmt.SECTION_VECTORS, rows, state.dim)
        norms = _raw_rows(by_kind, fmt.SECTION_NORMS, rows, 1).reshape(rows)
        state.vectors = _index(m, base, norms, rows)
    state.lexical = _lexical(by_kind, rows)
    state.ann = _ann(by_kind, state, graph_crc)
    return state, last_crc


def _ann(
    by_kind: dict[int, tuple[int, memoryview, int]], state: State, graph_crc: int
) -> AnnState | None:
    """The stored approximate index. A snapshot written before the ANN section existed
    starts the graph over its live rows if they are enough (FORMAT.md "ANN section")."""
    if fmt.SECTION_ANN not in by_kind:
        state.start_ann_if_due()
        return state.ann
    codec, section, _raw = by_kind[fmt.SECTION_ANN]
    graph = None
    if fmt.SECTION_ANN_GRAPH in by_kind:
        graph_codec, graph_section, _raw = by_kind[fmt.SECTION_ANN_GRAPH]
        if graph_codec != fmt.CODEC_RAW:
            raise SnapshotError("ANN_GRAPH section has the wrong codec")
        graph = (graph_section, graph_crc)
    if codec != fmt.CODEC_RAW:
        raise SnapshotError("ANN section has the wrong codec")
    try:
        return AnnState.decode(section, len(state.ids), graph)
    except ValueError as exc:
        raise SnapshotError(str(exc)) from exc


def _lexical(by_kind: dict[int, tuple[int, memoryview, int]], rows: int) -> LexicalIndex:
    """The stored lexical index; without one (or from another tokenizer) an empty index
    with every row marked for indexing at the first lexical query."""
    index = None
    if fmt.SECTION_LEXICAL in by_kind:
        codec, section, _raw = by_kind[fmt.SECTION_LEXICAL]
        if codec != fmt.CODEC_RAW:
            raise SnapshotError("LEXICAL section has the wrong codec")
        try:
            index = LexicalIndex.decode(section, rows)
        except ValueError as exc:
            raise SnapshotError(str(exc)) from exc
    if index is None:
        index = LexicalIndex()
        index.touch_all(rows)
    return index


def _decode_state(
    by_kind: dict[int, tuple[int, memoryview, int]], seq: int
) -> tuple[State, dict[str, Any]]:
    codec, body, raw = by_kind.get(fmt.SECTION_STATE, (-1, memoryview(b""), 0))
    if codec != fmt.CODEC_ZSTD:
        raise SnapshotError("snapshot has no zstd STATE section")
    try:
        packed = zstandard.ZstdDecompressor().decompress(body, max_output_size=raw)
        m = msgpack.unpackb(packed, raw=False)
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
        raise SnapshotError(f"STATE section does not decode: {exc}") from exc
    if not isinstance(m, dict) or m.get("seq") != seq:
        raise SnapshotError("STATE section seq disagrees with the header")
    try:
        return _state_from_map(m), m
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SnapshotError(f"STATE section is malformed: {exc!r}") from exc


def _raw_rows(
    by_kind: dict[int, tuple[int, memoryview, int]], kind: int, rows: int, width: int
) -> np.ndarray:
    if kind not in by_kind:
        raise SnapshotError(f"snapshot lacks section {kind}")
    codec, section, _raw = by_kind[kind]
    if codec != fmt.CODEC_RAW or len(section) != rows * width * 4:
        raise SnapshotError(f"section {kind} has the wrong codec or size")
    arr: np.ndarray = np.frombuffer(section, dtype="<f4").reshape(rows, width)
    return arr


def _index(m: dict[str, Any], base: np.ndarray, norms: np.ndarray, rows: int) -> VectorIndex:
    capacity = rows + 1024  # the base rows and the new index's first tail block

    def column(values: np.ndarray, dtype: Any) -> np.ndarray:
        out = np.zeros(capacity, dtype=dtype)
        out[:rows] = values
        return out

    return VectorIndex.from_snapshot(
        base,
        column(norms, np.float32),
        column(np.frombuffer(m["dseq"], dtype="<i8", count=rows) == 0, bool),
        column(np.frombuffer(m["row_ns"], dtype="<i4", count=rows), np.int32),
        column(np.frombuffer(m["row_kind"], dtype="i1", count=rows), np.int8),
    )


def _state_from_map(m: dict[str, Any]) -> State:
    state = State()
    state.seq, state.format, state.dim = m["seq"], m["format"], m["dim"]
    state.embedder = m["embedder"]
    rows = m["rows"]
    state.ids, state.texts, state.metas = m["id"], m["text"], m["meta"]
    try:
        state.imps = _from_le("d", m["imp"], rows)
        for key, attr in _INT_COLUMNS:
            setattr(state, attr, _from_le("q", m[key], rows))
        row_ns = np.frombuffer(m["row_ns"], dtype="<i4", count=rows)
        row_kind = np.frombuffer(m["row_kind"], dtype="i1", count=rows)
        names = np.asarray(m["ns_codes"] or [""], dtype=object)
        state.nss = names[row_ns].tolist()
        state.kinds = np.asarray(fmt.KINDS, dtype=object)[row_kind].tolist()
        state.vops = np.asarray(_OPS, dtype=object)[np.frombuffer(m["vop"], "u1")].tolist()
    except (ValueError, IndexError) as exc:
        raise SnapshotError(f"STATE section columns do not fit {rows} rows: {exc}") from exc
    columns = (state.ids, state.texts, state.metas, state.vops)
    if any(len(col) != rows for col in columns) or len(m["row_ns"]) != 4 * rows:
        raise SnapshotError("STATE section columns have different lengths")
    state.rseqs = _from_le("q", m["rseq"], rows) if "rseq" in m else array("q", bytes(8 * rows))
    state.evicted = bytearray(m["evicted"]) if "evicted" in m else bytearray(rows)
    if len(state.evicted) != rows:
        raise SnapshotError("STATE section's evicted column does not fit its rows")
    state.capacity = {ns: (limit, policy) for ns, limit, policy in m.get("capacity", [])}
    state.evictions = m.get("evictions", 0)
    state.rows = dict(zip(state.ids, range(rows), strict=True))
    state.history = {mid: [tuple(v) for v in past] for mid, past in m["history"]}
    state.ns_codes = {ns: code for code, ns in enumerate(m["ns_codes"])}
    state.ns_live = m["ns_live"]
    state.live = m["live"]
    if not all(len(edge) == 4 for edge in m["edges"]):
        raise SnapshotError("STATE section has an edge that is not [a, b, relation, weight]")
    state.graph = GraphIndex(m["edges"])
    return state
