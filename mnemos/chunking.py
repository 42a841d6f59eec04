"""Cutting a document into overlapping chunks, deterministically (README "Documents").

A document is measured in units: the embedder's word pieces when it can say where they
are in the text (``token_spans``), else characters. A chunk holds at most ``chunk_size``
units and the next starts ``overlap`` units before it ends. When a paragraph or sentence
ends within the last BREAK_WINDOW of a chunk, the chunk ends there instead, so chunks
rarely cut a sentence in two.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

BREAK_WINDOW = 0.3  # the share of a chunk, at its end, searched for a break
# Where a chunk may end, best first: after a blank line, then after a sentence.
_BREAKS = (re.compile(r"\n\s*\n"), re.compile("[.!?\u3002\uff01\uff1f](?=\\s)|\n"))

Spans = Callable[[str], list[tuple[int, int]]]


def char_spans(text: str) -> list[tuple[int, int]]:
    return [(i, i + 1) for i in range(len(text))]


def chunk(
    text: str, chunk_size: int, overlap: int, spans: Spans = char_spans
) -> list[tuple[int, int]]:
    """(start, end) character offsets of each chunk of ``text``, in order."""
    units = spans(text)
    if not units:
        return [(0, len(text))] if text.strip() else []
    out: list[tuple[int, int]] = []
    a = 0
    while a < len(units):
        b = min(a + chunk_size, len(units))
        if b < len(units):
            b = _break_before(text, units, a, b, chunk_size)
        out.append((units[a][0], units[b - 1][1]))
        if b == len(units):
            break
        a = max(b - overlap, a + 1)
    return out


def _break_before(text: str, units: list[tuple[int, int]], a: int, b: int, chunk_size: int) -> int:
    """The unit index to end a chunk at: ``b``, or earlier at a paragraph or sentence end
    within the last BREAK_WINDOW of the chunk."""
    earliest = b - int(chunk_size * BREAK_WINDOW)
    if earliest <= a:
        return b
    lo, hi = units[earliest][0], units[b - 1][1]
    for pattern in _BREAKS:
        ends = [m.end() for m in pattern.finditer(text, lo, hi)]
        if ends:
            cut = ends[-1]
            # the first unit that starts at or after the break begins the next chunk
            for i in range(b - 1, earliest - 1, -1):
                if units[i][0] < cut:
                    return i + 1
    return b


def chunk_id(doc_id: str, index: int, text: str) -> str:
    """Stable: the same document id, position and text give the same id."""
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{doc_id}#{index}-{digest}"
