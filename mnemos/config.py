"""Open options: their checks, and their values from the environment.

Each option of ``Mnemos.open`` listed in ``OPTIONS`` can also be set by the environment
variable ``MNEMOS_<NAME>``; the precedence is argument > environment > default. The
database path comes from ``MNEMOS_DB`` when ``open`` is given none. Objects (``embedder``,
``clock``) and the intent of a call (``readonly``, ``create``) come from arguments only;
the built-in model's directory is ``MNEMOS_MODEL_DIR`` and the backend ``MNEMOS_BACKEND``
(read where they are used).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from . import format as fmt
from .errors import InvalidInputError

DB_ENV = "MNEMOS_DB"
DURABILITIES = ("full", "normal", "off")
RETENTIONS = ("keep", "delete")


class _Unset:
    """The default of an option not passed: the environment's value, else the default."""

    def __repr__(self) -> str:
        return "<MNEMOS_* or default>"


UNSET: Any = _Unset()


def _choice(values: tuple[str, ...]) -> Callable[[str, Any], Any]:
    def check(name: str, value: Any) -> Any:
        if value not in values:
            raise InvalidInputError(f"{name} must be one of {', '.join(values)}; got {value!r}")
        return value

    return check


def is_int(value: object) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_or_none(name: str, value: Any) -> Any:
    if value is not None and (not is_int(value) or value < 1):
        raise InvalidInputError(f"{name} must be a positive int or None; got {value!r}")
    return value


def _segment_bytes(name: str, value: Any) -> Any:
    if not is_int(value) or value < 4096:
        raise InvalidInputError(f"{name} must be an int of at least 4096; got {value!r}")
    return value


def _interval(name: str, value: Any) -> Any:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= 60_000
    ):
        raise InvalidInputError(f"{name} must be a number from 0 to 60000; got {value!r}")
    return value


def check_flag(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False; got {value!r}")
    return value


def _dim(name: str, value: Any) -> Any:
    if value is not None and (not is_int(value) or not 1 <= value <= fmt.DIM_MAX):
        raise InvalidInputError(f"{name} must be an int from 1 to {fmt.DIM_MAX}; got {value!r}")
    return value


def _text(text: str) -> Any:
    return text


def _bool_text(text: str) -> Any:
    words = {"1": True, "true": True, "yes": True, "on": True}
    words |= {"0": False, "false": False, "no": False, "off": False}
    return words.get(text.lower(), text)


def _number_text(text: str) -> Any:
    if text.lower() == "none":
        return None
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


# option -> (check, default, how its environment variable's text is read)
OPTIONS: dict[str, tuple[Callable[[str, Any], Any], Any, Callable[[str], Any]]] = {
    "dim": (_dim, None, _number_text),
    "durability": (_choice(DURABILITIES), "full", _text),
    "trace": (check_flag, False, _bool_text),
    "snapshot_every_events": (_positive_or_none, 10_000, _number_text),
    "snapshot_every_bytes": (_positive_or_none, 64 * 1024 * 1024, _number_text),
    "log_retention": (_choice(RETENTIONS), "keep", _text),
    "segment_bytes": (_segment_bytes, 64 * 1024 * 1024, _number_text),
    "sync_interval_ms": (_interval, 50.0, _number_text),
    "ann_background": (check_flag, True, _bool_text),
}


def defaults(**overrides: Any) -> dict[str, Any]:
    """Every option at its default, or as given: for handles the engine opens itself,
    which the environment must not reach."""
    unknown = set(overrides) - set(OPTIONS)
    assert not unknown, unknown
    return {name: overrides.get(name, default) for name, (_c, default, _r) in OPTIONS.items()}


def env_name(option: str) -> str:
    return "MNEMOS_" + option.upper()


def resolve(option: str, value: Any) -> Any:
    """The option's value: the argument if given, else its environment variable's, else
    the default; checked either way (an error names the variable it came from)."""
    check, default, read = OPTIONS[option]
    if value is not UNSET:
        return check(option, value)
    text = os.environ.get(env_name(option), "").strip()
    if not text:
        return default
    return check(f"{env_name(option)} (for {option})", read(text))


def db_path(path: str | os.PathLike[str] | None) -> str:
    if path is not None:
        return os.fspath(path)
    text = os.environ.get(DB_ENV, "")
    if not text.strip():
        raise InvalidInputError(
            f"no database path: pass one to Mnemos.open, or set {DB_ENV} to a directory"
        )
    return text
