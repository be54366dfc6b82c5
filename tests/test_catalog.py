"""KnowledgeCatalog ingest, fractal structure, re-ingest, unindex, atomicity and persistence."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import transaction

from batos_lab.catalog import KnowledgeCatalog, catalog_for, embedder
from batos_lab.catalog.knowledge import QUERY_MEMO
from batos_lab.catalog.okapi import OkapiArrays
from batos_lab.catalog.store import Document
from batos_lab.errors import (
    CatalogInputError,
    DocumentTooLarge,
    DuplicateDocument,
    EmbedderMissing,
    UnknownDocument,
)
from batos_lab.image import Image, open_image

pytestmark = pytest.mark.llm

GARDEN = """# Garden notes

## Soil
Compost feeds the soil slowly over a whole season. Worms pull the leaves down and leave
rich castings behind. A mulch of straw keeps the moisture in during dry weeks.

## Tools
A sharp spade cuts clean edges along the lawn. Oil the hinges of the shears before winter.
The wheelbarrow tyre needs air every spring.
"""

KETTLE = "The copper kettle whistles on the stove. Tea leaves steep for four minutes."
SAMOVAR = "The brass samovar hums in the corner of the room."


def state(catalog: KnowledgeCatalog) -> tuple[Any, ...]:
    """Everything that must survive a refused input unchanged."""
    return (
        catalog.doc_ids(),
        sorted(catalog.chunks.keys()),
        catalog.text_index.documentCount(),
        catalog.generation,
        [(h.chunk_id, round(h.score, 6)) for h in catalog.search("compost worms", 3, "bm25")],
    )


@pytest.fixture
def catalog(image: Image, catalog_embedder: object) -> KnowledgeCatalog:
    """A fresh image catalog holding the garden notes."""
    cat = catalog_for(image)
    cat.index_document("garden", GARDEN, {"kind": "notes", "tags": ["soil", "tools"]})
    return cat


def test_catalog_for_creates_once_and_commits(image: Image) -> None:
    first = catalog_for(image)
    assert image.root["knowledge_catalog"] is first
    assert catalog_for(image) is first
    assert first._p_oid is not None and not first._p_changed


def test_document_holds_sections_holding_chunks(catalog: KnowledgeCatalog) -> None:
    doc = catalog.document("garden")
    assert isinstance(doc, Document)
    assert doc.title == "Garden notes"
    assert [s.title for s in doc.sections] == ["Soil", "Tools"]
    assert dict(doc.metadata) == {"kind": "notes", "tags": ("soil", "tools")}
    assert sum(len(s.chunk_ids) for s in doc.sections) == len(doc.chunk_ids)
    assert doc.n_sentences == 6 and doc.summary
    for position, chunk_id in enumerate(doc.chunk_ids):
        chunk = catalog.chunk(chunk_id)
        assert (chunk.doc_id, chunk.position) == ("garden", position)
        assert chunk_id in doc.sections[chunk.section].chunk_ids
    vectors = doc.vectors()
    assert vectors.dtype == np.float32 and vectors.shape == (len(doc.chunk_ids), 384)
    assert catalog.text_index.documentCount() == catalog.chunk_count()


def test_context_shows_the_chunk_with_its_neighbours(catalog: KnowledgeCatalog) -> None:
    doc = catalog.document("garden")
    last = doc.chunk_ids[-1]
    ctx = catalog.context(last, window=1)
    assert ctx.doc_title == "Garden notes" and ctx.section_title == "Tools"
    assert ctx.after == () and ctx.before == (catalog.chunk(doc.chunk_ids[-2]).text,)
    assert ctx.metadata["kind"] == "notes"


def test_reingest_same_text_is_a_no_op(catalog: KnowledgeCatalog) -> None:
    before = state(catalog)
    report = catalog.index_document("garden", GARDEN, {"kind": "notes", "tags": ["soil", "tools"]})
    assert report.unchanged and report.plan is None
    assert state(catalog) == before


def test_reingest_changed_text_replaces_everything(catalog: KnowledgeCatalog) -> None:
    old_ids = set(catalog.document("garden").chunk_ids)
    report = catalog.index_document("garden", KETTLE)
    assert report.replaced and not report.unchanged
    assert catalog.doc_ids() == ["garden"]
    assert not old_ids & set(catalog.chunks.keys())
    assert catalog.search("compost worms", 3, "bm25") == []
    assert catalog.search("copper kettle", 3, "bm25")[0].doc_id == "garden"
    assert catalog.text_index.documentCount() == catalog.chunk_count()


def test_unindex_removes_every_trace(catalog: KnowledgeCatalog) -> None:
    catalog.index_document("kettle", KETTLE)
    removed = catalog.unindex_document("garden")
    assert removed > 0
    assert catalog.doc_ids() == ["kettle"]
    assert all(c.doc_id == "kettle" for c in catalog.chunks.values())
    assert catalog.text_index.documentCount() == catalog.chunk_count()
    assert catalog.search("compost worms", 5, "bm25") == []
    assert {h.doc_id for h in catalog.search("soil and worms", 5, "vector")} == {"kettle"}


def test_unknown_doc_id_in_unindex(catalog: KnowledgeCatalog) -> None:
    before = state(catalog)
    with pytest.raises(UnknownDocument, match="'nope' is not one .*'garden'"):
        catalog.unindex_document("nope")
    with pytest.raises(UnknownDocument, match="not one"):
        catalog.document("nope")
    assert state(catalog) == before


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("", CatalogInputError, "empty or whitespace-only"),
        ("   \n\t ", CatalogInputError, "empty or whitespace-only"),
        (b"caf\xe9 au lait", CatalogInputError, r"byte 3 \(b'\\xe9'\) is not valid UTF-8"),
        ("bad \udce9 surrogate", CatalogInputError, "lone surrogates"),
        ("# Only\n## Headings\n", CatalogInputError, "at least one sentence"),
        (12, CatalogInputError, "as str or UTF-8 bytes; got int"),
    ],
)
def test_bad_text_is_refused_and_catalog_intact(
    catalog: KnowledgeCatalog, text: Any, error: type[Exception], match: str
) -> None:
    before = state(catalog)
    with pytest.raises(error, match=match):
        catalog.index_document("bad", text)
    assert state(catalog) == before


def test_ten_megabyte_document_is_refused_quickly(catalog: KnowledgeCatalog) -> None:
    before = state(catalog)
    huge = ("The image remembers every slot it was given. " * 240_000)[: 10 * 1024 * 1024]
    with pytest.raises(DocumentTooLarge, match="at most 2,000,000 bytes; this one has 10,485,760"):
        catalog.index_document("huge", huge)
    with pytest.raises(DocumentTooLarge, match="Split it into several documents"):
        catalog.index_document("huge", huge.encode("utf-8"))
    assert state(catalog) == before


@pytest.mark.parametrize(
    ("doc_id", "metadata", "match"),
    [
        ("", None, "non-empty string"),
        (7, None, "non-empty string"),
        ("a\x00b", None, "printable doc id"),
        ("ok", {"when": object()}, "metadata value 'when'"),
        ("ok", {1: "x"}, "metadata keys to be str"),
        ("ok", ["x"], "metadata as a mapping"),
    ],
)
def test_bad_ids_and_metadata(
    catalog: KnowledgeCatalog, doc_id: Any, metadata: Any, match: str
) -> None:
    before = state(catalog)
    with pytest.raises(CatalogInputError, match=match):
        catalog.index_document(doc_id, KETTLE, metadata)
    assert state(catalog) == before


def test_duplicate_doc_id_without_replace(catalog: KnowledgeCatalog) -> None:
    before = state(catalog)
    with pytest.raises(DuplicateDocument, match="'garden' is already indexed. Pass replace=True"):
        catalog.index_document("garden", KETTLE, replace=False)
    assert state(catalog) == before


def test_missing_embedder_package_says_what_to_install(
    image: Image, catalog: KnowledgeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedder, "DEFAULT_PACKAGE", "batos_absent_minilm")
    fresh = KnowledgeCatalog()  # no volatile embedder yet
    with pytest.raises(EmbedderMissing, match="pip install batos-absent-minilm"):
        fresh.index_document("kettle", KETTLE)
    assert len(fresh) == 0 and fresh.chunk_count() == 0
    catalog.use_embedder(None)
    before = state(catalog)
    with pytest.raises(EmbedderMissing, match="not installed"):
        catalog.search("compost", 3, "hybrid")
    assert state(catalog) == before  # bm25 still works without the model


def test_failure_mid_ingest_leaves_previous_state(
    catalog: KnowledgeCatalog, image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = state(catalog)
    old_doc = catalog.document("garden")
    calls = {"n": 0}
    index_class = type(catalog.text_index)
    real = index_class.index_doc

    def flaky(self: Any, docid: int, text: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        real(self, docid, text)

    # patched on the class: an attribute set on the persistent index would be pickled
    monkeypatch.setattr(index_class, "index_doc", flaky)
    with pytest.raises(RuntimeError, match="disk full"):
        catalog.index_document("garden", GARDEN.replace("Compost", "Leaf mould"))
    monkeypatch.undo()
    assert calls["n"] == 2
    assert state(catalog) == before
    assert catalog.document("garden").content_hash == old_doc.content_hash
    image.abort()
    assert state(catalog) == before  # nothing of the failed ingest was left to commit


def test_commit_false_joins_an_open_transaction(image: Image, catalog: KnowledgeCatalog) -> None:
    with image.transaction("two documents at once"):
        catalog.index_document("kettle", KETTLE, commit=False)
        catalog.index_experience("c1", "Why boil water?", "To steep tea.", ["ROBIN"], commit=False)
    image.abort()
    assert catalog.doc_ids() == ["experience/c1", "garden", "kettle"]


def test_experience_is_searchable_by_metadata(catalog: KnowledgeCatalog) -> None:
    catalog.index_experience("c7", "How should I prune roses?", "Cut above an outward bud.",
                             ["BRICK", "ROBIN"])  # fmt: skip
    doc = catalog.document("experience/c7")
    assert doc.metadata["personas"] == ("BRICK", "ROBIN")
    hits = catalog.search("pruning roses", 5, "hybrid", where={"kind": "experience"})
    assert hits and {h.doc_id for h in hits} == {"experience/c7"}


def test_file_image_reopens_and_searches_again(image_path: Path, catalog_embedder: object) -> None:
    with open_image(image_path) as img:
        cat = catalog_for(img)
        cat.index_document("garden", GARDEN)
        expected = {m: [(h.chunk_id, round(h.score, 5)) for h in cat.search("spade edges", 3, m)]
                    for m in ("bm25", "vector", "hybrid")}  # fmt: skip
    with open_image(image_path) as img:
        cat = catalog_for(img)
        assert cat.doc_ids() == ["garden"]
        for mode, hits in expected.items():
            assert [
                (h.chunk_id, round(h.score, 5)) for h in cat.search("spade edges", 3, mode)
            ] == hits
        assert hits and cat.chunk(hits[0][0]).doc_id == "garden"


def test_volatile_caches_survive_ghosting_and_follow_changes(catalog: KnowledgeCatalog) -> None:
    stacked = catalog._matrix()
    assert stacked.ids.size == catalog.chunk_count()
    catalog._p_deactivate()  # ZODB ghosts objects under cache pressure; _v_ attributes would go
    assert catalog._p_changed is None
    assert catalog._matrix() is stacked
    catalog.index_document("kettle", KETTLE)
    assert catalog._matrix() is not stacked
    assert catalog._matrix().ids.size == catalog.chunk_count()
    assert "_VOLATILE" not in str(catalog.__getstate__())


def bm25_ids(catalog: KnowledgeCatalog, query: str) -> list[str]:
    return [h.doc_id for h in catalog.search(query, 10, "bm25")]


def vector_top(catalog: KnowledgeCatalog, query: str) -> str:
    return catalog.search(query, 1, "vector")[0].doc_id


def test_search_caches_follow_ingest_reingest_and_unindex(catalog: KnowledgeCatalog) -> None:
    assert bm25_ids(catalog, "copper kettle") == []
    okapi, matrix = catalog._okapi(), catalog._matrix()
    catalog.index_document("kitchen", KETTLE)
    assert catalog._okapi() is not okapi and catalog._matrix() is not matrix
    assert bm25_ids(catalog, "copper kettle") == ["kitchen"]
    assert vector_top(catalog, "a whistling kettle for tea") == "kitchen"
    catalog.index_document("kitchen", SAMOVAR)
    assert bm25_ids(catalog, "copper kettle") == []
    assert bm25_ids(catalog, "brass samovar") == ["kitchen"]
    catalog.unindex_document("kitchen")
    assert bm25_ids(catalog, "brass samovar") == []
    assert vector_top(catalog, "a whistling kettle for tea") == "garden"
    okapi = catalog._okapi()
    assert catalog._okapi() is okapi  # no change, no rebuild
    fresh = OkapiArrays.build(catalog.text_index, "fresh")
    assert okapi.ids.tolist() == fresh.ids.tolist() == sorted(catalog.chunks.keys())
    assert okapi.rows == fresh.rows and (okapi.weights == fresh.weights).all()
    sizes = catalog.cache_bytes()
    assert sizes["okapi"] == okapi.nbytes > 0 and sizes["matrix"] == catalog._matrix().nbytes


def test_aborted_transaction_leaves_no_stale_cache(image: Image, catalog: KnowledgeCatalog) -> None:
    generation = catalog.generation
    catalog.index_document("kitchen", KETTLE, commit=False)
    assert bm25_ids(catalog, "copper kettle") == ["kitchen"]  # caches built with the kettle
    image.abort()
    # Another connection commits a different change: the catalog's counter is back where the
    # caches built inside the aborted transaction left it, but its content is not theirs.
    manager = transaction.TransactionManager()
    other = image.db.open(transaction_manager=manager)
    try:
        other.root()["knowledge_catalog"].index_document("samovar", SAMOVAR)
    finally:
        other.close()
    image.abort()  # start a new transaction: see the other connection's commit
    assert catalog.generation == generation + 1
    assert bm25_ids(catalog, "copper kettle") == []
    assert bm25_ids(catalog, "brass samovar") == ["samovar"]
    assert vector_top(catalog, "a whistling kettle for tea") != "kitchen"
    assert catalog._matrix().ids.size == catalog.chunk_count()
    catalog.index_document("kitchen", KETTLE, commit=False)
    assert bm25_ids(catalog, "copper kettle") == ["kitchen"]
    image.abort()
    assert bm25_ids(catalog, "copper kettle") == []


def test_query_embeddings_are_remembered(catalog: KnowledgeCatalog) -> None:
    calls: list[list[str]] = []
    shared = catalog.embedder()

    class Counting:
        dim = shared.dim

        def encode(self, sentences: list[str], progress: bool = False) -> np.ndarray:
            calls.append(list(sentences))
            return shared.encode(sentences, progress)

    catalog.use_embedder(Counting())  # type: ignore[arg-type]
    try:
        first = catalog.search("compost and worms", 3, "hybrid")
        again = catalog.search("compost and worms", 3, "vector")
        assert calls == [["compost and worms"]]
        assert again[0].cosine == first[0].cosine or again[0].chunk_id != first[0].chunk_id
        for n in range(QUERY_MEMO + 1):
            catalog.search(f"spade {n}", 1, "vector")
        catalog.search("compost and worms", 3, "vector")
        assert calls[-1] == ["compost and worms"]  # pushed out of the memo, encoded again
    finally:
        catalog.use_embedder(None)
