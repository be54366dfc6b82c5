"""Semantic chunking: config validation, gap distances, span bounds, real breakpoints."""

from __future__ import annotations

import numpy as np
import pytest

from batos_lab.catalog.chunking import ChunkingConfig, gap_distances, plan_document, plan_spans
from batos_lab.errors import CatalogInputError

PASTA = (
    "Bring a large pot of water to a rolling boil. Salt the water generously before adding "
    "the pasta. Stir the spaghetti during the first minute so it does not stick. Taste a "
    "strand a minute before the time on the packet. Keep a cup of the starchy cooking water. "
    "Toss the drained pasta with the sauce and a splash of that water."
)
ZODB_TEXT = (
    "A ZODB connection keeps a cache of persistent objects. Assigning an attribute marks the "
    "object as changed for the next commit. A savepoint lets a transaction roll back part of "
    "its work. Blobs keep large binary data in separate files beside the storage. Conflict "
    "errors are retried by the transaction manager. Packing the storage removes old revisions."
)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"percentile": 101.0}, "percentile must lie in"),
        ({"window": 0}, "window must be >= 1"),
        ({"min_words": 50, "max_words": 10}, "min_words <= max_words"),
        ({"max_sentence_words": 0}, "max_sentence_words must be >= 1"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(CatalogInputError, match=match):
        ChunkingConfig(**kwargs)  # type: ignore[arg-type]


def test_gap_distances_are_one_minus_cosine() -> None:
    e = np.eye(3, dtype=np.float32)
    vectors = np.vstack([e[0], e[0], e[1], e[1]])
    np.testing.assert_allclose(gap_distances(vectors, 1), [0.0, 1.0, 0.0], atol=1e-6)
    # with a window of 2 the middle gap compares mean(e0, e0) with mean(e1, e1)
    windowed = gap_distances(vectors, 2)
    assert windowed[1] == pytest.approx(1.0, abs=1e-6)
    assert windowed[0] < 1.0 - 1e-3


def test_spans_respect_bounds_and_breakpoints() -> None:
    config = ChunkingConfig(min_words=10, max_words=25)
    words = [6, 6, 6, 6, 6, 6, 6, 3]
    distances = np.array([0.1, 0.9, 0.1, 0.1, 0.1, 0.9, 0.1])
    spans = plan_spans(words, distances, threshold=0.5, config=config)
    assert spans[0] == (0, 2)  # break at the first high gap once 12 >= min_words
    assert spans[0][0] == 0 and spans[-1][1] == len(words)
    assert all(a < b for a, b in spans)
    assert all(sum(words[a:b]) <= 25 for a, b in spans)
    assert [b for _, b in spans[:-1]] == [a for a, _ in spans[1:]]


def test_small_tail_joins_previous_chunk() -> None:
    config = ChunkingConfig(min_words=10, max_words=30)
    spans = plan_spans([12, 3], np.array([0.9]), threshold=0.5, config=config)
    assert spans == [(0, 2)]


@pytest.mark.llm
def test_topic_shift_becomes_a_chunk_boundary(catalog_embedder: object) -> None:
    config = ChunkingConfig(percentile=90, min_words=15, max_words=200)
    plan = plan_document(f"# Notes\n\n{PASTA} {ZODB_TEXT}", catalog_embedder, config)  # type: ignore[arg-type]
    assert plan.title == "Notes"
    assert len(plan.sentences) == 12
    assert int(np.nanargmax(plan.distances)) == 5  # the pasta/ZODB seam is the widest gap
    assert [(c.start, c.end) for c in plan.chunks] == [(0, 6), (6, 12)]
    assert plan.breakpoints == [5]
    assert plan.chunk_matrix.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(plan.chunk_matrix, axis=1), 1.0, atol=1e-5)
    assert plan.summary in plan.sentences


@pytest.mark.llm
def test_headings_only_is_rejected(catalog_embedder: object) -> None:
    with pytest.raises(CatalogInputError, match="at least one sentence"):
        plan_document("# Title\n## Part\n", catalog_embedder, ChunkingConfig())  # type: ignore[arg-type]
