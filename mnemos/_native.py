"""Backend choice: the Rust core when it imports, the Python reference otherwise.

``MNEMOS_BACKEND=python`` forces the reference path; ``MNEMOS_BACKEND=rust`` makes a
missing extension an error instead of a silent fallback. Both give identical results.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any

from .errors import InvalidInputError

_choice = os.environ.get("MNEMOS_BACKEND", "").strip().lower() or "auto"
if _choice not in ("auto", "rust", "python"):
    raise InvalidInputError(
        f"MNEMOS_BACKEND={_choice!r} is not a backend; use 'rust', 'python' or leave it unset"
    )

_core: Any = None
if _choice != "python":
    try:
        from . import _core
    except ImportError as exc:
        if _choice == "rust":
            raise InvalidInputError(
                "MNEMOS_BACKEND=rust but the native module mnemos._core did not import "
                f"({exc}); reinstall with `pip install mnemos-db` or unset MNEMOS_BACKEND"
            ) from exc
        _core = None

crc32: Callable[..., int] = _core.crc32 if _core is not None else zlib.crc32


def backend() -> str:
    """Which implementation of the core functions is active: ``"rust"`` or ``"python"``."""
    return "rust" if _core is not None else "python"
