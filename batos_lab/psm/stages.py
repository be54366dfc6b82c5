"""What the states of a question cycle do: accept, decompose, delegate, synthesize.

Each function takes the cycle (the receiver of ``process``), works in the cycle's transaction,
keeps its results in ``cycle.scratch``, and returns a result mapping: the trace fields (persona,
facet, adapter, prompt, output, tokens, notices), ``ok`` and, when not ok, ``reason``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from batos_lab.errors import PlanError, PSMError
from batos_lab.psm.cycle import CycleSession, current_session
from batos_lab.psm.facets import answer_facets
from batos_lab.psm.mind import Reply, Request
from batos_lab.psm.plan import Plan, fallback_plan, parse_plan, plan_prompt

__all__ = [
    "BASE_MODEL",
    "accept_mission",
    "content_stems",
    "decompose",
    "delegate",
    "distinct_share",
    "facet_query",
    "gate",
    "plan_request",
    "synthesize",
    "weave_prompt",
    "weave_request",
]


def _session() -> CycleSession:
    session = current_session()
    if session is None:
        raise PSMError("A state ran outside a cycle; drive cycles with cycle.step().")
    return session


def _persona(cycle: Any, name: str) -> Any:
    return cycle._p_jar.root()["personas"][name]


def _system(persona: Any, task: str) -> str:
    return f"You are {persona.name}, {persona.get_slot('title', '')}. {persona.core_mission} {task}"


def _facets_of(cycle: Any, sequence: Any) -> dict[str, tuple[str, str]]:
    """facet -> (persona, intent), personas in workflow order."""
    personas = cycle._p_jar.root()["personas"]
    return {
        facet: (name, str(intent))
        for name in sequence
        for facet, intent in personas[name].get_slot("pillars", {}).items()
    }


def accept_mission(cycle: Any) -> dict[str, Any]:
    """IDLE: check the mission and cut an over-long one, with a notice."""
    settings = _session().settings
    mission = str(cycle.mission)
    notices: list[str] = []
    if len(mission) > settings.max_mission_chars:
        notices.append(
            f"The mission was {len(mission)} characters, over the context budget of "
            f"{settings.max_mission_chars}; it was cut to its first {settings.max_mission_chars}."
        )
        mission = mission[: settings.max_mission_chars]
        cycle.scratch["mission_cut"] = True
    cycle.scratch["mission"] = mission
    return {
        "persona": cycle.persona,
        "prompt": mission,
        "output": f"mission accepted ({len(mission)} characters, workflow {cycle.workflow})",
        "notices": notices,
        "ok": True,
    }


def _context(cycle: Any, mission: str, hits: int) -> tuple[str, list[str]]:
    catalog = cycle._p_jar.root().get("knowledge_catalog")
    if catalog is None or hits <= 0:
        return "", []
    try:
        found = catalog.search(mission, top_k=hits)
    except Exception as exc:  # retrieval is a help, never a reason to fail
        return "", [f"The knowledge catalog could not be searched ({type(exc).__name__}: {exc})."]
    return "\n".join(f"- {hit.text[:400]}" for hit in found), []


def _matrix_plan(mission: str, facets: dict[str, tuple[str, str]], session: CycleSession) -> Plan:
    pillars: dict[str, list[str]] = {}
    for facet, (persona, _) in facets.items():
        pillars.setdefault(persona, []).append(facet)
    return fallback_plan(mission, session.workflow.sequence, pillars, session.workflow.name)


def plan_request(
    mission: str, intents: Mapping[str, str], brick: Any, settings: Any, context: str = ""
) -> Request:
    """Return the request BRICK plans from (what DECOMPOSING sends, and what benchmarks time).

    Args:
        mission: the question.
        intents: facet name -> intent, for the facets the plan may choose.
        brick: the BRICK persona (its title, mission and adapter are used).
        settings: the cycle settings (``plan_tokens``).
        context: background from the knowledge catalog, if any.
    """
    return Request(
        role="plan",
        prompt=plan_prompt(mission, intents, context),
        system=_system(brick, "You turn a question into a plan, as JSON."),
        persona="BRICK",
        adapter=brick.get_slot("adapter", None),
        max_new_tokens=settings.plan_tokens,
    )


def decompose(cycle: Any) -> dict[str, Any]:
    """DECOMPOSING: BRICK writes the plan; an invalid plan yields the matrix fallback."""
    session = _session()
    settings = session.settings
    mission = str(cycle.scratch.get("mission", cycle.mission))
    facets = _facets_of(cycle, session.workflow.sequence)
    context, notices = _context(cycle, mission, settings.context_hits)
    intents = {f: intent for f, (_, intent) in facets.items()}
    request = plan_request(mission, intents, _persona(cycle, "BRICK"), settings, context)
    reply = session.mind.plan(request, list(facets))
    notices += reply.notices
    try:
        plan: Plan = parse_plan(reply.text, facets)
        source = "model"
    except PlanError as exc:
        plan = _matrix_plan(mission, facets, session)
        source = "fallback"
        notices.append(f"BRICK's plan was not valid ({exc}); the workflow matrix's plan is used.")
        cycle.scratch["plan_error"] = str(exc)
    cycle.scratch["plan"] = plan.model_dump()
    cycle.scratch["plan_source"] = source
    return {
        "persona": "BRICK",
        "facet": ",".join(plan.relevant_pillars),  # the facets the plan hands the question to
        "adapter": reply.adapter or request.adapter,
        "prompt": request.prompt,
        "output": reply.text,
        "tokens": reply.completion_tokens,
        "notices": notices,
        "ok": True,
    }


def facet_query(mission: str, plan: Plan, facet: str) -> str:
    """Return what ``facet`` is asked: the question, then the plan's sub-question for it.

    The question always leads: a small model's sub-question can drift from it, and a facet
    handed only the drift would answer something nobody asked.

    Example:
        >>> plan = Plan(strategy="s", relevant_pillars=["a_"], sub_queries={"a_": "Why now?"})
        >>> facet_query("Should I move?", plan, "a_")
        'Should I move?\\nFocus on: Why now?'
    """
    sub = plan.sub_queries.get(facet, "").strip()
    if not sub or _normal(sub) == _normal(mission):
        return mission
    return f"{mission}\nFocus on: {sub}"


def delegate(cycle: Any) -> dict[str, Any]:
    """DELEGATING: the plan's facets answer in one batch; no answer at all fails the cycle."""
    session = _session()
    facets = _facets_of(cycle, session.workflow.sequence)
    mission = str(cycle.scratch.get("mission", cycle.mission))
    notices: list[str] = []
    if "plan" in cycle.scratch:
        plan = Plan.model_validate(dict(cycle.scratch["plan"]))
    else:  # a workflow without DECOMPOSING: the matrix decides who answers
        plan = _matrix_plan(mission, facets, session)
        cycle.scratch["plan"], cycle.scratch["plan_source"] = plan.model_dump(), "fallback"
        notices.append("No plan was made in this workflow; the workflow matrix's plan is used.")
    order = list(facets)
    chosen = sorted(
        (f for f in plan.relevant_pillars if f in facets), key=order.index
    )  # the workflow's speaking order
    if not chosen:
        return {"ok": False, "reason": "the plan names no facet of this workflow's personas"}
    jobs = [(_persona(cycle, facets[f][0]), f, facet_query(mission, plan, f)) for f in chosen]
    answers, batch, compiled = answer_facets(jobs, session.mind, session.settings)
    notices += compiled
    notices += [
        f"{a.persona}.{a.facet} gave no answer; it is left out." for a in answers if not a.answer
    ]
    partials = [a for a in answers if a.answer]
    cycle.scratch["partials"] = [
        {"persona": a.persona, "facet": a.facet, "query": a.query, "answer": a.answer}
        for a in partials
    ]
    cycle.scratch["batch_size"] = batch
    result: dict[str, Any] = {
        "persona": ",".join(a.persona for a in answers),
        "facet": ",".join(a.facet for a in answers),
        "adapter": ",".join(str(a.adapter) for a in answers),
        "prompt": "\n".join(f"{a.facet}: {a.query}" for a in answers),
        "output": "\n".join(f"{a.facet}: {a.answer}" for a in answers),
        "tokens": sum(a.tokens for a in answers),
        "notices": notices,
        "calls": [
            {"persona": a.persona, "facet": a.facet, "tokens": a.tokens, "ms": round(a.ms, 3)}
            for a in answers
        ],
        "ok": bool(partials),
    }
    if not partials:
        result["reason"] = "no facet gave an answer (every reply was empty)"
    return result


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


#: Common words that say nothing about a topic (the grounding check ignores them).
_STOPWORDS = frozenset(
    """about after again also been before being both could does doing each even every from
    have here just like made make many more most much need only other over same should some
    such take than that their them then there these they this those very want well were what
    when where which while will with would your yours""".split()
)


def content_stems(text: str) -> set[str]:
    """Return the topic-bearing words of ``text``: words of 4+ letters, stop words out, cut to
    their first five letters (so ``backups`` and ``backing`` meet at ``backu``).

    Example:
        >>> sorted(content_stems("Back up the database daily; databases need backups."))
        ['back', 'backu', 'daily', 'datab']
    """
    words = re.findall(r"[a-z]+", text.lower())
    return {w[:5] for w in words if len(w) >= 4 and w not in _STOPWORDS}


def distinct_share(text: str) -> float:
    """Return the share of word triples of ``text`` that are distinct (1.0: no repeats).

    Example:
        >>> distinct_share("one two three one two three one two three")
        0.42857142857142855
    """
    words = _normal(text).split()
    triples = list(zip(words, words[1:], words[2:], strict=False))
    return len(set(triples)) / len(triples) if triples else 1.0


def gate(answer: str, partials: list[str], settings: Any, question: str = "") -> str:
    """Return why a synthesis fails the quality gate, or "" when it passes.

    The gate checks, in order: an empty text, the length bounds, a copy of one partial answer,
    a loop (too few distinct word triples, in a text of 14 words or more), and grounding (content
    words shared with the question and the partial answers).
    """
    text = answer.strip()
    if not text:
        return "the synthesis is empty"
    if len(text) < settings.min_answer_chars:
        return f"the synthesis is {len(text)} characters, under {settings.min_answer_chars}"
    if len(text) > settings.max_answer_chars:
        return f"the synthesis is {len(text)} characters, over {settings.max_answer_chars}"
    for partial in partials:
        if _normal(text) == _normal(partial):
            return "the synthesis is a copy of one partial answer, not a weave of them"
        ratio = difflib.SequenceMatcher(None, _normal(text), _normal(partial)).ratio()
        if ratio >= settings.copy_ratio:
            return f"the synthesis copies one partial answer ({ratio:.0%} alike) instead of weaving"
    share = distinct_share(text)
    if len(text.split()) >= 14 and share < settings.min_distinct:
        return (
            f"the synthesis repeats itself (only {share:.0%} of its word triples are distinct, "
            f"under {settings.min_distinct:.0%})"
        )
    if settings.min_shared_words:
        shared = content_stems(text) & content_stems(" ".join([question, *partials]))
        if len(shared) < settings.min_shared_words:
            return (
                f"the synthesis shares {len(shared)} content word(s) with the question and the "
                f"partial answers, under {settings.min_shared_words}: it wove nothing of them"
            )
    return ""


#: The trace's name for the base model with every adapter off.
BASE_MODEL = "base"

_FAIL = re.compile(r"\b(FAIL|FAILS|FAILED|REJECT|REJECTED)\b", re.IGNORECASE)


def weave_prompt(mission: str, partials: list[str]) -> str:
    """Return ROBIN's weaving prompt: the partial answers first, the question last.

    Example:
        >>> print(weave_prompt("Why?", ["Because.", "It rains."]))
        Partial answers:
        - Because.
        - It rains.
        Question: Why?
        Answer the question in a few sentences, using the partial answers above.
    """
    return "\n".join(
        [
            "Partial answers:",
            *(f"- {' '.join(p.split())}" for p in partials),
            f"Question: {mission}",
            "Answer the question in a few sentences, using the partial answers above.",
        ]
    )


def weave_request(mission: str, partials: list[str], robin: Any, settings: Any) -> Request:
    """Return the request ROBIN weaves from (what SYNTHESIZING sends, and what benchmarks time).

    The system text is short: with ROBIN's whole mission in it the embedded model spoke of the
    moment and of presence instead of the partial answers.
    """
    return Request(
        role="weave",
        prompt=weave_prompt(mission, partials),
        system=f"You are {robin.name}. You answer warmly, clearly and to the point.",
        persona="ROBIN",
        adapter=robin.get_slot("adapter", None) if settings.weave_adapter else None,
        max_new_tokens=settings.weave_tokens,
    )


def synthesize(cycle: Any) -> dict[str, Any]:
    """SYNTHESIZING: ROBIN weaves; the gate and ALFRED's check decide COMPLETE or FAILED."""
    session = _session()
    settings = session.settings
    mission = str(cycle.scratch.get("mission", cycle.mission))
    partials = [dict(p) for p in cycle.scratch.get("partials", [])]
    robin, alfred = _persona(cycle, "ROBIN"), _persona(cycle, "ALFRED")
    weave = weave_request(mission, [p["answer"] for p in partials], robin, settings)
    woven: Reply = session.mind.weave(weave)
    answer = woven.text.strip()
    result: dict[str, Any] = {
        "persona": "ROBIN,ALFRED",
        "facet": "butler_facet_",
        "adapter": woven.adapter or weave.adapter or BASE_MODEL,
        "prompt": weave.prompt,
        "output": answer,
        "tokens": woven.completion_tokens,
        "notices": list(woven.notices),
        "ok": False,
    }
    reason = gate(answer, [p["answer"] for p in partials], settings, mission)
    if reason:
        result["reason"] = reason
        return result
    check = Request(
        role="check",
        prompt=f"Question: {mission}\nAnswer: {answer}\nDoes the answer address the question? "
        "Reply PASS or FAIL, then one short reason.",
        system=_system(alfred, "You check that work was done properly."),
        persona="ALFRED",
        facet="butler_facet_",
        adapter=alfred.get_slot("adapter", None),
        max_new_tokens=settings.check_tokens,
    )
    verdict = session.mind.answer(check)
    result["tokens"] += verdict.completion_tokens
    result["calls"] = [
        {"persona": "ROBIN", "role": "weave", "ms": round(woven.ms, 3)},
        {"persona": "ALFRED", "role": "check", "ms": round(verdict.ms, 3), "output": verdict.text},
    ]
    first = (
        verdict.text.strip().split(maxsplit=1)[0].upper().strip(".:!,")
        if verdict.text.strip()
        else ""
    )
    if first != "PASS" and _FAIL.search(verdict.text):
        result["reason"] = f"ALFRED's check did not pass the answer: {verdict.text.strip()[:200]}"
        return result
    cycle.scratch["answer"] = answer
    cycle.scratch["check"] = verdict.text
    result["ok"] = True
    return result
