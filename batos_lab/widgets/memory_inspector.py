"""MemoryInspector: search the knowledge catalog and read each hit inside its document."""

from __future__ import annotations

import html

import ipywidgets as w

from batos_lab.catalog import KnowledgeCatalog, SearchResults
from batos_lab.catalog.search import MODES
from batos_lab.errors import BatosError

__all__ = ["MemoryInspector"]


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


class MemoryInspector(w.VBox):
    """An ipywidget with a query box, mode selector and top-k, showing hits in context.

    Each hit shows its rank, fused score, BM25 score and cosine, the document and section
    titles with their summaries, and the chunk between its neighbours (greyed).

    Args:
        catalog: the catalog to search.
        query: an optional first query, run at once.
        mode: the starting mode ("hybrid", "bm25" or "vector").
        top_k: the starting number of hits.

    Example:
        >>> MemoryInspector(catalog_for(image), "who weaves the answer?")  # doctest: +SKIP
    """

    def __init__(
        self, catalog: KnowledgeCatalog, query: str = "", mode: str = "hybrid", top_k: int = 5
    ) -> None:
        self.catalog = catalog
        self.query_box = w.Text(
            value=query, placeholder="ask the image's memory", description="Query"
        )
        self.mode_picker = w.ToggleButtons(options=list(MODES), value=mode, description="Mode")
        self.top_k_slider = w.IntSlider(value=top_k, min=1, max=20, description="Top k")
        self.search_button = w.Button(description="Search", icon="search", button_style="primary")
        self.search_button.on_click(lambda _: self.run())
        self.query_box.on_submit(lambda _: self.run())
        self.status = w.HTML()
        self.results_html = w.HTML()
        self.results: SearchResults = SearchResults()
        super().__init__(
            [
                w.HBox([self.query_box, self.search_button]),
                w.HBox([self.mode_picker, self.top_k_slider]),
                self.status,
                self.results_html,
            ]
        )
        if query:
            self.run()

    def run(self, query: str | None = None) -> SearchResults:
        """Search with the widget's settings (or this query) and render the hits.

        Args:
            query: replaces the text in the query box when given.

        Returns:
            The hits shown.
        """
        if query is not None:
            self.query_box.value = query
        try:
            self.results = self.catalog.search(
                self.query_box.value, top_k=self.top_k_slider.value, mode=self.mode_picker.value
            )
        except BatosError as exc:
            self.results = SearchResults()
            self.status.value = f"<span style='color:#b00'>{_esc(str(exc))}</span>"
            self.results_html.value = ""
            return self.results
        note = f" — {_esc(self.results.note)}" if self.results.note else ""
        self.status.value = (
            f"<i>{len(self.results)} hit(s), mode {self.results.mode}, "
            f"{self.catalog.chunk_count()} chunks in {len(self.catalog)} documents{note}</i>"
        )
        self.results_html.value = "".join(self._render(rank, hit.chunk_id) for rank, hit in
                                          enumerate(self.results, start=1))  # fmt: skip
        return self.results

    def _render(self, rank: int, chunk_id: int) -> str:
        hit = self.results[rank - 1]
        ctx = self.catalog.context(chunk_id, window=1)
        scores = f"score {hit.score:.4f}"
        if hit.bm25 is not None:
            scores += f" · bm25 {hit.bm25:.3f}"
        if hit.cosine is not None:
            scores += f" · cosine {hit.cosine:.3f}"
        grey = "color:#888;font-size:90%"
        before = "".join(f"<div style='{grey}'>… {_esc(t[-300:])}</div>" for t in ctx.before)
        after = "".join(f"<div style='{grey}'>{_esc(t[:300])} …</div>" for t in ctx.after)
        return (
            "<div style='border-left:3px solid #47a;padding:4px 8px;margin:6px 0'>"
            f"<b>#{rank}</b> <code>{_esc(hit.doc_id)}</code> chunk {hit.position} · {scores}<br>"
            f"<b>{_esc(ctx.doc_title)}</b> › {_esc(ctx.section_title)}"
            f"<div style='{grey}'>{_esc(ctx.section_summary)}</div>"
            f"{before}<div style='background:#ffd;padding:2px'>{_esc(ctx.text)}</div>{after}"
            "</div>"
        )
