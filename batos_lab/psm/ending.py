"""How a cycle ends: COMPLETE commits, FAILED rolls back and keeps only a failure record.

After a rollback the objects the cycle created are emptied by ZODB, the cycle itself included;
the researcher's handle on the cycle gets a detached copy of its slots so it can still be read.
A failure record (mission, state, reason, trace) is written on a separate connection, in its own
transaction, to ``root["failures"]``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import TYPE_CHECKING, Any

from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

from batos_lab.failures import record_failure
from batos_lab.objects import UvmObject, persistify

if TYPE_CHECKING:
    from batos_lab.psm.cycle import CycleSession

__all__ = ["finish", "plain"]


def finish(cycle: UvmObject, session: CycleSession, name: str, entry: dict[str, Any]) -> None:
    """End the cycle in terminal state ``name``: commit, or roll back and record the failure."""
    entry["next"] = None
    session.trace.append(dict(entry))
    session.state = name
    if name == "COMPLETE" and not entry["reason"]:
        cycle.trace.append(PersistentMapping(plain(entry)))
        cycle.status = "complete"
        if session.answer is None:
            session.answer = cycle.scratch.get("answer")
        before = {name: _copy(value) for name, value in cycle._slots.items()}
        try:
            if cycle._p_jar is not None:
                cycle._p_jar.root()["psm"].cycles[session.key] = cycle
            if session.manager is not None:
                session.manager.get().note(f"psm: cycle {session.key} complete")
                session.manager.commit()
            session.status = "complete"
        except Exception as exc:
            session.failed_state = "COMPLETE"
            session.reason = f"the commit failed ({type(exc).__name__}: {exc})"
            session.status, session.answer = "failed", None
            entry["reason"] = session.reason
            _fail(cycle, session, before)
    else:
        if name == "COMPLETE":  # the terminal work itself failed (installing a method)
            session.failed_state, session.reason = "COMPLETE", entry["reason"]
        session.status = "failed"
        session.reason = session.reason or entry["reason"] or "the cycle failed"
        _fail(cycle, session)
    session.closed = True
    if session.own:
        _preload(cycle)
        session.conn.close()


def _preload(cycle: UvmObject) -> None:
    """Load what the cycle's methods need, so they still answer once its connection is closed."""
    from persistent import Persistent

    with contextlib.suppress(Exception):
        for obj in cycle.ancestors():
            obj._p_activate()
            obj._slots._p_activate()
            for value in obj._slots.values():
                if isinstance(value, Persistent) and not isinstance(value, UvmObject):
                    value._p_activate()


def _fail(cycle: UvmObject, session: CycleSession, slots: dict[str, Any] | None = None) -> None:
    """Roll the cycle's work back, keep the in-memory cycle readable, record the failure."""
    if slots is None:
        slots = {name: _copy(value) for name, value in cycle._slots.items()}
    slots.update(status="failed", reason=session.reason)
    _preload(cycle)
    _roll_back(session)
    # Rolling back empties the objects the cycle created, itself included; the researcher's
    # handle on the cycle keeps a detached copy of its slots (never stored) to inspect.
    cycle.__setstate__({"_slots": PersistentMapping(persistify(slots))})
    _record_failure(slots, session)


def _copy(value: Any) -> Any:
    if isinstance(value, PersistentMapping | dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, PersistentList | list):
        return [_copy(v) for v in value]
    return value


def _roll_back(session: CycleSession) -> None:
    if session.manager is None:
        return
    if session.own or session.savepoint is None:
        session.manager.abort()
    else:
        try:
            session.savepoint.rollback()
        except Exception:  # an invalid savepoint (after a failed commit): drop everything
            session.manager.abort()


def plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def _record_failure(slots: dict[str, Any], session: CycleSession) -> None:
    """Write the failure record (mission, state, reason, trace) in a separate transaction."""
    db = session.db
    if db is None:
        return
    record = {
        "kind": "cycle",
        "cycle": session.key,
        "cycle_kind": str(slots.get("kind", "question")),
        "mission": str(slots.get("mission", ""))[:4000],
        "persona": str(slots.get("persona", "")),
        "workflow": str(slots.get("workflow", "")),
        "state": session.failed_state or session.state,
        "reason": session.reason,
        "trace": [plain({**e, "output": str(e.get("output") or "")[:2000]}) for e in session.trace],
        "mind": str(getattr(session.mind, "model_id", "?")),
        "created": dt.datetime.now(dt.UTC).isoformat(),
    }
    record_failure(db, record, f"psm: cycle {session.key} failed in {record['state']}")
