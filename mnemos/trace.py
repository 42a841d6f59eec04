"""Traced reads: with ``Mnemos.open(..., trace=True)`` every ``ask`` is recorded, with its
resolved parameters, query vector and the hits it returned, in the database's ``TRACE``
file (FORMAT.md "The TRACE file"). Traces change no state: they sit beside the log, keyed
by the seq of the last event applied when the ask ran, so ``export_replay`` can put each
one at its place among the events and a replay can ask again there and compare.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import asdict
from typing import Any

import msgpack
import numpy as np

from ._native import crc32
from .retrieval import AskParams
from .storage import OSStorage

log = logging.getLogger("mnemos")

TRACE_FILE = "TRACE"
RECORD = struct.Struct("<II")  # payload bytes, CRC of those 4 length bytes and the payload
# Scores of a re-run ask may differ from the traced ones by float rounding across machines
# and backends (DESIGN.md): within this they are equal, and hits may swap places.
SCORE_TOLERANCE = 1e-5


def encode_params(p: AskParams) -> dict[str, Any]:
    """An ask's resolved parameters as a msgpack map."""
    out = asdict(p)
    for key in ("namespaces", "kinds"):
        if out[key] is not None:
            out[key] = list(out[key])
    out["where"] = None if p.where is None else dict(p.where)
    out["kind_weights"] = dict(p.kind_weights)
    return out


def decode_params(m: dict[str, Any]) -> AskParams:
    m = dict(m)
    for key in ("namespaces", "kinds"):
        if m[key] is not None:
            m[key] = tuple(m[key])
    return AskParams(**m)


def record(
    after: int,
    text: str | None,
    vector: np.ndarray | None,
    params: AskParams,
    graph: bool,
    hits: list[tuple[str, float]],
) -> dict[str, Any]:
    """One traced ask: run after event ``after``; ``graph``: the ANN graph answered."""
    return {
        "after": after,
        "query": text,
        "vec": None if vector is None else np.asarray(vector, dtype="<f4").tobytes(),
        "params": encode_params(params),
        "path": "ann" if graph else "exact",
        "hits": [[mid, score] for mid, score in hits],
    }


def encode_record(trace: dict[str, Any]) -> bytes:
    payload: bytes = msgpack.packb(trace, use_bin_type=True)
    length = len(payload).to_bytes(4, "little")
    return RECORD.pack(len(payload), crc32(payload, crc32(length))) + payload


def read(path: str) -> tuple[list[dict[str, Any]], int]:
    """The valid records of the TRACE file at ``path`` and where they end. Reading stops
    at the first record that is short or fails its CRC: an ask interrupted mid-append (or
    unsynced bytes lost) leaves such a tail, and traces are diagnostics, not state."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return [], 0
    out, at = [], 0
    while at + RECORD.size <= len(data):
        size, crc = RECORD.unpack_from(data, at)
        end = at + RECORD.size + size
        payload = data[at + RECORD.size : end]
        if end > len(data) or crc32(payload, crc32(data[at : at + 4])) != crc:
            break
        out.append(msgpack.unpackb(payload, raw=False))
        at = end
    if at != len(data):
        log.warning("%s: ignoring %d bytes after its last whole record", path, len(data) - at)
    return out, at


class TraceWriter:
    """Appends traced asks to a database's TRACE file (a writer handle's). Synced when the
    database syncs its log at close and checkpoint, not per ask."""

    def __init__(self, storage: OSStorage, path: str):
        self._storage = storage
        self.path = path
        if not os.path.exists(path):
            storage.close(storage.create(path))
            storage.fsync_dir(os.path.dirname(path))
        _records, end = read(path)
        if os.path.getsize(path) != end:  # a torn tail: an append a crash interrupted
            storage.truncate(path, end)
        self._fd = storage.open_append(path)

    def append(self, traces: list[dict[str, Any]]) -> None:
        self._storage.write(self._fd, b"".join(encode_record(t) for t in traces))

    def sync(self) -> None:
        self._storage.fsync(self._fd)

    def close(self) -> None:
        try:
            self.sync()
        finally:
            self._storage.close(self._fd)


def same_hits(expected: list[list[Any]], actual: list[tuple[str, float]]) -> bool:
    """Whether a re-run ask gave the traced answer: the same ids, scores within
    ``SCORE_TOLERANCE``, in the same order except among hits whose scores are that close."""
    if len(expected) != len(actual):
        return False
    if {mid for mid, _ in expected} != {mid for mid, _ in actual}:
        return False
    traced = dict(expected)
    if any(abs(traced[mid] - score) > SCORE_TOLERANCE for mid, score in actual):
        return False
    # Position by position, the hit there must be the traced one or one tied with it.
    return all(
        a_id == e_id or abs(traced[a_id] - e_score) <= SCORE_TOLERANCE
        for (e_id, e_score), (a_id, _s) in zip(expected, actual, strict=True)
    )
