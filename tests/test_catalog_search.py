"""Search over the ingested codex: modes, fusion, notes for empty queries, operators."""

from __future__ import annotations

import numpy as np
import pytest

from batos_lab.catalog import KnowledgeCatalog, rrf
from batos_lab.catalog.search import ALPHA, bucket_top, fuse, minmax, query_terms, top_indices
from batos_lab.errors import CatalogQueryError

pytestmark = pytest.mark.llm


def test_rrf_sums_reciprocal_ranks() -> None:
    fused = dict(rrf([[1, 2, 3], [3, 1]], k=60))
    assert fused[1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[3] == pytest.approx(1 / 63 + 1 / 61)
    assert fused[2] == pytest.approx(1 / 62)
    assert [i for i, _ in rrf([[1, 2, 3], [3, 1]], k=60)] == [1, 3, 2]


def test_weighted_rrf_and_mismatched_weights() -> None:
    fused = dict(rrf([[1, 2], [2, 1]], k=10, weights=[1.0, 3.0]))
    assert fused[1] == pytest.approx(1 / 11 + 3 / 12)
    assert fused[2] == pytest.approx(1 / 12 + 3 / 11)
    with pytest.raises(CatalogQueryError, match="one weight per ranking; got 1 weights for 2"):
        rrf([[1], [2]], weights=[1.0])


def test_fuse_scales_each_mode_to_unit_range_then_mixes() -> None:
    bm25 = np.array([0.0, 2.0, 4.0, 1.0])
    vector = np.array([0.9, 0.5, 0.1, 0.5])
    assert minmax(bm25).tolist() == [0.0, 0.5, 1.0, 0.25]
    assert fuse(bm25, vector, 0.0).tolist() == minmax(bm25).tolist()
    assert fuse(bm25, vector, 1.0).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.5])
    assert fuse(bm25, vector, 0.75) == pytest.approx([0.75, 0.5, 0.25, 0.4375])
    # the range comes from the kept chunks only (a where filter)
    keep = np.array([False, True, False, True])
    assert fuse(bm25, vector, 0.5, keep)[[1, 3]] == pytest.approx([0.5, 0.0])
    # a mode that cannot tell chunks apart adds nothing
    assert fuse(np.zeros(3), np.array([0.2, 0.4, 0.3]), 0.75) == pytest.approx([0, 0.75, 0.375])
    assert minmax(np.array([]), np.array([], dtype=bool)).size == 0


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


def test_hybrid_score_is_the_fusion_of_both_modes(codex_catalog: KnowledgeCatalog) -> None:
    query = "literal engine that deconstructs requests"
    n = codex_catalog.chunk_count()
    ids = np.array(sorted(codex_catalog.chunks.keys()))
    bm25 = np.zeros(n)
    for hit in codex_catalog.search(query, n, "bm25"):
        bm25[np.searchsorted(ids, hit.chunk_id)] = hit.score
    vector = np.zeros(n)
    for hit in codex_catalog.search(query, n, "vector"):
        vector[np.searchsorted(ids, hit.chunk_id)] = hit.score
    fused = fuse(bm25, vector, ALPHA)
    best = top_indices(fused, 5)
    hybrid = codex_catalog.search(query, 5, "hybrid")
    assert [h.chunk_id for h in hybrid] == ids[best].tolist()
    assert [h.score for h in hybrid] == pytest.approx(fused[best].tolist(), rel=1e-6)
    assert hybrid[0].score == pytest.approx(ALPHA * 1 + (1 - ALPHA) * minmax(bm25)[best[0]])
    assert all(h.cosine is not None for h in hybrid)
    assert all((h.bm25 is None) == (bm25[np.searchsorted(ids, h.chunk_id)] == 0) for h in hybrid)


def test_alpha_moves_hybrid_between_the_two_modes(codex_catalog: KnowledgeCatalog) -> None:
    query = "who weighs the cost of a plan and trims waste?"
    ids = lambda hits: [h.chunk_id for h in hits]  # noqa: E731
    bm25, vector = codex_catalog.search(query, 5, "bm25"), codex_catalog.search(query, 5, "vector")
    assert ids(codex_catalog.search(query, 5, alpha=0.0)) == ids(bm25)
    assert ids(codex_catalog.search(query, 5, alpha=1.0)) == ids(vector)
    assert ids(bm25) != ids(vector)  # else the two checks above prove nothing


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "0.5", True, float("nan")])
def test_bad_alpha_is_refused(codex_catalog: KnowledgeCatalog, alpha: object) -> None:
    with pytest.raises(CatalogQueryError, match="alpha, the weight of the vector score"):
        codex_catalog.search("brick", 5, alpha=alpha)  # type: ignore[arg-type]


def test_fast_bm25_equals_the_zope_index_scores(codex_catalog: KnowledgeCatalog) -> None:
    """The volatile mirror gives OkapiIndex's own scores, for every chunk, on the codex."""
    okapi = codex_catalog._okapi()
    queries = [
        "persona adapter memory budget",
        "Which persona weaves the partial answers into one response?",
        "BRICK ROBIN BABS ALFRED persona facet cycle image",  # words in many chunks
        "quality gate rejects truncated answers leaking scaffolding",
        "zzyzx unknownword brick",
    ]
    for query in queries:
        terms = query_terms(query)
        bucket = codex_catalog._bm25_terms(terms)
        ours = okapi.scores(terms)
        assert okapi.ids[np.flatnonzero(ours)].tolist() == list(bucket.keys())
        for chunk_id, score in bucket.items():
            assert float(ours[np.searchsorted(okapi.ids, chunk_id)]) == pytest.approx(
                score, rel=1e-9
            )
        hits = codex_catalog.search(query, 8, "bm25")
        assert [(h.chunk_id, h.score) for h in hits] == [
            (cid, pytest.approx(score, rel=1e-9)) for cid, score in bucket_top(bucket, 8)
        ]


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
    fused = codex_catalog.search("BRICK AND NOT ROBIN", 5, "hybrid", boolean=True)
    assert {h.chunk_id for h in fused if h.bm25 is not None} <= {h.chunk_id for h in hits}
    assert any(h.bm25 is not None for h in fused)
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
