"""What the states of the UI-generation workflow do: gather, draft, arrange, assemble.

Each function takes the cycle (the receiver of ``process``), works in the cycle's transaction,
keeps its results in ``cycle.scratch`` and returns a trace result (persona, adapter, prompt,
output, tokens, notices, ``ok`` and, when not ok, ``reason``). The object whose panel is built
is ``cycle.target``.

BRICK's widgets and ROBIN's layout are asked for with role ``plan`` (structured JSON): a mind
backed by the cognitive core decodes them under the grammars of
:mod:`batos_lab.psm.guided_panel`; any other mind (a :class:`~batos_lab.psm.mind.ScriptedMind`)
answers from its script, which :func:`~batos_lab.psm.ui_workflow.panel_script` helps to write.
Only ALFRED judges: the spec is audited by kernel code
(:func:`~batos_lab.widgets.panel_spec.audit_panel`) before it is assembled and stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from batos_lab.errors import PanelError, PSMError
from batos_lab.psm.cycle import CycleSession, current_session
from batos_lab.psm.guided_panel import GrammarCursor, LayoutGrammar, WidgetGrammar
from batos_lab.psm.mind import Mind, Reply, Request
from batos_lab.psm.ui_workflow import PanelSettings
from batos_lab.widgets.panel_spec import (
    KINDS,
    PANEL_SLOT,
    SlotInfo,
    audit_panel,
    panel_slots,
    parse_json_object,
)

__all__ = [
    "arrange",
    "ask_guided",
    "assemble",
    "draft",
    "gather",
    "layout_prompt",
    "requirements_prompt",
    "widgets_prompt",
]


def _session() -> CycleSession:
    session = current_session()
    if session is None:
        raise PSMError("A state ran outside a cycle; drive cycles with cycle.step().")
    return session


def _settings(cycle: Any) -> PanelSettings:
    return PanelSettings(**dict(cycle.scratch.get("panel_settings", {})))


def _persona(cycle: Any, name: str) -> Any:
    return cycle._p_jar.root()["personas"][name]


def _system(persona: Any, task: str) -> str:
    return f"You are {persona.name}, {persona.get_slot('title', '')}. {task}"


def _editable_first(info: SlotInfo) -> tuple[str, ...]:
    return tuple(sorted(info.kinds, key=lambda k: not KINDS[k].editable))


def _record(cycle: Any, state: str, request: Request, reply: Reply) -> None:
    cycle.scratch["prompts"][state] = request.prompt
    cycle.scratch["adapters"][state] = reply.adapter or request.adapter


def _entry(request: Request, reply: Reply, **fields: Any) -> dict[str, Any]:
    """The trace fields of a state that asked the mind once; ``fields`` add or override."""
    return {
        "persona": request.persona,
        "adapter": reply.adapter or request.adapter,
        "prompt": request.prompt,
        "output": reply.text,
        "tokens": reply.completion_tokens,
        "notices": list(reply.notices),
        "ok": False,
        **fields,
    }


# --------------------------------------------------------------------------- prompts


def requirements_prompt(name: str, slots: Mapping[str, SlotInfo]) -> str:
    """Return BABS's prompt: an example, the object's slots, the request for requirements."""
    lines = [
        "A small control panel of widgets will be made for an object of a living image. "
        "List what the panel must offer, in three short lines starting with '- '.",
        "Example. Object 'lamp', slots: watts (int), on (bool), toggle (a method).",
        "- Let the user set the power in watts.",
        "- Show whether the lamp is on.",
        "- Offer a button that toggles it.",
        f"Now the object '{name}'. Its slots:",
        *(
            f"- {s.name}: a method without arguments"
            if s.type == "method"
            else f"- {s.name} ({s.type}): {s.summary}"
            for s in slots.values()
        ),
        "Its requirements:",
    ]
    return "\n".join(lines)


_WIDGETS_EXAMPLE = (
    '{"widgets": [{"id": "w1", "slot": "watts", "kind": "IntSlider", "description": "Watts"}, '
    '{"id": "w2", "slot": "on", "kind": "Checkbox", "description": "On or off"}, '
    '{"id": "w3", "slot": "toggle", "kind": "Button", "description": "Toggle it"}]}'
)


def widgets_prompt(name: str, slots: Mapping[str, SlotInfo], requirements: str) -> str:
    """Return BRICK's prompt: kinds, an example, the object's slots with their kinds, needs."""
    lines = [
        f"Choose the widgets of a small control panel for the object '{name}'.",
        "Each widget shows or edits one slot. Label and HTML only show a value; Text, Textarea, "
        "IntSlider, IntText, FloatSlider, FloatText and Checkbox let the user change it; "
        "Dropdown browses a list; Button sends a message.",
        "Example. Object 'lamp', slots: watts (int), on (bool), toggle (a method).",
        _WIDGETS_EXAMPLE,
        f"Now the object '{name}'. Its slots, and the kinds each may use:",
        *(
            f"- {s.name} ({s.type}, now {s.summary}): {', '.join(_editable_first(s))}"
            for s in slots.values()
        ),
    ]
    if requirements.strip():
        lines += ["Requirements from BABS:", requirements.strip()]
    lines.append(
        "Reply with JSON only, in the shape of the example. A description starts with the "
        "slot's name; add a word or two, or none."
    )
    return "\n".join(lines)


_LAYOUT_EXAMPLE = (
    '{"arrangement": "rows", "groups": [{"title": "Settings", "widgets": ["w1", "w2"]}, '
    '{"title": "Actions", "widgets": ["w3"]}]}'
)


def layout_prompt(name: str, widgets: list[Mapping[str, Any]]) -> str:
    """Return ROBIN's prompt: the widgets, the arrangements, an example."""
    lines = [
        f"Arrange the widgets of the panel of '{name}' into groups.",
        "Widgets:",
        *(
            f"- {w.get('id')}: {w.get('kind')} for {w.get('slot')} ({w.get('description', '')})"
            for w in widgets
        ),
        "Arrangements: rows (each group is one row), columns (each group is one column), tabs "
        "(each group is one tab, named by its title).",
        "Example, for a lamp with w1: IntSlider for watts, w2: Checkbox for on, w3: Button for "
        "toggle:",
        _LAYOUT_EXAMPLE,
        "Reply with JSON only. Place every widget exactly once; give each group a short title.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the mind


def ask_guided(mind: Mind, request: Request, start: GrammarCursor) -> Reply:
    """Ask for structured JSON: decoded under the grammar when the mind has a cognitive core.

    A mind with a ``guided(request, start)`` method is asked through it; a mind with a ``core``
    (:class:`~batos_lab.psm.mind.ModelMind`) is decoded with
    :func:`~batos_lab.psm.guided_panel.generate_guided`; any other mind answers the request as
    it is (a scripted mind's text is audited like the model's).
    """
    guided = getattr(mind, "guided", None)
    if callable(guided):
        return guided(request, start)  # type: ignore[no-any-return]
    core = getattr(mind, "core", None)
    if core is None:
        return mind.answer(request)
    from batos_lab.limits import paused
    from batos_lab.psm.guided_panel import generate_guided

    # ModelMind serializes model calls with its lock; share it so cycles in threads stay safe
    lock = getattr(mind, "_lock", None) or contextlib.nullcontext()
    with lock, paused():
        return generate_guided(  # type: ignore[no-any-return]
            core,
            request.prompt,
            system=request.system,
            start=start,
            adapter=request.adapter,
            max_new_tokens=request.max_new_tokens,
        )


# --------------------------------------------------------------------------- the states


def _clean_requirements(text: str, limit: int) -> str:
    lines = []
    for line in text.splitlines():
        line = " ".join(line.strip().lstrip("-*•0123456789.) ").split())
        if line:
            lines.append(f"- {line[:120]}")
    return "\n".join(lines[:limit])


def gather(cycle: Any) -> dict[str, Any]:
    """GATHERING: BABS lists the panel's requirements (free text, a bounded number of lines)."""
    session, settings, target = _session(), _settings(cycle), cycle.target
    babs = _persona(cycle, "BABS")
    request = Request(
        role="facet",
        prompt=requirements_prompt(str(target.get_slot("name", "object")), panel_slots(target)),
        system=_system(babs, "You find out what people need and say it in short lines."),
        persona="BABS",
        adapter=babs.get_slot("adapter", None),
        max_new_tokens=settings.requirement_tokens,
    )
    reply = session.mind.answer(request)
    _record(cycle, "GATHERING", request, reply)
    requirements = _clean_requirements(reply.text, settings.max_requirements)
    notices = list(reply.notices)
    if not requirements:
        notices.append("BABS listed no requirement; BRICK works from the slots alone.")
    cycle.scratch["requirements"] = requirements
    return _entry(request, reply, output=requirements, notices=notices, ok=True)


def draft(cycle: Any) -> dict[str, Any]:
    """DRAFTING: BRICK chooses the widgets (guided JSON); a reply that is not JSON fails."""
    session, settings, target = _session(), _settings(cycle), cycle.target
    slots = panel_slots(target)
    brick = _persona(cycle, "BRICK")
    name = str(target.get_slot("name", "object"))
    most = max(1, min(settings.max_widgets, len(slots)))
    request = Request(
        role="plan",
        prompt=widgets_prompt(name, slots, str(cycle.scratch.get("requirements", ""))),
        system=_system(brick, "You choose the widgets of a panel and reply with JSON."),
        persona="BRICK",
        adapter=brick.get_slot("adapter", None),
        # the longest list the grammar allows: keys and ids, a slot, a kind, a description
        max_new_tokens=min(settings.widget_tokens, most * (48 + settings.description_chars)),
    )
    grammar = WidgetGrammar(
        slots=tuple((s.name, _editable_first(s)) for s in slots.values()),
        max_widgets=most,
        max_chars=settings.description_chars,
        min_widgets=min(settings.min_widgets, most),
    )
    reply = ask_guided(session.mind, request, GrammarCursor.start(grammar))
    _record(cycle, "DRAFTING", request, reply)
    result = _entry(request, reply)
    try:
        data = parse_json_object(reply.text, "BRICK's widget list")
    except PanelError as exc:
        result["reason"] = str(exc)
        return result
    widgets = data.get("widgets")
    if not isinstance(widgets, list):
        result["reason"] = "BRICK's widget list has no list under 'widgets'."
        return result
    cycle.scratch["widgets"] = widgets
    result["ok"] = True
    return result


def _widget_ids(widgets: list[Any]) -> list[str]:
    ids: list[str] = []
    for widget in widgets:
        wid = widget.get("id") if isinstance(widget, Mapping) else None
        if isinstance(wid, str) and wid and '"' not in wid and wid not in ids:
            ids.append(wid)
    return ids


def arrange(cycle: Any) -> dict[str, Any]:
    """ARRANGING: ROBIN groups the widgets (guided JSON); a reply that is not JSON fails."""
    session, settings, target = _session(), _settings(cycle), cycle.target
    widgets = [dict(w) if isinstance(w, Mapping) else w for w in cycle.scratch["widgets"]]
    ids = _widget_ids(widgets)
    if not ids:
        return {"persona": "ROBIN", "ok": False, "reason": "There are no widget ids to arrange."}
    robin = _persona(cycle, "ROBIN")
    request = Request(
        role="plan",
        prompt=layout_prompt(str(target.get_slot("name", "object")), widgets),
        system=_system(robin, "You arrange things so they are pleasant to use; reply with JSON."),
        persona="ROBIN",
        adapter=robin.get_slot("adapter", None),
        # the longest layout: one group (and its title) per widget
        max_new_tokens=min(settings.layout_tokens, 16 + len(ids) * (24 + settings.title_chars)),
    )
    grammar = LayoutGrammar(ids=tuple(ids), max_chars=settings.title_chars)
    reply = ask_guided(session.mind, request, GrammarCursor.start(grammar))
    _record(cycle, "ARRANGING", request, reply)
    result = _entry(request, reply)
    try:
        cycle.scratch["layout"] = parse_json_object(reply.text, "ROBIN's layout")
    except PanelError as exc:
        result["reason"] = str(exc)
        return result
    result["ok"] = True
    return result


def _model_name(mind: Mind) -> str:
    """The name of the model behind a mind: the installed model's id when it has a core."""
    core = getattr(mind, "core", None)
    with contextlib.suppress(Exception):
        if core is not None:
            return str(core.record.model_id)
    return str(getattr(mind, "model_id", "?"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [_plain(v) for v in value]
    return value


def assemble(cycle: Any) -> dict[str, Any]:
    """ASSEMBLING: ALFRED audits the spec, assembles real widgets, stores the spec on the object.

    Any refusal (unknown kind or slot, a kind that does not suit its slot, a duplicate id, an
    empty layout, a widget placed twice or left out) fails the cycle with the audit's message.
    """
    from batos_lab.widgets.panel import Panel

    session, target = _session(), cycle.target
    spec_data: dict[str, Any] = {"widgets": _plain(cycle.scratch.get("widgets", []))}
    notices: list[str] = []
    if "layout" in cycle.scratch:
        spec_data["layout"] = _plain(cycle.scratch["layout"])
    else:
        notices.append("No layout was made in this workflow; ALFRED uses one column.")
    result: dict[str, Any] = {"persona": "ALFRED", "notices": notices, "ok": False}
    result["prompt"] = json.dumps(spec_data)
    try:
        spec = audit_panel(spec_data, target)
    except PanelError as exc:
        result["output"] = "refused"
        result["reason"] = f"ALFRED's audit refused the panel: {exc}"
        return result
    try:
        trial = Panel(target, spec)
        built = len(trial.controls)
        trial.dispose()
    except Exception as exc:
        result["reason"] = f"ALFRED could not assemble the panel: {type(exc).__name__}: {exc}"
        return result
    stored = spec.to_data()
    stored["requirements"] = str(cycle.scratch.get("requirements", ""))
    stored["provenance"] = {
        "workflow": str(cycle.workflow),
        "sequence": list(cycle.sequence),
        "model": _model_name(session.mind),
        "adapters": _plain(cycle.scratch.get("adapters", {})),
        "prompts": _plain(cycle.scratch.get("prompts", {})),
        "cycle": session.key,
        "audited_by": "ALFRED",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    target.set_slot(PANEL_SLOT, stored)
    summary = (
        f"{built} widget(s) in {spec.layout.arrangement} "
        f"({len(spec.layout.groups)} group(s)), stored in {target.short_name()}.{PANEL_SLOT}"
    )
    cycle.scratch["answer"] = summary
    result.update(output=json.dumps(spec.to_data()), ok=True)
    return result
