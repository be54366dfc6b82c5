"""Panel: an object's own ipywidget panel, assembled by kernel code from its audited spec.

The spec (see :mod:`batos_lab.widgets.panel_spec`) says which slots the panel shows, with which
kinds of widget, and how they are grouped. :class:`Panel` turns it into real ipywidgets:

* every widget reads its slot's current value when the panel is built and on :meth:`Panel.refresh`;
* an editable widget (text, sliders, number boxes, checkbox) writes a change back to its slot and
  commits it in one transaction with a note; a refused or conflicting write is rolled back, the
  widget shows the stored value again and the panel's status line says why;
* a button sends its message (a method without arguments) in a transaction and shows the answer.

:func:`display_yourself` builds the panel an object keeps in its ``panel_spec`` slot, so it works
after the image is reopened, with no model.

Example:
    >>> panel = display_yourself(image["counter"])  # doctest: +SKIP
    >>> panel  # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping
from typing import Any

import ipywidgets as w

from batos_lab.errors import PanelError
from batos_lab.objects import UvmObject, summarize
from batos_lab.widgets.panel_spec import (
    KINDS,
    PANEL_SLOT,
    LayoutSpec,
    PanelSpec,
    WidgetSpec,
    audit_panel,
    value_type,
)

__all__ = ["Panel", "display_yourself"]


def _int_range(value: int) -> tuple[int, int]:
    return min(0, 2 * value), max(100, 2 * value)


def _float_range(value: float) -> tuple[float, float]:
    return min(0.0, 2 * value), max(1.0, 2 * value)


def _shown(value: Any, width: int) -> str:
    return value if isinstance(value, str) and len(value) <= width else summarize(value, width)


def _make(spec: WidgetSpec, value: Any) -> Any:
    """Return the ipywidget of one widget spec, showing ``value``."""
    common: dict[str, Any] = {
        "description": spec.description,
        "style": {"description_width": "initial"},
    }
    kind = spec.kind
    if kind == "Label":
        return w.Label(value=_shown(value, 120), **common)
    if kind == "HTML":
        return w.HTML(value=f"<code>{html.escape(_shown(value, 400))}</code>", **common)
    if kind in ("Text", "Textarea"):
        return getattr(w, kind)(value=str(value), continuous_update=False, **common)
    if kind == "IntSlider":
        low, high = _int_range(int(value))
        return w.IntSlider(value=value, min=low, max=high, continuous_update=False, **common)
    if kind == "IntText":
        return w.IntText(value=value, **common)
    if kind == "FloatSlider":
        low_f, high_f = _float_range(float(value))
        return w.FloatSlider(
            value=value, min=low_f, max=high_f, step=(high_f - low_f) / 100,
            continuous_update=False, **common,
        )  # fmt: skip
    if kind == "FloatText":
        return w.FloatText(value=value, **common)
    if kind == "Checkbox":
        return w.Checkbox(value=bool(value), indent=False, **common)
    if kind == "Dropdown":
        options = [(summarize(item, 60), i) for i, item in enumerate(value)] or [("(empty)", -1)]
        return w.Dropdown(options=options, **common)
    if kind == "Button":
        return w.Button(description=spec.description, tooltip=f"sends {spec.slot}")
    raise PanelError(f"No builder for the widget kind {kind!r}; the kinds are {', '.join(KINDS)}.")


def _arrange(layout: LayoutSpec, controls: Mapping[str, Any]) -> Any:
    """Return the container that arranges the controls as the layout says."""

    def heading(title: str) -> list[Any]:
        return [w.HTML(f"<b>{html.escape(title)}</b>")] if title else []

    groups = layout.groups
    if layout.arrangement == "tabs":
        boxes = [w.VBox([controls[i] for i in g.widgets]) for g in groups]
        titles = [g.title or f"Group {n + 1}" for n, g in enumerate(groups)]
        return w.Tab(children=boxes, titles=titles)
    if layout.arrangement == "rows":
        rows = [
            w.VBox([*heading(g.title), w.HBox([controls[i] for i in g.widgets])]) for g in groups
        ]
        return w.VBox(rows)
    columns = [w.VBox([*heading(g.title), *(controls[i] for i in g.widgets)]) for g in groups]
    return w.HBox(columns)


class Panel(w.VBox):
    """The live ipywidget panel of one object, built from an audited :class:`PanelSpec`.

    Args:
        obj: the object shown.
        spec: the audited spec (see :func:`~batos_lab.widgets.panel_spec.audit_panel`).
        provenance: how the spec was made (shown in the footer), or None.

    Attributes:
        controls: widget id -> the ipywidget built for it.
        status: the line that reports writes, button answers and refusals.
    """

    def __init__(
        self, obj: UvmObject, spec: PanelSpec, provenance: Mapping[str, Any] | None = None
    ) -> None:
        self.obj = obj
        self.spec = spec
        self._quiet = False
        self._error: BaseException | None = None
        self.controls: dict[str, Any] = {}
        for widget in spec.widgets:
            value = obj.get_slot(widget.slot)
            control = _make(widget, None if widget.kind == "Button" else value)
            self._bind(widget, control)
            self.controls[widget.id] = control
        self.status = w.HTML()
        self.refresh_button = w.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        header = w.HTML(f"<b>{html.escape(obj.short_name())}</b> · the panel it built for itself")
        footer = w.HBox([self.refresh_button, self.status])
        parts = [header, _arrange(spec.layout, self.controls), footer]
        if provenance:
            parts.append(w.HTML(_provenance_line(provenance)))
        super().__init__(parts)

    # -- binding

    def _bind(self, widget: WidgetSpec, control: Any) -> None:
        if widget.kind == "Button":
            control.on_click(lambda _, wid=widget.id: self.press(wid))
        elif KINDS[widget.kind].editable:
            control.observe(self._observer(widget), names="value")

    def _observer(self, widget: WidgetSpec) -> Callable[[dict[str, Any]], None]:
        def changed(change: dict[str, Any]) -> None:
            if not self._quiet:
                self.write(widget.id, change["new"])

        return changed

    def refresh(self) -> None:
        """Show every slot's current value again (writes nothing).

        A slot that was removed, or whose value no longer suits its widget, is named in the
        status line and its widget keeps what it showed.
        """
        self._quiet = True
        stale: list[str] = []
        try:
            for widget in self.spec.widgets:
                if widget.kind == "Button":
                    continue
                value = self.obj.get_slot(widget.slot, None)
                if value_type(value) not in KINDS[widget.kind].accepts:
                    stale.append(widget.slot)
                    continue
                self._show(widget, value)
        finally:
            self._quiet = False
        if stale:
            self.status.value = html.escape(
                f"No longer shown as built: {', '.join(stale)} (removed or of another type); "
                "build a new panel with display_yourself(rebuild=True)."
            )

    def _show(self, widget: WidgetSpec, value: Any) -> None:
        control = self.controls[widget.id]
        kind = widget.kind
        if kind == "Label":
            control.value = _shown(value, 120)
        elif kind == "HTML":
            control.value = f"<code>{html.escape(_shown(value, 400))}</code>"
        elif kind == "Dropdown":
            items = value if isinstance(value, list | tuple) else list(value or [])
            control.options = [(summarize(v, 60), i) for i, v in enumerate(items)] or [
                ("(empty)", -1)
            ]
        elif kind == "IntSlider":
            control.min, control.max = min(control.min, int(value)), max(control.max, int(value))
            control.value = value
        elif kind == "FloatSlider":
            control.min = min(control.min, float(value))
            control.max = max(control.max, float(value))
            control.value = value
        else:
            control.value = value

    # -- writing back

    def value_of(self, widget_id: str) -> Any:
        """Return what the widget ``widget_id`` shows now."""
        return self.controls[widget_id].value

    def write(self, widget_id: str, value: Any) -> bool:
        """Write ``value`` to the slot of widget ``widget_id`` and commit it; report in status.

        Returns:
            True when the value was stored; False when it was refused or the commit failed
            (then the transaction is aborted and the widget shows the stored value again).
        """
        widget = self.spec.widget(widget_id)
        if not KINDS[widget.kind].editable:
            raise PanelError(f"The widget {widget_id!r} is a {widget.kind}; it cannot write.")
        note = f"panel: {widget.slot} of {self.obj.short_name()} set to {summarize(value, 40)}"
        return self._transact(note, lambda: self.obj.set_slot(widget.slot, value)) is not _FAILED

    def press(self, widget_id: str) -> Any:
        """Send the message of button ``widget_id`` in a transaction and return its answer.

        A failure is reported in the status line (the transaction is aborted) and returned as
        the exception object.
        """
        widget = self.spec.widget(widget_id)
        if widget.kind != "Button":
            raise PanelError(f"The widget {widget_id!r} is a {widget.kind}, not a Button.")
        note = f"panel: {self.obj.short_name()} was sent {widget.slot}"
        result = self._transact(note, lambda: self.obj.send(widget.slot), show_result=widget.slot)
        return self._error if result is _FAILED else result

    def _transact(self, note: str, action: Callable[[], Any], show_result: str = "") -> Any:
        jar = self.obj._p_jar
        manager = jar.transaction_manager if jar is not None else None
        self._error = None
        try:
            result = action()
            if manager is not None:
                manager.get().note(note)
                manager.commit()
        except Exception as exc:
            if manager is not None:
                manager.abort()
            self._error = exc
            self.status.value = (
                f"<span style='color:#b00'>{html.escape(type(exc).__name__)}: "
                f"{html.escape(str(exc)[:300])} (rolled back)</span>"
            )
            self.refresh()
            return _FAILED
        stored = "committed" if manager is not None else "changed in memory (not in an image)"
        shown = f"{show_result}() → {summarize(result, 80)}; " if show_result else ""
        self.status.value = html.escape(f"{shown}{stored}: {note.split(': ', 1)[-1]}")
        self.refresh()
        return result

    def dispose(self) -> None:
        """Close the panel and every widget in it (their front-end models go away)."""
        stack = list(self.children)
        while stack:
            item = stack.pop()
            stack.extend(getattr(item, "children", ()))
            item.close()
        self.close()


_FAILED = object()


def _provenance_line(provenance: Mapping[str, Any]) -> str:
    parts = [
        f"{key}: {summarize(provenance[key], 40)}"
        for key in ("workflow", "model", "created")
        if provenance.get(key)
    ]
    return f"<small style='color:#666'>{html.escape(' · '.join(parts))}</small>"


def display_yourself(obj: UvmObject) -> Panel:
    """Return the live panel an object keeps in its ``panel_spec`` slot (no model needed).

    The stored spec is audited again against the object's slots as they are now.

    Raises:
        PanelError: the object keeps no panel, or its spec no longer fits its slots (the message
            names what changed; build a new panel with the UI workflow).
    """
    if not isinstance(obj, UvmObject):
        raise PanelError(f"Only UvmObjects display themselves, not {type(obj).__name__}.")
    if not obj.has_slot(PANEL_SLOT):
        raise PanelError(
            f"{obj.short_name()} keeps no panel yet. Build one with the UI workflow: "
            "batos_lab.psm.start_panel_cycle(obj).run(), then call display_yourself again."
        )
    stored = obj.get_slot(PANEL_SLOT)
    try:
        spec = audit_panel(stored, obj)
    except PanelError as exc:
        raise PanelError(
            f"The panel {obj.short_name()} keeps no longer fits its slots: {exc} Build a new one "
            "with batos_lab.psm.start_panel_cycle(obj).run().",
            problems=exc.problems,
        ) from None
    provenance = stored.get("provenance") if isinstance(stored, Mapping) else None
    return Panel(obj, spec, provenance)
