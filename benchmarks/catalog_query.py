"""Query latency of the knowledge catalog at 10,000 chunks: BM25 mode vs bm25s, hybrid reported.

Run: python -m benchmarks.catalog_query   (writes benchmarks/results/catalog_query.md)

The corpus is synthesised from real sentences: the prose sentences of installed docstrings
(``benchmarks/catalog_corpus.py``) form a pool of POOL unique sentences, and each synthetic
document draws 80 of them at random (seeded), under a heading every 20. The documents go
through the ordinary ``index_document`` path (small chunks of 20-60 words) until the catalog
holds at least 10,000 chunks. The pool bounds the encoding work: the catalog is given a
memoising wrapper around the real embedder, so a sentence seen before gets the vector the
model gave it the first time (identical to re-encoding it).

bm25s (k1=1.2, b=0.75, the Okapi parameters of zope.index) indexes the very same chunk texts.
Queries are 4 content words sampled (seeded) from random chunks. Each side's time covers the
whole call a user makes: tokenising the query, scoring, top-5 and (for the catalog) building
the hits. The engines are timed interleaved, query by query.

The catalog's BM25 mode scores plain queries from a volatile numpy mirror of the TextIndex's
postings (``batos_lab/catalog/okapi.py``); the row "zope.index OkapiIndex" times the same
query through the index itself (``_bm25_terms``, the reference the mirror must equal), and
the run counts the queries whose top 5 (ids and scores) the two give alike. Hybrid is timed
with the query-embedding memo cleared, so each call encodes its query; the encoding alone is
timed as well.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import bm25s
import numpy as np

from batos_lab.catalog import ChunkingConfig, Embedder, KnowledgeCatalog, catalog_for, get_embedder
from batos_lab.catalog.search import SearchHit, bucket_top, query_terms
from batos_lab.catalog.sentences import split_sentences
from batos_lab.image import open_image
from benchmarks.catalog_corpus import corpus_documents
from benchmarks.common import write_results

TARGET_CHUNKS = int(os.environ.get("BENCH_CHUNKS", "10000"))
POOL = 2000
QUERIES = 200
CACHE_OBJECTS = 200_000
TOP_K = 5
CONFIG = ChunkingConfig(min_words=20, max_words=60)
T = TypeVar("T")


class MemoEmbedder:
    """The real embedder with a memo: each distinct sentence is encoded once."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.memo: dict[str, np.ndarray] = {}

    def encode(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        todo = list(dict.fromkeys(s for s in sentences if s not in self.memo))
        if todo:
            self.memo.update(zip(todo, self.inner.encode(todo), strict=True))
        return np.vstack([self.memo[s] for s in sentences])


def synthetic_documents(rng: random.Random) -> list[tuple[str, str]]:
    """Documents of 80 pool sentences each, a heading every 20 sentences."""
    pool: list[str] = []
    for _, text in corpus_documents():
        pool.extend(s for s in split_sentences(text) if 6 <= len(s.split()) <= 60)
    pool = list(dict.fromkeys(pool))
    rng.shuffle(pool)
    pool = pool[:POOL]
    docs = []
    for n in range(1000):
        parts = [f"# Synthetic document {n}"]
        for section in range(4):
            parts.append(f"## Part {section}")
            parts.append(" ".join(rng.sample(pool, 20)))
        docs.append((f"synthetic/{n}", "\n\n".join(parts)))
    return docs


def build(catalog: KnowledgeCatalog, rng: random.Random) -> float:
    """Ingest synthetic documents until the catalog holds TARGET_CHUNKS chunks; return seconds."""
    started = time.perf_counter()
    for doc_id, text in synthetic_documents(rng):
        catalog.index_document(doc_id, text, {"kind": "bench"})
        if catalog.chunk_count() >= TARGET_CHUNKS:
            break
    return time.perf_counter() - started


def timed(fn: Callable[[str], T], arg: str) -> tuple[T, float]:
    """fn(arg) and the seconds it took."""
    started = time.perf_counter()
    out = fn(arg)
    return out, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description="catalog query latency vs bm25s")
    parser.add_argument("--image", help="FileStorage path to keep (and reuse) the built catalog")
    args = parser.parse_args()
    with open_image(args.image) as image:
        # ZODB's default cache keeps 400 objects per connection; a 10,000-chunk catalog has
        # far more (chunks, index buckets), and thrashing would time unpickling, not search.
        image.db.setCacheSize(CACHE_OBJECTS)
        catalog = catalog_for(image)
        rng = random.Random(7)
        ingest_s = 0.0
        if catalog.chunk_count() < TARGET_CHUNKS:
            catalog.config = CONFIG
            image.commit("bench: small chunks")
            catalog.use_embedder(MemoEmbedder(get_embedder()))
            ingest_s = build(catalog, rng)
            catalog.use_embedder(None)
        chunks = list(catalog.chunks.values())
        texts = [c.search_text for c in chunks]
        ids = [c.chunk_id for c in chunks]
        print(f"{len(chunks)} chunks ingested in {ingest_s:.0f} s")

        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index(
            bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False
        )

        queries: list[str] = []
        while len(queries) < QUERIES:
            words = [w for w in re.findall(r"[A-Za-z]{4,}", rng.choice(texts)) if query_terms(w)]
            if len(words) >= 4:
                queries.append(" ".join(rng.sample(words, 4)))

        def ours(q: str) -> list[tuple[int, float]]:
            return [(h.chunk_id, h.score) for h in catalog.search(q, TOP_K, "bm25")]

        def reference(q: str) -> list[tuple[int, float]]:
            best = bucket_top(catalog._bm25_terms(query_terms(q)), TOP_K)
            hits = []
            for cid, score in best:  # the hits search would build
                chunk = catalog.chunks[cid]
                section = catalog.documents[chunk.doc_id].sections[chunk.section].title
                hits.append(SearchHit(cid, chunk.doc_id, chunk.position, section, chunk.text,
                                      score, bm25=score))  # fmt: skip
            return [(h.chunk_id, h.score) for h in hits]

        def theirs(q: str) -> list[int]:
            tokens = bm25s.tokenize([q], stopwords="en", return_ids=False, show_progress=False)
            docs, _ = retriever.retrieve(tokens, k=TOP_K, show_progress=False)
            return [ids[i] for i in docs[0]]

        def hybrid(q: str) -> None:
            catalog._volatile().pop("queries", None)  # time the query encoding too
            catalog.search(q, TOP_K, "hybrid")

        warm: dict[str, float] = {}
        for name, make in (("okapi", catalog._okapi), ("matrix", catalog._matrix)):
            started = time.perf_counter()
            make()
            warm[name] = time.perf_counter() - started
        encoder = catalog.embedder()
        hybrid(queries[0])
        for q in queries[:20]:
            ours(q), reference(q), theirs(q)
        times: dict[str, list[float]] = {k: [] for k in ("ours", "ref", "theirs", "hyb", "enc")}
        overlap = same = 0
        for q in queries:
            a, ta = timed(ours, q)
            r, tr = timed(reference, q)
            b, tb = timed(theirs, q)
            _, th = timed(hybrid, q)
            _, te = timed(lambda text: encoder.encode([text]), q)
            for key, value in zip(times, (ta, tr, tb, th, te), strict=True):
                times[key].append(value)
            overlap += len({cid for cid, _ in a} & set(b))
            same += [cid for cid, _ in a] == [cid for cid, _ in r] and all(
                math.isclose(x, y, rel_tol=1e-9) for (_, x), (_, y) in zip(a, r, strict=True)
            )
        n_docs = len(catalog)
        sizes = catalog.cache_bytes()

    rows = []
    for name, key in (("catalog bm25 (numpy mirror of the zope.index Okapi data)", "ours"),
                      ("bm25s", "theirs"),
                      ("zope.index OkapiIndex, same query (reference)", "ref"),
                      ("catalog hybrid (bm25 + vector, convex fusion)", "hyb"),
                      ("  of which: encoding the query (all-MiniLM-L6-v2)", "enc")):  # fmt: skip
        p50, p95 = percentile(times[key], 50) * 1e3, percentile(times[key], 95) * 1e3
        rows.append([name, f"{p50:.2f}", f"{p95:.2f}", f"{statistics.mean(times[key]) * 1e3:.2f}"])
    r50 = percentile(times["ours"], 50) / percentile(times["theirs"], 50)
    r95 = percentile(times["ours"], 95) / percentile(times["theirs"], 95)
    z50 = percentile(times["ref"], 50) / percentile(times["theirs"], 50)
    z95 = percentile(times["ref"], 95) / percentile(times["theirs"], 95)
    notes = (
        f"{len(chunks):,} chunks from {n_docs:,} documents "
        f"(ingest {ingest_s:.0f} s; 0 means a kept image was reused), "
        f"{QUERIES} queries of 4 words, top {TOP_K}.\n\n"
        f"**Ratio catalog bm25 / bm25s: p50 {r50:.2f}x, p95 {r95:.2f}x** "
        f"(target: at most 1.5x). Through zope.index itself: p50 {z50:.2f}x, p95 {z95:.2f}x.\n\n"
        f"Top 5 (ids and scores to 1e-9) of the catalog equal zope.index's on {same} of "
        f"{QUERIES} queries. Top-5 overlap between the catalog and bm25s: "
        f"{overlap / (QUERIES * TOP_K):.0%} (their tokenisers and IDF formulas differ "
        "slightly).\n\n"
        f"Volatile caches, built once per catalog change: BM25 mirror {sizes['okapi'] / 1e6:.1f} "
        f"MB in {warm['okapi']:.2f} s, stacked vectors {sizes['matrix'] / 1e6:.1f} MB in "
        f"{warm['matrix']:.2f} s (first search after a change; ZODB objects cold or warm as "
        "the run left them)."
    )
    write_results("catalog_query", "Catalog query latency at 10,000 chunks",
                  ["engine", "p50 ms", "p95 ms", "mean ms"], rows, notes)  # fmt: skip


if __name__ == "__main__":
    main()
