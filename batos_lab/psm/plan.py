"""BRICK's decomposition plan: the prompt, the validated model of it, and the matrix fallback.

A plan is ``{strategy, relevant_pillars, sub_queries}``: which facets should answer and what
each of them is asked. :func:`parse_plan` takes the model's raw text to a :class:`Plan` checked by
pydantic (facets must exist in the image, each chosen once, sub-queries only for chosen facets);
:func:`fallback_plan` builds the plan the workflow matrix implies (the first facet of each persona
of the workflow, each asked the mission itself), which a cycle records when the model's plan is
not valid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from batos_lab.errors import PlanError

__all__ = [
    "EXAMPLE_PLAN",
    "EXAMPLE_QUESTION",
    "Plan",
    "fallback_plan",
    "gist",
    "parse_plan",
    "plan_prompt",
]

MAX_PILLARS = 6


class Plan(BaseModel):
    """A validated decomposition plan.

    Attributes:
        strategy: how the question is split, in a sentence or two.
        relevant_pillars: the facets that answer, in order, each once.
        sub_queries: what each chosen facet is asked (a facet without one is asked the mission).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: str = Field(min_length=1, max_length=2000)
    relevant_pillars: list[str] = Field(min_length=1, max_length=MAX_PILLARS)
    sub_queries: dict[str, str] = Field(default_factory=dict)

    @field_validator("strategy")
    @classmethod
    def _strategy_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the strategy is blank")
        return value.strip()

    @field_validator("relevant_pillars")
    @classmethod
    def _known_once(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"a facet is chosen twice in {value}")
        known = (info.context or {}).get("facets")
        if known is not None:
            unknown = [v for v in value if v not in known]
            if unknown:
                raise ValueError(
                    f"unknown facet(s) {', '.join(map(repr, unknown))}; the image's facets are "
                    f"{', '.join(sorted(known))}"
                )
        return value

    @field_validator("sub_queries")
    @classmethod
    def _for_chosen(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        chosen = info.data.get("relevant_pillars")
        if chosen is not None:
            extra = [k for k in value if k not in chosen]
            if extra:
                raise ValueError(f"sub-queries for facets not chosen: {', '.join(extra)}")
        blank = [k for k, v in value.items() if not str(v).strip()]
        if blank:
            raise ValueError(f"blank sub-queries for {', '.join(blank)}")
        return value

    def query_for(self, facet: str, mission: str) -> str:
        """Return what ``facet`` is asked: its sub-query, else the mission."""
        return self.sub_queries.get(facet) or mission


def parse_plan(text: str, facets: Mapping[str, Any] | Sequence[str]) -> Plan:
    """Parse and validate a plan written by the model.

    Args:
        text: the raw reply (chatter around one JSON object is ignored).
        facets: the facet names that exist (a mapping's keys, or a sequence).

    Returns:
        The validated plan.

    Raises:
        PlanError: no JSON object, JSON that does not parse, or a plan that fails validation.
    """
    if not isinstance(text, str) or "{" not in text:
        raise PlanError(
            f"The plan should be one JSON object; the reply held none ({str(text)[:80]!r})."
        )
    start, end = text.find("{"), text.rfind("}")
    try:
        data = json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise PlanError(f"The plan is not valid JSON: {exc.msg} at column {exc.colno}.") from None
    if not isinstance(data, dict):
        raise PlanError(f"The plan should be a JSON object, not {type(data).__name__}.")
    try:
        return Plan.model_validate(data, context={"facets": set(facets)})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}" for e in exc.errors()
        )
        raise PlanError(f"The plan does not validate: {problems}.") from None


def fallback_plan(
    mission: str, sequence: Sequence[str], pillars: Mapping[str, Sequence[str]], archetype: str
) -> Plan:
    """Return the plan the workflow matrix implies: each persona's first facet asks the mission.

    Args:
        mission: the question.
        sequence: the workflow's personas, in order.
        pillars: persona name -> its facet names.
        archetype: the matrix row, named in the strategy.

    Raises:
        PlanError: no persona of the sequence has a facet.
    """
    chosen = [pillars[p][0] for p in sequence if pillars.get(p)][:MAX_PILLARS]
    if not chosen:
        raise PlanError(
            f"The workflow '{archetype}' names no persona with facets ({list(sequence)}); "
            "add personas to its sequence."
        )
    return Plan(
        strategy=(
            f"The matrix row '{archetype}': {' -> '.join(sequence)}, each persona's first facet."
        ),
        relevant_pillars=chosen,
        sub_queries={f: mission for f in chosen},
    )


#: The worked example the planning prompt shows (its facet names are not the image's, so the
#: model learns the shape without being steered towards particular facets).
EXAMPLE_QUESTION = "How do I keep a houseplant alive?"
EXAMPLE_PLAN = (
    '{"strategy": "Cover what the plant needs, a care routine, and what goes wrong.", '
    '"relevant_pillars": ["needs_facet_", "routine_facet_", "doubt_facet_"], "sub_queries": '
    '{"needs_facet_": "What does a houseplant need to stay alive?", '
    '"routine_facet_": "Which routine keeps the watering on time?", '
    '"doubt_facet_": "Why do houseplants usually die?"}}'
)


def gist(intent: str, limit: int = 100) -> str:
    """Return the first sentence of a facet's intent, at most ``limit`` characters.

    Example:
        >>> gist("Answer plainly: short words. Never joke.")
        'Answer plainly: short words.'
    """
    text = " ".join(str(intent).split())
    first = re.split(r"(?<=[.;!?])\s", text, maxsplit=1)[0]
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."


def plan_prompt(mission: str, facets: Mapping[str, str], context: str = "") -> str:
    """Return the planning prompt: facets with the gist of their intents, an example, the question.

    The question comes last, nearest to where the model starts writing (the embedded model
    keeps to what it read most recently). Intents are cut to their first sentence so the prompt
    of a four-persona workflow stays near 450 tokens.
    """
    lines = [
        "Facets (name: what it does):",
        *(f"- {name}: {gist(intent)}" for name, intent in facets.items()),
    ]
    if context.strip():
        lines += ["Background from the knowledge catalog:", context.strip()[:1200]]
    lines += [
        f'Example plan, for the question "{EXAMPLE_QUESTION}":',
        EXAMPLE_PLAN,
        "Choose the three facets best placed to help, and ask each one a short sub-question.",
        f"Question: {mission}",
    ]
    return "\n".join(lines)
