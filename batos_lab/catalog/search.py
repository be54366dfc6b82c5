"""Ranking for the knowledge catalog: BM25, vector (cosine) and hybrid (reciprocal rank fusion).

* ``bm25``: the query's content words are OR-ed and scored by zope.index's Okapi BM25
  (k1=1.2, b=0.75) over each chunk's text prefixed by its document and section titles.
  Stop words are dropped; operator words and symbols in plain queries are just words.
  With ``boolean=True`` the query goes to zope.index's parser as written (AND, OR, NOT,
  "phrases", globs*), and a malformed query raises :class:`CatalogQueryError`.
* ``vector``: the mean of two cosines between the query embedding and the chunk: with the
  chunk's centroid (the normalised mean of its sentence embeddings: what the chunk is about
  overall) and with its best-matching sentence (max-sim: a precise question often matches one
  sentence). On the codex questions this scored higher recall@5 than either alone and than
  encoding the whole chunk text (``benchmarks/catalog_quality.py``).
* ``hybrid``: reciprocal rank fusion (Cormack et al., 2009). Each mode ranks its best
  ``depth`` chunks (``depth = max(50, 4 * top_k)``); a chunk scores
  ``sum over modes of 1 / (rrf_k + rank)`` with ``rrf_k = 60`` and ranks from 1. RRF needs no
  score calibration between BM25's unbounded scores and cosines, and a chunk found by both
  modes outranks one found by a single mode at the same rank.

Stop-word-only or empty queries return an empty :class:`SearchResults` whose ``note`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from zope.index.text.lexicon import CaseNormalizer, Splitter, StopWordRemover

MODES = ("hybrid", "bm25", "vector")
RRF_K = 60
_PIPELINE = (Splitter(), CaseNormalizer(), StopWordRemover())


@dataclass(frozen=True)
class SearchHit:
    """One ranked chunk: where it is, its text, its score and each mode's raw score.

    ``score`` is the ranking score of the mode searched (BM25, vector score or RRF sum).
    ``bm25`` and ``cosine`` (the vector score) are None where the chunk was not among that
    mode's candidates.
    """

    chunk_id: int
    doc_id: str
    position: int
    section: str
    text: str
    score: float
    bm25: float | None = None
    cosine: float | None = None


class SearchResults(list[SearchHit]):
    """The hits of one search, best first, with the query, the mode and an optional note."""

    def __init__(self, hits: Iterable[SearchHit] = (), *, query: str = "", mode: str = "",
                 note: str = "") -> None:  # fmt: skip
        super().__init__(hits)
        self.query = query
        self.mode = mode
        self.note = note

    def __repr__(self) -> str:
        note = f", note={self.note!r}" if self.note else ""
        return f"SearchResults({len(self)} hits, mode={self.mode!r}{note})"


def query_terms(query: str) -> list[str]:
    """The query's content words as the index sees them: lower case, no stop words, no repeats."""
    words: list[str] = [query]
    for element in _PIPELINE:
        words = element.process(words)
    return list(dict.fromkeys(words))


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest scores, best first (ties broken by lower index)."""
    if k <= 0 or scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    if k < scores.size:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(scores.size)
    return part[np.lexsort((part, -scores[part]))]


def bucket_top(bucket: object, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
    """The k best (chunk_id, score) pairs of a zope.index result bucket, best first."""
    if not bucket:
        return []
    size = len(bucket)  # type: ignore[arg-type]
    ids = np.fromiter(bucket.keys(), dtype=np.int64, count=size)  # type: ignore[attr-defined]
    vals = np.fromiter(bucket.values(), dtype=np.float64, count=size)  # type: ignore[attr-defined]
    if allowed is not None:
        keep = np.fromiter((i in allowed for i in ids.tolist()), dtype=bool, count=size)
        ids, vals = ids[keep], vals[keep]
    best = top_indices(vals, k)
    return list(zip(ids[best].tolist(), vals[best].tolist(), strict=True))


def rrf(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Fuse ranked id lists by reciprocal rank: score(d) = sum 1 / (k + rank), ranks from 1.

    Args:
        rankings: one best-first list of ids per ranker.
        k: the RRF constant (60 in the original paper).

    Returns:
        (id, fused score) pairs, best first; ties keep the order of first appearance.

    Example:
        >>> rrf([[1, 2], [2, 3]], k=60)[0][0]
        2
    """
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    order = {item: i for i, item in enumerate(fused)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


@dataclass(frozen=True)
class VectorCache:
    """All chunk vectors stacked for search: centroids, sentences and their chunk offsets."""

    generation: int
    ids: np.ndarray  # (n_chunks,) int64 chunk ids
    centroids: np.ndarray  # (n_chunks, dim) float32 unit rows
    sentences: np.ndarray  # (n_sentences, dim) float32 unit rows, grouped by chunk
    offsets: np.ndarray  # (n_chunks,) index of each chunk's first sentence row

    @classmethod
    def build(
        cls, generation: int, ids: list[np.ndarray], centroids: list[np.ndarray],
        sentences: list[np.ndarray], counts: list[int],
    ) -> VectorCache:  # fmt: skip
        """Stack per-document arrays (empty catalog: zero rows)."""
        if not ids:
            empty = np.zeros((0, 0), dtype=np.float32)
            return cls(generation, np.zeros(0, np.int64), empty, empty, np.zeros(0, np.int64))
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(generation, np.concatenate(ids), np.vstack(centroids), np.vstack(sentences),
                   offsets)  # fmt: skip

    def scores(self, query: np.ndarray) -> np.ndarray:
        """(n_chunks,) vector scores: mean of centroid cosine and best-sentence cosine."""
        if self.ids.size == 0:
            return np.zeros(0, dtype=np.float32)
        best = np.maximum.reduceat(self.sentences @ query, self.offsets)
        return 0.5 * (self.centroids @ query + best)
