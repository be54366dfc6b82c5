"""Search over the ingested codex: modes, fusion, notes for empty queries, operators."""

from __future__ import annotations

import pytest

from batos_lab.catalog import KnowledgeCatalog, rrf
from batos_lab.catalog.search import query_terms, top_indices
from batos_lab.errors import CatalogQueryError

pytestmark = pytest.mark.llm


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(rrf([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [i for i, _ in rrf([[1, 2, 3], [3, 1]], k=60)] == [1, 3, 2]


def test_query_terms_drop_stop_words_and_repeats() -> None:
    assert query_terms("The BRICK and the brick, or NOT robin*") == ["brick", "robin"]
    assert query_terms("the of and") == []


def test_top_indices_orders_best_first() -> None:
    import numpy as np

    assert top_indices(np.array([0.1, 0.9, 0.5, 0.9]), 3).tolist() == [1, 3, 2]


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
def test_each_mode_returns_sorted_located_hits(codex_catalog: KnowledgeCatalog, mode: str) -> None:
    hits = codex_catalog.search(
        "Which persona weaves the partial answers into one response?", 5, mode
    )
    assert len(hits) == 5 and hits.mode == mode and not hits.note
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        chunk = codex_catalog.chunk(hit.chunk_id)
        assert (hit.doc_id, hit.position, hit.text) == (chunk.doc_id, chunk.position, chunk.text)
    assert any("ROBIN" in h.text and "weav" in h.text for h in hits)


def test_hybrid_score_is_the_fusion_of_both_rankings(codex_catalog: KnowledgeCatalog) -> None:
    query = "literal engine that deconstructs requests"
    bm25 = [h.chunk_id for h in codex_catalog.search(query, 50, "bm25")]
    vector = [h.chunk_id for h in codex_catalog.search(query, 50, "vector")]
    hybrid = codex_catalog.search(query, 5, "hybrid")
    expected = rrf([bm25, vector])[:5]
    assert [(h.chunk_id, pytest.approx(h.score)) for h in hybrid] == expected
    assert all(h.cosine is not None for h in hybrid)


@pytest.mark.parametrize("mode", ["bm25", "vector", "hybrid"])
@pytest.mark.parametrize(
    ("query", "note"),
    [("", "query is empty"), ("   ", "query is empty"), ("the and of it", "only stop words")],
)
def test_empty_and_stop_word_queries_give_a_note(
    codex_catalog: KnowledgeCatalog, mode: str, query: str, note: str
) -> None:
    hits = codex_catalog.search(query, 5, mode)
    assert hits == [] and note in hits.note


@pytest.mark.parametrize(
    "query",
    ['persona AND (BRICK OR "ROBIN', "NOT", "-brick +robin", 'quote" (', "robin*", "AND OR"],
)
def test_operators_in_plain_queries_are_just_words(
    codex_catalog: KnowledgeCatalog, query: str
) -> None:
    hits = codex_catalog.search(query, 5, "bm25")
    assert isinstance(hits, list)
    if query_terms(query):
        assert hits or hits.note
    else:
        assert "only stop words" in hits.note


def test_boolean_queries_use_the_parser(codex_catalog: KnowledgeCatalog) -> None:
    hits = codex_catalog.search("BRICK AND NOT ROBIN", 20, "bm25", boolean=True)
    assert hits
    for hit in hits:
        text = codex_catalog.chunk(hit.chunk_id).search_text.lower()
        assert "brick" in text and "robin" not in text
    with pytest.raises(CatalogQueryError, match="boolean query zope.index can parse"):
        codex_catalog.search("brick AND (robin", 5, "bm25", boolean=True)


def test_where_filters_by_document_metadata(codex_catalog: KnowledgeCatalog) -> None:
    hits = codex_catalog.search("persona", 10, "hybrid", where={"path": "brick.md"})
    assert hits and {h.doc_id for h in hits} == {"codex/brick"}
    assert codex_catalog.search("persona", 10, "vector", where={"kind": "nothing"}).note


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "fuzzy"}, "mode to be one of"),
        ({"top_k": 0}, "top_k to be a positive int"),
        ({"top_k": True}, "top_k to be a positive int"),
    ],
)
def test_bad_search_arguments(
    codex_catalog: KnowledgeCatalog, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(CatalogQueryError, match=match):
        codex_catalog.search("brick", **kwargs)  # type: ignore[arg-type]


def test_non_str_query_is_refused(codex_catalog: KnowledgeCatalog) -> None:
    with pytest.raises(CatalogQueryError, match="query as str; got bytes"):
        codex_catalog.search(b"brick")  # type: ignore[arg-type]


def test_plain_bm25_ranks_like_the_text_index_or_query(codex_catalog: KnowledgeCatalog) -> None:
    terms = query_terms("persona adapter memory budget")
    ours = codex_catalog._bm25_terms(terms)
    theirs = codex_catalog.text_index.apply(" OR ".join(terms))
    assert set(ours.keys()) == set(theirs.keys())
    weight = codex_catalog.text_index.index.query_weight(terms)
    for chunk_id, score in theirs.items():
        assert ours[chunk_id] / weight == pytest.approx(score, rel=1e-5)
