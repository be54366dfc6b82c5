"""Retrieval quality of the knowledge catalog over the codex: recall@5 and MRR per mode.

Run: python -m benchmarks.catalog_quality   (writes benchmarks/results/catalog_quality.md)

``benchmarks/data/retrieval_questions.json`` holds questions written for the codex, each with
the span of codex text that answers it. A retrieved chunk is relevant when its text contains
that span (case and whitespace ignored). recall@5: share of questions with a relevant chunk
in the top 5. MRR: mean of 1/rank of the first relevant chunk within the top 10 (0 if none).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from batos_lab.catalog import KnowledgeCatalog, catalog_for, ingest_codex
from batos_lab.image import open_image
from benchmarks.common import write_results

QUESTIONS = Path(__file__).resolve().parent / "data" / "retrieval_questions.json"
MODES = ("bm25", "vector", "hybrid")


def norm(text: str) -> str:
    """Lower case, no markdown marks, single spaces."""
    return re.sub(r"\s+", " ", text.replace("`", "").replace("**", "")).strip().lower()


def evaluate(
    catalog: KnowledgeCatalog, questions: list[dict[str, str]]
) -> dict[str, dict[str, float]]:
    """recall@5 and MRR@10 of every mode over the labelled questions."""
    texts = {cid: norm(c.text) for cid, c in catalog.chunks.items()}
    for item in questions:
        if not any(norm(item["answer"]) in t for t in texts.values()):
            raise SystemExit(f"No chunk holds the answer span of {item['q']!r}; fix the label.")
    scores: dict[str, dict[str, float]] = {}
    for mode in MODES:
        hits5 = 0
        rr = 0.0
        for item in questions:
            span = norm(item["answer"])
            ranked = [texts[h.chunk_id] for h in catalog.search(item["q"], 10, mode)]
            first = next((i for i, t in enumerate(ranked, 1) if span in t), None)
            hits5 += first is not None and first <= 5
            rr += 1.0 / first if first else 0.0
        scores[mode] = {"recall@5": hits5 / len(questions), "mrr": rr / len(questions)}
    return scores


def main() -> None:
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))["questions"]
    sets = {"all": questions}
    for item in questions:
        sets.setdefault(item["set"], []).append(item)
    with open_image(None) as image:
        catalog = catalog_for(image)
        ingest_codex(catalog)
        scores = {name: evaluate(catalog, items) for name, items in sets.items()}
        n_chunks, n_docs = catalog.chunk_count(), len(catalog)
    rows = [
        [f"{name} ({len(sets[name])})", m, f"{scores[name][m]['recall@5']:.3f}",
         f"{scores[name][m]['mrr']:.3f}"]
        for name in sets for m in MODES
    ]  # fmt: skip
    gains = "; ".join(
        f"{name}: {100 * (s['hybrid']['recall@5'] - s['bm25']['recall@5']):+.1f}"
        for name, s in scores.items()
    )
    notes = (
        f"{len(questions)} labelled questions over {n_docs} codex documents ({n_chunks} chunks, "
        "default chunking). Hybrid = reciprocal rank fusion (k=60) of the BM25 and vector "
        f"rankings.\n\n**Hybrid recall@5 minus BM25 recall@5, in points: {gains}** "
        "(target: at least +10)."
    )
    write_results("catalog_quality", "Catalog retrieval quality on the codex",
                  ["questions", "mode", "recall@5", "MRR@10"], rows, notes)  # fmt: skip


if __name__ == "__main__":
    main()
