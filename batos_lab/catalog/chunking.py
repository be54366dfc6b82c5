"""Semantic chunking: cut a document at similarity breakpoints, within size bounds.

A document is split into sections (markdown headings), each section into sentences, and every
sentence is embedded. Between two neighbouring sentences the *distance* is ``1 - cosine`` of
the mean embeddings of up to ``window`` sentences before and after the gap (``window=1`` is
plain adjacent-sentence similarity). The breakpoint threshold is the ``percentile``-th
percentile of all within-section distances of the document: a gap at or above it ends a chunk,
provided the chunk already has ``min_words``; a chunk never grows past ``max_words`` (one
sentence longer than that stays whole, cut upstream to ``max_sentence_words``). Section ends
are always chunk ends. A trailing chunk under ``min_words`` joins its predecessor when the sum
still fits. Summaries are extractive: the sentence nearest a level's centroid.

A chunk's vector places its content under its heading: the normalised sum of two unit vectors,
the mean of its sentence vectors (what the chunk says) and the embedding of its heading,
"document title / section title" (where it stands: sentences such as "It is chosen when ..."
rarely repeat the persona or topic their heading names). The two count equally. Each heading
is encoded once per section, in the same call as the sentences, so no text is encoded twice
and an ingest encodes only a few short strings more than its sentences. With
``ChunkingConfig(heading_context=False)``, or for a section without any title, the vector is
the plain normalised mean of the sentence vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from batos_lab.catalog.embedder import SentenceEncoder
from batos_lab.catalog.sentences import first_heading, split_sections, split_sentences
from batos_lab.errors import CatalogInputError


@dataclass(frozen=True)
class ChunkingConfig:
    """Bounds and breakpoint rule of the semantic chunker (validated on creation)."""

    percentile: float = 80.0
    window: int = 1
    min_words: int = 40
    max_words: int = 160
    max_sentence_words: int = 120
    summary_chars: int = 240
    #: Add the heading's embedding to each chunk vector (see the module docstring).
    heading_context: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.percentile <= 100.0:
            raise CatalogInputError(
                f"ChunkingConfig.percentile must lie in [0, 100]; got {self.percentile!r}."
            )
        if self.window < 1:
            raise CatalogInputError(f"ChunkingConfig.window must be >= 1; got {self.window!r}.")
        if not 1 <= self.min_words <= self.max_words:
            raise CatalogInputError(
                "ChunkingConfig needs 1 <= min_words <= max_words; "
                f"got min_words={self.min_words!r}, max_words={self.max_words!r}."
            )
        if self.max_sentence_words < 1:
            raise CatalogInputError(
                f"ChunkingConfig.max_sentence_words must be >= 1; got {self.max_sentence_words!r}."
            )
        if not isinstance(self.heading_context, bool):
            raise CatalogInputError(
                f"ChunkingConfig.heading_context must be True or False; got "
                f"{self.heading_context!r}."
            )


@dataclass
class ChunkPlan:
    """One planned chunk: its sentence span (document-wide indices), text and vector."""

    section: int
    start: int
    end: int
    text: str
    n_words: int
    vector: np.ndarray
    summary: str = ""


@dataclass
class SectionPlan:
    """One planned section: title, sentence span and summary."""

    title: str
    start: int
    end: int
    summary: str = ""


@dataclass
class DocumentPlan:
    """Everything an ingest computes before touching the catalog."""

    title: str
    sentences: list[str]
    sentence_vectors: np.ndarray  # (n_sentences, dim) float32, unit rows
    sections: list[SectionPlan]
    chunks: list[ChunkPlan]
    distances: np.ndarray  # (n_sentences - 1,) 1 - similarity at each gap; nan across sections
    threshold: float
    summary: str = ""
    breakpoints: list[int] = field(default_factory=list)  # gap indices that ended a chunk
    # (n_sections, dim) float32 heading embeddings; zero rows where no heading was encoded
    heading_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))

    @property
    def chunk_matrix(self) -> np.ndarray:
        """The chunk vectors stacked into a (n_chunks, dim) float32 matrix."""
        return np.vstack([c.vector for c in self.chunks]).astype(np.float32)


def gap_distances(vectors: np.ndarray, window: int = 1) -> np.ndarray:
    """Distance (1 - cosine) across every gap between consecutive rows, windowed.

    Args:
        vectors: (n, dim) unit rows.
        window: how many rows on each side of a gap are averaged.

    Returns:
        (n - 1,) distances in [0, 2].
    """
    n = len(vectors)
    if n < 2:
        return np.zeros(0, dtype=np.float32)
    csum = np.vstack([np.zeros((1, vectors.shape[1]), np.float64), np.cumsum(vectors, axis=0)])
    gaps = np.arange(1, n)
    lo = np.maximum(gaps - window, 0)
    hi = np.minimum(gaps + window, n)
    left = csum[gaps] - csum[lo]
    right = csum[hi] - csum[gaps]
    left /= np.linalg.norm(left, axis=1, keepdims=True) + 1e-12
    right /= np.linalg.norm(right, axis=1, keepdims=True) + 1e-12
    return (1.0 - np.sum(left * right, axis=1)).astype(np.float32)


def unit_mean(vectors: np.ndarray) -> np.ndarray:
    """The normalised mean of some unit rows (float32)."""
    mean = vectors.mean(axis=0)
    return (mean / (np.linalg.norm(mean) + 1e-12)).astype(np.float32)


def heading_text(doc_title: str, section_title: str) -> str:
    """The heading of a chunk: "document title / section title", without empty or repeated parts.

    BM25 indexes a chunk's text under this line (the document id standing in for a missing
    title), and the chunk vector takes its embedding as context.

    Example:
        >>> heading_text("Garden notes", "Soil"), heading_text("Notes", "Notes")
        ('Garden notes / Soil', 'Notes')
    """
    return " / ".join(t for t in dict.fromkeys((doc_title, section_title)) if t)


def chunk_vector(sentence_vectors: np.ndarray, heading: np.ndarray | None) -> np.ndarray:
    """A chunk's unit vector: its sentence centroid, plus its heading's embedding when given.

    Args:
        sentence_vectors: (n, dim) unit rows of the chunk's sentences.
        heading: (dim,) unit embedding of the chunk's heading, or None for no heading context.

    Returns:
        ``unit(unit_mean(sentence_vectors) + heading)``, or ``unit_mean(sentence_vectors)``
        when heading is None (float32).
    """
    centroid = unit_mean(sentence_vectors)
    if heading is None:
        return centroid
    both = centroid.astype(np.float64) + heading
    return (both / (np.linalg.norm(both) + 1e-12)).astype(np.float32)


def encode_with_headings(
    embedder: SentenceEncoder, sentences: list[str], headings: list[str], progress: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Encode sentences and the non-empty headings in one call.

    Args:
        embedder: the sentence encoder.
        sentences: the document's sentences.
        headings: one heading per section ("" for none, or to skip it).
        progress: show a progress bar while encoding.

    Returns:
        (n_sentences, dim) sentence vectors and (len(headings), dim) heading vectors, with
        zero rows for the empty headings.
    """
    wanted = [i for i, h in enumerate(headings) if h]
    vectors = embedder.encode(sentences + [headings[i] for i in wanted], progress=progress)
    heading_vectors = np.zeros((len(headings), vectors.shape[1]), dtype=np.float32)
    heading_vectors[wanted] = vectors[len(sentences) :]
    return vectors[: len(sentences)], heading_vectors


def centroid_sentence(sentences: list[str], vectors: np.ndarray, limit: int) -> str:
    """The sentence nearest the centroid of its group, cut to limit characters."""
    if len(sentences) == 0:
        return ""
    best = int(np.argmax(vectors @ unit_mean(vectors)))
    text = sentences[best]
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def plan_spans(
    words: list[int], distances: np.ndarray, threshold: float, config: ChunkingConfig
) -> list[tuple[int, int]]:
    """Group the sentences of one section into (start, end) spans, end exclusive.

    Args:
        words: word count of each sentence of the section.
        distances: (len(words) - 1,) gap distances inside the section.
        threshold: gaps at or above it are breakpoints.
        config: the size bounds.

    Returns:
        Spans covering every sentence once, in order.
    """
    spans: list[tuple[int, int]] = []
    start, size = 0, words[0] if words else 0
    for i in range(1, len(words)):
        if size + words[i] > config.max_words or (
            distances[i - 1] >= threshold and size >= config.min_words
        ):
            spans.append((start, i))
            start, size = i, 0
        size += words[i]
    if words:
        spans.append((start, len(words)))
    if len(spans) > 1:
        last_words = sum(words[spans[-1][0] : spans[-1][1]])
        prev_words = sum(words[spans[-2][0] : spans[-2][1]])
        if last_words < config.min_words and last_words + prev_words <= config.max_words:
            spans[-2:] = [(spans[-2][0], spans[-1][1])]
    return spans


def plan_document(
    text: str,
    embedder: SentenceEncoder,
    config: ChunkingConfig,
    title: str = "",
    progress: bool = False,
) -> DocumentPlan:
    """Split, embed and chunk a document without touching any catalog.

    Args:
        text: the document text (markdown headings start sections).
        embedder: the sentence encoder.
        config: chunking bounds and breakpoint rule.
        title: the document title (default: its first heading).
        progress: show a progress bar while encoding.

    Returns:
        The complete plan of sections, chunks, vectors and breakpoints.

    Raises:
        CatalogInputError: the text holds no sentence.
    """
    title = title or first_heading(text)
    raw_sections = split_sections(text, default_title=title)
    sentences: list[str] = []
    sections: list[SectionPlan] = []
    for sec_title, body in raw_sections:
        sents = split_sentences(body, max_words=config.max_sentence_words)
        if sents:
            sections.append(SectionPlan(sec_title, len(sentences), len(sentences) + len(sents)))
            sentences.extend(sents)
    if not sentences:
        raise CatalogInputError(
            "Expected a document with at least one sentence; found only whitespace or headings. "
            "Pass the document's text, not an empty string."
        )
    headings = [
        heading_text(title, sec.title) if config.heading_context else "" for sec in sections
    ]
    vectors, heading_vectors = encode_with_headings(embedder, sentences, headings, progress)
    distances = np.full(max(len(sentences) - 1, 0), np.nan, dtype=np.float32)
    for sec in sections:
        if sec.end - sec.start > 1:
            distances[sec.start : sec.end - 1] = gap_distances(
                vectors[sec.start : sec.end], config.window
            )
    inside = distances[~np.isnan(distances)]
    threshold = float(np.percentile(inside, config.percentile)) if inside.size else float("inf")
    words = [len(s.split()) for s in sentences]
    chunks: list[ChunkPlan] = []
    breakpoints: list[int] = []
    for index, sec in enumerate(sections):
        spans = plan_spans(
            words[sec.start : sec.end],
            distances[sec.start : max(sec.end - 1, sec.start)],
            threshold,
            config,
        )
        for lo, hi in spans:
            a, b = sec.start + lo, sec.start + hi
            if b < sec.end:
                breakpoints.append(b - 1)
            chunks.append(
                ChunkPlan(
                    section=index,
                    start=a,
                    end=b,
                    text=" ".join(sentences[a:b]),
                    n_words=sum(words[a:b]),
                    vector=chunk_vector(
                        vectors[a:b], heading_vectors[index] if headings[index] else None
                    ),
                    summary=centroid_sentence(sentences[a:b], vectors[a:b], config.summary_chars)
                    if b - a >= 3
                    else "",
                )
            )
        sec.summary = centroid_sentence(
            sentences[sec.start : sec.end], vectors[sec.start : sec.end], config.summary_chars
        )
    return DocumentPlan(
        title=title,
        sentences=sentences,
        sentence_vectors=vectors,
        sections=sections,
        chunks=chunks,
        distances=distances,
        threshold=threshold,
        summary=centroid_sentence(sentences, vectors, config.summary_chars),
        breakpoints=breakpoints,
        heading_vectors=heading_vectors,
    )
