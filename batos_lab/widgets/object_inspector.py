"""ObjectInspector: look inside a UvmObject, follow its parents, read its methods, edit a slot."""

from __future__ import annotations

import ast
import html
from typing import Any

import ipywidgets as w

from batos_lab.errors import BatosError
from batos_lab.objects import Method, NativeMethod, UvmObject, is_parent_slot, summarize

__all__ = ["ObjectInspector", "parse_slot_value"]


def parse_slot_value(text: str) -> Any:
    """Read a value typed into the editor: a Python literal, else the text itself.

    ``42`` becomes an int, ``[1, 2]`` a list, ``'hi'`` or ``hi`` the string ``hi``.
    """
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _pre(text: str) -> str:
    return f"<pre style='margin:0;white-space:pre-wrap'>{html.escape(text)}</pre>"


class ObjectInspector(w.VBox):
    """An ipywidget showing one object: OID, slots, clickable parents, methods, a slot editor.

    Args:
        obj: the object to show first.

    Example:
        >>> ObjectInspector(image["traits"])  # doctest: +SKIP
    """

    def __init__(self, obj: UvmObject) -> None:
        self.header = w.HTML()
        self.slots_html = w.HTML()
        self.parents_box = w.HBox()
        self.methods = w.Accordion()
        self.back_button = w.Button(description="Back", icon="arrow-left", disabled=True)
        self.back_button.on_click(lambda _: self.back())
        self.slot_picker = w.Combobox(placeholder="slot name", description="Slot")
        self.value_text = w.Text(
            placeholder="new value (a Python literal or text)", description="Value"
        )
        self.set_button = w.Button(description="Set and commit", button_style="warning")
        self.set_button.on_click(lambda _: self.apply_edit())
        self.status = w.HTML()
        editor = w.HBox([self.slot_picker, self.value_text, self.set_button])
        super().__init__(
            [
                w.HBox([self.back_button, self.header]),
                w.HTML("<b>Slots</b>"),
                self.slots_html,
                w.HTML("<b>Parents</b> (click to inspect)"),
                self.parents_box,
                w.HTML("<b>Methods</b>"),
                self.methods,
                w.HTML("<b>Edit a slot</b>"),
                editor,
                self.status,
            ]
        )
        self._history: list[UvmObject] = []
        self.obj = obj
        self.show(obj)

    # -- navigation

    def show(self, obj: UvmObject, remember: bool = False) -> None:
        """Show ``obj``; with ``remember``, Back returns to the current one."""
        if not isinstance(obj, UvmObject):
            raise BatosError(f"ObjectInspector shows UvmObjects, not {type(obj).__name__}.")
        if remember:
            self._history.append(self.obj)
        self.obj = obj
        self.back_button.disabled = not self._history
        self.refresh()

    def open_parent(self, slot: str) -> UvmObject:
        """Follow the parent slot ``slot`` and return the parent now shown."""
        parent = self.obj.get_slot(slot)
        self.show(parent, remember=True)
        return parent

    def back(self) -> None:
        """Return to the object shown before the last parent was opened."""
        if self._history:
            self.obj = self._history.pop()
            self.back_button.disabled = not self._history
            self.refresh()

    # -- rendering

    def refresh(self) -> None:
        """Redraw everything from the object's current slots."""
        obj = self.obj
        self.header.value = (
            f"<b>{html.escape(obj.short_name())}</b> &nbsp; OID {obj.oid_hex()} &nbsp; "
            f"{len(obj.slot_names())} slots, answers {len(obj.selectors())} selectors"
        )
        rows = []
        for name in obj.slot_names():
            value = obj.get_slot(name)
            if is_parent_slot(name) or isinstance(value, Method | NativeMethod):
                continue
            rows.append(
                f"<tr><td><code>{html.escape(name)}</code></td>"
                f"<td>{html.escape(type(value).__name__)}</td>"
                f"<td>{html.escape(summarize(value, 90))}</td></tr>"
            )
        self.slots_html.value = (
            "<table><tr><th>slot</th><th>type</th><th>value</th></tr>" + "".join(rows) + "</table>"
            if rows
            else "<i>no data slots</i>"
        )
        buttons = []
        for name, parent in obj.parents():
            button = w.Button(
                description=f"{name} → {parent.short_name()}", layout=w.Layout(width="auto")
            )
            button.on_click(lambda _, slot=name: self.open_parent(slot))
            buttons.append(button)
        self.parents_box.children = tuple(buttons)
        self._render_methods()
        self.slot_picker.options = tuple(
            n for n in obj.slot_names() if not isinstance(obj.get_slot(n), Method | NativeMethod)
        )

    def method_names(self) -> list[str]:
        """Return the own and inherited selectors that are methods, as the accordion shows them."""
        names = []
        for name in self.obj.selectors():
            if isinstance(self.obj.get_slot(name), Method | NativeMethod):
                names.append(name)
        return names

    def _render_methods(self) -> None:
        children, titles = [], []
        for name in self.method_names():
            owner, method = self.obj.lookup(name)
            where = "own" if owner is self.obj else f"from {owner.short_name()}" if owner else ""
            if isinstance(method, Method):
                prov = "\n".join(f"{k}: {summarize(v, 100)}" for k, v in method.provenance.items())
                body = _pre(method.source) + "<b>provenance</b>" + _pre(prov)
            else:
                body = _pre(f"native: {method.ref}\n{method.doc}")
            children.append(w.HTML(body))
            titles.append(f"{name} ({where})")
        self.methods.children = tuple(children)
        for index, title in enumerate(titles):
            self.methods.set_title(index, title)

    # -- editing

    def apply_edit(self) -> bool:
        """Assign the typed value to the chosen slot and commit with a note; report in status."""
        name = self.slot_picker.value.strip()
        value = parse_slot_value(self.value_text.value)
        jar = self.obj._p_jar
        try:
            if jar is None:
                raise BatosError(
                    f"{self.obj.short_name()} is not stored in an image yet; keep it in one "
                    "(image[name] = obj) and commit before editing it here."
                )
            self.obj.set_slot(name, value)  # refuses bad names and values before changing anything
        except BatosError as exc:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(exc))}</span>"
            return False
        try:
            txn = jar.transaction_manager.get()
            txn.note(f"inspector: set {name} of {self.obj.short_name()} to {summarize(value, 40)}")
            jar.transaction_manager.commit()
        except Exception as exc:
            jar.transaction_manager.abort()
            self.status.value = (
                f"<span style='color:#b00'>commit failed, edit rolled back: "
                f"{html.escape(str(exc))}</span>"
            )
            return False
        self.status.value = f"committed: {html.escape(name)} = {html.escape(summarize(value))}"
        self.refresh()
        return True
