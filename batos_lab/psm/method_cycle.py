"""doesNotUnderstand_ in cycle mode: an unknown message becomes the mission of a cycle.

When ``genesis.dnu_mode == "cycle"``, :func:`cycle_dnu` answers an unknown message by running a
*method cycle* inside the receiver's own transaction:

* DECOMPOSING: BRICK writes the logic (the JIT prompt of :mod:`batos_lab.dnu_prompt`, extracted,
  audited and trial-run in a savepoint by the JIT pipeline, retried with feedback);
* DELEGATING: ROBIN writes the docstring;
* SYNTHESIZING: ALFRED assembles source and docstring and audits the result with the guardian;
* COMPLETE: the method is installed with provenance and run on the real arguments; the
  transaction commits and the caller gets the method's result.

Any failure rolls the receiver's transaction back to where the message arrived, keeps a failure
record, and raises :class:`~batos_lab.errors.DoesNotUnderstand` with the reason.
"""

from __future__ import annotations

import ast
import datetime as dt
import time
from typing import Any

from batos_lab.dnu import check_selector, learn
from batos_lab.dnu_prompt import build_prompt, safe_repr
from batos_lab.errors import DoesNotUnderstand, GuardianRejection, PSMError
from batos_lab.guardian import audit
from batos_lab.psm.cycle import (
    CycleSession,
    CycleSettings,
    current_session,
    session_of,
    start_cycle,
)
from batos_lab.psm.mind import Request

__all__ = ["add_docstring", "assemble", "cycle_dnu", "install", "write_doc", "write_logic"]


def _live() -> CycleSession:
    session = current_session()
    if session is None:
        raise PSMError("A state ran outside a cycle; drive cycles with cycle.step().")
    return session


def _call(cycle: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return session_of(cycle).call


def write_logic(cycle: Any) -> dict[str, Any]:
    """DECOMPOSING of a method cycle: BRICK writes the method through the JIT pipeline."""
    session = _live()
    receiver, selector = cycle.receiver, str(cycle.selector)
    args, kwargs = _call(cycle)
    brick = cycle._p_jar.root()["personas"]["BRICK"]
    jit_prompt = build_prompt(receiver, selector, args, kwargs)
    tokens = 0

    def generate(prompt: str, temperature: float, attempt: int) -> str:
        nonlocal tokens
        reply = session.mind.answer(
            Request(
                role="code",
                prompt=prompt,
                persona="BRICK",
                adapter=brick.get_slot("adapter", None),
                max_new_tokens=256,
                temperature=temperature,
                stop=("\n```",),
            )
        )
        tokens += reply.completion_tokens
        return reply.text

    attempts: list[dict[str, Any]] = []
    learned = learn(
        receiver, selector, args, kwargs, jit_prompt, generate, session.settings.jit, attempts
    )
    cycle.scratch["attempts"] = [dict(a) for a in attempts]
    result = {
        "persona": "BRICK",
        "adapter": brick.get_slot("adapter", None),
        "prompt": jit_prompt.text,
        "tokens": tokens,
        "ok": learned is not None,
    }
    if learned is None:
        result["output"] = attempts[-1].get("reply", "") if attempts else ""
        result["reason"] = "BRICK's method did not pass: " + "; ".join(
            f"attempt {a['attempt'] + 1} ({a.get('stage')}): {a.get('error')}" for a in attempts
        )
        return result
    cycle.scratch["source"], cycle.scratch["autofix"] = learned[0], list(learned[1])
    cycle.scratch["prompt_sha256"] = jit_prompt.sha256
    result["output"] = learned[0]
    return result


def _clean_doc(text: str) -> str:
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = line.strip("`'\" ").replace('"""', "").replace("\\", "")
    return " ".join(line.split())[:200]


def write_doc(cycle: Any) -> dict[str, Any]:
    """DELEGATING of a method cycle: ROBIN writes the docstring (a default when it is blank)."""
    session = _live()
    robin = cycle._p_jar.root()["personas"]["ROBIN"]
    request = Request(
        role="doc",
        prompt="Write one sentence saying what this method does, for its docstring.\n"
        f"```python\n{cycle.scratch['source']}```",
        persona="ROBIN",
        adapter=robin.get_slot("adapter", None),
        max_new_tokens=60,
    )
    reply = session.mind.answer(request)
    doc = _clean_doc(reply.text)
    notices = []
    if not doc:
        doc = f"Answer the message {cycle.selector}."
        notices.append("ROBIN's docstring was blank; a plain one is used.")
    cycle.scratch["doc"] = doc
    return {
        "persona": "ROBIN",
        "adapter": request.adapter,
        "prompt": request.prompt,
        "output": doc,
        "tokens": reply.completion_tokens,
        "notices": notices,
        "ok": True,
    }


def add_docstring(source: str, doc: str) -> str:
    """Return ``source`` with ``doc`` as its function's docstring (kept when one exists)."""
    tree = ast.parse(source)
    func = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    first = func.body[0]
    if (
        isinstance(first, ast.Expr)
        and isinstance(first.value, ast.Constant)
        and isinstance(first.value.value, str)
    ):
        return source
    lines = source.splitlines()
    indent = " " * first.col_offset
    lines.insert(first.lineno - 1, f'{indent}"""{doc}"""')
    return "\n".join(lines) + "\n"


def assemble(cycle: Any) -> dict[str, Any]:
    """SYNTHESIZING of a method cycle: ALFRED assembles the method and audits it."""
    source = add_docstring(str(cycle.scratch["source"]), str(cycle.scratch["doc"]))
    result: dict[str, Any] = {"persona": "ALFRED", "prompt": source, "ok": False}
    try:
        report = audit(source, str(cycle.selector), autofix=True)
    except GuardianRejection as exc:
        result["output"] = f"rejected: [{exc.rule}] line {exc.line}"
        result["reason"] = f"ALFRED's audit refused the assembled method: {exc}"
        return result
    cycle.scratch["final_source"] = report.source
    result.update(output=report.source, ok=True)
    return result


def install(cycle: Any) -> dict[str, Any]:
    """COMPLETE of a method cycle: install the method and run it on the real arguments."""
    session = _live()
    receiver, selector = cycle.receiver, str(cycle.selector)
    args, kwargs = _call(cycle)
    receiver.define(
        selector,
        str(cycle.scratch["final_source"]),
        provenance={
            "author": "cycle",
            "model": str(getattr(session.mind, "model_id", "?")),
            "cycle": session.key,
            "prompt_sha256": cycle.scratch.get("prompt_sha256"),
            "attempts": [dict(a) for a in cycle.scratch.get("attempts", [])],
            "doc_by": "ROBIN",
            "audited_by": "ALFRED",
            "created": dt.datetime.now(dt.UTC).isoformat(),
        },
    )
    try:
        value = receiver.send(selector, *args, **kwargs)
    except Exception as exc:
        return {
            "persona": "ALFRED",
            "output": "",
            "ok": False,
            "reason": f"the installed method raised {type(exc).__name__}: {exc}",
        }
    session.answer = value
    return {"persona": "ALFRED", "output": safe_repr(value, 200), "ok": True}


def cycle_dnu(receiver: Any, selector: str, *args: Any, **kwargs: Any) -> Any:
    """Answer an unknown message with a method cycle; return the new method's result.

    Args:
        receiver: the UvmObject that received the message (it must be in an image).
        selector: the message name.
        *args, **kwargs: the call's arguments.

    Returns:
        What the installed method returned.

    Raises:
        DoesNotUnderstand: the selector cannot be learned, the receiver is not in an image, or
            the cycle failed (its reason is in the message; a failure record was kept).
    """
    check_selector(receiver, selector)
    jar = receiver._p_jar
    if jar is None:
        raise DoesNotUnderstand(
            f"{receiver.short_name()} is not in an image; cycle mode learns methods only for "
            "stored objects. Keep it with image['name'] = obj first.",
            receiver=receiver,
            selector=selector,
        )
    started = time.perf_counter()
    call = [safe_repr(a) for a in args] + [f"{k}={safe_repr(v)}" for k, v in kwargs.items()]
    mission = f"{receiver.get_slot('name', 'object')}.{selector}({', '.join(call)})"
    cycle = start_cycle(
        jar,
        mission,
        persona="BRICK",
        kind="method",
        connection=jar,
        settings=CycleSettings(),
        scratch={},
    )
    cycle.receiver = receiver
    cycle.selector = selector
    session_of(cycle).call = (args, kwargs)
    outcome = cycle.run()
    if outcome.ok:
        return outcome.answer
    raise DoesNotUnderstand(
        f"{receiver.short_name()} could not learn {selector!r} in a cycle: {outcome.reason} "
        f"(failed in {outcome.failed_state}, after {time.perf_counter() - started:.1f} s). "
        "The image is unchanged; a failure record was kept.",
        receiver=receiver,
        selector=selector,
        attempts=[dict(e) for e in outcome.trace],
    )
