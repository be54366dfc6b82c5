"""MemoryInspector: a headless search renders hits with scores and context."""

from __future__ import annotations

import pytest

from batos_lab.catalog import KnowledgeCatalog
from batos_lab.widgets.memory_inspector import MemoryInspector

pytestmark = pytest.mark.llm


def test_inspector_renders_hits_in_context(codex_catalog: KnowledgeCatalog) -> None:
    inspector = MemoryInspector(codex_catalog, "who checks assumptions with naive questions?")
    assert len(inspector.results) == 5
    html = inspector.results_html.value
    assert "score" in html and "bm25" in html and "cosine" in html
    first = inspector.results[0]
    assert codex_catalog.context(first.chunk_id).section_title in html
    assert "5 hit(s), mode hybrid" in inspector.status.value


def test_inspector_mode_and_top_k_controls(codex_catalog: KnowledgeCatalog) -> None:
    inspector = MemoryInspector(codex_catalog)
    assert inspector.results == [] and inspector.results_html.value == ""
    inspector.mode_picker.value = "bm25"
    inspector.top_k_slider.value = 2
    hits = inspector.run("tamland facet")
    assert len(hits) == 2 and hits.mode == "bm25"
    assert "cosine" not in inspector.results_html.value


def test_inspector_shows_the_note_for_stop_words(codex_catalog: KnowledgeCatalog) -> None:
    inspector = MemoryInspector(codex_catalog, "the of and")
    assert inspector.results == []
    assert "only stop words" in inspector.status.value


def test_inspector_shows_errors_instead_of_raising(
    codex_catalog: KnowledgeCatalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batos_lab.errors import CatalogQueryError

    def broken(*args: object, **kwargs: object) -> None:
        raise CatalogQueryError("Expected a query the catalog can run.")

    inspector = MemoryInspector(codex_catalog)
    monkeypatch.setattr(inspector, "catalog", type("C", (), {"search": staticmethod(broken)})())
    assert inspector.run("brick") == []
    assert "Expected a query the catalog can run." in inspector.status.value


def test_figures_draw_sizes_and_breakpoints(codex_catalog: KnowledgeCatalog) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from batos_lab.catalog.chunking import plan_document
    from batos_lab.catalog.figures import plot_breakpoints, plot_chunk_sizes

    ax = plot_chunk_sizes(codex_catalog)
    assert f"{codex_catalog.chunk_count()} chunks" in ax.get_title()
    assert sum(p.get_height() for p in ax.patches) == codex_catalog.chunk_count()
    text = "# T\n\nThe cat sleeps. The cat purrs. Stock prices fell sharply. Markets closed lower."
    plan = plan_document(text, codex_catalog.embedder(), codex_catalog.config)
    ax = plot_breakpoints(plan)
    assert ax.get_lines()[0].get_ydata().size == len(plan.sentences) - 1
    assert "4 sentences" in ax.get_title()
