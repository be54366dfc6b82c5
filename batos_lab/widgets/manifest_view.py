"""ManifestView: the memory manager's device budget, tiers and last activations, at a glance."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

__all__ = ["ManifestView", "activation_latency_figure", "budget_bar_html"]

_COLOURS = {
    "base weights": "#4e79a7",
    "KV cache": "#f28e2b",
    "hot adapters": "#e15759",
    "overhead": "#bab0ac",
    "free": "#e8f1e4",
}


def _mb(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def budget_bar_html(manifest: Any, width_px: int = 560) -> str:
    """Return an HTML stacked bar of the budget: base, KV cache, hot adapters, overhead, free."""
    parts = [
        ("base weights", manifest.base_weights_bytes),
        ("KV cache", manifest.kv_cache_bytes),
        ("hot adapters", manifest.hot_adapter_bytes),
        ("overhead", manifest.overhead_bytes),
        ("free", max(manifest.free_bytes, 0)),
    ]
    total = max(manifest.budget_bytes, manifest.used_bytes, 1)
    cells = []
    legend = []
    for label, size in parts:
        share = size / total
        colour = _COLOURS[label]
        cells.append(
            f"<div title='{label}: {_mb(size)}' style='width:{share * width_px:.1f}px;"
            f"background:{colour};height:18px'></div>"
        )
        legend.append(
            f"<span style='margin-right:10px'><span style='display:inline-block;width:10px;"
            f"height:10px;background:{colour}'></span> {label} {_mb(size)}</span>"
        )
    over = "" if manifest.free_bytes >= 0 else " <b style='color:#c00'>over budget</b>"
    kind = "VRAM" if manifest.device == "cuda" else "RAM"
    return (
        f"<div><b>{kind} budget</b> {_mb(manifest.budget_bytes)} on {manifest.device}, mode "
        f"<code>{manifest.mode}</code> ({html.escape(manifest.mode_source)}){over}</div>"
        f"<div style='display:flex;border:1px solid #999;width:{width_px}px'>{''.join(cells)}</div>"
        f"<div style='font-size:90%'>{''.join(legend)}</div>"
    )


def _tiers_html(manifest: Any) -> str:
    rows = []
    for tier, names, note in (
        (
            "hot",
            manifest.hot,
            f"{manifest.slots}/{manifest.max_slots} slots, "
            f"{_mb(manifest.hot_adapter_bytes)} of {_mb(manifest.hot_budget_bytes)}",
        ),
        ("warm", manifest.warm, f"{_mb(manifest.warm_bytes)} of {_mb(manifest.warm_budget_bytes)}"),
        ("cold", manifest.cold, "blobs in the image"),
    ):
        rows.append(
            f"<tr><td><b>{tier}</b></td><td>{html.escape(', '.join(names) or '-')}</td>"
            f"<td>{note}</td></tr>"
        )
    return "<table><tr><th>tier</th><th>experts</th><th>use</th></tr>" + "".join(rows) + "</table>"


def _activations_html(manifest: Any) -> str:
    if not manifest.last:
        return "<i>No activations yet.</i>"
    rows = [
        f"<tr><td>{html.escape(r['name'])}@v{r['version']}</td><td>{r['tier']}</td>"
        f"<td>{r['bytes_moved'] / 1e6:.2f} MB</td><td>{r['ms']:.2f} ms</td>"
        f"<td>{html.escape(', '.join(r['evicted']) or '')}</td></tr>"
        for r in reversed(manifest.last)
    ]
    return (
        "<table><tr><th>expert</th><th>found in</th><th>moved</th><th>time</th>"
        "<th>evicted</th></tr>" + "".join(rows) + "</table>"
    )


class ManifestView(w.VBox):
    """An ipywidget showing a cognitive core's manifest; ``refresh()`` redraws it.

    Args:
        core: a CognitiveCore (``core_for(image)``).

    Example:
        >>> ManifestView(core_for(image))  # doctest: +SKIP
    """

    def __init__(self, core: Any) -> None:
        self.core = core
        self.bar = w.HTML()
        self.tiers = w.HTML()
        self.activations = w.HTML()
        self.warnings = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        super().__init__(
            [
                self.refresh_button,
                self.bar,
                w.HTML("<b>Tiers</b>"),
                self.tiers,
                w.HTML("<b>Last activations</b>"),
                self.activations,
                self.warnings,
            ]
        )
        self.refresh()

    def refresh(self) -> None:
        """Read the manifest again and redraw."""
        manifest = self.core.manifest()
        self.manifest = manifest
        self.bar.value = budget_bar_html(manifest)
        self.tiers.value = _tiers_html(manifest)
        self.activations.value = _activations_html(manifest)
        self.warnings.value = "".join(
            f"<div style='color:#a60'>{html.escape(text)}</div>" for text in manifest.warnings
        )


def activation_latency_figure(history: list[Any]) -> Any:
    """Return a matplotlib figure of activation latency by tier (one dot per activation).

    Args:
        history: ActivationRecords, e.g. ``core.memory().history``.
    """
    import matplotlib.pyplot as plt

    tiers = ["hot", "warm", "cold", "degraded"]
    colours = {"hot": "#e15759", "warm": "#f28e2b", "cold": "#4e79a7", "degraded": "#999999"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for tier in tiers:
        points = [(i, r.ms) for i, r in enumerate(history) if r.tier == tier]
        if points:
            left.scatter(*zip(*points, strict=True), label=tier, color=colours[tier], s=18)
    left.set_yscale("log")
    left.set_xlabel("activation #")
    left.set_ylabel("ms (log)")
    left.set_title("activate_expert latency over time")
    left.legend()
    present = [t for t in tiers if any(r.tier == t for r in history)]
    data = [[r.ms for r in history if r.tier == t] for t in present]
    if data:
        right.boxplot(data, tick_labels=present)
    right.set_yscale("log")
    right.set_title("latency by tier")
    fig.tight_layout()
    return fig
