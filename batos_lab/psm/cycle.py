"""Cognitive cycles: one mission, one transaction, stepped state by state.

:func:`start_cycle` (and ``persona.ask(text)``) opens a connection with its own transaction
manager, creates the cycle object there and points its ``synthesis_state*`` slot at IDLE.
``cycle.step()`` runs the current state's ``process`` (found by delegation through that slot),
records a trace entry, and re-points the slot; it can be called from one notebook cell after
another, and the transaction stays open in between. Reaching COMPLETE commits everything the
cycle did (the facets it compiled, the cycle itself in ``psm.cycles``); reaching FAILED aborts
all of it and writes only a failure record, in a separate transaction, to ``root["failures"]``.
A process killed mid-cycle therefore leaves nothing of the cycle behind.

A cycle may also run inside a connection that is already in use (a message the receiver does not
understand, in cycle mode): then a savepoint stands for the start, FAILED rolls back to it, and
COMPLETE commits the connection's transaction.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import transaction
from persistent.mapping import PersistentMapping

from batos_lab.dnu import JITSettings, db_of
from batos_lab.errors import CycleError, PSMError
from batos_lab.objects import UvmObject
from batos_lab.psm.ending import finish, plain
from batos_lab.psm.mind import Mind, mind_for
from batos_lab.psm.states import TERMINAL
from batos_lab.psm.workflow import CompiledWorkflow, compile_workflow

__all__ = [
    "TRACE_FIELDS",
    "CycleOutcome",
    "CycleSession",
    "CycleSettings",
    "current_session",
    "session_of",
    "start_cycle",
]

#: The fields of every trace entry, in display order.
TRACE_FIELDS = (
    "state",
    "persona",
    "facet",
    "adapter",
    "prompt",
    "output",
    "tokens",
    "ms",
    "next",
    "reason",
    "notices",
)

#: The workflow a persona's questions follow when none is named.
DEFAULT_WORKFLOW = {
    "BRICK": "technical_deconstruction",
    "ROBIN": "emotional_support",
    "BABS": "research",
    "ALFRED": "technical_deconstruction",
}


@dataclass(frozen=True)
class CycleSettings:
    """Bounds and budgets of a cycle.

    Attributes:
        max_mission_chars: a longer mission is cut (with a notice in the trace).
        min_answer_chars, max_answer_chars: the quality gate's length bounds.
        copy_ratio: a synthesis this similar to one partial answer is a copy (0..1).
        min_distinct: below this share of distinct word triples a synthesis is a loop (0..1;
            a text that says one thing three times has about a third).
        min_shared_words: a synthesis must share at least this many content words with the
            question and the partial answers, or it wove nothing of them (0: no check).
        plan_tokens, facet_tokens, weave_tokens, check_tokens: generation budgets. The
            defaults were measured on the embedded model (benchmarks/psm_cycle.py): a plan of
            three facets closes in about 145 tokens (448 leaves each string 72 characters),
            96 tokens are a facet's paragraph, 160 a woven answer, and ALFRED's verdict needs
            its first words only.
        weave_adapter: ROBIN weaves with the ROBIN adapter; off (the default), the base model
            weaves with ROBIN's system text, because the adapter, trained on the sage's voice,
            drifted away from the partial answers in every weave measured.
        context_hits: catalog hits given to BRICK (0: none).
        jit: how facet methods and cycle-mode methods are learned.
        facet_fallback: install the mandate's template when the model cannot write a facet
            (recorded in the trace and the method's provenance); off: the cycle fails.
    """

    max_mission_chars: int = 2000
    min_answer_chars: int = 8
    max_answer_chars: int = 4000
    copy_ratio: float = 0.92
    min_distinct: float = 0.35
    min_shared_words: int = 2
    plan_tokens: int = 448
    facet_tokens: int = 96
    weave_tokens: int = 160
    check_tokens: int = 24
    weave_adapter: bool = False
    context_hits: int = 3
    jit: JITSettings = field(default_factory=lambda: JITSettings(max_attempts=2))
    facet_fallback: bool = True

    def __post_init__(self) -> None:
        if self.max_mission_chars < 1 or self.min_answer_chars < 1:
            raise ValueError("max_mission_chars and min_answer_chars must be at least 1.")
        if self.max_answer_chars < self.min_answer_chars:
            raise ValueError(
                f"max_answer_chars ({self.max_answer_chars}) is below min_answer_chars "
                f"({self.min_answer_chars})."
            )
        if not 0 < self.copy_ratio <= 1:
            raise ValueError(f"copy_ratio must be in (0, 1], got {self.copy_ratio!r}.")
        if not 0 <= self.min_distinct <= 1:
            raise ValueError(f"min_distinct must be in [0, 1], got {self.min_distinct!r}.")
        if self.min_shared_words < 0:
            raise ValueError(
                f"min_shared_words must be 0 (no check) or more, got {self.min_shared_words!r}."
            )
        budgets = {
            "plan_tokens": self.plan_tokens,
            "facet_tokens": self.facet_tokens,
            "weave_tokens": self.weave_tokens,
            "check_tokens": self.check_tokens,
        }
        for name, value in budgets.items():
            if value < 1:
                raise ValueError(f"{name} must be at least 1 token, got {value!r}.")


@dataclass
class CycleOutcome:
    """How a cycle ended (plain data: readable after its connection is closed).

    Attributes:
        status: ``complete``, ``failed`` or ``running``.
        answer: the synthesis (or a method's result), None when it failed.
        reason: why it failed ("" when it did not).
        failed_state: the state that failed, or None.
        trace: the trace entries, in order.
        key: the cycle's key in ``psm.cycles`` (kept only when it completed).
    """

    status: str
    answer: Any
    reason: str
    failed_state: str | None
    trace: list[dict[str, Any]]
    key: str

    @property
    def ok(self) -> bool:
        """True when the cycle completed."""
        return self.status == "complete"


class CycleSession:
    """The volatile side of a cycle: connection, transaction manager, mind, settings, trace."""

    def __init__(
        self,
        conn: Any,
        manager: Any,
        mind: Mind,
        settings: CycleSettings,
        workflow: CompiledWorkflow,
        *,
        own: bool,
    ) -> None:
        self.conn = conn
        self.manager = manager
        self.mind = mind
        self.settings = settings
        self.workflow = workflow
        self.own = own
        self.savepoint = None if own or manager is None else manager.get().savepoint()
        self.trace: list[dict[str, Any]] = []
        self.state = workflow.start
        self.status = "running"
        self.reason = ""
        self.failed_state: str | None = None
        self.answer: Any = None
        self.key = ""
        self.closed = False
        self.call: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})

    @property
    def db(self) -> Any:
        """The database of the cycle's connection (None for an unsaved receiver)."""
        return self.conn.db() if self.conn is not None else None

    def outcome(self) -> CycleOutcome:
        """Return the plain outcome as it stands."""
        return CycleOutcome(
            self.status,
            self.answer,
            self.reason,
            self.failed_state,
            [dict(e) for e in self.trace],
            self.key,
        )


# Sessions by cycle object. Not a ``_v_`` attribute: a savepoint rollback (the JIT trial, the
# facets' collect pass) ghostifies changed objects, and a ghost forgets its ``_v_`` attributes.
_SESSIONS: weakref.WeakKeyDictionary[UvmObject, CycleSession] = weakref.WeakKeyDictionary()

_CURRENT: contextvars.ContextVar[CycleSession | None] = contextvars.ContextVar(
    "batos_psm_session", default=None
)


def current_session() -> CycleSession | None:
    """Return the session of the cycle whose state is running now (in this thread), or None."""
    return _CURRENT.get()


@contextmanager
def _active(session: CycleSession) -> Iterator[None]:
    token = _CURRENT.set(session)
    try:
        yield
    finally:
        _CURRENT.reset(token)


# --------------------------------------------------------------------------- starting


def _check_mission(mission: Any) -> str:
    if not isinstance(mission, str):
        raise CycleError(f"A mission is text; got {type(mission).__name__}.")
    if not mission.strip():
        raise CycleError(
            f"The mission is empty ({mission!r}); ask a question or give the cycle a task."
        )
    return mission.strip()


def start_cycle(
    target: Any,
    mission: str,
    *,
    persona: str = "BRICK",
    workflow: str | None = None,
    mind: Mind | None = None,
    settings: CycleSettings | None = None,
    kind: str = "question",
    connection: Any = None,
    scratch: dict[str, Any] | None = None,
) -> UvmObject:
    """Start a cycle on its own connection and transaction; return the cycle, at IDLE.

    Args:
        target: the Image (or its DB or a connection) the cycle works in.
        mission: the question (or, for a method cycle, the message to learn).
        persona: who was asked.
        workflow: the matrix archetype to follow (default: by persona).
        mind: the model interface (default: the one installed for the image).
        settings: bounds and budgets.
        kind: ``question`` or ``method``.
        connection: run inside this connection's transaction instead of a new one.
        scratch: initial scratch data.

    Returns:
        The cycle object; ``step()``, ``run()`` and ``abort()`` drive it.

    Raises:
        CycleError: an empty mission, an unknown persona, or no state machine in the image.
        WorkflowError: the workflow is unknown or does not compile.
        MindUnavailable: no mind was given or installed, and the model cannot be opened.
    """
    from batos_lab.errors import WorkflowError

    mission = _check_mission(mission)
    settings = settings or CycleSettings()
    own = connection is None
    if own:
        manager = transaction.TransactionManager()
        conn = db_of(target).open(transaction_manager=manager)
        manager.begin()
    else:
        conn, manager = connection, connection.transaction_manager
    try:
        root = conn.root()
        home = root.get("psm")
        if home is None:
            raise CycleError(
                "The image has no state machine yet; call batos_lab.psm.ensure_psm(image) once."
            )
        personas = root["personas"]
        if persona not in personas:
            raise CycleError(
                f"No persona named {persona!r}; the image's personas are {', '.join(personas)}."
            )
        name = workflow or DEFAULT_WORKFLOW.get(persona, "technical_deconstruction")
        flow = home.workflows.get(name)
        if flow is None:
            raise WorkflowError(
                f"No workflow named {name!r}; the image's workflows are "
                f"{', '.join(home.workflows)}."
            )
        compiled = compile_workflow(flow, home.states, personas)
        chosen = mind or mind_for(conn)
        if chosen is None:  # pragma: no cover - mind_for raises when it finds none
            raise CycleError("No mind serves this image's cycles.")
        session = CycleSession(conn, manager, chosen, settings, compiled, own=own)
        created = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        session.key = f"{created}-{uuid.uuid4().hex[:6]}"
        cycle = UvmObject(
            name=f"cycle {session.key}",
            kind=kind,
            mission=mission,
            persona=persona,
            workflow=name,
            workflow_object=flow,
            sequence=list(compiled.sequence),
            created=created,
            status="running",
            reason="",
            scratch=dict(scratch or {}),
            trace=[],
            **{"parent*": home.cycle_prototype, "synthesis_state*": home.states[compiled.start]},
        )
        _SESSIONS[cycle] = session
        conn.add(cycle)
    except BaseException:
        if own:
            manager.abort()
            conn.close()
        raise
    return cycle


def persona_ask(
    self: UvmObject, mission: str, workflow: str | None = None, mind: Mind | None = None
) -> UvmObject:
    """Start a cycle for ``mission`` asked of this persona (a native method of personas)."""
    if self._p_jar is None:
        raise CycleError(f"{self.short_name()} is not in an image; only stored personas ask.")
    return start_cycle(self._p_jar, mission, persona=str(self.name), workflow=workflow, mind=mind)


# --------------------------------------------------------------------------- stepping


def session_of(cycle: Any) -> CycleSession:
    """Return the live session of a cycle.

    Raises:
        CycleError: the cycle has no session in this process.
    """
    return _session(cycle)


def _session(cycle: Any) -> CycleSession:
    session = _SESSIONS.get(cycle)
    if session is None:
        raise CycleError(
            f"{cycle.short_name()} has no live session: it was loaded from the image after it "
            "ended. Read its trace slot, or start a new cycle with persona.ask(...)."
        )
    return session


def _entry(state: str, result: dict[str, Any], ms: float) -> dict[str, Any]:
    entry: dict[str, Any] = {name: None for name in TRACE_FIELDS}
    entry.update({k: v for k, v in result.items() if k not in ("ok", "calls")})
    entry["state"] = state
    entry["ms"] = round(ms, 3)
    entry["tokens"] = int(result.get("tokens") or 0)
    entry["notices"] = list(result.get("notices") or [])
    entry["reason"] = result.get("reason") or ""
    if result.get("calls"):
        entry["calls"] = [dict(c) for c in result["calls"]]
    return entry


def step(self: UvmObject) -> dict[str, Any]:
    """Run exactly one state of the cycle and return its trace entry (a native method).

    Raises:
        CycleError: the cycle has ended, or has no live session.
    """
    session = _session(self)
    if session.closed:
        raise CycleError(
            f"The cycle has ended ({session.status.upper()}); start a new one to ask again."
        )
    state = self.get_slot("synthesis_state*")
    name = str(state.state_name)
    began = time.perf_counter()
    with _active(session):
        try:
            result = self.process()
        except PSMError as exc:
            result = {"ok": False, "reason": f"{name}: {exc}"}
        except Exception as exc:  # any failure of a state fails the cycle, with its reason
            result = {"ok": False, "reason": f"{name} raised {type(exc).__name__}: {exc}"}
    entry = _entry(name, result, (time.perf_counter() - began) * 1e3)
    if name in TERMINAL:
        finish(self, session, name, entry)
        return dict(entry)
    ok = bool(result.get("ok"))
    target = session.workflow.next_state(name, ok)
    entry["next"] = target
    if not ok:
        session.failed_state, session.reason = name, entry["reason"]
        self.reason = entry["reason"]
    session.trace.append(dict(entry))
    self.trace.append(PersistentMapping(plain(entry)))
    self.set_slot("synthesis_state*", _states(self)[target])
    session.state = target
    return dict(entry)


def _states(cycle: UvmObject) -> Any:
    return cycle._p_jar.root()["psm"].states if cycle._p_jar is not None else _offline_states()


def _offline_states() -> Any:
    raise CycleError("The cycle is not in an image; start cycles with start_cycle(image, ...).")


def run(self: UvmObject, max_steps: int = 32) -> CycleOutcome:
    """Step until a terminal state has run; return the outcome (a native method).

    Raises:
        CycleError: the cycle had already ended, or did not end within ``max_steps``.
    """
    session = _session(self)
    if session.closed:
        raise CycleError(f"The cycle has already ended ({session.status.upper()}).")
    for _ in range(max_steps):
        step(self)
        if session.closed:
            return session.outcome()
    raise CycleError(f"The cycle did not end within {max_steps} steps; check its workflow.")


def abort(self: UvmObject, reason: str = "aborted by the researcher") -> dict[str, Any]:
    """Stop the cycle now: go to FAILED and run it (roll back, keep a failure record)."""
    session = _session(self)
    if session.closed:
        raise CycleError(f"The cycle has already ended ({session.status.upper()}).")
    session.failed_state = session.failed_state or session.state
    session.reason = session.reason or reason
    self.reason = session.reason
    self.set_slot("synthesis_state*", _states(self)["FAILED"])
    session.state = "FAILED"
    return step(self)


def outcome(self: UvmObject) -> CycleOutcome:
    """Return how the cycle stands or ended, as plain data (a native method)."""
    return _session(self).outcome()


def current_state(self: UvmObject) -> str:
    """Return the name of the state the cycle is in (a native method)."""
    return _session(self).state


def persona_seen(self: UvmObject, name: str) -> UvmObject:
    """Return the persona ``name`` as this cycle sees it (a native method).

    A cycle runs on its own connection, so what it did before COMPLETE commits (a facet
    method compiled in DELEGATING, say) is visible here and not yet through ``image.root``.

    Raises:
        CycleError: the image has no persona of that name.
    """
    personas = self._p_jar.root()["personas"] if self._p_jar is not None else {}
    if name not in personas:
        raise CycleError(
            f"There is no persona {name!r}; the personas are {', '.join(sorted(personas))}."
        )
    persona: UvmObject = personas[name]
    return persona


def trace_frame(self: UvmObject) -> Any:
    """Return the trace as a pandas DataFrame, one row per state run (a native method)."""
    import pandas as pd

    rows = [{k: e.get(k) for k in TRACE_FIELDS} for e in _session(self).trace]
    return pd.DataFrame(rows, columns=list(TRACE_FIELDS))
