"""BM25 over memory text, with the tokenizer that defines its terms.

Derived state. The index answers for the texts of live rows as they stand, so it does
not depend on the order in which rows were indexed: a row's BM25 score is a function
of its term frequencies, its length, the number of live documents, their total length
and each term's document frequency, all integers, combined by the same float64 formula
whichever part of the index holds the row. Replay, reopen and incremental writes
therefore give bit-identical scores.

Two parts, as in the vector index: ``base``, compressed-sparse postings a snapshot
stored (arrays over the mapped file, term by term), and ``delta``, dictionaries for rows
indexed since. A row re-indexed after the snapshot is masked out of the base.

Indexing is lazy: applying an event only marks its row dirty (replay stays as fast as
without the index); the first lexical query, or the next snapshot, tokenizes the dirty
rows in one pass.
"""

from __future__ import annotations

import math
import re
import struct
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

# FORMAT.md "Tokenizer". Changing what a text tokenizes to changes this version; a
# snapshot's LEXICAL section from another version (or Unicode version) is rebuilt.
TOKENIZER_VERSION = 1
UNICODE_VERSION = unicodedata.unidata_version
TOKEN_CHARS_MAX = 64
PART_CHARS_MIN = 2

# Han ideographs, kana and CJK compatibility ideographs: scripts written without spaces.
# Each such character is a token of its own.
_CJK = (
    "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f"
    "\U00020000-\U0002ffff\U00030000-\U0003134f"
)
_WORD = rf"[^\W{_CJK}]"  # a Unicode word character (letter, digit, underscore), not CJK
_JOINERS = "-./:@+'\u2019"
_TOKEN = re.compile(
    rf"[{_CJK}]"  # one CJK character
    r"|\d{1,3}(?:,\d{3})+(?:\.\d+)?"  # a number with thousands separators: 1,299.00
    rf"|{_WORD}+(?:[{re.escape(_JOINERS)}]{_WORD}+)*"  # words joined by - . / : @ + '
)
_SPLIT = re.compile(rf"[{re.escape(_JOINERS)},_]+")


def tokenize(text: str) -> list[str]:
    """The terms of ``text``, in order (FORMAT.md "Tokenizer").

    NFKC-normalised and case-folded. A run of word characters joined by ``- . / : @ + '``
    stays whole (``ord-48213``, ``parse_invoice_lines``, ``ops@northwind.example``,
    ``v2.3.1``, ``1,299.00``), followed by its parts of at least two characters
    (``ord``, ``48213``), so a query may name the whole or a part. CJK characters are
    single terms. Terms are cut to 64 characters.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    terms: list[str] = []
    for token in _TOKEN.findall(folded):
        terms.append(token[:TOKEN_CHARS_MAX])
        if len(token) > 1 and not token.isalnum():
            terms.extend(
                part[:TOKEN_CHARS_MAX]
                for part in _SPLIT.split(token)
                if len(part) >= PART_CHARS_MIN and part != token
            )
    return terms


# BM25 parameters (FORMAT.md "Lexical scoring"): the usual defaults.
K1 = 1.2
B = 0.75

# The LEXICAL snapshot section's fixed header (FORMAT.md "LEXICAL section").
SECTION_HEADER = struct.Struct("<II16sQQQQ")  # version, 0, unicode, terms, postings, rows, vocab


class LexicalIndex:
    def __init__(self) -> None:
        self.term_ids: dict[str, int] = {}
        self.terms: list[str] = []
        self._vocab: bytes | None = None  # a snapshot's vocabulary, decoded at first use
        # base: postings of term t are rows/tfs[offsets[t]:offsets[t + 1]]
        self.base_offsets = np.zeros(1, dtype=np.int64)
        self.base_rows = np.zeros(0, dtype=np.uint32)
        self.base_tfs = np.zeros(0, dtype=np.uint32)
        self.base_valid = np.zeros(0, dtype=bool)  # base rows not re-indexed since
        # delta: term id -> {row: tf}; row -> its term ids (to remove the row again)
        self.delta: dict[int, dict[int, int]] = {}
        self.row_terms: dict[int, list[int]] = {}
        self.doc_lens = np.zeros(0, dtype=np.int64)
        self.docs = 0  # live rows indexed: BM25's N
        self.total_len = 0  # their summed lengths
        self.dirty: set[int] = set()

    # -- keeping up with the state ------------------------------------------------

    def touch(self, row: int) -> None:
        """``row``'s text or liveness changed; re-index it before the next query."""
        self.dirty.add(row)

    def touch_all(self, rows: int) -> None:
        self.dirty.update(range(rows))

    def flush(self, texts: Sequence[str], is_live: Callable[[int], bool]) -> None:
        """Bring the index up to date with the current texts of the dirty rows."""
        if not self.dirty:
            return
        self._load_vocab()
        self._grow(max(self.dirty) + 1)
        for row in sorted(self.dirty):
            self._unindex(row)
            if is_live(row):
                self._index(row, texts[row])
        self.dirty.clear()

    def _grow(self, rows: int) -> None:
        if rows > len(self.doc_lens):
            grown = np.zeros(max(rows, 2 * len(self.doc_lens), 1024), dtype=np.int64)
            grown[: len(self.doc_lens)] = self.doc_lens
            self.doc_lens = grown

    def _unindex(self, row: int) -> None:
        tids = self.row_terms.pop(row, None)
        if tids is not None:
            for tid in tids:
                postings = self.delta[tid]
                del postings[row]
                if not postings:
                    del self.delta[tid]
        elif row < len(self.base_valid) and self.base_valid[row]:
            self.base_valid[row] = False
        else:
            return
        self.docs -= 1
        self.total_len -= int(self.doc_lens[row])
        self.doc_lens[row] = 0

    def _index(self, row: int, text: str) -> None:
        counts = Counter(tokenize(text))
        tids = []
        for term, tf in counts.items():
            tid = self.term_ids.get(term)
            if tid is None:
                tid = self.term_ids[term] = len(self.terms)
                self.terms.append(term)
            self.delta.setdefault(tid, {})[row] = tf
            tids.append(tid)
        self.row_terms[row] = tids
        length = sum(counts.values())
        self.doc_lens[row] = length
        self.docs += 1
        self.total_len += length

    def remap(self, kept: np.ndarray) -> None:
        """Keep only rows ``kept`` (ascending, all live and clean), renumbered 0.. in that
        order; everything moves into the base."""
        assert not self.dirty
        if len(kept):
            self._grow(int(kept[-1]) + 1)
        new_of = np.full(len(self.doc_lens), -1, dtype=np.int64)
        new_of[kept] = np.arange(len(kept))
        terms, offsets, rows, tfs = self._canonical()
        rows = new_of[rows]
        keep = rows >= 0
        counts = np.diff(offsets)
        tids = np.repeat(np.arange(len(terms), dtype=np.int64), counts)[keep]
        self._load(terms, tids, rows[keep], tfs[keep], self.doc_lens[kept].copy())
        self.base_valid[:] = True

    # -- scoring ----------------------------------------------------------------------

    def score(self, terms: Sequence[str]) -> tuple[np.ndarray, np.ndarray, float]:
        """(rows, BM25 scores, full) of every live row holding at least one of ``terms``,
        rows ascending. Call ``flush`` first. Each distinct term counts once; the per-row
        sum runs over the terms in order of first appearance. ``full`` is the score of a
        row of average length holding each term found once (the sum of their idf):
        dividing by it puts scores of different queries on one scale."""
        self._load_vocab()
        if not self.docs or not self.total_len:
            return np.zeros(0, dtype=np.int64), np.zeros(0), 0.0
        full = 0.0
        avgdl = self.total_len / self.docs
        scores = np.zeros(len(self.doc_lens))
        hit = np.zeros(len(self.doc_lens), dtype=bool)
        for term in dict.fromkeys(terms):
            tid = self.term_ids.get(term)
            if tid is None:
                continue
            rows, tfs = self._term_postings(tid)
            df = len(rows)
            if not df:
                continue
            idf = math.log(1.0 + (self.docs - df + 0.5) / (df + 0.5))
            full += idf
            tf = tfs.astype(np.float64)
            dl = self.doc_lens[rows].astype(np.float64)
            scores[rows] += idf * (tf * (K1 + 1.0)) / (tf + K1 * (1.0 - B + B * dl / avgdl))
            hit[rows] = True
        matched = np.flatnonzero(hit)
        return matched, scores[matched], full

    def _term_postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        parts_rows: list[np.ndarray] = []
        parts_tfs: list[np.ndarray] = []
        if tid + 1 < len(self.base_offsets):
            lo, hi = int(self.base_offsets[tid]), int(self.base_offsets[tid + 1])
            rows = self.base_rows[lo:hi].astype(np.int64)
            valid = self.base_valid[rows]
            parts_rows.append(rows[valid])
            parts_tfs.append(self.base_tfs[lo:hi][valid])
        postings = self.delta.get(tid)
        if postings:
            parts_rows.append(np.fromiter(postings.keys(), np.int64, len(postings)))
            parts_tfs.append(np.fromiter(postings.values(), np.uint32, len(postings)))
        if not parts_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint32)
        return np.concatenate(parts_rows), np.concatenate(parts_tfs)

    # -- snapshots ------------------------------------------------------------------

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every valid posting as (term ids, rows, tfs), base and delta together."""
        counts = np.diff(self.base_offsets)
        tids = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
        rows = self.base_rows.astype(np.int64)
        valid = self.base_valid[rows] if len(rows) else np.zeros(0, dtype=bool)
        # The delta flattened in one pass of list extends: per-term arrays would cost a
        # numpy call per term, and a large delta has hundreds of thousands of terms.
        d_tids: list[int] = []
        d_rows: list[int] = []
        d_tfs: list[int] = []
        for tid, postings in self.delta.items():
            d_tids.extend([tid] * len(postings))
            d_rows.extend(postings)
            d_tfs.extend(postings.values())
        return (
            np.concatenate([tids[valid], np.asarray(d_tids, dtype=np.int64)]),
            np.concatenate([rows[valid], np.asarray(d_rows, dtype=np.int64)]),
            np.concatenate(
                [self.base_tfs[valid].astype(np.int64), np.asarray(d_tfs, dtype=np.int64)]
            ),
        )

    def _canonical(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """(terms, offsets, rows, tfs): the valid postings sorted by term then row, over
        the terms that have any (in their current order)."""
        self._load_vocab()
        tids, rows, tfs = self._postings()
        order = np.lexsort((rows, tids))
        counts = np.bincount(tids, minlength=len(self.terms))
        used = np.flatnonzero(counts)
        offsets = np.concatenate([[0], np.cumsum(counts[used])]).astype(np.int64)
        return [self.terms[i] for i in used], offsets, rows[order], tfs[order]

    def _load(
        self,
        terms: list[str],
        tids: np.ndarray,
        rows: np.ndarray,
        tfs: np.ndarray,
        doc_lens: np.ndarray,
    ) -> None:
        """Make sorted postings (term ids into ``terms``) the whole index, in the base."""
        counts = np.bincount(tids, minlength=len(terms))
        self.terms = terms
        self.term_ids = {term: i for i, term in enumerate(terms)}
        self.base_offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.base_rows = rows.astype(np.uint32)
        self.base_tfs = tfs.astype(np.uint32)
        self.base_valid = np.zeros(len(doc_lens), dtype=bool)
        self.delta, self.row_terms = {}, {}
        self.doc_lens = doc_lens.astype(np.int64)
        self.total_len = int(self.doc_lens.sum())
        self.docs = len(doc_lens)

    def encode(self, rows: int, live: np.ndarray) -> list[bytes]:
        """The LEXICAL section for a state of ``rows`` rows whose live rows are
        ``live`` (call ``flush`` first). Live rows without terms are documents too."""
        assert not self.dirty
        terms, offsets, prow, tfs = self._canonical()
        lens = np.zeros(rows, dtype=np.int64)
        n = min(rows, len(self.doc_lens))
        lens[:n] = self.doc_lens[:n]
        vocab = "".join(term + "\0" for term in terms).encode()
        header = SECTION_HEADER.pack(
            TOKENIZER_VERSION, 0, UNICODE_VERSION.encode(), len(terms), len(prow), rows, len(vocab)
        )
        return [
            header,
            offsets.astype("<u8").tobytes(),
            prow.astype("<u4").tobytes(),
            tfs.astype("<u4").tobytes(),
            lens.astype("<u4").tobytes(),
            np.asarray(live[:rows], dtype=np.uint8).tobytes(),
            vocab,
        ]

    @classmethod
    def decode(cls, data: memoryview, rows: int) -> LexicalIndex | None:
        """The index a LEXICAL section holds, or None if it was built by another
        tokenizer (the caller then re-indexes every row). Raises ValueError if the
        section is malformed."""
        if len(data) < SECTION_HEADER.size:
            raise ValueError("LEXICAL section is shorter than its header")
        version, _, unicode, terms, postings, nrows, vocab = SECTION_HEADER.unpack_from(data)
        if version != TOKENIZER_VERSION or unicode.rstrip(b"\0") != UNICODE_VERSION.encode():
            return None
        if nrows != rows:
            raise ValueError(f"LEXICAL section covers {nrows} rows, not {rows}")
        sizes = (8 * (terms + 1), 4 * postings, 4 * postings, 4 * rows, rows, vocab)
        if SECTION_HEADER.size + sum(sizes) != len(data):
            raise ValueError("LEXICAL section size disagrees with its header")
        arrays = []
        at = SECTION_HEADER.size
        for size, dtype in zip(sizes[:5], ("<u8", "<u4", "<u4", "<u4", "u1"), strict=True):
            arrays.append(np.frombuffer(data[at : at + size], dtype=dtype))
            at += size
        offsets, prow, tfs, lens, live = arrays
        if (
            offsets[0] != 0
            or offsets[-1] != postings
            or np.any(np.diff(offsets.astype(np.int64)) <= 0)
        ):
            raise ValueError("LEXICAL section offsets are not increasing from 0 to postings")
        if postings and int(prow.max()) >= rows:
            raise ValueError("LEXICAL section names a row past the end")
        index = cls()
        index.base_offsets = offsets.astype(np.int64)
        index.base_rows, index.base_tfs = prow, tfs
        index.base_valid = live.astype(bool)
        index.doc_lens = lens.astype(np.int64)
        index.docs = int(np.count_nonzero(index.base_valid))
        index.total_len = int(index.doc_lens.sum())
        vocab_bytes = bytes(data[at:])
        if vocab_bytes.count(0) != terms or (terms and vocab_bytes[-1] != 0):
            raise ValueError("LEXICAL vocabulary does not hold the declared number of terms")
        if int(np.count_nonzero(index.doc_lens[~index.base_valid])):
            raise ValueError("LEXICAL section gives a length to a row that is not live")
        index._vocab = vocab_bytes
        return index

    def _load_vocab(self) -> None:
        """Decode a snapshot's vocabulary (deferred: open does not need it)."""
        if self._vocab is None:
            return
        terms = self._vocab.decode().split("\0")[:-1]
        self.terms = terms
        self.term_ids = {term: i for i, term in enumerate(terms)}
        self._vocab = None
