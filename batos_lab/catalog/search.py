"""Ranking for the knowledge catalog: BM25, vector (cosine) and hybrid (score fusion).

* ``bm25``: the query's content words are OR-ed and scored by Okapi BM25 (k1=1.2, b=0.75)
  over each chunk's text prefixed by its document and section titles. Stop words are
  dropped; operator words and symbols in plain queries are just words. The zope.index
  TextIndex is the source of truth; plain queries are scored from a volatile numpy mirror of
  its postings (:mod:`batos_lab.catalog.okapi`) that gives OkapiIndex's scores exactly.
  With ``boolean=True`` the query goes to zope.index's parser as written (AND, OR, NOT,
  "phrases", globs*), and a malformed query raises :class:`CatalogQueryError`.
* ``vector``: the mean of two cosines between the query embedding and the chunk: with the
  chunk vector (its sentence centroid, what the chunk says overall, plus the embedding of its
  heading "document title / section title", where it stands: ``chunking.chunk_vector``) and
  with its best-matching sentence (max-sim: a precise question often matches one sentence).
  On the choice questions this scored the best recall@5 of the representations compared,
  among them the centroid alone, max-sim alone, their mean without the heading and the whole
  chunk text encoded with its heading (``benchmarks/catalog_vectors.py``).
* ``hybrid``: a convex combination of the two modes' scores, each scaled to [0, 1] over the
  chunks searched (all of them, or those a ``where`` filter keeps)::

      hybrid(c) = alpha * minmax(vector)(c) + (1 - alpha) * minmax(bm25)(c)
      minmax(s)(c) = (s(c) - min s) / (max s - min s)      (0 when max s = min s)

  with ``alpha = ALPHA = 0.8``. A chunk without any query word has BM25 0, the bottom of
  the BM25 range. Unlike reciprocal rank fusion (:func:`rrf`), the score keeps how far ahead
  each mode's best chunks are, so a strong vector match is not pulled down by a middling BM25
  rank. The rule and alpha were chosen on the choice questions (tuning + former held-out,
  ``benchmarks/catalog_fusion.py``, results in ``benchmarks/results/catalog_fusion.md``) and
  scored on fresh ones (``catalog_quality.md``).

Stop-word-only or empty queries return an empty :class:`SearchResults` whose ``note`` says why.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from zope.index.text.lexicon import CaseNormalizer, Splitter, StopWordRemover

from batos_lab.errors import CatalogQueryError

MODES = ("hybrid", "bm25", "vector")
#: Weight of the vector score in hybrid fusion (chosen on the choice questions).
ALPHA = 0.8
#: The reciprocal-rank-fusion constant of :func:`rrf`.
RRF_K = 60
_PIPELINE = (Splitter(), CaseNormalizer(), StopWordRemover())


@dataclass(frozen=True)
class SearchHit:
    """One ranked chunk: where it is, its text, its score and each mode's raw score.

    ``score`` is the ranking score of the mode searched (BM25, vector score or fused score).
    ``bm25`` is None where the chunk has none of the query's words (or was not searched by
    BM25); ``cosine`` (the vector score) is None in ``bm25`` mode.
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


def rrf(
    rankings: Sequence[Sequence[int]], k: int = RRF_K, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse ranked id lists by reciprocal rank: score(d) = sum w / (k + rank), ranks from 1.

    Hybrid search fuses scores instead (:func:`fuse`); this rule is kept for comparison
    (``benchmarks/catalog_fusion.py``) and for callers that only have rankings.

    Args:
        rankings: one best-first list of ids per ranker.
        k: the RRF constant (60 in the original paper).
        weights: one weight per ranking (default: all 1).

    Returns:
        (id, fused score) pairs, best first; ties keep the order of first appearance.

    Example:
        >>> rrf([[1, 2], [2, 3]], k=60)[0][0]
        2
    """
    if weights is None:
        weights = [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise CatalogQueryError(
            f"Expected one weight per ranking; got {len(weights)} weights for "
            f"{len(rankings)} rankings."
        )
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    order = {item: i for i, item in enumerate(fused)}
    return sorted(fused.items(), key=lambda kv: (-kv[1], order[kv[0]]))


def minmax(scores: np.ndarray, keep: np.ndarray | None = None) -> np.ndarray:
    """Scores scaled to [0, 1] by the lowest and highest kept score (all 0 when they are equal).

    Args:
        scores: (n,) scores.
        keep: optional (n,) bool mask of the scores that set the range.

    Returns:
        (n,) float64 array; entries outside ``keep`` are scaled the same way.
    """
    kept = scores if keep is None else scores[keep]
    out = np.zeros(scores.size, dtype=np.float64)
    if kept.size:
        low, high = float(kept.min()), float(kept.max())
        if high > low:
            out = (scores.astype(np.float64) - low) / (high - low)
    return out


def fuse(
    bm25: np.ndarray, vector: np.ndarray, alpha: float = ALPHA, keep: np.ndarray | None = None
) -> np.ndarray:
    """Hybrid score of every chunk: ``alpha * minmax(vector) + (1 - alpha) * minmax(bm25)``.

    Each mode's scores are scaled to [0, 1] over the chunks considered (``keep``), so the
    best chunk of each mode gets 1 and the worst 0 (a chunk without any query word scores 0
    in BM25). ``alpha`` = 0 ranks by BM25 alone, 1 by the vector score alone.

    Args:
        bm25: (n,) BM25 scores (0 where the query has no word of the chunk).
        vector: (n,) vector scores of the same chunks.
        alpha: weight of the vector score, in [0, 1].
        keep: optional (n,) bool mask of the chunks considered (a ``where`` filter).

    Returns:
        (n,) float64 fused scores.

    Example:
        >>> fuse(np.array([0.0, 2.0, 4.0]), np.array([0.9, 0.5, 0.1]), alpha=0.75).round(3)
        array([0.75, 0.5 , 0.25])
    """
    return alpha * minmax(vector, keep) + (1.0 - alpha) * minmax(bm25, keep)


def check_search_arguments(query: object, top_k: object, mode: object, alpha: object) -> None:
    """Refuse a search whose mode, top_k, query or alpha is not usable.

    Raises:
        CatalogQueryError: naming the argument, the value and what was expected.
    """
    if mode not in MODES:
        raise CatalogQueryError(f"Expected mode to be one of {MODES}; got {mode!r}.")
    if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
        raise CatalogQueryError(f"Expected top_k to be a positive int; got {top_k!r}.")
    if not isinstance(query, str):
        raise CatalogQueryError(f"Expected the query as str; got {type(query).__name__}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise CatalogQueryError(
            f"Expected alpha, the weight of the vector score in hybrid fusion, to be a number "
            f"from 0 to 1; got {alpha!r}."
        )


@dataclass(frozen=True)
class VectorCache:
    """All chunk vectors stacked for search: chunk vectors, sentences and chunk offsets."""

    stamp: str  # the catalog state it was stacked from
    ids: np.ndarray  # (n_chunks,) int64 chunk ids, in document order
    centroids: np.ndarray  # (n_chunks, dim) float32 unit rows: centroids with heading context
    sentences: np.ndarray  # (n_sentences, dim) float32 unit rows, grouped by chunk
    offsets: np.ndarray  # (n_chunks,) index of each chunk's first sentence row
    by_id: np.ndarray  # (n_chunks,) rows in ascending chunk-id order

    @classmethod
    def build(
        cls, stamp: str, ids: list[np.ndarray], centroids: list[np.ndarray],
        sentences: list[np.ndarray], counts: list[int],
    ) -> VectorCache:  # fmt: skip
        """Stack per-document arrays (empty catalog: zero rows)."""
        if not ids:
            empty = np.zeros((0, 0), dtype=np.float32)
            none = np.zeros(0, np.int64)
            return cls(stamp, none, empty, empty, none, none)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        all_ids = np.concatenate(ids)
        return cls(stamp, all_ids, np.vstack(centroids), np.vstack(sentences), offsets,
                   np.argsort(all_ids, kind="stable"))  # fmt: skip

    @property
    def nbytes(self) -> int:
        """Bytes held by the stacked arrays."""
        arrays = (self.ids, self.centroids, self.sentences, self.offsets, self.by_id)
        return int(sum(a.nbytes for a in arrays))

    def scores(self, query: np.ndarray) -> np.ndarray:
        """(n_chunks,) vector scores: mean of chunk-vector cosine and best-sentence cosine."""
        if self.ids.size == 0:
            return np.zeros(0, dtype=np.float32)
        best = np.maximum.reduceat(self.sentences @ query, self.offsets)
        return 0.5 * (self.centroids @ query + best)

    def aligned_scores(self, query: np.ndarray) -> np.ndarray:
        """Vector scores in ascending chunk-id order (the order of ``OkapiArrays.ids``)."""
        return self.scores(query)[self.by_id]
