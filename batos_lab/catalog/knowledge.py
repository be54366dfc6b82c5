"""The KnowledgeCatalog: ingest, unindex and search the image's fractal memory."""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.index.text.parsetree import ParseError
from zope.index.text.setops import mass_weightedUnion

from batos_lab.catalog import search as ranking
from batos_lab.catalog.chunking import ChunkingConfig, plan_document
from batos_lab.catalog.embedder import SentenceEncoder, get_embedder
from batos_lab.catalog.search import SearchHit, SearchResults, VectorCache
from batos_lab.catalog.store import (
    MAX_DOCUMENT_BYTES,
    Chunk,
    ChunkContext,
    Document,
    IngestReport,
    atomic,
    build_document,
    check_doc_id,
    check_metadata,
    check_text,
    content_hash,
    context_of,
    new_text_index,
    unknown_document,
)
from batos_lab.errors import CatalogQueryError, DuplicateDocument

#: Ingests with more sentences than this show a progress bar unless told otherwise.
PROGRESS_SENTENCES = 2000

# Volatile state of each catalog object (encoder, stacked vectors), kept outside the object:
# ZODB ghosts objects under cache pressure and that drops ``_v_`` attributes, which would
# throw away a matrix that takes seconds to stack. Weak keys: it goes when the object goes.
_VOLATILE: weakref.WeakKeyDictionary[KnowledgeCatalog, dict[str, Any]] = weakref.WeakKeyDictionary()


class KnowledgeCatalog(Persistent):
    """A persistent, searchable memory of documents, sections and chunks.

    Example:
        >>> catalog = KnowledgeCatalog()
        >>> catalog.index_document("note", "The image remembers.")  # doctest: +SKIP
        >>> catalog.search("what does the image remember?", top_k=3)  # doctest: +SKIP
    """

    def __init__(self, config: ChunkingConfig | None = None) -> None:
        self.config = config or ChunkingConfig()
        self.documents: OOBTree = OOBTree()
        self.chunks: IOBTree = IOBTree()
        self.text_index = new_text_index()
        self.next_chunk_id = 1
        self.generation = 0
        self.max_document_bytes = MAX_DOCUMENT_BYTES
        self.embedder_package: str | None = None

    # -- volatile helpers ---------------------------------------------------------------------

    def _volatile(self) -> dict[str, Any]:
        return _VOLATILE.setdefault(self, {})

    def embedder(self) -> SentenceEncoder:
        """The sentence encoder in use: the process-wide model unless one was set.

        Raises:
            EmbedderMissing: the model package is not installed.
        """
        volatile = self._volatile()
        if "embedder" not in volatile:
            volatile["embedder"] = get_embedder(self.embedder_package)
        return volatile["embedder"]  # type: ignore[no-any-return]

    def use_embedder(self, embedder: SentenceEncoder | None) -> None:
        """Use this encoder in this process (None: back to the shared model); never stored.

        Vectors already in the catalog were made by the shared model: an encoder with other
        weights makes vector scores meaningless.
        """
        volatile = self._volatile()
        if embedder is None:
            volatile.pop("embedder", None)
        else:
            volatile["embedder"] = embedder

    def _matrix(self) -> VectorCache:
        """Stacked vectors of every chunk, cached until the generation moves."""
        volatile = self._volatile()
        cached: VectorCache | None = volatile.get("matrix")
        if cached is not None and cached.generation == self.generation:
            return cached
        ids: list[np.ndarray] = []
        centroids: list[np.ndarray] = []
        sentences: list[np.ndarray] = []
        counts: list[int] = []
        for doc in self.documents.values():
            if doc.chunk_ids:
                ids.append(np.asarray(doc.chunk_ids, dtype=np.int64))
                centroids.append(doc.vectors())
                sentences.append(doc.sentence_vectors())
                counts.extend(doc.sentence_counts)
        cache = VectorCache.build(self.generation, ids, centroids, sentences, counts)
        volatile["matrix"] = cache
        return cache

    def _changed(self) -> None:
        self.generation += 1
        self._volatile().pop("matrix", None)

    # -- ingest -------------------------------------------------------------------------------

    def index_document(
        self,
        doc_id: str,
        text: str | bytes,
        metadata: Mapping[str, Any] | None = None,
        *,
        replace: bool = True,
        commit: bool = True,
        progress: bool | None = None,
    ) -> IngestReport:
        """Split, embed, chunk and index one document in one transaction.

        Re-ingesting a doc id replaces the old version; identical text, metadata and config
        is a no-op. On any failure the catalog is left as it was.

        Args:
            doc_id: stable id of the document.
            text: its text (markdown headings start sections), str or UTF-8 bytes.
            metadata: scalar values (or lists of them) kept in the document's BTree.
            replace: allow replacing a document with the same id.
            commit: commit the transaction at the end (False inside ``image.transaction``).
            progress: show a progress bar; None shows one for long documents.

        Returns:
            An :class:`IngestReport` (with the chunking plan when the text was processed).

        Raises:
            CatalogInputError: bad id, empty or non-UTF-8 text, bad metadata.
            DocumentTooLarge: over ``max_document_bytes``.
            DuplicateDocument: the id exists and ``replace`` is False.
            EmbedderMissing: the embedding model package is not installed.
        """
        started = time.perf_counter()
        doc_id = check_doc_id(doc_id)
        body = check_text(text, self.max_document_bytes)
        meta = check_metadata(metadata)
        old = self.documents.get(doc_id)
        if old is not None and not replace:
            raise DuplicateDocument(
                f"Expected a new doc id; {doc_id!r} is already indexed. Pass replace=True to "
                "replace it, or unindex_document() it first."
            )
        digest = content_hash(body, meta, self.config)
        if old is not None and old.content_hash == digest:
            return IngestReport(doc_id, old.n_sentences, len(old.sections), len(old.chunk_ids),
                                unchanged=True, seconds=time.perf_counter() - started)  # fmt: skip
        if progress is None:
            progress = body.count(". ") > PROGRESS_SENTENCES
        plan = plan_document(body, self.embedder(), self.config, meta.get("title", ""), progress)
        with atomic(self, f"catalog: index {doc_id}", commit):
            try:
                if old is not None:
                    self._remove(old)
                doc, chunks = build_document(doc_id, plan, meta, digest, self.next_chunk_id)
                self.next_chunk_id += len(chunks)
                for chunk in chunks:
                    self.chunks[chunk.chunk_id] = chunk
                    self.text_index.index_doc(chunk.chunk_id, chunk.search_text)
                self.documents[doc_id] = doc
                self._changed()
            except BaseException:
                self._volatile().pop("matrix", None)
                raise
        return IngestReport(doc_id, len(plan.sentences), len(plan.sections), len(plan.chunks),
                            replaced=old is not None, seconds=time.perf_counter() - started,
                            plan=plan)  # fmt: skip

    def index_experience(
        self,
        cycle_id: str,
        question: str,
        answer: str,
        personas: tuple[str, ...] | list[str] = (),
        metadata: Mapping[str, Any] | None = None,
        *,
        commit: bool = True,
    ) -> IngestReport:
        """Remember a finished cognitive cycle (question, answer, personas) as a document.

        Args:
            cycle_id: the cycle's id; the document is ``experience/<cycle_id>``.
            question: what was asked.
            answer: the synthesised answer.
            personas: the personas that took part.
            metadata: extra scalar metadata.
            commit: commit at the end.

        Returns:
            The ingest report.
        """
        meta = {"kind": "experience", "cycle_id": str(cycle_id), "personas": tuple(personas)}
        meta.update(check_metadata(metadata))
        text = f"# Cycle {cycle_id}\n\n## Question\n\n{question}\n\n## Answer\n\n{answer}\n"
        return self.index_document(f"experience/{cycle_id}", text, meta, commit=commit)

    def _remove(self, doc: Document) -> None:
        for chunk_id in doc.chunk_ids:
            self.text_index.unindex_doc(chunk_id)
            del self.chunks[chunk_id]
        del self.documents[doc.doc_id]
        self._changed()

    def unindex_document(self, doc_id: str, *, commit: bool = True) -> int:
        """Remove a document with its sections, chunks, vectors and index entries.

        Args:
            doc_id: the document to remove.
            commit: commit at the end.

        Returns:
            How many chunks were removed.

        Raises:
            UnknownDocument: the catalog holds no such document.
        """
        doc = self.documents.get(doc_id) if isinstance(doc_id, str) else None
        if doc is None:
            raise unknown_document(str(doc_id), self.documents)
        with atomic(self, f"catalog: unindex {doc_id}", commit):
            self._remove(doc)
        return len(doc.chunk_ids)

    # -- reading ------------------------------------------------------------------------------

    def doc_ids(self) -> list[str]:
        """Every document id, sorted."""
        return list(self.documents.keys())

    def document(self, doc_id: str) -> Document:
        """The document with this id (raises UnknownDocument when absent)."""
        doc = self.documents.get(doc_id)
        if doc is None:
            raise unknown_document(doc_id, self.documents)
        return doc

    def chunk(self, chunk_id: int) -> Chunk:
        """The chunk with this id (KeyError when absent)."""
        return self.chunks[int(chunk_id)]

    def chunk_count(self) -> int:
        """How many chunks the catalog holds."""
        return len(self.chunks)

    def __len__(self) -> int:
        return len(self.documents)

    def context(self, chunk_id: int, window: int = 1) -> ChunkContext:
        """A chunk inside its document: titles, summaries and window chunks either side.

        Args:
            chunk_id: the chunk (a ``SearchHit.chunk_id``).
            window: how many neighbouring chunks to include on each side.

        Returns:
            The :class:`ChunkContext`.
        """
        chunk = self.chunks[chunk_id]
        return context_of(chunk, self.documents[chunk.doc_id], self.chunks, window)

    # -- search -------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int = 5,
        mode: str = "hybrid",
        *,
        where: Mapping[str, Any] | None = None,
        boolean: bool = False,
        rrf_k: int = ranking.RRF_K,
    ) -> SearchResults:
        """Rank chunks for a query by BM25, cosine or their reciprocal rank fusion.

        Args:
            query: free text (or a zope.index boolean query when ``boolean`` is True).
            top_k: how many hits to return.
            mode: "hybrid", "bm25" or "vector" (see :mod:`batos_lab.catalog.search`).
            where: keep only documents whose metadata has these exact values.
            boolean: parse AND/OR/NOT, "phrases" and globs in BM25 ranking.
            rrf_k: the reciprocal-rank-fusion constant.

        Returns:
            Hits sorted by score, best first; empty with a ``note`` for empty or
            stop-word-only queries.

        Raises:
            CatalogQueryError: unknown mode, bad top_k, malformed boolean query.
            EmbedderMissing: vector or hybrid mode without the embedding model.
        """
        if mode not in ranking.MODES:
            raise CatalogQueryError(f"Expected mode to be one of {ranking.MODES}; got {mode!r}.")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise CatalogQueryError(f"Expected top_k to be a positive int; got {top_k!r}.")
        if not isinstance(query, str):
            raise CatalogQueryError(f"Expected the query as str; got {type(query).__name__}.")
        out = SearchResults(query=query, mode=mode)
        terms = ranking.query_terms(query)
        if not query.strip():
            out.note = "The query is empty: type a few words to search for."
            return out
        if not terms:
            out.note = (
                f"The query {query!r} has only stop words, which are not indexed; "
                "add a content word."
            )
            return out
        if not len(self.chunks):
            out.note = "The catalog is empty: ingest some documents first."
            return out
        allowed = self._allowed(where)
        depth = top_k if mode != "hybrid" else max(50, 4 * top_k)
        bm25_all: dict[int, float] = {}
        bm25_rank: list[int] = []
        cos_rank: list[int] = []
        cos_by_id: dict[int, float] = {}
        if mode in ("bm25", "hybrid"):
            bucket = self._bm25_boolean(query) if boolean else self._bm25_terms(terms)
            best = ranking.bucket_top(bucket, depth, allowed)
            bm25_rank = [cid for cid, _ in best]
            bm25_all = dict(best)
        if mode in ("vector", "hybrid"):
            cache = self._matrix()
            ids = cache.ids
            scores = cache.scores(self.embedder().encode([query])[0])
            if allowed is not None:
                scores = np.where(np.isin(ids, list(allowed)), scores, -np.inf)
            best_idx = ranking.top_indices(scores, depth)
            best_idx = best_idx[np.isfinite(scores[best_idx])]
            cos_rank = ids[best_idx].tolist()
            cos_by_id = dict(zip(cos_rank, scores[best_idx].tolist(), strict=True))
        if mode == "bm25":
            fused = [(cid, bm25_all[cid]) for cid in bm25_rank]
        elif mode == "vector":
            fused = [(cid, cos_by_id[cid]) for cid in cos_rank]
        else:
            fused = ranking.rrf([bm25_rank, cos_rank], k=rrf_k)[:top_k]
        for cid, score in fused[:top_k]:
            chunk = self.chunks[cid]
            doc = self.documents[chunk.doc_id]
            out.append(SearchHit(
                chunk_id=cid, doc_id=chunk.doc_id, position=chunk.position,
                section=doc.sections[chunk.section].title, text=chunk.text, score=float(score),
                bm25=bm25_all.get(cid), cosine=cos_by_id.get(cid),
            ))  # fmt: skip
        if not out:
            out.note = "No chunk matched the query."
        return out

    def _bm25_terms(self, terms: list[str]) -> Any:
        """Okapi BM25 scores of an OR of normalised terms, as a {chunk_id: score} bucket.

        The same sum TextIndex.apply computes for ``t1 OR t2 ...``, without the query parser
        and without apply's per-hit division by the query weight (a constant, so the ranking
        is unchanged).
        """
        okapi = self.text_index.index
        lexicon = self.text_index.lexicon
        wids = okapi._remove_oov_wids([lexicon.get_wid(t) for t in terms])
        return mass_weightedUnion(okapi._search_wids(wids), okapi.family) if wids else None

    def _bm25_boolean(self, querytext: str) -> Any:
        try:
            return self.text_index.apply(querytext)
        except ParseError as exc:
            raise CatalogQueryError(
                f'Expected a boolean query zope.index can parse (AND, OR, NOT, "phrase", glob*); '
                f"{querytext!r} is not one ({exc}). Fix it, or search with boolean=False."
            ) from None

    def _allowed(self, where: Mapping[str, Any] | None) -> set[int] | None:
        if not where:
            return None
        allowed: set[int] = set()
        for doc in self.documents.values():
            if all(doc.metadata.get(k, _MISSING) == v for k, v in where.items()):
                allowed.update(doc.chunk_ids)
        return allowed


_MISSING = object()
