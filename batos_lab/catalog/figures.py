"""Matplotlib figures of the catalog: chunk size distribution and similarity breakpoints."""

from __future__ import annotations

from typing import Any

import numpy as np

from batos_lab.catalog.chunking import DocumentPlan
from batos_lab.catalog.knowledge import KnowledgeCatalog


def plot_chunk_sizes(catalog: KnowledgeCatalog, ax: Any = None, bins: int = 20) -> Any:
    """Histogram of chunk sizes in words, with the configured bounds marked.

    Args:
        catalog: the catalog whose chunks are counted.
        ax: a matplotlib Axes to draw on (a new figure when None).
        bins: histogram bins.

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3))
    sizes = np.array([c.n_words for c in catalog.chunks.values()])
    ax.hist(sizes, bins=bins, color="#47a", edgecolor="white")
    for bound, label in (
        (catalog.config.min_words, "min_words"),
        (catalog.config.max_words, "max_words"),
    ):
        ax.axvline(bound, color="#b44", linestyle="--", linewidth=1)
        ax.annotate(label, (bound, ax.get_ylim()[1] * 0.9), rotation=90, ha="right", fontsize=8)
    ax.set_xlabel("words per chunk")
    ax.set_ylabel("chunks")
    median = float(np.median(sizes)) if sizes.size else 0.0
    ax.set_title(f"{sizes.size} chunks in {len(catalog)} documents (median {median:.0f} words)")
    return ax


def plot_breakpoints(plan: DocumentPlan, ax: Any = None) -> Any:
    """Adjacent-sentence similarity along a document, with the threshold and chosen breakpoints.

    Args:
        plan: the chunking plan of one document (``IngestReport.plan`` or ``plan_document``).
        ax: a matplotlib Axes to draw on (a new figure when None).

    Returns:
        The Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    similarity = 1.0 - plan.distances  # nan across section boundaries
    gaps = np.arange(similarity.size)
    ax.plot(gaps, similarity, marker=".", color="#47a", linewidth=1, label="similarity across gap")
    if np.isfinite(plan.threshold):
        ax.axhline(1.0 - plan.threshold, color="#b44", linestyle="--", linewidth=1,
                   label="breakpoint threshold")  # fmt: skip
    if plan.breakpoints:
        bp = np.array(plan.breakpoints)
        ax.scatter(bp, similarity[bp], color="#b44", zorder=3, label="chunk ends here")
    for section in plan.sections[1:]:
        ax.axvline(section.start - 0.5, color="#999", linewidth=0.8)
    ax.set_xlabel("gap between sentence i and i+1 (grey lines: section starts)")
    ax.set_ylabel("cosine similarity")
    ax.set_title(
        f"{plan.title or 'document'}: {len(plan.sentences)} sentences, {len(plan.chunks)} chunks"
    )
    ax.legend(loc="lower left", fontsize=8)
    return ax
