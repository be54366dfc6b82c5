"""Persistent objects of the knowledge catalog: documents hold sections hold chunks.

Layout inside one :class:`KnowledgeCatalog` (all of it in the image)::

    documents   OOBTree  doc_id -> Document (title, summary, metadata OOBTree, sections, blob)
    chunks      IOBTree  chunk_id -> Chunk (text, position, sentence span, summary)
    text_index  zope.index TextIndex (Okapi BM25) keyed by chunk_id

Each document keeps its vectors in two ZODB blobs of ``numpy.save`` bytes (float32, no
pickle): ``embeddings``, the (n_chunks, 384) chunk vectors (sentence centroids with their
heading as context, :func:`batos_lab.catalog.chunking.chunk_vector`) in the order of
``Document.chunk_ids``, and ``sentence_embeddings``, the (n_sentences, 384) sentence vectors
in document order (chunk i owns ``sentence_counts[i]`` consecutive rows). Search stacks them
into volatile matrices (outside the object), rebuilt lazily when ``change_stamp`` moves.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.blob import Blob
from zope.index.text.lexicon import CaseNormalizer, Lexicon, Splitter, StopWordRemover
from zope.index.text.okapiindex import OkapiIndex
from zope.index.text.textindex import TextIndex

from batos_lab.catalog.chunking import ChunkingConfig, DocumentPlan, heading_text
from batos_lab.errors import CatalogInputError, DocumentTooLarge, UnknownDocument

#: Default per-document size limit in UTF-8 bytes (about 30,000 sentences of prose).
MAX_DOCUMENT_BYTES = 2_000_000
_SCALARS = (str, int, float, bool, type(None))


def vectors_to_blob(matrix: np.ndarray) -> Blob:
    """Store a float32 matrix in a new blob as ``numpy.save`` bytes (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    return Blob(buf.getvalue())


def blob_to_vectors(blob: Blob) -> np.ndarray:
    """Read back the matrix written by :func:`vectors_to_blob`."""
    with blob.open("r") as handle:
        return np.load(handle, allow_pickle=False)


class Chunk(Persistent):
    """A passage of consecutive sentences: the unit that search returns."""

    def __init__(
        self, chunk_id: int, doc_id: str, section: int, position: int, text: str,
        start: int, end: int, n_words: int, summary: str = "", search_text: str = "",
    ) -> None:  # fmt: skip
        self.chunk_id = chunk_id
        self.doc_id = doc_id
        self.section = section
        self.position = position
        self.text = text
        self.start = start
        self.end = end
        self.n_words = n_words
        self.summary = summary
        self.search_text = search_text or text

    def __repr__(self) -> str:
        return f"<Chunk {self.chunk_id} {self.doc_id}#{self.position} {self.n_words} words>"


class Section(Persistent):
    """A headed part of a document: its chunks in order and a one-sentence summary."""

    def __init__(
        self, index: int, title: str, chunk_ids: tuple[int, ...], summary: str, n_sentences: int
    ) -> None:
        self.index = index
        self.title = title
        self.chunk_ids = chunk_ids
        self.summary = summary
        self.n_sentences = n_sentences


class Document(Persistent):
    """An ingested document: metadata BTree, sections, chunk ids and the vector blob."""

    def __init__(self, doc_id: str, title: str, metadata: Mapping[str, Any], content_hash: str):
        self.doc_id = doc_id
        self.title = title
        self.metadata = OOBTree(dict(metadata))
        self.content_hash = content_hash
        self.sections: tuple[Section, ...] = ()
        self.chunk_ids: tuple[int, ...] = ()
        self.summary = ""
        self.n_sentences = 0
        self.ingested_at = time.time()
        self.embeddings: Blob | None = None
        self.sentence_embeddings: Blob | None = None
        self.sentence_counts: tuple[int, ...] = ()

    def vectors(self) -> np.ndarray:
        """The (n_chunks, dim) float32 chunk vectors of this document (centroid and heading)."""
        if self.embeddings is None:
            return np.zeros((0, 0), dtype=np.float32)
        return blob_to_vectors(self.embeddings)

    def sentence_vectors(self) -> np.ndarray:
        """The (n_sentences, dim) float32 sentence vectors of this document, in order."""
        if self.sentence_embeddings is None:
            return np.zeros((0, 0), dtype=np.float32)
        return blob_to_vectors(self.sentence_embeddings)

    def __repr__(self) -> str:
        return f"<Document {self.doc_id!r} {len(self.chunk_ids)} chunks>"


@dataclass(frozen=True)
class IngestReport:
    """What one ``index_document`` call did."""

    doc_id: str
    n_sentences: int
    n_sections: int
    n_chunks: int
    replaced: bool = False
    unchanged: bool = False
    seconds: float = 0.0
    plan: DocumentPlan | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ChunkContext:
    """A chunk shown inside its document: titles, summaries and neighbouring chunks."""

    chunk_id: int
    doc_id: str
    doc_title: str
    doc_summary: str
    section_title: str
    section_summary: str
    position: int
    text: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    metadata: dict[str, Any]


def new_text_index() -> TextIndex:
    """A TextIndex with an Okapi BM25 index and the standard lexicon pipeline."""
    lexicon = Lexicon(Splitter(), CaseNormalizer(), StopWordRemover())
    return TextIndex(lexicon, OkapiIndex(lexicon))


def check_doc_id(doc_id: object) -> str:
    """Validate a document id: a non-empty printable string of at most 200 characters."""
    if not isinstance(doc_id, str) or not doc_id.strip() or len(doc_id) > 200:
        raise CatalogInputError(
            f"Expected a doc id that is a non-empty string of at most 200 characters; "
            f"got {doc_id!r}. Use a stable name such as 'codex/robin'."
        )
    if not doc_id.isprintable():
        raise CatalogInputError(
            f"Expected a printable doc id; got {doc_id!r} with control characters. Remove them."
        )
    return doc_id


def check_text(text: object, limit: int) -> str:
    """Validate a document body: UTF-8 text, not empty, not over limit bytes.

    Raises:
        CatalogInputError: not a str/bytes, not valid UTF-8, or blank.
        DocumentTooLarge: over the limit.
    """
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > limit:
            raise DocumentTooLarge(_too_large(len(raw), limit))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CatalogInputError(
                f"Expected UTF-8 text; byte {exc.start} ({raw[exc.start : exc.start + 1]!r}) is "
                "not valid UTF-8. Decode the document yourself (for example with "
                "errors='replace') and pass a str."
            ) from None
    if not isinstance(text, str):
        raise CatalogInputError(
            f"Expected the document text as str or UTF-8 bytes; got {type(text).__name__}."
        )
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise CatalogInputError(
            "Expected text that encodes as UTF-8; found lone surrogates (undecodable bytes "
            "smuggled through surrogateescape). Decode with errors='replace' first."
        ) from None
    if size > limit:
        raise DocumentTooLarge(_too_large(size, limit))
    if not text.strip():
        raise CatalogInputError(
            "Expected a document with some text; got an empty or whitespace-only string. "
            "Skip empty documents instead of indexing them."
        )
    return text


def _too_large(size: int, limit: int) -> str:
    return (
        f"Expected a document of at most {limit:,} bytes; this one has {size:,}. Split it into "
        "several documents, or raise KnowledgeCatalog.max_document_bytes if the wait is acceptable."
    )


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate metadata: str keys; scalar values or lists/tuples of scalars (made tuples)."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise CatalogInputError(f"Expected metadata as a mapping; got {type(metadata).__name__}.")
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise CatalogInputError(f"Expected metadata keys to be str; got {key!r}.")
        if isinstance(value, (list, tuple)) and all(isinstance(v, _SCALARS) for v in value):
            value = tuple(value)
        elif not isinstance(value, _SCALARS):
            raise CatalogInputError(
                f"Expected metadata value {key!r} to be a str, number, bool, None or a list of "
                f"those; got {type(value).__name__}. Convert it to one of these first."
            )
        clean[key] = value
    return clean


def content_hash(text: str, metadata: Mapping[str, Any], config: ChunkingConfig) -> str:
    """Hash of everything that determines an ingest's result (re-ingest is a no-op when equal)."""
    digest = hashlib.sha256(text.encode("utf-8"))
    digest.update(json.dumps(sorted(metadata.items()), default=repr).encode("utf-8"))
    digest.update(repr(config).encode("utf-8"))
    return digest.hexdigest()


@contextmanager
def atomic(obj: Persistent, note: str, commit: bool) -> Iterator[None]:
    """Run a block inside a savepoint of obj's transaction; roll back on error, commit at the end.

    Unattached objects (no connection) run the block as it is.
    """
    jar = obj._p_jar
    if jar is None:
        yield
        return
    manager = jar.transaction_manager
    savepoint = manager.savepoint()
    try:
        yield
    except BaseException:
        savepoint.rollback()
        raise
    if commit:
        manager.get().note(note)
        try:
            manager.commit()
        except BaseException:
            manager.abort()
            raise


def build_document(
    doc_id: str, plan: DocumentPlan, metadata: Mapping[str, Any], digest: str, first_id: int
) -> tuple[Document, list[Chunk]]:
    """Turn a plan into a Document with its Sections, Chunks and vector blob."""
    doc = Document(doc_id, plan.title or doc_id, metadata, digest)
    chunks: list[Chunk] = []
    by_section: dict[int, list[int]] = {}
    for position, cp in enumerate(plan.chunks):
        chunk_id = first_id + position
        prefix = heading_text(doc.title, plan.sections[cp.section].title)
        chunks.append(
            Chunk(chunk_id, doc_id, cp.section, position, cp.text, cp.start, cp.end,
                  cp.n_words, cp.summary, f"{prefix}\n{cp.text}" if prefix else cp.text)
        )  # fmt: skip
        by_section.setdefault(cp.section, []).append(chunk_id)
    doc.sections = tuple(
        Section(i, sp.title, tuple(by_section.get(i, ())), sp.summary, sp.end - sp.start)
        for i, sp in enumerate(plan.sections)
    )
    doc.chunk_ids = tuple(c.chunk_id for c in chunks)
    doc.summary = plan.summary
    doc.n_sentences = len(plan.sentences)
    doc.embeddings = vectors_to_blob(plan.chunk_matrix)
    doc.sentence_embeddings = vectors_to_blob(plan.sentence_vectors)
    doc.sentence_counts = tuple(cp.end - cp.start for cp in plan.chunks)
    return doc, chunks


def context_of(chunk: Chunk, doc: Document, chunks: IOBTree, window: int = 1) -> ChunkContext:
    """The chunk with its document and section summaries and window chunks either side."""
    section = doc.sections[chunk.section]
    ids = doc.chunk_ids
    here = chunk.position
    before = tuple(chunks[i].text for i in ids[max(0, here - window) : here])
    after = tuple(chunks[i].text for i in ids[here + 1 : here + 1 + window])
    return ChunkContext(
        chunk_id=chunk.chunk_id, doc_id=doc.doc_id, doc_title=doc.title,
        doc_summary=doc.summary, section_title=section.title, section_summary=section.summary,
        position=here, text=chunk.text, before=before, after=after, metadata=dict(doc.metadata),
    )  # fmt: skip


def unknown_document(doc_id: str, known: OOBTree) -> UnknownDocument:
    """The error for a doc id the catalog does not hold, naming a few it does."""
    sample = ", ".join(repr(k) for k in list(known.keys())[:5]) or "none"
    return UnknownDocument(
        f"Expected a doc id held by the catalog; {doc_id!r} is not one (some held: {sample}). "
        "Check the id, or list them with catalog.doc_ids()."
    )
