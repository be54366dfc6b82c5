"""A volatile numpy mirror of the TextIndex's Okapi BM25 postings, for plain OR queries.

zope.index stays the source of truth: ingest, unindex and boolean queries go to the
TextIndex, and this mirror is derived from its data, never stored. For a plain query (an OR
of its content words) ``OkapiIndex`` loads each word's postings from ZODB, scores every
posting in a loop into a float32 bucket per word, and merges the buckets two at a time,
smallest first. :class:`OkapiArrays` reads the same data once (``_wordinfo``: word id ->
{chunk id: count}, ``_docweight``: chunk id -> length in words, and the total length) into
flat arrays and precomputes each posting's term score with the same double-precision
formula, rounded to float32 as the bucket stores it::

    score(D, t) = float32( f(D,t) * (k1 + 1) / (f(D,t) + k1 * (1 - b + b * len(D) / avglen))
                           * log(1 + N / n(t)) )          k1 = 1.2, b = 0.75

A query gathers its words' rows and merges them in the order ``mass_weightedUnion`` uses,
with float32 additions, so its scores equal OkapiIndex's bit for bit; no ZODB object is
loaded per query. The mirror holds one int32 position and one float32 score per posting.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from zope.index.nbest import NBest
from zope.index.text.baseindex import inverse_doc_frequency

from batos_lab.catalog.search import top_indices


@dataclass(frozen=True)
class OkapiArrays:
    """Every posting of an OkapiIndex with its term score, grouped by word (compressed rows)."""

    stamp: str
    ids: np.ndarray  # (n_docs,) int64 chunk ids, ascending (the order of _docweight)
    rows: dict[str, int]  # word -> row in starts
    starts: np.ndarray  # (n_words + 1,) int64: row r spans starts[r]:starts[r + 1]
    positions: np.ndarray  # (n_postings,) int32 index into ids
    weights: np.ndarray  # (n_postings,) float32 term score, as OkapiIndex stores it

    @classmethod
    def build(cls, text_index: Any, stamp: str) -> OkapiArrays:
        """Read a TextIndex's Okapi data into arrays (one pass over its BTrees).

        Args:
            text_index: a zope.index ``TextIndex`` whose ``index`` is an ``OkapiIndex``.
            stamp: the catalog state these arrays mirror.

        Returns:
            The arrays; empty when the index holds no document.
        """
        okapi = text_index.index
        docweight = okapi._docweight
        ids = np.fromiter(docweight.keys(), dtype=np.int64, count=len(docweight))
        n_docs = float(okapi.documentCount())
        if not ids.size or not n_docs:
            empty = np.zeros(0, dtype=np.int64)
            return cls(stamp, empty, {}, np.zeros(1, np.int64), empty.astype(np.int32),
                       np.zeros(0, np.float32))  # fmt: skip
        lengths = np.fromiter(docweight.values(), dtype=np.float64, count=ids.size)
        total = okapi._totaldoclen
        mean = (total() if callable(total) else total) / n_docs
        rows: dict[str, int] = {}
        counts: list[int] = []
        idfs: list[float] = []
        doc_ids: list[int] = []
        freqs: list[int] = []
        wordinfo = okapi._wordinfo
        for word, wid in text_index.lexicon._wids.items():
            postings = wordinfo.get(wid)
            if not postings:
                continue
            rows[word] = len(counts)
            counts.append(len(postings))
            idfs.append(inverse_doc_frequency(len(postings), n_docs))
            doc_ids.extend(postings.keys())
            freqs.extend(postings.values())
        positions = np.searchsorted(ids, np.asarray(doc_ids, dtype=np.int64))
        f = np.asarray(freqs, dtype=np.float64)
        k1, b = float(okapi.K1), float(okapi.B)
        # Same operations in the same order as okascore.c (and _python_search_wids).
        lenweight = (1.0 - b) + b * lengths[positions] / mean
        tf = f * (k1 + 1.0) / (f + k1 * lenweight)
        weights = (tf * np.repeat(np.asarray(idfs, dtype=np.float64), counts)).astype(np.float32)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(stamp, ids, rows, starts, positions.astype(np.int32), weights)

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (the word dictionary not counted)."""
        arrays = (self.ids, self.starts, self.positions, self.weights)
        return int(sum(a.nbytes for a in arrays))

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """(n_docs,) float32 BM25 scores of an OR of terms; 0 where no term occurs.

        Unknown words are skipped, as ``OkapiIndex`` skips out-of-vocabulary word ids.
        The per-word rows are merged like ``zope.index.text.setops.mass_weightedUnion``:
        the two smallest (by number of chunks) first, ties going to the one added last.
        """
        total = np.zeros(self.ids.size, dtype=np.float32)
        merge = NBest(max(1, len(terms)))
        for term in terms:
            row = self.rows.get(term)
            if row is None:
                continue
            lo, hi = self.starts[row], self.starts[row + 1]
            dense = np.zeros(self.ids.size, dtype=np.float32)
            dense[self.positions[lo:hi]] = self.weights[lo:hi]
            merge.add(dense, int(hi - lo))
        if not len(merge):
            return total
        while len(merge) > 1:
            (x, _), (y, _) = merge.pop_smallest(), merge.pop_smallest()
            z = x + y  # float32, and term scores are > 0: z is non-zero where either is
            merge.add(z, int(np.count_nonzero(z)))
        merged: np.ndarray = merge.pop_smallest()[0]
        return merged

    def top(
        self, terms: Sequence[str], k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The k best (chunk_id, score) pairs of an OR of terms, best first.

        Args:
            terms: normalised query words (``search.query_terms``).
            k: how many to return.
            allowed: optional (n_docs,) bool mask of chunks that may be returned.

        Returns:
            Pairs ordered by score, ties by lower chunk id (as ``search.bucket_top``).
        """
        scores = self.scores(terms)
        matched = np.flatnonzero(scores)
        if allowed is not None:
            matched = matched[allowed[matched]]
        best = matched[top_indices(scores[matched], k)]
        return list(zip(self.ids[best].tolist(), scores[best].tolist(), strict=True))
