"""Facets: persona pillars that start as intent strings and become methods on first use.

A persona's ``pillars`` slot maps facet names (``sage_facet_``) to intents. The first time a facet
is invoked, the persona's ``doesNotUnderstand_`` (:func:`persona_dnu`) compiles it through the JIT
pipeline of :mod:`batos_lab.dnu` with a *facet mandate*: write a method that builds a system
prompt from the intent and calls ``self.infer(query, system=...)``, the persona's own model call
with its adapter (:func:`persona_infer`). The method is extracted, audited and trial-run (the
trial's ``infer`` answers without the model), then installed on the persona; later calls reuse it.
A method that never calls ``self.infer`` passes any trial but would never ask the model, so it is
refused (:func:`asks_model`) and, like a method that failed every attempt, replaced by the
mandate's template when the cycle allows it.

In DELEGATING the facets answer together (:func:`answer_facets`): each facet method runs once in
a rolled-back savepoint to *collect* the requests it makes, the mind answers all of them in one
mixed-adapter batch, and each method runs again, *replaying* its answers, so whatever the method
does with its reply is honoured without a second model call.
"""

from __future__ import annotations

import ast
import contextvars
import datetime as dt
import hashlib
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from batos_lab.dnu import JITSettings, learn
from batos_lab.dnu_prompt import JITPrompt
from batos_lab.errors import DoesNotUnderstand, PSMError
from batos_lab.objects import Method, UvmObject, raise_does_not_understand
from batos_lab.psm.mind import Mind, Reply, Request, mind_for

__all__ = [
    "FacetAnswer",
    "answer_facets",
    "asks_model",
    "ensure_facet",
    "facet_prompt",
    "persona_dnu",
    "persona_infer",
    "template_source",
]

#: What ``infer`` answers inside a facet method's trial run.
TRIAL_REPLY = "(a trial reply: the model is not asked during the trial run)"
_PENDING = "\x00pending-reply\x00"


@dataclass
class _FacetCalls:
    """How ``persona.infer`` behaves while facet methods run: trial, collect or replay."""

    mode: str
    persona: str = ""
    facet: str = ""
    max_new_tokens: int = 160
    requests: list[Request] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    used: int = 0
    mind: Mind | None = None
    live: list[Reply] = field(default_factory=list)


_CALLS: contextvars.ContextVar[_FacetCalls | None] = contextvars.ContextVar(
    "batos_facet_calls", default=None
)


@contextmanager
def _calls(state: _FacetCalls) -> Iterator[_FacetCalls]:
    token = _CALLS.set(state)
    try:
        yield state
    finally:
        _CALLS.reset(token)


# The mandate is a Python file, as the JIT prompt is: the model continues the forced header of
# the last function. Every example names the slot it reads in its comment, so the model copies
# the facet's real key rather than a shortened one (it wrote 'tamland_' for 'tamland_facet_').
_MANDATE = """\
# A facet of a persona: a method that answers a query in the spirit of an intent.
# The intent is a slot: self.pillars[facet name]. The persona's name is self.name.
# A facet builds a system text from its intent and returns self.infer(query, system=system).
# Names never start with an underscore.

# ZED's facet plain_facet_, intent self.pillars['plain_facet_']: Answer plainly.
def plain_facet_(self, query):
    system = 'You are ' + self.name + '. ' + self.pillars['plain_facet_']
    return self.infer(query, system=system)

# ZED's facet kind_facet_, intent self.pillars['kind_facet_']: Answer with warmth.
def kind_facet_(self, query):
    system = self.name + ' speaks. ' + self.pillars['kind_facet_']
    return self.infer(query, system=system)
"""


def facet_prompt(persona: UvmObject, facet: str) -> JITPrompt:
    """Return the facet mandate prompt for ``persona``'s ``facet``, ending in its header.

    Example:
        >>> facet_prompt(brick, "guide_facet_").header  # doctest: +SKIP
        'def guide_facet_(self, query):'
    """
    intent = " ".join(str(persona.pillars[facet]).split())
    header = f"def {facet}(self, query):"
    text = "\n".join(
        [
            _MANDATE,
            f"# {persona.name}'s facet {facet}, intent self.pillars[{facet!r}]: {intent}",
            header,
        ]
    )
    return JITPrompt(
        text=text,
        header=header,
        params=("query",),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


def asks_model(source: str) -> bool:
    """Tell whether a facet method's source calls ``self.infer`` (a facet must ask the model).

    Example:
        >>> asks_model("def f(self, query):\\n    return self.infer(query)")
        True
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "infer"
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "self"
        for node in ast.walk(tree)
    )


def _code_generator(mind: Mind) -> Any:
    def generate(prompt: str, temperature: float, attempt: int) -> str:
        # a ModelMind continues the forced header and stops where the function ends; a body
        # of the mandate's shape is about 45 tokens
        request = Request(role="code", prompt=prompt, max_new_tokens=96, temperature=temperature)
        return mind.answer(request).text

    return generate


def template_source(facet: str) -> str:
    """Return the facet method the mandate describes, for when the model cannot write it."""
    return (
        f"def {facet}(self, query):\n"
        f"    intent = self.pillars[{facet!r}]\n"
        "    system = 'You are ' + self.name + '. ' + intent\n"
        "    return self.infer(query, system=system)\n"
    )


def ensure_facet(
    persona: UvmObject,
    facet: str,
    mind: Mind,
    settings: JITSettings | None = None,
    *,
    fallback: bool = True,
) -> Method:
    """Compile ``facet`` of ``persona`` if it is still an intent; return its method.

    The method is installed on the persona in the caller's transaction (not committed). When no
    attempt passes and ``fallback`` is set, the mandate's template is installed instead, with
    ``author = "facet-template"`` and the failed attempts in its provenance.

    Raises:
        PSMError: the persona has no such pillar, or no attempt passed and ``fallback`` is off.
    """
    current = persona.get_slot(facet, None) if persona.has_slot(facet) else None
    if isinstance(current, Method):
        return current
    pillars = persona.get_slot("pillars", {})
    if facet not in pillars:
        raise PSMError(
            f"{persona.name} has no facet {facet!r}; its facets are {', '.join(pillars)}."
        )
    settings = settings or JITSettings(max_attempts=2)
    prompt = facet_prompt(persona, facet)
    attempts: list[dict[str, Any]] = []
    began = time.perf_counter()
    with _calls(_FacetCalls(mode="trial")):
        learned = learn(
            persona,
            facet,
            ("What is this about?",),
            {},
            prompt,
            _code_generator(mind),
            settings,
            attempts,
        )
    author = "jit-facet"
    if learned is not None and not asks_model(learned[0]):
        # the trial passes whatever the method returns; a facet that never asks the model
        # would answer every query with the same text, so it is not accepted
        attempts.append(
            {
                "attempt": len(attempts),
                "stage": "facet",
                "error": "the method never calls self.infer, so it would not ask the model",
                "source": learned[0],
            }
        )
        learned = None
    if learned is None:
        summary = "; ".join(f"{a.get('stage')}: {a.get('error')}" for a in attempts)
        if not fallback:
            raise PSMError(
                f"The facet {persona.name}.{facet} could not be compiled ({len(attempts)} "
                f"attempt(s): {summary}). Its intent stays as it was."
            )
        learned, author = (template_source(facet), []), "facet-template"
    source, fixes = learned
    return persona.define(
        facet,
        source,
        provenance={
            "author": author,
            "model": str(getattr(mind, "model_id", "?")),
            "prompt_sha256": prompt.sha256,
            "attempts": attempts,
            "latency_s": round(time.perf_counter() - began, 3),
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "autofix": fixes,
        },
    )


def persona_infer(
    self: UvmObject, prompt: str, system: str | None = None, max_new_tokens: int | None = None
) -> str:
    """Answer ``prompt`` as this persona, with its adapter (a native method of personas)."""
    from batos_lab.limits import paused

    calls = _CALLS.get()
    request = Request(
        role="facet",
        prompt=str(prompt),
        system=None if system is None else str(system),
        persona=str(self.name),
        facet=calls.facet if calls is not None and calls.facet else None,
        adapter=self.get_slot("adapter", None),
        max_new_tokens=max_new_tokens or (calls.max_new_tokens if calls is not None else 160),
    )
    if calls is not None and calls.mode == "trial":
        return TRIAL_REPLY
    if calls is not None and calls.mode == "collect":
        calls.requests.append(request)
        return _PENDING
    if calls is not None and calls.mode == "replay":
        index = calls.used
        calls.used += 1
        if index < len(calls.requests) and calls.requests[index] == request:
            return calls.replies[index].text
        mind = calls.mind  # the method asked something new on replay: ask it live
    else:
        mind = _mind_of(self)
    if mind is None:
        raise PSMError("No mind is available to answer this persona.")
    with paused():
        reply = mind.answer(request)
    if calls is not None:
        calls.live.append(reply)
    return reply.text


def _mind_of(persona: UvmObject) -> Mind | None:
    from batos_lab.psm.cycle import current_session

    session = current_session()
    if session is not None:
        return session.mind
    return mind_for(persona._p_jar) if persona._p_jar is not None else None


def persona_dnu(self: UvmObject, selector: str, *args: Any, **kwargs: Any) -> Any:
    """A persona's ``doesNotUnderstand_``: compile a facet on first use, else pass it on.

    Outside a cycle the compiled facet is committed with the persona's transaction, as the JIT
    kernel commits a learned method; inside a cycle it waits for the cycle's end.
    """
    pillars = self.get_slot("pillars", {})
    if selector not in pillars:
        traits = self.get_slot("parent*", None)
        hook = traits.get_slot("doesNotUnderstand_", None) if traits is not None else None
        if hook is None:
            return raise_does_not_understand(self, selector, *args, **kwargs)
        return hook.bind(self)(selector, *args, **kwargs)
    from batos_lab.psm.cycle import current_session

    session = current_session()
    mind = _mind_of(self)
    if mind is None:
        raise DoesNotUnderstand(
            f"{self.short_name()} cannot compile its facet {selector!r}: no mind serves the "
            "image. Install one with batos_lab.psm.install_mind(image, mind).",
            receiver=self,
            selector=selector,
        )
    settings = session.settings.jit if session is not None else None
    ensure_facet(self, selector, mind, settings)
    if session is None and self._p_jar is not None:
        manager = self._p_jar.transaction_manager
        manager.get().note(f"psm: {self.name} compiled its facet {selector}")
        manager.commit()
    return self.send(selector, *args, **kwargs)


@dataclass
class FacetAnswer:
    """One facet's partial answer."""

    persona: str
    facet: str
    query: str
    answer: str
    adapter: str | None
    tokens: int
    ms: float
    requests: int


def answer_facets(
    jobs: Sequence[tuple[UvmObject, str, str]], mind: Mind, settings: Any
) -> tuple[list[FacetAnswer], int, list[str]]:
    """Run facet methods together: collect their requests, answer them in one batch, replay.

    Args:
        jobs: ``(persona, facet, query)`` triples, in speaking order.
        mind: the model interface.
        settings: the cycle settings (JIT settings, token budget).

    Returns:
        The partial answers in order, the size of the batch sent to the mind, and notices
        (facets installed from the template).

    Raises:
        PSMError: a facet could not be compiled, raised an error, or returned no text.
    """
    collected: list[_FacetCalls] = []
    notices: list[str] = []
    for persona, facet, query in jobs:
        fresh = not persona.has_slot(facet)
        method = ensure_facet(persona, facet, mind, settings.jit, fallback=settings.facet_fallback)
        if fresh and method.provenance.get("author") == "facet-template":
            notices.append(
                f"The model could not write {persona.name}.{facet}; the mandate's template "
                "was installed instead (see its provenance)."
            )
        state = _FacetCalls("collect", str(persona.name), facet, settings.facet_tokens, mind=mind)
        jar = persona._p_jar
        savepoint = jar.transaction_manager.get().savepoint() if jar is not None else None
        try:
            with _calls(state):
                _call_facet(persona, facet, query)
        finally:
            if savepoint is not None:
                savepoint.rollback()
        collected.append(state)
    requests = [r for state in collected for r in state.requests]
    replies = mind.answer_batch(requests) if requests else []
    answers: list[FacetAnswer] = []
    offset = 0
    for (persona, facet, query), state in zip(jobs, collected, strict=True):
        count = len(state.requests)
        replay = _FacetCalls(
            "replay",
            state.persona,
            facet,
            settings.facet_tokens,
            requests=state.requests,
            replies=replies[offset : offset + count],
            mind=mind,
        )
        offset += count
        with _calls(replay):
            text = _call_facet(persona, facet, query)
        used = replay.replies + replay.live
        answers.append(
            FacetAnswer(
                state.persona,
                facet,
                query,
                text,
                state.requests[0].adapter if state.requests else None,
                sum(r.completion_tokens for r in used),
                max((r.ms for r in used), default=0.0),
                count + len(replay.live),
            )
        )
    return answers, len(requests), notices


def _call_facet(persona: UvmObject, facet: str, query: str) -> str:
    try:
        result = persona.send(facet, query)
    except PSMError:
        raise
    except Exception as exc:
        raise PSMError(
            f"The facet {persona.name}.{facet} failed: {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(result, str):
        raise PSMError(
            f"The facet {persona.name}.{facet} returned {type(result).__name__}, not text."
        )
    return result.replace(_PENDING, "").strip()
