"""The Prototypal State Machine: cognitive cycles, workflows, facets and the mission queue.

A question put to a persona (``persona.ask(text)``) becomes a *cycle*: a persistent object whose
``synthesis_state*`` parent slot points at one of the state prototypes IDLE, DECOMPOSING,
DELEGATING, SYNTHESIZING, COMPLETE, FAILED. ``cycle.step()`` runs one state, ``cycle.run()`` runs to
the end; the cycle is one transaction on its own connection, committed by COMPLETE and aborted by
FAILED. Model calls go through one interface, :class:`Mind` (:class:`ModelMind` for the embedded
model, :class:`ScriptedMind` for tests).

Example:
    >>> from batos_lab.image import open_image
    >>> image = open_image(None)
    >>> home = ensure_psm(image)
    >>> install_mind(image, ScriptedMind())
    >>> cycle = image.root["personas"]["BRICK"].ask("How do I cache a slow function?")
    >>> cycle.step()["state"]
    'IDLE'
    >>> cycle.run().status
    'complete'
    >>> image.close()
"""

from __future__ import annotations

from batos_lab.psm.cycle import (
    TRACE_FIELDS,
    CycleOutcome,
    CycleSession,
    CycleSettings,
    current_session,
    start_cycle,
)
from batos_lab.psm.facets import ensure_facet, facet_prompt
from batos_lab.psm.method_cycle import cycle_dnu
from batos_lab.psm.mind import (
    Mind,
    ModelMind,
    Reply,
    Request,
    ScriptedMind,
    install_mind,
    mind_for,
    uninstall_mind,
)
from batos_lab.psm.missions import Mission, MissionQueue
from batos_lab.psm.plan import Plan, fallback_plan, parse_plan
from batos_lab.psm.states import STATES, build_psm, ensure_psm
from batos_lab.psm.ui_workflow import (
    UI_WORKFLOW,
    PanelSettings,
    build_panel,
    compile_ui_workflow,
    ensure_ui_workflow,
    install_ui_workflow,
    panel_script,
    start_panel_cycle,
)
from batos_lab.psm.workflow import CompiledWorkflow, compile_workflow, install_workflow

__all__ = [
    "STATES",
    "TRACE_FIELDS",
    "UI_WORKFLOW",
    "CompiledWorkflow",
    "CycleOutcome",
    "CycleSession",
    "CycleSettings",
    "Mind",
    "Mission",
    "MissionQueue",
    "ModelMind",
    "PanelSettings",
    "Plan",
    "Reply",
    "Request",
    "ScriptedMind",
    "build_panel",
    "build_psm",
    "compile_ui_workflow",
    "compile_workflow",
    "current_session",
    "cycle_dnu",
    "ensure_facet",
    "ensure_psm",
    "ensure_ui_workflow",
    "facet_prompt",
    "fallback_plan",
    "install_mind",
    "install_ui_workflow",
    "install_workflow",
    "mind_for",
    "panel_script",
    "parse_plan",
    "start_cycle",
    "start_panel_cycle",
    "uninstall_mind",
]
