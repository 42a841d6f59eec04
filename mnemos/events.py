"""Events: the values users pass, checked and resolved into what the log records.

Every check happens here, before anything is encoded, so bad input raises
``InvalidInputError`` and writes nothing. FORMAT.md "Events" lists each event's fields.
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import msgpack
import numpy as np

from . import format as fmt
from .errors import InvalidInputError
from .index.vector import row_norms

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1
_META_DEPTH_MAX = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROS_MIN = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)
_MICROS_MAX = (datetime.max.replace(tzinfo=timezone.utc) - _EPOCH) // timedelta(microseconds=1)

Clock = Callable[[], "datetime | float | int"]


_packers = threading.local()
# A Packer's buffer keeps the size of the largest value it packed: one that packed more than
# this is dropped, so a huge value (say, metadata about to be refused) holds no memory.
_PACKER_KEEP_BYTES = 1 << 20


def pack(value: object) -> bytes:
    """``msgpack.packb(value, use_bin_type=True)``, from a Packer kept per thread: making
    one per call took 650 ns against 190 ns for packing a small map, on every event applied."""
    try:
        packer = _packers.packer
    except AttributeError:
        packer = _packers.packer = msgpack.Packer(use_bin_type=True)
    try:
        packed: bytes = packer.pack(value)  # resets its buffer if packing fails
    except BaseException:
        del _packers.packer  # its buffer may have grown before the failure
        raise
    if len(packed) > _PACKER_KEEP_BYTES:
        del _packers.packer
    return packed


def encode_event(event: Mapping[str, Any]) -> bytes:
    payload = pack(event)
    if len(payload) > fmt.EVENT_BYTES_MAX:
        raise InvalidInputError(
            f"this operation encodes to {len(payload)} bytes, over EVENT_BYTES_MAX "
            f"({fmt.EVENT_BYTES_MAX}); store less text or metadata per memory"
        )
    return payload


def decode_event(payload: bytes | memoryview) -> dict[str, Any]:
    event = msgpack.unpackb(payload, raw=False)
    if not isinstance(event, dict) or not isinstance(event.get("t"), str):
        raise ValueError("record payload is not an event map")
    return event


# -- values ---------------------------------------------------------------------------


def _utf8_len(value: str, what: str) -> int:
    try:
        return len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidInputError(f"{what} is not valid Unicode text ({exc.reason})") from None


def check_text(text: object) -> str:
    if not isinstance(text, str):
        raise InvalidInputError(f"text must be a str, not {type(text).__name__}")
    if _utf8_len(text, "text") > fmt.TEXT_BYTES_MAX:
        raise InvalidInputError(
            f"text is {_utf8_len(text, 'text')} bytes of UTF-8, over the limit of "
            f"{fmt.TEXT_BYTES_MAX}; split it (ingest_document chunks long text)"
        )
    return text


def _check_name(value: object, what: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"{what} must be a non-empty str, not {value!r}")
    if _utf8_len(value, what) > limit:
        raise InvalidInputError(f"{what} {value[:40]!r}... is over {limit} bytes of UTF-8")
    return value


def check_id(mid: object) -> str:
    return _check_name(mid, "memory id", fmt.ID_BYTES_MAX)


def check_namespace(ns: object) -> str:
    return (
        fmt.DEFAULT_NAMESPACE
        if ns is None
        else _check_name(ns, "namespace", fmt.NAMESPACE_BYTES_MAX)
    )


def check_relation(rel: object) -> str:
    return _check_name(rel, "relation", fmt.RELATION_BYTES_MAX)


def check_kind(kind: object) -> str:
    if kind not in fmt.KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(fmt.KINDS)}; got {kind!r}")
    return str(kind)


def _check_real(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(f"{what} must be a number, not {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise InvalidInputError(f"{what} must be finite, got {result}")
    return result


def check_importance(value: object) -> float:
    result = _check_real(value, "importance")
    if not 0.0 <= result <= 1.0:
        raise InvalidInputError(f"importance must be between 0 and 1, got {result}")
    return result


def check_weight(value: object) -> float:
    return _check_real(value, "weight")


def to_micros(value: object, what: str = "timestamp") -> int:
    """A datetime (naive means UTC) or epoch seconds, as integer microseconds."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        delta = aware - _EPOCH
        micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    else:
        micros = round(_check_real(value, what) * 1_000_000)
    if not _MICROS_MIN <= micros <= _MICROS_MAX:
        raise InvalidInputError(f"{what} {value!r} is outside the years 1 to 9999")
    return micros


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def now_micros(clock: Clock) -> int:
    return to_micros(clock(), "the clock's value")


def check_vector(vector: object, dim: int | None) -> bytes:
    """A 1-D finite, non-zero float32 vector of the database's dimension, as LE bytes."""
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become inf, rejected below
            arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"vector must be a sequence of numbers ({exc})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInputError(
            f"vector must be one-dimensional and non-empty, got shape {arr.shape}"
        )
    if dim is not None and arr.size != dim:
        raise InvalidInputError(
            f"vector has {arr.size} dimensions but this database stores {dim}-dimensional vectors"
        )
    if arr.size > fmt.DIM_MAX:
        raise InvalidInputError(
            f"vector has {arr.size} dimensions; the limit is DIM_MAX={fmt.DIM_MAX}"
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError("vector contains NaN or infinity; pass finite numbers only")
    norm = float(row_norms(arr[None, :])[0])
    if norm == 0.0:
        raise InvalidInputError(
            "vector is all zeros (or too close to zero for float32), so it has no direction "
            "to compare by"
        )
    if not math.isfinite(norm):
        raise InvalidInputError("vector is too large: its length overflows float32; scale it down")
    return arr.astype("<f4", copy=False).tobytes()


def _canonical(value: Any, depth: int, path: str) -> Any:
    """JSON-like values with dict keys sorted; rejects what msgpack or JSON cannot hold."""
    if depth > _META_DEPTH_MAX:
        raise InvalidInputError(f"metadata nests deeper than {_META_DEPTH_MAX} levels at {path}")
    if value is None or isinstance(value, (bool, str)):
        if isinstance(value, str):
            _utf8_len(value, f"metadata value at {path}")
        return value
    if isinstance(value, numbers.Integral):
        if not _INT_MIN <= int(value) <= _UINT_MAX:
            raise InvalidInputError(f"metadata integer at {path} does not fit in 64 bits")
        return int(value)
    if isinstance(value, numbers.Real):
        result = float(value)
        if not math.isfinite(result):
            raise InvalidInputError(f"metadata value at {path} is {result}; only finite numbers")
        return result
    if isinstance(value, Mapping):
        out = {}
        for key in sorted(value, key=lambda k: (not isinstance(k, str), str(k))):
            if not isinstance(key, str):
                raise InvalidInputError(
                    f"metadata keys must be str; {key!r} at {path} is {type(key).__name__}"
                )
            _utf8_len(key, f"metadata key at {path}")
            out[key] = _canonical(value[key], depth + 1, f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_canonical(item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value)]
    raise InvalidInputError(
        f"metadata value at {path} has type {type(value).__name__}; use None, bool, int, "
        "float, str, list or dict"
    )


def check_metadata(meta: object) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidInputError(f"metadata must be a dict, not {type(meta).__name__}")
    result: dict[str, Any] = _canonical(meta, 0, "metadata")
    size = len(pack(result))
    if size > fmt.METADATA_BYTES_MAX:
        raise InvalidInputError(
            f"metadata encodes to {size} bytes, over the limit of {fmt.METADATA_BYTES_MAX}"
        )
    return result


_EMPTY_META: bytes = msgpack.packb({})


def pack_meta(meta: Mapping[str, Any]) -> bytes:
    """The stored bytes of an event's metadata map: msgpack, in the event's key order
    (writers sort keys at every level, see ``check_metadata``, so equal maps give equal
    bytes; re-sorting on every apply would cost replay time for nothing)."""
    if not meta:
        return _EMPTY_META
    return pack(meta)


def decode_meta(packed: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = msgpack.unpackb(packed, raw=False)
    return meta
