"""Workflows as living data: rows of the Collaborative Dynamics Matrix become state graphs.

A workflow is a UvmObject in the image (``root["psm"].workflows[archetype]``) with slots
``archetype``, ``sequence`` (personas, in the order they speak), ``lead``, ``start`` and ``graph``
(state name -> the state names it may go to). :func:`compile_workflow` checks it the way a graph
library checks a graph before running it, and returns a plain :class:`CompiledWorkflow`:

* every state named (as a node or an edge target) is a state prototype of the image;
* the start state is in the graph, and every state is reachable from it;
* a terminal prototype (COMPLETE, FAILED) has no way out; every other state has exactly one way
  forward besides FAILED (which every state may reach when it fails);
* COMPLETE is reachable, so a cycle can end well;
* the personas of the sequence exist, and the lead is one of them.

Workflows are data: clone one with :func:`reordered` (ROBIN before BRICK), keep it with
:func:`install_workflow`, and the next cycle uses it; nothing restarts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batos_lab.errors import WorkflowError
from batos_lab.objects import UvmObject

__all__ = [
    "DEFAULT_GRAPH",
    "CompiledWorkflow",
    "compile_workflow",
    "install_workflow",
    "make_workflow",
    "reordered",
]

#: The state graph of a question cycle.
DEFAULT_GRAPH: dict[str, list[str]] = {
    "IDLE": ["DECOMPOSING"],
    "DECOMPOSING": ["DELEGATING"],
    "DELEGATING": ["SYNTHESIZING"],
    "SYNTHESIZING": ["COMPLETE"],
    "COMPLETE": [],
    "FAILED": [],
}


@dataclass(frozen=True)
class CompiledWorkflow:
    """A checked workflow: what a cycle follows.

    Attributes:
        name: the workflow's archetype.
        sequence: the personas, in speaking order.
        lead: the lead persona.
        start: the first state.
        forward: state -> the state it goes to when it succeeds (None for terminals).
    """

    name: str
    sequence: tuple[str, ...]
    lead: str
    start: str
    forward: Mapping[str, str | None]

    def next_state(self, state: str, ok: bool) -> str:
        """Return the state after ``state``: its way forward, or FAILED."""
        target = self.forward.get(state)
        return target if ok and target is not None else "FAILED"


def make_workflow(
    archetype: str,
    sequence: Sequence[str],
    lead: str,
    *,
    description: str = "",
    graph: Mapping[str, Sequence[str]] | None = None,
    prototype: UvmObject | None = None,
) -> UvmObject:
    """Return a new workflow object (not yet kept in the image)."""
    slots: dict[str, Any] = {
        "name": f"workflow {archetype}",
        "archetype": archetype,
        "description": description,
        "sequence": list(sequence),
        "lead": lead,
        "start": "IDLE",
        "graph": {k: list(v) for k, v in (graph or DEFAULT_GRAPH).items()},
    }
    if prototype is not None:
        slots["parent*"] = prototype
    return UvmObject(**slots)


def compile_workflow(
    workflow: Any, states: Mapping[str, Any], personas: Mapping[str, Any] | None = None
) -> CompiledWorkflow:
    """Check a workflow against the image's states (and personas) and compile it.

    Args:
        workflow: a workflow object (slots archetype, sequence, lead, start, graph).
        states: state name -> state prototype (its ``terminal`` slot marks terminals).
        personas: persona name -> persona; when given, the sequence is checked against it.

    Returns:
        The compiled workflow.

    Raises:
        WorkflowError: an unknown state, an unreachable state, a dead end, an ambiguous way
            forward, a terminal with a way out, no reachable COMPLETE, or an unknown persona.
    """
    name = str(workflow.get_slot("archetype", "?"))
    graph = {str(k): [str(t) for t in v] for k, v in dict(workflow.get_slot("graph", {})).items()}
    start = str(workflow.get_slot("start", "IDLE"))
    where = f"The workflow '{name}'"
    named = set(graph) | {t for targets in graph.values() for t in targets} | {start}
    unknown = sorted(named - set(states))
    if unknown:
        raise WorkflowError(
            f"{where} names unknown state(s) {', '.join(unknown)}; the image's states are "
            f"{', '.join(states)}. Use those names or add a state prototype first."
        )
    if start not in graph:
        raise WorkflowError(f"{where} starts at {start}, which is not a node of its graph.")
    for state, targets in graph.items():
        if graph_missing := [t for t in targets if t not in graph]:
            raise WorkflowError(
                f"{where} lets {state} go to {', '.join(graph_missing)}, which has no node in "
                "the graph; add it as a node (with its own ways out)."
            )
    seen: set[str] = set()
    stack = [start]
    while stack:
        state = stack.pop()
        if state not in seen:
            seen.add(state)
            stack.extend(graph[state])
    failed = "FAILED"
    unreachable = sorted(s for s in set(graph) - seen if s != failed)
    if unreachable:
        raise WorkflowError(
            f"{where} has unreachable state(s) {', '.join(unreachable)}: no path leads there "
            f"from {start}. Add an edge to them or remove them."
        )
    forward: dict[str, str | None] = {}
    for state, targets in graph.items():
        terminal = bool(states[state].get_slot("terminal", False))
        onward = [t for t in targets if t != failed]
        if terminal:
            if targets:
                raise WorkflowError(
                    f"{where} lets the terminal state {state} go on to {', '.join(targets)}; "
                    "a terminal state ends the cycle and has no way out."
                )
            forward[state] = None
        elif not onward:
            raise WorkflowError(
                f"{where} has a dead end: {state} is not terminal and goes nowhere but FAILED. "
                "Give it a way forward."
            )
        elif len(onward) > 1:
            raise WorkflowError(
                f"{where} is ambiguous: {state} may go to {', '.join(onward)}; a state has one "
                "way forward (and FAILED)."
            )
        else:
            forward[state] = onward[0]
    if "COMPLETE" not in seen:
        raise WorkflowError(
            f"{where} has no terminal state reachable from {start}: COMPLETE is never reached, "
            "so no cycle could end well. Lead a path to COMPLETE."
        )
    forward.setdefault(failed, None)
    sequence = tuple(str(p) for p in workflow.get_slot("sequence", []))
    lead = str(workflow.get_slot("lead", sequence[0] if sequence else ""))
    if not sequence:
        raise WorkflowError(f"{where} has an empty persona sequence; name at least one persona.")
    if personas is not None:
        strangers = [p for p in sequence if p not in personas]
        if strangers:
            raise WorkflowError(
                f"{where} names unknown persona(s) {', '.join(strangers)}; the image's "
                f"personas are {', '.join(personas)}."
            )
    if lead not in sequence:
        raise WorkflowError(
            f"{where} is led by {lead}, who is not in its sequence {list(sequence)}."
        )
    return CompiledWorkflow(name, sequence, lead, start, forward)


def reordered(self: UvmObject, sequence: Sequence[str], archetype: str | None = None) -> UvmObject:
    """Return a clone of a workflow with a new persona sequence (a native method of workflows).

    Args:
        sequence: the personas in their new order (``["ROBIN", "BRICK", ...]``).
        archetype: a new name for the clone (default: the same, to replace the original).
    """
    lead = self.get_slot("lead", None)
    twin = self.clone(sequence=list(sequence))
    if lead not in sequence and sequence:
        twin.set_slot("lead", sequence[0])
    if archetype is not None:
        twin.set_slot("archetype", archetype)
        twin.set_slot("name", f"workflow {archetype}")
    return twin


def install_workflow(image: Any, workflow: UvmObject, *, commit: bool = True) -> None:
    """Keep ``workflow`` in the image under its archetype, after compiling it.

    The next cycle started with that archetype follows it.

    Raises:
        WorkflowError: the workflow does not compile (nothing is changed).
    """
    from batos_lab.psm.states import ensure_psm

    home = ensure_psm(image)
    compile_workflow(workflow, home.states, image.root["personas"])
    workflows = home.workflows
    workflows[str(workflow.archetype)] = workflow
    if commit:
        image.commit(f"psm: workflow {workflow.archetype} installed")
