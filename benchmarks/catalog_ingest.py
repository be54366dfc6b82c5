"""Ingest throughput of the knowledge catalog vs plain sentence encoding of the same text.

Run: python -m benchmarks.catalog_ingest   (writes benchmarks/results/catalog_ingest.md)

Text: the codex plus the first documents of the docstring corpus
(``benchmarks/catalog_corpus.py``). Baseline: the sentences of each document (split
beforehand, not timed) encoded with the same model and batch size, one call per document.
Catalog: ``index_document`` per document into a fresh in-memory image (punkt splitting,
encoding, semantic chunking, summaries, BM25 indexing, vector blobs, one commit per document).
The two alternate for ROUNDS rounds; the ratio is taken per round and its median reported.
"""

from __future__ import annotations

import statistics
import time

from batos_lab.catalog import catalog_for, get_embedder, split_sentences
from batos_lab.catalog.sentences import split_sections
from batos_lab.image import open_image
from batos_lab.paths import CODEX_DIR
from benchmarks.catalog_corpus import corpus_documents
from benchmarks.common import write_results

ROUNDS = 3
CORPUS_DOCS = 12


def documents() -> list[tuple[str, str]]:
    """The codex and the first CORPUS_DOCS docstring documents."""
    codex = [
        (f"codex/{p.stem}", p.read_text(encoding="utf-8")) for p in sorted(CODEX_DIR.glob("*.md"))
    ]
    return codex + corpus_documents()[:CORPUS_DOCS]


def main() -> None:
    docs = documents()
    embedder = get_embedder()
    sentences = [
        [s for _, body in split_sections(text) for s in split_sentences(body)] for _, text in docs
    ]
    n_sent = sum(len(s) for s in sentences)
    embedder.encode(sentences[0])  # warm up
    base_times, ours_times, ratios = [], [], []
    n_chunks = 0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for sents in sentences:
            embedder.encode(sents)
        base = time.perf_counter() - started
        with open_image(None) as image:
            catalog = catalog_for(image)
            started = time.perf_counter()
            for doc_id, text in docs:
                catalog.index_document(doc_id, text)
            ours = time.perf_counter() - started
            n_chunks = catalog.chunk_count()
            assert sum(catalog.document(d).n_sentences for d, _ in docs) == n_sent
        base_times.append(base)
        ours_times.append(ours)
        ratios.append(ours / base)
    b, o = statistics.median(base_times), statistics.median(ours_times)
    rows = [
        ["plain encoding (baseline)", f"{n_sent / b:.0f}", f"{b:.1f}"],
        ["catalog index_document", f"{n_sent / o:.0f}", f"{o:.1f}"],
    ]
    notes = (
        f"{len(docs)} documents, {n_sent:,} sentences, {n_chunks} chunks; median of {ROUNDS} "
        f"alternating rounds.\n\n**Catalog time / plain encoding time: "
        f"{statistics.median(ratios):.2f}x** "
        f"(per round: {', '.join(f'{r:.2f}' for r in ratios)}; target: at most 1.3x)."
    )
    write_results("catalog_ingest", "Catalog ingest throughput",
                  ["path", "sentences/s", "seconds (median)"], rows, notes)  # fmt: skip


if __name__ == "__main__":
    main()
