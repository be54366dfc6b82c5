"""The UI-generation workflow: the image builds an ipywidget panel for one of its objects.

"Display yourself": BABS lists what the panel must offer (GATHERING), BRICK chooses the widgets
(DRAFTING, guided JSON restricted to the object's slots and the kinds that suit them), ROBIN
arranges them (ARRANGING, guided JSON over the widget ids), and ALFRED audits the whole spec,
assembles it into real ipywidgets with kernel code and stores it on the object (ASSEMBLING).
COMPLETE commits; any refusal fails the cycle and nothing is stored.

Like every workflow, this one is data in the image. :func:`ensure_ui_workflow` adds, once:

* the four state prototypes to ``root["psm"].states``; each names its persona and, as slots,
  what it ``needs``, may ``use`` and ``gives`` (requirements, widgets, layout, panel);
* ``psm.ui_workflow_prototype``, the parent of UI workflows, whose ``reordered`` clones a
  workflow and re-derives its state graph from the new persona sequence, and whose ``compile``
  also checks that data flows: every state runs after the states that give what it needs, every
  state's output is used later, and the panel is assembled;
* ``psm.workflows["ui_generation"]`` (BABS, BRICK, ROBIN, ALFRED);
* a ``display_yourself`` method on ``traits``, so every object answers it.

Example:
    >>> from batos_lab.image import open_image
    >>> image = open_image(None)
    >>> flow = ensure_ui_workflow(image)
    >>> list(flow.sequence)
    ['BABS', 'BRICK', 'ROBIN', 'ALFRED']
    >>> quick = flow.reordered(["BRICK", "ALFRED"], "ui_quick")
    >>> compile_ui_workflow(quick, image.root["psm"].states).forward["DRAFTING"]
    'ASSEMBLING'
    >>> image.close()
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batos_lab.errors import CycleError, PanelError, WorkflowError
from batos_lab.objects import NativeMethod, UvmObject
from batos_lab.psm.mind import Request
from batos_lab.psm.workflow import CompiledWorkflow, compile_workflow, make_workflow

if TYPE_CHECKING:
    from batos_lab.image import Image
    from batos_lab.psm.cycle import CycleOutcome
    from batos_lab.psm.mind import Mind
    from batos_lab.widgets.panel import Panel

__all__ = [
    "UI_STAGES",
    "UI_WORKFLOW",
    "PanelSettings",
    "build_panel",
    "build_ui_workflow",
    "compile_ui_workflow",
    "display_yourself",
    "ensure_ui_workflow",
    "install_ui_workflow",
    "panel_script",
    "start_panel_cycle",
    "ui_graph",
]

#: The archetype of the UI-generation workflow.
UI_WORKFLOW = "ui_generation"

#: The stages: state -> (persona, what it does, needs, uses, gives, process).
UI_STAGES: dict[str, tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...], str]] = {
    "GATHERING": (
        "BABS",
        "BABS lists what the panel must show and let the user change (free text, bounded).",
        (),
        (),
        ("requirements",),
        "batos_lab.psm.ui_stages:gather",
    ),
    "DRAFTING": (
        "BRICK",
        "BRICK chooses the widgets: guided JSON over the object's slots and the kinds that suit "
        "them.",
        (),
        ("requirements",),
        ("widgets",),
        "batos_lab.psm.ui_stages:draft",
    ),
    "ARRANGING": (
        "ROBIN",
        "ROBIN arranges the widgets in rows, columns or tabs: guided JSON over the widget ids.",
        ("widgets",),
        (),
        ("layout",),
        "batos_lab.psm.ui_stages:arrange",
    ),
    "ASSEMBLING": (
        "ALFRED",
        "ALFRED audits the spec, assembles it into ipywidgets and stores it on the object.",
        ("widgets",),
        ("layout",),
        ("panel",),
        "batos_lab.psm.ui_stages:assemble",
    ),
}

_STAGE_OF = {persona: state for state, (persona, *_) in UI_STAGES.items()}


def ui_graph(sequence: Sequence[str], stages: Mapping[str, str]) -> dict[str, list[str]]:
    """Return the state graph of a persona sequence: IDLE, each persona's stage, COMPLETE.

    Raises:
        WorkflowError: a persona without a stage, or a persona named twice.
    """
    order: list[str] = []
    for persona in sequence:
        if persona not in stages:
            known = ", ".join(f"{p}: {s}" for p, s in stages.items())
            raise WorkflowError(
                f"The UI workflow has no stage for {persona!r}; its stages are {known}."
            )
        if stages[persona] in order:
            raise WorkflowError(
                f"The UI workflow names {persona} twice in {list(sequence)}; each persona has "
                "one stage, so name it once."
            )
        order.append(stages[persona])
    path = ["IDLE", *order, "COMPLETE"]
    graph = {a: [b] for a, b in itertools.pairwise(path)}
    graph.update(COMPLETE=[], FAILED=[])
    return graph


def _make_ui_workflow(
    archetype: str, sequence: Sequence[str], prototype: UvmObject | None
) -> UvmObject:
    flow = make_workflow(
        archetype,
        sequence,
        "ALFRED",
        description="Display yourself: the image builds an ipywidget panel for an object.",
        graph=ui_graph(sequence, _STAGE_OF),
        prototype=prototype,
    )
    flow.set_slot("stages", dict(_STAGE_OF))
    return flow


def check_flow(compiled: CompiledWorkflow, states: Mapping[str, Any], name: str) -> None:
    """Check that data flows along a compiled UI workflow's path.

    Raises:
        WorkflowError: a state runs before what it needs is given, a state gives something no
            later state uses, or no state assembles the panel.
    """
    path: list[str] = []
    state: str | None = compiled.start
    while state is not None and state not in ("COMPLETE", "FAILED"):
        path.append(state)
        state = compiled.forward.get(state)
    where = f"The workflow '{name}'"

    def slots(state: str, key: str) -> tuple[str, ...]:
        return tuple(states[state].get_slot(key, ()) or ())

    if not any("panel" in slots(state, "gives") for state in path):
        raise WorkflowError(
            f"{where} never assembles the panel: ALFRED (ASSEMBLING) must end its sequence."
        )

    given: dict[str, str] = {}
    for index, state in enumerate(path):
        missing = [n for n in slots(state, "needs") if n not in given]
        if missing:
            givers = [s for s in states if set(missing) & set(slots(s, "gives"))]
            raise WorkflowError(
                f"{where} runs {state} before anything gives its {', '.join(missing)}; "
                f"{' or '.join(givers) or 'no state'} must come first. Put "
                f"{' or '.join(str(states[s].get_slot('persona', s)) for s in givers)} earlier "
                "in the sequence."
            )
        for product in slots(state, "gives"):
            users = [s for s in states if product in slots(s, "needs") + slots(s, "uses")]
            if product != "panel" and not set(users) & set(path[index + 1 :]):
                persona = states[state].get_slot("persona", state)
                raise WorkflowError(
                    f"{where} runs {state} ({persona}), which gives the {product}, but no state "
                    f"after it uses them; put {persona} before {' or '.join(users)}, or leave "
                    f"{persona} out."
                )
            given[product] = state


def compile_ui_workflow(
    workflow: Any, states: Mapping[str, Any], personas: Mapping[str, Any] | None = None
) -> CompiledWorkflow:
    """Compile a UI workflow (graph checks of :func:`compile_workflow`, then the data flow).

    Raises:
        WorkflowError: the graph does not compile or the data does not flow (see
            :func:`check_flow`).
    """
    compiled = compile_workflow(workflow, states, personas)
    check_flow(compiled, states, compiled.name)
    return compiled


def compile_ui_self(self: UvmObject) -> CompiledWorkflow:
    """Compile this UI workflow against its image (a native method of UI workflows)."""
    if self._p_jar is None:
        raise WorkflowError(
            f"{self.short_name()} is not in an image; keep it with install_ui_workflow first."
        )
    root = self._p_jar.root()
    return compile_ui_workflow(self, root["psm"].states, root["personas"])


def ui_reordered(
    self: UvmObject, sequence: Sequence[str], archetype: str | None = None
) -> UvmObject:
    """Clone a UI workflow with a new persona sequence and its re-derived graph (a native method).

    Raises:
        WorkflowError: a persona without a stage, or named twice.
    """
    from batos_lab.psm.workflow import reordered

    graph = ui_graph(list(sequence), dict(self.get_slot("stages", _STAGE_OF)))
    twin = reordered(self, sequence, archetype)
    twin.set_slot("graph", graph)
    return twin


@dataclass(frozen=True)
class PanelSettings:
    """Budgets and bounds of a UI-generation cycle.

    Attributes:
        requirement_tokens: BABS's budget (free text).
        widget_tokens: the most tokens BRICK's widget list may take (the budget used is the
            smaller of this and what the longest list the grammar allows could take).
        layout_tokens: the same bound for ROBIN's layout.
        max_widgets: most widgets BRICK may choose (never more than the object's slots).
        min_widgets: fewest widgets BRICK may choose (fewer when the object has fewer slots).
        description_chars: most characters of a widget's description.
        title_chars: most characters of a group title.
        max_requirements: most requirement lines kept from BABS.
    """

    requirement_tokens: int = 48
    widget_tokens: int = 480
    layout_tokens: int = 320
    max_widgets: int = 6
    min_widgets: int = 3
    description_chars: int = 32
    title_chars: int = 24
    max_requirements: int = 3

    def __post_init__(self) -> None:
        for name in (
            "requirement_tokens",
            "widget_tokens",
            "layout_tokens",
            "max_widgets",
            "min_widgets",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1; got {getattr(self, name)!r}.")
        if self.min_widgets > self.max_widgets:
            raise ValueError(
                f"min_widgets ({self.min_widgets}) is above max_widgets ({self.max_widgets})."
            )
        if not 4 <= self.description_chars <= 80 or not 4 <= self.title_chars <= 60:
            raise ValueError(
                "description_chars must be in 4..80 and title_chars in 4..60; got "
                f"{self.description_chars!r} and {self.title_chars!r}."
            )


def panel_script(widgets: Any, layout: Any = None) -> Callable[[Request], str]:
    """Return a script for a ScriptedMind's ``plan`` role: BRICK's widgets, ROBIN's layout.

    Args:
        widgets: what BRICK answers (a string, or data written as JSON).
        layout: what ROBIN answers (default: one column of every widget BRICK named).

    BABS's requirements are a ``facet`` request: script them with ``ScriptedMind(facet=...)``.

    Example:
        >>> script = panel_script({"widgets": [{"id": "w1", "slot": "n", "kind": "IntText"}]})
        >>> script(Request(role="plan", prompt="...", persona="ROBIN"))
        '{"arrangement": "columns", "groups": [{"title": "Panel", "widgets": ["w1"]}]}'
    """

    def text(value: Any) -> str:
        return value if isinstance(value, str) else json.dumps(value)

    def answer(request: Request) -> str:
        if request.persona == "ROBIN":
            if layout is not None:
                return text(layout)
            try:
                raw = json.loads(widgets) if isinstance(widgets, str) else widgets
                ids = [w["id"] for w in raw.get("widgets", [])]
            except (ValueError, TypeError, KeyError, AttributeError):
                ids = []  # BRICK's script is not a widget list: ROBIN places nothing

            return text({"arrangement": "columns", "groups": [{"title": "Panel", "widgets": ids}]})
        return text(widgets)

    return answer


# --------------------------------------------------------------------------- registration


def build_ui_workflow(root: Any) -> UvmObject:
    """Add the UI stages, prototype, workflow and ``display_yourself`` to an image's root.

    The caller commits. Needs ``root["psm"]`` (see :func:`~batos_lab.psm.states.ensure_psm`).
    """
    home = root["psm"]
    traits = root["traits"]
    for name, (persona, doc, needs, uses, gives, ref) in UI_STAGES.items():
        home.states[name] = UvmObject(
            name=f"state {name}",
            state_name=name,
            doc=doc,
            persona=persona,
            needs=list(needs),
            uses=list(uses),
            gives=list(gives),
            terminal=False,
            process=NativeMethod(ref),
            **{"parent*": traits},
        )
    prototype = UvmObject(
        name="ui workflow prototype",
        doc="The parent of UI workflows: compile with the data-flow check, clone re-ordered.",
        compile=NativeMethod("batos_lab.psm.ui_workflow:compile_ui_self"),
        reordered=NativeMethod("batos_lab.psm.ui_workflow:ui_reordered"),
        **{"parent*": home.workflow_prototype},
    )
    home.ui_workflow_prototype = prototype
    flow = _make_ui_workflow(UI_WORKFLOW, list(_STAGE_OF), prototype)
    home.workflows[UI_WORKFLOW] = flow
    traits.display_yourself = NativeMethod(
        "batos_lab.psm.ui_workflow:display_yourself",
        doc="Return the object's ipywidget panel, building it with the UI workflow if needed.",
    )
    return flow


def ensure_ui_workflow(image: Image) -> UvmObject:
    """Add the UI-generation workflow to the image once (its own transaction); return it."""
    from batos_lab.psm.states import ensure_psm

    home = ensure_psm(image)

    def build() -> None:
        if UI_WORKFLOW not in home.workflows or "ASSEMBLING" not in home.states:
            build_ui_workflow(image.root)

    if UI_WORKFLOW not in home.workflows or "ASSEMBLING" not in home.states:
        image.transact(build, note="psm: the UI-generation workflow")
    return home.workflows[UI_WORKFLOW]


def install_ui_workflow(image: Image, workflow: UvmObject, *, commit: bool = True) -> None:
    """Keep a (re-ordered) UI workflow in the image under its archetype, after compiling it.

    Raises:
        WorkflowError: the workflow does not compile (nothing is changed).
    """
    from batos_lab.psm.workflow import install_workflow

    home = image.root["psm"]
    compile_ui_workflow(workflow, home.states, image.root["personas"])
    install_workflow(image, workflow, commit=commit)


# --------------------------------------------------------------------------- running


def start_panel_cycle(
    obj: UvmObject,
    *,
    workflow: str = UI_WORKFLOW,
    mind: Mind | None = None,
    settings: PanelSettings | None = None,
) -> UvmObject:
    """Start a cycle that builds ``obj``'s panel; return the cycle, at IDLE.

    The cycle runs in the object's own connection: COMPLETE commits that connection's
    transaction (the panel spec with everything else pending), FAILED rolls back to where the
    cycle started and keeps a failure record.

    Args:
        obj: a UvmObject kept in an image (``image[name] = obj``).
        workflow: the UI workflow to follow (a re-ordered clone may be named).
        mind: the model interface (default: the one installed for the image, else the model).
        settings: token budgets and bounds (see :class:`PanelSettings`).

    Raises:
        CycleError: the object is not in an image, or the image has no UI workflow yet.
        PanelError: the object has no slot a panel could show.
        WorkflowError: the workflow is unknown, or does not compile.
    """
    from dataclasses import asdict

    from batos_lab.psm.cycle import start_cycle
    from batos_lab.widgets.panel_spec import panel_slots

    if not isinstance(obj, UvmObject) or obj._p_jar is None:
        raise CycleError(
            f"Only an object kept in an image builds a panel; {obj!r:.60} is not. Keep it with "
            "image[name] = obj and commit first."
        )
    root = obj._p_jar.root()
    home = root.get("psm")
    if home is None or UI_WORKFLOW not in home.workflows:
        raise CycleError(
            "The image has no UI-generation workflow yet; call "
            "batos_lab.psm.ensure_ui_workflow(image) once."
        )
    flow = home.workflows.get(workflow)
    if flow is None:
        raise WorkflowError(
            f"No workflow named {workflow!r}; the image's workflows are "
            f"{', '.join(home.workflows)}."
        )
    compiled = compile_ui_workflow(flow, home.states, root["personas"])
    if not panel_slots(obj):
        raise PanelError(
            f"{obj.short_name()} has no slot a panel could show (data slots or methods without "
            "arguments); give it some first."
        )
    cycle = start_cycle(
        obj._p_jar,
        f"display yourself: {obj.short_name()}",
        persona=compiled.lead,
        workflow=workflow,
        mind=mind,
        kind="panel",
        connection=obj._p_jar,
        scratch={
            "panel_settings": asdict(settings or PanelSettings()),
            "prompts": {},
            "adapters": {},
        },
    )
    cycle.target = obj
    return cycle


def build_panel(
    obj: UvmObject,
    *,
    workflow: str = UI_WORKFLOW,
    mind: Mind | None = None,
    settings: PanelSettings | None = None,
) -> CycleOutcome:
    """Run the UI workflow for ``obj`` to its end and return the outcome (see
    :func:`start_panel_cycle` for the arguments and errors)."""
    cycle = start_panel_cycle(obj, workflow=workflow, mind=mind, settings=settings)
    return cycle.run()


def display_yourself(self: UvmObject, rebuild: bool = False, mind: Mind | None = None) -> Panel:
    """Return this object's live panel, building it first when it keeps none (a native method).

    Args:
        rebuild: build a new panel even when one is kept.
        mind: the model interface for a build (default: the image's).

    Raises:
        PanelError: the build failed (its reason is in the message; nothing was stored), or the
            kept spec no longer fits the object's slots.
    """
    from batos_lab.widgets.panel import display_yourself as show
    from batos_lab.widgets.panel_spec import PANEL_SLOT

    if rebuild or not self.has_slot(PANEL_SLOT):
        outcome = build_panel(self, mind=mind)
        if not outcome.ok:
            raise PanelError(
                f"{self.short_name()} could not build its panel: {outcome.reason} (failed in "
                f"{outcome.failed_state}; nothing was stored, a failure record was kept)."
            )
    return show(self)
