"""The panel language: a small declarative description of an object's ipywidget panel.

A panel spec is plain data, so the image can store it, audit it and assemble it with kernel code
(nothing generated is ever run)::

    {"widgets": [{"id": "w1", "slot": "count", "kind": "IntSlider", "description": "Count"},
                 {"id": "w2", "slot": "increment", "kind": "Button", "description": "Add one"}],
     "layout": {"arrangement": "rows",
                "groups": [{"title": "Counter", "widgets": ["w1", "w2"]}]}}

Each widget shows or edits one slot of the object, with a kind from an allowlist
(:data:`KINDS`) that must suit the slot's value: sliders for numbers, a checkbox for a flag, text
boxes for text, a button for a method that takes no arguments, labels for anything. The layout
puts every widget in exactly one group; ``rows`` stacks the groups (a group's widgets side by
side), ``columns`` sets the groups side by side (a group's widgets stacked), ``tabs`` gives each
group a tab titled by the group.

:func:`audit_panel` checks a spec against an object and returns a :class:`PanelSpec`; every
problem is named (unknown kind, unknown slot, a kind that does not suit the slot, a duplicate id,
an empty layout, a widget placed twice or not at all) in one :class:`~batos_lab.errors.PanelError`.

Example:
    >>> from batos_lab.objects import UvmObject
    >>> counter = UvmObject(name="counter", count=3)
    >>> sorted(panel_slots(counter))
    ['count']
    >>> spec = audit_panel({"widgets": [{"id": "w1", "slot": "count", "kind": "IntSlider"}]},
    ...                    counter)
    >>> spec.layout.arrangement, spec.layout.groups[0].widgets
    ('columns', ('w1',))
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from batos_lab.errors import PanelError
from batos_lab.objects import Method, NativeMethod, UvmObject, is_parent_slot, summarize

__all__ = [
    "ARRANGEMENTS",
    "KINDS",
    "PANEL_SLOT",
    "GroupSpec",
    "LayoutSpec",
    "PanelSpec",
    "SlotInfo",
    "WidgetKind",
    "WidgetSpec",
    "audit_panel",
    "check_layout",
    "check_widgets",
    "default_layout",
    "panel_slots",
    "parse_json_object",
    "value_type",
]

#: The slot an object keeps its accepted panel spec in.
PANEL_SLOT = "panel_spec"

#: How the groups of a layout are arranged.
ARRANGEMENTS = ("rows", "columns", "tabs")

MAX_WIDGETS = 16
MAX_DESCRIPTION = 80
MAX_TITLE = 60
_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_NOT_SHOWN = frozenset({"name", PANEL_SLOT})
_DATA = ("str", "int", "float", "bool", "list", "dict", "none", "object")


@dataclass(frozen=True)
class WidgetKind:
    """One kind of the allowlist.

    Attributes:
        name: the ipywidgets class it becomes (``IntSlider``).
        accepts: the slot value types it suits (see :func:`value_type`).
        editable: True when changing the widget writes the slot back.
        doc: what it does, for prompts and docs.
    """

    name: str
    accepts: tuple[str, ...]
    editable: bool
    doc: str


#: The widget kinds a panel may use, by name.
KINDS: dict[str, WidgetKind] = {
    kind.name: kind
    for kind in (
        WidgetKind("Label", _DATA, False, "shows the value as one line of text"),
        WidgetKind("HTML", _DATA, False, "shows the value, formatted"),
        WidgetKind("Text", ("str",), True, "edits a short text"),
        WidgetKind("Textarea", ("str",), True, "edits a longer text"),
        WidgetKind("IntSlider", ("int",), True, "edits a whole number with a slider"),
        WidgetKind("IntText", ("int",), True, "edits a whole number in a box"),
        WidgetKind("FloatSlider", ("float",), True, "edits a decimal number with a slider"),
        WidgetKind("FloatText", ("float",), True, "edits a decimal number in a box"),
        WidgetKind("Checkbox", ("bool",), True, "edits a yes/no flag"),
        WidgetKind("Dropdown", ("list",), False, "lets one browse the items of a list"),
        WidgetKind("Button", ("method",), False, "sends the message (a method without arguments)"),
    )
}


def _takes_no_arguments(method: Method) -> bool:
    try:
        func = next(n for n in ast.parse(method.source).body if isinstance(n, ast.FunctionDef))
    except (SyntaxError, StopIteration):
        return False
    args = func.args
    required = len(args.posonlyargs) + len(args.args) - 1 - len(args.defaults)
    required_kw = sum(1 for default in args.kw_defaults if default is None)
    return required <= 0 and required_kw == 0


def value_type(value: Any) -> str | None:
    """Return the type label of a slot value, or None when no widget can show it.

    Labels: ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``, ``none``, ``object``, and
    ``method`` for a stored method that takes no arguments besides ``self``. Native methods and
    methods that need arguments get None.
    """
    if isinstance(value, NativeMethod):
        return None
    if isinstance(value, Method):
        return "method" if _takes_no_arguments(value) else None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return "dict"
    if isinstance(value, Sequence):
        return "list"
    return "object"


@dataclass(frozen=True)
class SlotInfo:
    """A slot a panel may show: its name, type label, a short view of its value, its kinds."""

    name: str
    type: str
    summary: str
    kinds: tuple[str, ...]


def panel_slots(obj: UvmObject) -> dict[str, SlotInfo]:
    """Return the object's own slots a panel may show, in slot order, with the kinds each suits.

    Left out: parent slots, ``name`` (the panel's header shows it), the stored panel spec
    itself, native methods, and methods that take arguments.
    """
    found: dict[str, SlotInfo] = {}
    for name in obj.slot_names():
        if is_parent_slot(name) or name in _NOT_SHOWN:
            continue
        value = obj.get_slot(name)
        kind = value_type(value)
        if kind is None:
            continue
        kinds = tuple(k.name for k in KINDS.values() if kind in k.accepts)
        summary = "a method" if kind == "method" else summarize(value, 40)
        found[name] = SlotInfo(name, kind, summary, kinds)
    return found


@dataclass(frozen=True)
class WidgetSpec:
    """One audited widget: its id, kind, the slot it shows or edits, its description."""

    id: str
    kind: str
    slot: str
    description: str

    def to_data(self) -> dict[str, str]:
        """Return the widget as plain data."""
        return {
            "id": self.id,
            "slot": self.slot,
            "kind": self.kind,
            "description": self.description,
        }


@dataclass(frozen=True)
class GroupSpec:
    """One group of a layout: a title and the ids of its widgets, in order."""

    title: str
    widgets: tuple[str, ...]


@dataclass(frozen=True)
class LayoutSpec:
    """An audited layout: an arrangement from :data:`ARRANGEMENTS` and its groups."""

    arrangement: str
    groups: tuple[GroupSpec, ...]

    def to_data(self) -> dict[str, Any]:
        """Return the layout as plain data."""
        return {
            "arrangement": self.arrangement,
            "groups": [{"title": g.title, "widgets": list(g.widgets)} for g in self.groups],
        }


@dataclass(frozen=True)
class PanelSpec:
    """An audited panel: widgets and their layout."""

    widgets: tuple[WidgetSpec, ...]
    layout: LayoutSpec

    def to_data(self) -> dict[str, Any]:
        """Return the panel as plain data (what the image stores)."""
        return {"widgets": [w.to_data() for w in self.widgets], "layout": self.layout.to_data()}

    def widget(self, widget_id: str) -> WidgetSpec:
        """Return the widget with ``widget_id``."""
        return next(w for w in self.widgets if w.id == widget_id)


def parse_json_object(text: str, what: str) -> dict[str, Any]:
    """Return the JSON object inside a model's reply.

    Args:
        text: the reply (chatter around one JSON object is ignored).
        what: what the object is, for messages (``"BRICK's widget list"``).

    Raises:
        PanelError: no object, or JSON that does not parse.
    """
    if not isinstance(text, str) or "{" not in text:
        raise PanelError(f"{what} should be one JSON object; the reply held none ({text!r:.80}).")
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise PanelError(f"{what} is not valid JSON: {exc.msg} at column {exc.colno}.") from None
    if not isinstance(data, dict):
        raise PanelError(f"{what} should be a JSON object, not {type(data).__name__}.")
    return data


def _is_list(value: Any) -> bool:
    """True for a list, a tuple or a stored (persistent) list; False for text."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    return " ".join(value.split())[:limit]


def _check_widget(
    index: int, raw: Any, slots: Mapping[str, SlotInfo], problems: list[str]
) -> WidgetSpec | None:
    where = f"Widget {index + 1}"
    if not isinstance(raw, Mapping):
        problems.append(f"{where} is a {type(raw).__name__}, not an object with id, slot, kind.")
        return None
    extra = sorted(set(raw) - {"id", "slot", "kind", "description"})
    if extra:
        problems.append(f"{where} has unknown key(s) {', '.join(map(repr, extra))}.")
    widget_id = raw.get("id")
    if not isinstance(widget_id, str) or not _ID.match(widget_id):
        problems.append(
            f"{where} has the id {widget_id!r}; an id is a short name (letters, digits, _)."
        )
        return None
    where = f"Widget {widget_id!r}"
    kind, slot = raw.get("kind"), raw.get("slot")
    ok = True
    if kind not in KINDS:
        problems.append(f"{where} has the unknown kind {kind!r}; the kinds are {', '.join(KINDS)}.")
        ok = False
    if slot not in slots:
        problems.append(
            f"{where} names the unknown slot {slot!r}; the slots a panel may show are "
            f"{', '.join(slots) or '(none)'}."
        )
        ok = False
    if ok and kind not in slots[str(slot)].kinds:
        info = slots[str(slot)]
        problems.append(
            f"{where}: the kind {kind} cannot show the slot {slot!r}, which holds a {info.type}; "
            f"kinds for a {info.type}: {', '.join(info.kinds)}."
        )
        ok = False
    description = _text(raw.get("description", slot), MAX_DESCRIPTION)
    if description is None:
        problems.append(f"{where} has a description that is not text.")
        ok = False
    if not ok:
        return None
    return WidgetSpec(widget_id, str(kind), str(slot), description or str(slot))


def check_widgets(data: Any, slots: Mapping[str, SlotInfo]) -> tuple[WidgetSpec, ...]:
    """Audit a widget list (``{"widgets": [...]}`` or the list itself) against ``slots``.

    Raises:
        PanelError: naming every problem: not a list, empty, too long, unknown kind or slot,
            a kind that does not suit its slot, a duplicate id.
    """
    raw = data.get("widgets") if isinstance(data, Mapping) else data
    if not _is_list(raw):
        _refuse(f"a panel needs a list of widgets under 'widgets', not a {type(raw).__name__}")
    if not raw:
        _refuse("the widget list is empty; a panel shows at least one slot")
    problems: list[str] = []
    if len(raw) > MAX_WIDGETS:
        problems.append(f"There are {len(raw)} widgets; a panel holds at most {MAX_WIDGETS}.")
    widgets = [w for i, r in enumerate(raw) if (w := _check_widget(i, r, slots, problems))]
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        widget_id = item.get("id") if isinstance(item, Mapping) else None
        if isinstance(widget_id, str) and widget_id in seen:
            problems.append(
                f"The id {widget_id!r} is used twice (widgets {seen[widget_id] + 1} and "
                f"{index + 1}); give every widget its own id."
            )
        elif isinstance(widget_id, str):
            seen[widget_id] = index
    _raise(problems)
    return tuple(widgets)


def check_layout(data: Any, ids: Sequence[str]) -> LayoutSpec:
    """Audit a layout against the widget ids it must place, each exactly once.

    Raises:
        PanelError: naming every problem: an unknown arrangement, no groups, an empty group,
            an unknown id, an id placed twice, a widget left out.
    """
    if not isinstance(data, Mapping):
        _refuse(f"a layout is an object with arrangement and groups, not {data!r:.60}")
    problems: list[str] = []
    extra = sorted(set(data) - {"arrangement", "groups"})
    if extra:
        problems.append(f"The layout has unknown key(s) {', '.join(map(repr, extra))}.")
    arrangement = data.get("arrangement")
    if arrangement not in ARRANGEMENTS:
        problems.append(
            f"The arrangement {arrangement!r} is unknown; use one of {', '.join(ARRANGEMENTS)}."
        )
    groups_raw = data.get("groups")
    if not _is_list(groups_raw) or not groups_raw:
        _refuse(*problems, "the layout is empty: it has no groups, so it places no widget")
    groups: list[GroupSpec] = []
    placed: dict[str, int] = {}
    for index, raw in enumerate(groups_raw):
        where = f"Group {index + 1}"
        if not isinstance(raw, Mapping) or not _is_list(raw.get("widgets")):
            problems.append(f"{where} should be an object with a title and a list of widgets.")
            continue
        title = _text(raw.get("title", ""), MAX_TITLE)
        if title is None:
            problems.append(f"{where} has a title that is not text.")
            title = ""
        members = list(raw["widgets"])
        if not members:
            problems.append(f"{where} ({title!r}) is empty; every group holds a widget.")
        for member in members:
            if member not in ids:
                problems.append(
                    f"{where} places the unknown widget {member!r}; the widgets are "
                    f"{', '.join(ids)}."
                )
            elif member in placed:
                problems.append(
                    f"The widget {member!r} is placed twice (groups {placed[member] + 1} and "
                    f"{index + 1}); place each widget once."
                )
            else:
                placed[member] = index
        groups.append(GroupSpec(title, tuple(str(m) for m in members)))
    left_out = [i for i in ids if i not in placed]
    if left_out:
        problems.append(
            f"The layout leaves out {', '.join(left_out)}; place every widget in a group."
        )
    _raise(problems)
    return LayoutSpec(str(arrangement), tuple(groups))


def default_layout(widgets: Sequence[WidgetSpec], title: str = "") -> LayoutSpec:
    """Return the layout used when none was made: one column holding every widget in order."""
    return LayoutSpec("columns", (GroupSpec(title, tuple(w.id for w in widgets)),))


def audit_panel(spec: Any, obj: UvmObject) -> PanelSpec:
    """Audit a whole panel spec against an object as it is now.

    Args:
        spec: ``{"widgets": [...], "layout": {...}}`` (a missing layout means one column; other
            keys such as ``provenance`` are ignored).
        obj: the object the panel shows.

    Returns:
        The audited spec.

    Raises:
        PanelError: naming every problem of the widgets (or, when they pass, of the layout).
    """
    if not isinstance(spec, Mapping):
        _refuse(f"a panel spec is an object with widgets and a layout, not {spec!r:.60}")
    widgets = check_widgets(spec, panel_slots(obj))
    raw_layout = spec.get("layout")
    if raw_layout is None:
        layout = default_layout(widgets, str(obj.get_slot("name", "")))
    else:
        layout = check_layout(raw_layout, [w.id for w in widgets])
    return PanelSpec(widgets, layout)


def _raise(problems: list[str]) -> None:
    """Raise one PanelError naming every problem (nothing when there is none)."""
    if problems:
        _refuse(*problems)


def _refuse(*problems: str) -> NoReturn:
    sentences = [p[0].upper() + p[1:] + ("" if p.endswith(".") else ".") for p in problems]
    raise PanelError(
        f"The panel spec is refused ({len(problems)} problem(s)): "
        + " ".join(sentences)
        + " Nothing was stored.",
        problems=sentences,
    )
