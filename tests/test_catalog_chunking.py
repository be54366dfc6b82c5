"""Semantic chunking: config validation, gap distances, span bounds, breakpoints, chunk vectors."""

from __future__ import annotations

import numpy as np
import pytest

from batos_lab.catalog.chunking import (
    ChunkingConfig,
    chunk_vector,
    gap_distances,
    heading_text,
    plan_document,
    plan_spans,
    unit_mean,
)
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
        ({"heading_context": 1}, "heading_context must be True or False; got 1"),
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


GARDEN_CARE = (
    "Water them at the base early every morning. Give them a spot with plenty of sun. Feed "
    "them every two weeks through the summer. Pull the weeds that grow around their stems."
)


def test_heading_text_joins_titles_without_repeats() -> None:
    assert heading_text("Garden notes", "Soil") == "Garden notes / Soil"
    assert heading_text("Notes", "Notes") == "Notes"
    assert heading_text("", "Soil") == "Soil"
    assert heading_text("", "") == ""


def test_chunk_vector_is_the_unit_bisector_of_centroid_and_heading() -> None:
    rng = np.random.default_rng(7)
    sentences = rng.normal(size=(3, 8)).astype(np.float32)
    sentences /= np.linalg.norm(sentences, axis=1, keepdims=True)
    heading = rng.normal(size=8)
    heading /= np.linalg.norm(heading)
    centroid = unit_mean(sentences)
    np.testing.assert_array_equal(chunk_vector(sentences, None), centroid)
    both = chunk_vector(sentences, heading)
    assert both.dtype == np.float32
    assert np.linalg.norm(both) == pytest.approx(1.0, abs=1e-6)
    # content and heading count equally: the vector is as close to one as to the other
    assert float(both @ centroid) == pytest.approx(float(both @ heading), abs=1e-6)
    assert float(both @ centroid) > float(heading @ centroid)


@pytest.mark.llm
def test_chunk_vectors_take_their_heading_as_context(catalog_embedder: object) -> None:
    text = f"# Garden\n\n## Tomatoes\n\n{GARDEN_CARE}\n\n## Roses\n\n{GARDEN_CARE}\n"
    plan = plan_document(text, catalog_embedder, ChunkingConfig())  # type: ignore[arg-type]
    plain = plan_document(text, catalog_embedder, ChunkingConfig(heading_context=False))  # type: ignore[arg-type]
    assert [s.title for s in plan.sections] == ["Tomatoes", "Roses"] and len(plan.chunks) == 2
    encode = catalog_embedder.encode  # type: ignore[attr-defined]
    headings = encode(["Garden / Tomatoes", "Garden / Roses"])
    np.testing.assert_allclose(plan.heading_vectors, headings, atol=1e-5)
    for chunk, heading in zip(plan.chunks, headings, strict=True):
        expected = chunk_vector(plan.sentence_vectors[chunk.start : chunk.end], heading)
        np.testing.assert_allclose(chunk.vector, expected, atol=1e-5)
    # without heading context both chunks (same sentences) get the same plain centroid
    assert not plain.heading_vectors.any()
    np.testing.assert_allclose(plain.chunks[0].vector, plain.chunks[1].vector, atol=1e-6)
    np.testing.assert_allclose(
        plain.chunks[0].vector, unit_mean(plain.sentence_vectors[:4]), atol=1e-6
    )
    # with it, a question naming only the heading's topic finds the chunk under that heading
    for query, wanted in (("How do I look after tomato plants?", 0), ("Caring for roses", 1)):
        scores = plan.chunk_matrix @ encode([query])[0]
        assert int(np.argmax(scores)) == wanted, (query, scores)


@pytest.mark.llm
def test_untitled_text_keeps_plain_centroids(catalog_embedder: object) -> None:
    plan = plan_document(GARDEN_CARE, catalog_embedder, ChunkingConfig())  # type: ignore[arg-type]
    assert plan.title == "" and plan.heading_vectors.shape == (1, 384)
    assert not plan.heading_vectors.any()
    np.testing.assert_allclose(plan.chunks[0].vector, unit_mean(plan.sentence_vectors), atol=1e-6)
