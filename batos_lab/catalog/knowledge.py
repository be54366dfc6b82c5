"""The KnowledgeCatalog: ingest, unindex and search the image's fractal memory."""

from __future__ import annotations

import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from zope.index.text.parsetree import ParseError
from zope.index.text.setops import mass_weightedUnion

from batos_lab.catalog import search as ranking
from batos_lab.catalog.chunking import ChunkingConfig, plan_document
from batos_lab.catalog.embedder import SentenceEncoder, get_embedder
from batos_lab.catalog.okapi import OkapiArrays
from batos_lab.catalog.search import (
    SearchHit,
    SearchResults,
    VectorCache,
    check_search_arguments,
)
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
#: How many recent query embeddings each catalog remembers (a widget re-runs one query often).
QUERY_MEMO = 64
_T = TypeVar("_T")

# Volatile state of each catalog object (encoder, stacked vectors), kept outside the object:
# ZODB ghosts objects under cache pressure and that drops ``_v_`` attributes, which would
# throw away a matrix that takes seconds to stack. Weak keys: it goes when the object goes.
_VOLATILE: weakref.WeakKeyDictionary[KnowledgeCatalog, dict[str, Any]] = weakref.WeakKeyDictionary()


class KnowledgeCatalog(Persistent):
    """A persistent, searchable memory of documents, sections and chunks.

    ``generation`` counts changes; ``change_stamp`` is a random token renewed with every
    change. Volatile search structures are keyed on the stamp, not the counter: an aborted
    transaction takes the counter back, and the next change would bring it to a value that a
    structure built inside the aborted transaction still carries.

    Example:
        >>> catalog = KnowledgeCatalog()
        >>> catalog.index_document("note", "The image remembers.")  # doctest: +SKIP
        >>> catalog.search("what does the image remember?", top_k=3)  # doctest: +SKIP
    """

    #: What catalogs stored before stamps existed read until their first change.
    change_stamp = ""

    def __init__(self, config: ChunkingConfig | None = None) -> None:
        self.config = config or ChunkingConfig()
        self.documents: OOBTree = OOBTree()
        self.chunks: IOBTree = IOBTree()
        self.text_index = new_text_index()
        self.next_chunk_id = 1
        self.generation = 0
        self.change_stamp = ""
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
        volatile.pop("queries", None)  # embeddings of another encoder
        if embedder is None:
            volatile.pop("embedder", None)
        else:
            volatile["embedder"] = embedder

    def _cached(self, name: str, build: Callable[[str], _T]) -> _T:
        """The volatile structure ``name`` for the current stamp, built when missing or stale."""
        volatile = self._volatile()
        cached = volatile.get(name)
        if cached is not None and cached.stamp == self.change_stamp:
            return cached  # type: ignore[no-any-return]
        volatile.pop(name, None)  # free the stale one before building its successor
        fresh = build(self.change_stamp)
        volatile[name] = fresh
        return fresh

    def _matrix(self) -> VectorCache:
        """Stacked vectors of every chunk, cached until the catalog changes."""
        return self._cached("matrix", self._stack_vectors)

    def _okapi(self) -> OkapiArrays:
        """The numpy mirror of the TextIndex's BM25 postings, cached until the catalog changes."""
        return self._cached("okapi", lambda stamp: OkapiArrays.build(self.text_index, stamp))

    def _stack_vectors(self, stamp: str) -> VectorCache:
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
        return VectorCache.build(stamp, ids, centroids, sentences, counts)

    def cache_bytes(self) -> dict[str, int]:
        """Bytes held by this process's search caches of the catalog (0 when not built)."""
        volatile = self._volatile()
        return {name: int(volatile[name].nbytes) if name in volatile else 0
                for name in ("okapi", "matrix")}  # fmt: skip

    def _changed(self) -> None:
        self.generation += 1
        self.change_stamp = uuid.uuid4().hex
        self._drop_caches()

    def _drop_caches(self) -> None:
        volatile = self._volatile()
        volatile.pop("matrix", None)
        volatile.pop("okapi", None)

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
                # An attached catalog rolls back to a state its stamp still names; a detached
                # one keeps what was half done, which no cache may claim to mirror.
                self._drop_caches()
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
        alpha: float = ranking.ALPHA,
    ) -> SearchResults:
        """Rank chunks for a query by BM25, by vector score or by a fusion of both.

        Args:
            query: free text (or a zope.index boolean query when ``boolean`` is True).
            top_k: how many hits to return.
            mode: "hybrid", "bm25" or "vector" (see :mod:`batos_lab.catalog.search`).
            where: keep only documents whose metadata has these exact values.
            boolean: parse AND/OR/NOT, "phrases" and globs in BM25 ranking.
            alpha: weight of the vector score in hybrid fusion, from 0 (BM25 only) to 1.

        Returns:
            Hits sorted by score, best first; empty with a ``note`` for empty or
            stop-word-only queries.

        Raises:
            CatalogQueryError: unknown mode, bad top_k or alpha, malformed boolean query.
            EmbedderMissing: vector or hybrid mode without the embedding model.
        """
        check_search_arguments(query, top_k, mode, alpha)
        out = SearchResults(query=query, mode=mode)
        terms = ranking.query_terms(query)
        out.note = self._nothing_to_search(query, terms)
        if out.note:
            return out
        okapi = self._okapi()
        n = okapi.ids.size
        allowed = self._allowed(okapi.ids, where)
        keep = np.ones(n, dtype=bool) if allowed is None else allowed
        bm25, matched = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=bool)
        cosine = np.zeros(n, dtype=np.float32)
        if mode != "vector":
            bm25, matched = self._bm25(okapi, query, terms, boolean)
        if mode != "bm25":
            cosine = self._matrix().aligned_scores(self._encode_query(query))
        if mode == "bm25":
            keep, score = keep & matched, bm25
        elif mode == "vector":
            score = cosine
        else:
            score = ranking.fuse(bm25, cosine, alpha, keep)
        candidates = np.flatnonzero(keep)
        best = candidates[ranking.top_indices(score[candidates], top_k)]
        for pos in best.tolist():
            chunk = self.chunks[int(okapi.ids[pos])]
            doc = self.documents[chunk.doc_id]
            out.append(SearchHit(
                chunk_id=chunk.chunk_id, doc_id=chunk.doc_id, position=chunk.position,
                section=doc.sections[chunk.section].title, text=chunk.text,
                score=float(score[pos]),
                bm25=float(bm25[pos]) if matched[pos] else None,
                cosine=float(cosine[pos]) if mode != "bm25" else None,
            ))  # fmt: skip
        if not out:
            out.note = "No chunk matched the query."
        return out

    def _nothing_to_search(self, query: str, terms: list[str]) -> str:
        """Why a search has nothing to rank (empty query, stop words, empty catalog), or ""."""
        if not query.strip():
            return "The query is empty: type a few words to search for."
        if not terms:
            return (
                f"The query {query!r} has only stop words, which are not indexed; "
                "add a content word."
            )
        if not len(self.chunks):
            return "The catalog is empty: ingest some documents first."
        return ""

    def _bm25(
        self, okapi: OkapiArrays, query: str, terms: list[str], boolean: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """BM25 score of every chunk (in ``okapi.ids`` order) and which chunks the query matched.

        Plain queries are scored from the volatile mirror (the same scores as ``_bm25_terms``);
        boolean ones by the TextIndex itself.
        """
        if not boolean:
            scores = okapi.scores(terms)
            return scores, scores > 0
        bucket = self._bm25_boolean(query)
        scores = np.zeros(okapi.ids.size, dtype=np.float32)
        matched = np.zeros(okapi.ids.size, dtype=bool)
        if bucket:
            size = len(bucket)
            keys = np.fromiter(bucket.keys(), dtype=np.int64, count=size)
            positions = np.searchsorted(okapi.ids, keys)
            scores[positions] = np.fromiter(bucket.values(), dtype=np.float32, count=size)
            matched[positions] = True
        return scores, matched

    def _encode_query(self, query: str) -> np.ndarray:
        """The query's embedding; the last QUERY_MEMO queries are remembered (per encoder)."""
        encoder = self.embedder()
        memo: OrderedDict[str, np.ndarray] = self._volatile().setdefault("queries", OrderedDict())
        key = f"{id(encoder)}:{query}"
        vector = memo.pop(key, None)
        if vector is None:
            vector = encoder.encode([query])[0]
            while len(memo) >= QUERY_MEMO:
                memo.popitem(last=False)
        memo[key] = vector
        return vector

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

    def _allowed(self, ids: np.ndarray, where: Mapping[str, Any] | None) -> np.ndarray | None:
        """(n_chunks,) mask over ``ids`` of chunks whose document metadata matches where."""
        if not where:
            return None
        allowed: list[int] = []
        for doc in self.documents.values():
            if all(doc.metadata.get(k, _MISSING) == v for k, v in where.items()):
                allowed.extend(doc.chunk_ids)
        return np.isin(ids, np.asarray(allowed, dtype=np.int64))


_MISSING = object()
