"""The ``where`` metadata filter: validated once, compiled to a predicate.

The language is the one agent developers know from Chroma and mem0 (README "Filtering"):

- ``{"key": value}`` is ``{"key": {"$eq": value}}``; several keys in one map all hold;
- ``$eq $ne $gt $gte $lt $lte $in $nin $exists`` compare one top-level metadata value;
- ``{"$and": [f, ...]}`` and ``{"$or": [f, ...]}`` combine filters.

Values compare by type as well as value: ``True`` is not ``1``, and ``1`` equals
``1.0``. Order operators compare numbers with numbers and strings with strings; a value
of another type (or a missing key) does not match. ``$ne`` and ``$nin`` match memories
that lack the key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidInputError

Predicate = Callable[[Mapping[str, Any]], bool]

_MISSING = object()
_COMPARE_OPS = ("$gt", "$gte", "$lt", "$lte")
_FIELD_OPS = ("$eq", "$ne", "$in", "$nin", "$exists", *_COMPARE_OPS)
_SCALARS = (str, int, float, bool, type(None))


def compile_where(where: object) -> Predicate:
    """A predicate over a metadata dict; raises ``InvalidInputError`` naming what is
    wrong with ``where`` before anything is evaluated."""
    return _compile(where, "where")


def _compile(node: object, path: str) -> Predicate:
    if not isinstance(node, Mapping):
        raise InvalidInputError(
            f"{path} must be a dict like {{'key': value}} or {{'$and': [...]}}; "
            f"got {type(node).__name__}"
        )
    if not node:
        raise InvalidInputError(f"{path} is an empty dict; leave where=None to filter nothing")
    parts: list[Predicate] = []
    for key, cond in node.items():
        if not isinstance(key, str):
            raise InvalidInputError(f"{path} has a non-string key {key!r}")
        if key in ("$and", "$or"):
            parts.append(_compile_logical(key, cond, f"{path}[{key!r}]"))
        elif key.startswith("$"):
            raise InvalidInputError(
                f"{path} uses unknown operator {key!r}; at the top level use a metadata key, "
                "'$and' or '$or'"
            )
        else:
            parts.append(_compile_field(key, cond, f"{path}[{key!r}]"))
    return parts[0] if len(parts) == 1 else _all_of(parts)


def _all_of(parts: list[Predicate]) -> Predicate:
    return lambda meta: all(p(meta) for p in parts)


def _compile_logical(op: str, cond: object, path: str) -> Predicate:
    if not isinstance(cond, (list, tuple)) or not cond:
        raise InvalidInputError(f"{path} must be a non-empty list of filters")
    parts = [_compile(sub, f"{path}[{i}]") for i, sub in enumerate(cond)]
    if op == "$and":
        return _all_of(parts)
    return lambda meta: any(p(meta) for p in parts)


def _compile_field(key: str, cond: object, path: str) -> Predicate:
    if not (isinstance(cond, Mapping) and cond and all(str(k).startswith("$") for k in cond)):
        if isinstance(cond, Mapping) and any(str(k).startswith("$") for k in cond):
            raise InvalidInputError(f"{path} mixes operators and plain keys")
        _check_value(cond, path)
        return _field_test(key, "$eq", cond)
    tests = []
    for op, operand in cond.items():
        if op not in _FIELD_OPS:
            raise InvalidInputError(
                f"{path} uses unknown operator {op!r}; use one of {', '.join(_FIELD_OPS)}"
            )
        where = f"{path}[{op!r}]"
        if op in ("$in", "$nin"):
            if not isinstance(operand, (list, tuple)):
                raise InvalidInputError(f"{where} needs a list of values")
            for value in operand:
                _check_value(value, where)
        elif op == "$exists":
            if not isinstance(operand, bool):
                raise InvalidInputError(f"{where} needs True or False")
        elif op in _COMPARE_OPS:
            if not _is_number(operand) and not isinstance(operand, str):
                raise InvalidInputError(f"{where} needs a number or a string; got {operand!r}")
        else:
            _check_value(operand, where)
        tests.append(_field_test(key, op, operand))
    return tests[0] if len(tests) == 1 else _all_of(tests)


def _check_value(value: object, path: str) -> None:
    if isinstance(value, float) and value != value:
        raise InvalidInputError(f"{path} compares with NaN, which equals nothing")
    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(item, path)
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_value(item, path)
    elif not isinstance(value, _SCALARS):
        raise InvalidInputError(
            f"{path} compares with a {type(value).__name__}; metadata holds str, int, float, "
            "bool, None, lists and dicts"
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def same(a: object, b: object) -> bool:
    """Equality that keeps bools apart from numbers, also inside lists and dicts."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _field_test(key: str, op: str, operand: Any) -> Predicate:
    if op == "$eq":
        return lambda meta: key in meta and same(meta[key], operand)
    if op == "$ne":
        return lambda meta: key not in meta or not same(meta[key], operand)
    if op == "$in":
        return lambda meta: key in meta and any(same(meta[key], v) for v in operand)
    if op == "$nin":
        return lambda meta: key not in meta or not any(same(meta[key], v) for v in operand)
    if op == "$exists":
        return lambda meta: (key in meta) == operand
    compare = _ORDER[op]
    if isinstance(operand, str):
        return lambda meta: isinstance(meta.get(key), str) and compare(meta[key], operand)
    return lambda meta: _is_number(meta.get(key, _MISSING)) and compare(meta[key], operand)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}
