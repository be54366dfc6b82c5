"""The knowledge catalog: the image's fractal, searchable memory of the codex and its own cycles.

Documents hold sections hold chunks; chunks are found by BM25 (zope.index Okapi), by cosine
over all-MiniLM-L6-v2 embeddings, or by both with their scores fused (``search.fuse``).

Example:
    >>> from batos_lab.image import open_image  # doctest: +SKIP
    >>> image = open_image(None)  # doctest: +SKIP
    >>> catalog = catalog_for(image)  # doctest: +SKIP
    >>> ingest_codex(catalog)  # doctest: +SKIP
    >>> catalog.search("who asks naive questions?", top_k=3)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batos_lab.catalog.chunking import ChunkingConfig, DocumentPlan, plan_document
from batos_lab.catalog.embedder import Embedder, SentenceEncoder, get_embedder, load_embedder
from batos_lab.catalog.knowledge import KnowledgeCatalog
from batos_lab.catalog.search import SearchHit, SearchResults, fuse, rrf
from batos_lab.catalog.sentences import split_sentences
from batos_lab.catalog.store import Chunk, ChunkContext, Document, IngestReport, Section

#: Where the image keeps its catalog.
ROOT_KEY = "knowledge_catalog"

__all__ = [
    "ROOT_KEY",
    "Chunk",
    "ChunkContext",
    "ChunkingConfig",
    "Document",
    "DocumentPlan",
    "Embedder",
    "IngestReport",
    "KnowledgeCatalog",
    "SearchHit",
    "SearchResults",
    "Section",
    "SentenceEncoder",
    "catalog_for",
    "fuse",
    "get_embedder",
    "ingest_codex",
    "load_embedder",
    "plan_document",
    "rrf",
    "split_sentences",
]


def catalog_for(image: Any) -> KnowledgeCatalog:
    """Return the image's persistent catalog at ``image.root["knowledge_catalog"]``.

    The catalog is created in its own transaction the first time.

    Args:
        image: an open :class:`batos_lab.image.Image`.

    Returns:
        The image's :class:`KnowledgeCatalog`.
    """
    catalog = image.root.get(ROOT_KEY)
    if catalog is None:
        with image.transaction("catalog: create the knowledge catalog"):
            catalog = image.root.get(ROOT_KEY)
            if catalog is None:
                catalog = KnowledgeCatalog()
                image.root[ROOT_KEY] = catalog
    return catalog


def ingest_codex(
    catalog: KnowledgeCatalog, directory: str | Path | None = None, *, progress: bool = False
) -> list[IngestReport]:
    """Ingest every ``*.md`` file of the codex, one transaction per document.

    Each document gets the id ``codex/<file stem>`` and metadata ``kind="codex"``; unchanged
    files are skipped, changed ones replaced.

    Args:
        catalog: the catalog to fill.
        directory: the codex folder (default: ``data/codex`` of the repository).
        progress: show a progress bar over the files.

    Returns:
        One report per file, in file-name order.
    """
    from batos_lab.paths import CODEX_DIR

    folder = Path(directory) if directory is not None else CODEX_DIR
    files = sorted(folder.glob("*.md"))
    if progress:
        from tqdm.auto import tqdm

        files = tqdm(files, desc="codex")  # type: ignore[assignment]
    return [
        catalog.index_document(
            f"codex/{path.stem}", path.read_bytes(), {"kind": "codex", "path": path.name}
        )
        for path in files
    ]
