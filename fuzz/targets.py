"""Fuzz targets: each takes arbitrary bytes and may fail only with the errors its contract
allows (``MnemosError`` subclasses; ``SnapshotError`` for a snapshot, which open turns into
a fallback to an older one). Anything else raised is a bug.

``python fuzz/run.py TARGET -max_total_time=60`` runs one under atheris (coverage-guided);
``tests/test_fuzz_regressions.py`` runs every stored input in ``tests/data/fuzz/TARGET/``
through the same function, so an input a fuzzer once found keeps being checked.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable

import msgpack
import numpy as np

from mnemos import Mnemos, MnemosError
from mnemos import format as fmt
from mnemos.events import decode_event
from mnemos.replay import ReplayLog, run
from mnemos.snapshot import SnapshotError, load_snapshot
from mnemos.wal import decode_segment_header, encode_record, scan_records


def segment(data: bytes) -> None:
    """A log segment's bytes: its header, then its records (also with a salt and chain
    taken from the input itself, so the scan reaches record parsing)."""
    try:
        header = decode_segment_header(data, "fuzz.wal")
    except MnemosError:
        header = None
    if header is not None:
        body = memoryview(data)[fmt.SEGMENT_HEADER_BYTES :]
        scan_records(
            body, fmt.SEGMENT_HEADER_BYTES, header.salt, header.first_seq - 1, header.prev_crc
        )
    if len(data) >= 16:
        salt, seq, crc = struct.unpack_from("<IQI", data)
        result = scan_records(memoryview(data)[16:], 16, salt, seq, crc)
        assert result.status in ("clean", "torn", "corrupt")
        assert 16 <= result.end <= len(data)


def event(data: bytes) -> None:
    """An event payload, logged as a record and decoded as replay decodes it (the Rust
    decoder, where loaded): the event ``decode_event`` gives, or ``decode_event``'s error.
    Compared as msgpack bytes with strict types, so 1 is not True and NaN equals NaN."""
    record, _crc = encode_record(0, 1, 0, 0, 1, 0, data)
    result = scan_records(record, 32, 0, 0, 0)
    [(seq, decoded)] = result.events(0, 1)
    assert seq == 1
    try:
        expected = decode_event(data)
    except Exception:  # decode_event's own errors: the payload must have been left to it
        assert not isinstance(decoded, dict)
        return
    if isinstance(decoded, dict):
        pack = msgpack.Packer(use_bin_type=True, strict_types=True).pack
        assert pack(decoded) == pack(expected)
    else:
        assert bytes(decoded) == data


def snapshot(data: bytes) -> None:
    """A snapshot file's bytes."""
    with tempfile.NamedTemporaryFile(suffix=".snap", delete=False) as f:
        f.write(data)
    try:
        load_snapshot(f.name)
    except SnapshotError:
        pass
    finally:
        os.unlink(f.name)


def replay_log(data: bytes) -> None:
    """A replay log's bytes: read every entry, then replay it in memory."""
    with tempfile.NamedTemporaryFile(suffix=".log", delete=False) as f:
        f.write(data)
    try:
        with ReplayLog(f.name) as log:
            for _entry in log.entries():
                pass
        run(f.name, None, verify=True, stop_at=None)
    except MnemosError:
        pass
    finally:
        os.unlink(f.name)


_VERBS = (
    "remember",
    "many",
    "update",
    "forget",
    "connect",
    "disconnect",
    "ask",
    "get",
    "history",
    "capacity",
    "recall",
)


def api(data: bytes) -> None:
    """The public API driven by the input: each step's verb and arguments come from the
    bytes, including ill-typed and out-of-range ones; every call may raise only a
    ``MnemosError``, and the state survives a reopen."""
    rng = np.random.default_rng(list(data[:32]) or [0])
    rest = data[32:]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fuzz.mem")
        with Mnemos.open(path, embedder=None, dim=4, durability="off") as db:
            for i in range(0, min(len(rest), 400), 4):
                verb = _VERBS[rest[i] % len(_VERBS)]
                arg = rest[i + 1 : i + 4]
                _call(db, verb, arg, rng)
            digest = db.state_hash()
        with Mnemos.open(path, embedder=None) as db:
            assert db.state_hash() == digest


def _value(b: bytes, rng: np.random.Generator) -> object:
    """An argument value: often reasonable, sometimes of the wrong type or out of range."""
    choice = b[0] % 12 if b else 0
    values: list[Callable[[], object]] = [
        lambda: f"m{b[1] if len(b) > 1 else 2}",
        lambda: "",
        lambda: None,
        lambda: -1,
        lambda: float("nan"),
        lambda: rng.standard_normal(4).astype(np.float32),
        lambda: np.zeros(4, dtype=np.float32),
        lambda: rng.standard_normal(5),
        lambda: {"k": [1, {"x": None}]},
        lambda: b.decode("latin-1"),
        lambda: ["a", 2],
        lambda: 10**30,
    ]
    return values[choice]()


def _call(db: Mnemos, verb: str, arg: bytes, rng: np.random.Generator) -> None:
    v = _value(arg, rng)
    w = _value(arg[1:], rng)
    vector = rng.standard_normal(4).astype(np.float32)
    try:
        if verb == "remember":
            db.remember(str(v), vector=w if isinstance(w, np.ndarray) else vector, metadata=None)
        elif verb == "many":
            db.remember_many([{"text": "x", "vector": vector}, {"text": v, "vector": w}])
        elif verb == "update":
            db.update(v, text=w if isinstance(w, str) else None, importance=0.3)
        elif verb == "forget":
            db.forget(v)
        elif verb == "connect":
            db.connect(v, w, relation="r", weight=0.5)
        elif verb == "disconnect":
            db.disconnect(v, w)
        elif verb == "ask":
            db.ask(
                vector=vector,
                top_k=v if isinstance(v, int) else 3,
                where=w if isinstance(w, dict) else None,
            )
        elif verb == "get":
            db.get(v)
        elif verb == "capacity":
            policy = "least-recently-recalled" if isinstance(w, str) else "importance-then-age"
            db.set_capacity(v, namespace=w if isinstance(w, str) else None, policy=policy)
        elif verb == "recall":
            db.mark_recalled([v, w] if isinstance(w, str) else v)  # type: ignore[arg-type]
        else:
            db.history(v)
    except MnemosError:
        pass


TARGETS: dict[str, Callable[[bytes], None]] = {
    "segment": segment,
    "event": event,
    "snapshot": snapshot,
    "replay_log": replay_log,
    "api": api,
}
