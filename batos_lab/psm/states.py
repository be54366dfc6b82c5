"""The state prototypes of the Prototypal State Machine, and the home that holds them.

``ensure_psm(image)`` creates, once and in its own transaction, ``root["psm"]``:

* ``states``: IDLE, DECOMPOSING, DELEGATING, SYNTHESIZING, COMPLETE, FAILED, each a persistent
  UvmObject whose ``process`` slot is a NativeMethod (kernel behaviour by importable name) and
  whose ``terminal`` slot marks the end states;
* ``cycle_prototype``: the parent of every cycle, answering ``step``, ``run``, ``abort``,
  ``outcome``, ``trace_frame``, ``current_state`` and ``persona_seen`` (a persona as the cycle's
  own connection sees it); an image made before one of these existed gets it on its next
  ``ensure_psm``;
* ``workflow_prototype`` and ``workflows``: one workflow per row of the matrix;
* ``cycles``: an OOBTree of the cycles that completed, newest last.

It also teaches the persona prototypes ``ask`` (start a cycle), ``infer`` (answer with the
persona's adapter) and a ``doesNotUnderstand_`` that compiles a facet on its first use.

A cycle answers ``process`` by delegation: its ``synthesis_state*`` parent slot points at the
current state prototype, and a transition re-points it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from BTrees.OOBTree import OOBTree

from batos_lab.objects import NativeMethod, UvmObject

if TYPE_CHECKING:
    from batos_lab.image import Image

__all__ = ["STATES", "TERMINAL", "build_psm", "ensure_psm", "psm_home"]

#: The states, in the order a successful cycle visits them (FAILED last).
STATES = ("IDLE", "DECOMPOSING", "DELEGATING", "SYNTHESIZING", "COMPLETE", "FAILED")
TERMINAL = frozenset({"COMPLETE", "FAILED"})

_DOCS = {
    "IDLE": "Accept the mission: check it, cut an over-long one with a notice.",
    "DECOMPOSING": "BRICK plans: which facets answer what (guided JSON, validated, fallback).",
    "DELEGATING": "The chosen facets answer, all in one mixed-adapter batch.",
    "SYNTHESIZING": "ROBIN weaves the partial answers; the quality gate and ALFRED decide.",
    "COMPLETE": "Commit everything the cycle did, in one transaction.",
    "FAILED": "Abort everything the cycle did; keep only a failure record.",
}

_CYCLE_METHODS = {
    "step": "batos_lab.psm.cycle:step",
    "run": "batos_lab.psm.cycle:run",
    "abort": "batos_lab.psm.cycle:abort",
    "outcome": "batos_lab.psm.cycle:outcome",
    "trace_frame": "batos_lab.psm.cycle:trace_frame",
    "current_state": "batos_lab.psm.cycle:current_state",
    "persona_seen": "batos_lab.psm.cycle:persona_seen",
}

_PERSONA_METHODS = {
    "ask": "batos_lab.psm.cycle:persona_ask",
    "infer": "batos_lab.psm.facets:persona_infer",
    "doesNotUnderstand_": "batos_lab.psm.facets:persona_dnu",
}


def psm_home(root: Any) -> Any:
    """Return ``root["psm"]``, or None before :func:`ensure_psm` ran."""
    return root.get("psm")


def build_psm(root: Any) -> None:
    """Create ``root["psm"]`` and teach the personas; the caller commits (genesis may call it).

    Needs ``traits``, ``personas`` and ``matrix`` in ``root``.
    """
    from batos_lab.psm.workflow import make_workflow

    traits = root["traits"]
    states = {
        name: UvmObject(
            name=f"state {name}",
            state_name=name,
            doc=_DOCS[name],
            terminal=name in TERMINAL,
            process=NativeMethod(f"batos_lab.psm.states:process_{name.lower()}"),
            **{"parent*": traits},
        )
        for name in STATES
    }
    cycle_prototype = UvmObject(
        name="cycle prototype",
        doc="The parent of every cycle: stepping, running, aborting, reading the trace.",
        **{name: NativeMethod(ref) for name, ref in _CYCLE_METHODS.items()},
        **{"parent*": traits},
    )
    workflow_prototype = UvmObject(
        name="workflow prototype",
        doc="The parent of every workflow: compile it, or clone it re-ordered.",
        compile=NativeMethod("batos_lab.psm.states:compile_self"),
        reordered=NativeMethod("batos_lab.psm.workflow:reordered"),
        **{"parent*": traits},
    )
    workflows = {}
    for archetype, row in root["matrix"].rows.items():
        workflows[archetype] = make_workflow(
            archetype,
            list(row["sequence"]),
            str(row["lead"]),
            description=str(row.get("description", "")),
            prototype=workflow_prototype,
        )
    root["psm"] = UvmObject(
        name="psm",
        doc="The Prototypal State Machine: states, workflows and the cycles that completed.",
        states=states,
        cycle_prototype=cycle_prototype,
        workflow_prototype=workflow_prototype,
        workflows=workflows,
        cycles=OOBTree(),
        **{"parent*": traits},
    )
    for persona in root["personas"].values():
        for name, ref in _PERSONA_METHODS.items():
            persona.set_slot(name, NativeMethod(ref))


def ensure_psm(image: Image) -> Any:
    """Create the state machine's home once (its own transaction) and return it.

    Also remembers ``image`` so cycles started from its objects can find a ModelMind.
    """
    from batos_lab.psm.mind import remember_image

    remember_image(image)
    home = psm_home(image.root)
    if home is not None:
        _top_up(image, home)
        return home

    def build() -> None:
        if psm_home(image.root) is None:
            build_psm(image.root)

    image.transact(build, note="psm: state prototypes, workflows, persona behaviour")
    return image.root["psm"]


def _top_up(image: Image, home: Any) -> None:
    """Give an image made by an older version the cycle methods added since (one transaction)."""
    prototype = home.cycle_prototype
    missing = {n: r for n, r in _CYCLE_METHODS.items() if not prototype.has_slot(n)}
    if missing:
        with image.transaction(f"psm: cycle methods {', '.join(sorted(missing))}"):
            for name, ref in missing.items():
                prototype.set_slot(name, NativeMethod(ref))


def compile_self(self: Any) -> Any:
    """Compile this workflow against the image's states and personas (a native method)."""
    from batos_lab.psm.workflow import compile_workflow

    root = self._p_jar.root() if self._p_jar is not None else None
    if root is None:
        from batos_lab.psm.workflow import DEFAULT_GRAPH

        return compile_workflow(self, {s: _Terminal(s in TERMINAL) for s in DEFAULT_GRAPH})
    return compile_workflow(self, root["psm"].states, root["personas"])


class _Terminal:
    """Stands in for a state prototype when a workflow is compiled outside an image."""

    def __init__(self, terminal: bool) -> None:
        self.terminal = terminal

    def get_slot(self, name: str, default: Any = None) -> Any:
        return self.terminal if name == "terminal" else default


# --- the processing of each state (bound to the cycle that delegates to it) ----------------


def process_idle(self: Any) -> dict[str, Any]:
    """IDLE: accept the mission."""
    from batos_lab.psm.stages import accept_mission

    return accept_mission(self)


def process_decomposing(self: Any) -> dict[str, Any]:
    """DECOMPOSING: BRICK plans (a question) or writes the logic (a method)."""
    from batos_lab.psm import method_cycle, stages

    return method_cycle.write_logic(self) if self.kind == "method" else stages.decompose(self)


def process_delegating(self: Any) -> dict[str, Any]:
    """DELEGATING: the facets answer (a question) or ROBIN writes the docstring (a method)."""
    from batos_lab.psm import method_cycle, stages

    return method_cycle.write_doc(self) if self.kind == "method" else stages.delegate(self)


def process_synthesizing(self: Any) -> dict[str, Any]:
    """SYNTHESIZING: ROBIN weaves and the gate decides (a question) or ALFRED audits (a method)."""
    from batos_lab.psm import method_cycle, stages

    return method_cycle.assemble(self) if self.kind == "method" else stages.synthesize(self)


def process_complete(self: Any) -> dict[str, Any]:
    """COMPLETE: the cycle's transaction is committed by the driver."""
    from batos_lab.psm import method_cycle

    if self.kind == "method":
        return method_cycle.install(self)
    answer = self.scratch.get("answer", "")
    return {"output": answer, "ok": True}


def process_failed(self: Any) -> dict[str, Any]:
    """FAILED: the cycle's transaction is aborted and a failure record kept by the driver."""
    return {"output": self.get_slot("reason", ""), "ok": True}
