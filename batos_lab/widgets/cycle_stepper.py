"""CycleStepper: step a cognitive cycle from a notebook and watch its states, trace and timings."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as w

from batos_lab.errors import BatosError
from batos_lab.psm.cycle import TRACE_FIELDS, session_of
from batos_lab.psm.states import STATES

__all__ = ["CycleStepper", "state_graph_svg", "timings_figure"]

_EDGES = [("IDLE", "DECOMPOSING"), ("DECOMPOSING", "DELEGATING"), ("DELEGATING", "SYNTHESIZING"),
          ("SYNTHESIZING", "COMPLETE")]  # fmt: skip


def state_graph_svg(
    current: str, visited: list[str] | tuple[str, ...] = (), forward: dict[str, Any] | None = None
) -> str:
    """Return an SVG drawing of the state graph with ``current`` highlighted.

    Args:
        current: the state the cycle is in.
        visited: states already run (drawn in a lighter tint).
        forward: the workflow's ``state -> next`` edges (default: the standard graph).
    """
    edges = [(a, b) for a, b in forward.items() if b] if forward else _EDGES
    order = _path(edges)
    box_w, box_h, gap = 118, 34, 18
    pos = {s: (10 + i * (box_w + gap), 14) for i, s in enumerate(order)}
    pos["FAILED"] = (10 + 2 * (box_w + gap), 84)
    width = 20 + len(order) * (box_w + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="130" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
        'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
    ]
    for a, b in edges:
        (x1, y1), (x2, y2) = pos[a], pos[b]
        parts.append(
            f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" '
            'stroke="#555" marker-end="url(#arrow)"/>'
        )
    for state, (x, y) in pos.items():
        if state == current:
            fill, stroke = ("#f4a6a6", "#b00") if state == "FAILED" else ("#ffd54f", "#e65100")
        elif state in visited:
            fill, stroke = "#e3f2fd", "#1565c0"
        else:
            fill, stroke = "#f5f5f5", "#999"
        weight = "bold" if state == current else "normal"
        parts.append(
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="2"/><text x="{x + box_w / 2}" y="{y + 21}" '
            f'text-anchor="middle" font-weight="{weight}">{html.escape(state)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _path(edges: list[tuple[str, str]]) -> list[str]:
    """The states of a linear workflow in the order it visits them (any workflow's states)."""
    onward = dict(edges)
    heads = [a for a in onward if a not in onward.values()]
    order = [heads[0] if heads else "IDLE"]
    while order[-1] in onward and onward[order[-1]] not in order:
        order.append(onward[order[-1]])
    known = [s for s in STATES if s != "FAILED"]
    return order if len(order) > 1 else known


def timings_figure(trace: list[dict[str, Any]]) -> Any:
    """Return a matplotlib figure: one bar per state run, its milliseconds."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.4))
    labels = [str(e.get("state")) for e in trace]
    values = [float(e.get("ms") or 0.0) for e in trace]
    colors = ["#c62828" if e.get("reason") else "#1565c0" for e in trace]
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), labels, rotation=20, fontsize=8)
    ax.set_ylabel("ms")
    ax.set_title("time per state")
    fig.tight_layout()
    return fig


class CycleStepper(w.VBox):
    """Step / Run / Abort buttons, the state graph, the trace table and the timings plot.

    Args:
        cycle: a cycle from ``persona.ask(...)`` or ``start_cycle(...)``.

    Example:
        >>> brick = image.root["personas"]["BRICK"]  # doctest: +SKIP
        >>> CycleStepper(brick.ask("Why is the sky blue?"))  # doctest: +SKIP
    """

    def __init__(self, cycle: Any) -> None:
        self.cycle = cycle
        self.step_button = w.Button(description="Step", icon="step-forward", button_style="primary")
        self.run_button = w.Button(description="Run", icon="play")
        self.abort_button = w.Button(description="Abort", icon="stop", button_style="danger")
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.abort_button.on_click(lambda _: self.abort())
        self.status = w.HTML()
        self.graph = w.HTML()
        self.table = w.Output()
        self.plot = w.Output()
        super().__init__(
            [
                w.HBox([self.step_button, self.run_button, self.abort_button]),
                self.status,
                self.graph,
                w.Tab([self.table, self.plot], titles=("Trace", "Timings")),
            ]
        )
        self.refresh()

    @property
    def session(self) -> Any:
        """The cycle's live session."""
        return session_of(self.cycle)

    def _guarded(self, action: Any) -> None:
        try:
            action()
        except BatosError as exc:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(exc))}</b>"
            return
        self.refresh()

    def step(self) -> None:
        """Run one state."""
        self._guarded(self.cycle.step)

    def run(self) -> None:
        """Run to the end."""
        self._guarded(self.cycle.run)

    def abort(self) -> None:
        """Abort the cycle: roll back and keep a failure record."""
        self._guarded(self.cycle.abort)

    def frame(self) -> Any:
        """The trace as a pandas DataFrame."""
        import pandas as pd

        rows = [{k: e.get(k) for k in TRACE_FIELDS} for e in self.session.trace]
        return pd.DataFrame(rows, columns=list(TRACE_FIELDS))

    def refresh(self) -> None:
        """Redraw status, graph, table and plot from the session."""
        import matplotlib.pyplot as plt
        from IPython.display import display

        session = self.session
        visited = [e["state"] for e in session.trace]
        self.graph.value = state_graph_svg(session.state, visited, dict(session.workflow.forward))
        note = f" — {html.escape(session.reason)}" if session.reason else ""
        self.status.value = (
            f"<b>{html.escape(session.status)}</b>, state <b>{session.state}</b>, "
            f"{len(session.trace)} step(s){note}"
        )
        done = session.closed
        for button in (self.step_button, self.run_button, self.abort_button):
            button.disabled = done
        frame = self.frame()
        if not frame.empty:
            frame["prompt"] = frame["prompt"].astype(str).str.slice(0, 120)
            frame["output"] = frame["output"].astype(str).str.slice(0, 160)
        self.table.clear_output()
        with self.table:
            display(frame)
        self.plot.clear_output()
        if session.trace:
            fig = timings_figure(session.trace)
            with self.plot:
                display(fig)
            plt.close(fig)
