"""The composite mind on the embedded model: real plans, real cycles, real failures.

One model (the session's ``llm_core``) serves cycles in small images of their own, so every test
starts from genesis and may commit. The model's words are not checked (they vary with its
version); what is checked is what the machinery promises about them: a plan that validates, a
trace with every field of every model call filled, a failure that leaves the image as it was
with a record of why.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
import transaction

from batos_lab.image import Image
from batos_lab.psm import (
    STATES,
    TRACE_FIELDS,
    CycleSettings,
    ModelMind,
    Reply,
    Request,
    ensure_psm,
    install_mind,
    parse_plan,
    start_cycle,
    uninstall_mind,
)
from batos_lab.psm.facets import template_source
from batos_lab.psm.guided import generate_guided_plan
from batos_lab.psm.plan import plan_prompt

pytestmark = pytest.mark.llm

#: What the quality gate may name when it refuses a real synthesis.
GATE_REASONS = re.compile(
    r"synthesis is empty|characters, (under|over)|copies one partial|copy of one partial|"
    r"repeats itself|wove nothing|ALFRED's check did not pass"
)
MODEL_STATES = ("DECOMPOSING", "DELEGATING", "SYNTHESIZING")


@pytest.fixture(scope="module")
def real_mind(llm_core: Any) -> ModelMind:
    """A ModelMind on the session's embedded model (one thread, as by default)."""
    return ModelMind(core=llm_core)


@pytest.fixture
def mind_image(file_image: Image, real_mind: ModelMind) -> Iterator[Image]:
    """A fresh FileStorage image with the state machine, served by the real mind."""
    ensure_psm(file_image)
    install_mind(file_image, real_mind)
    yield file_image
    uninstall_mind(file_image)


def facets_of(image: Image, workflow: str) -> dict[str, str]:
    root = image.root
    sequence = root["matrix"].rows[workflow]["sequence"]
    return {f: str(i) for p in sequence for f, i in root["personas"][p].pillars.items()}


def install_templates(image: Image) -> None:
    """Give every persona its facets as the mandate's template (the failure tests skip JIT)."""
    with image.transaction("facets from the template"):
        for persona in image.root["personas"].values():
            for facet in persona.pillars:
                persona.define(facet, template_source(facet))


def snapshot(image: Image) -> dict[str, Any]:
    """What a failed cycle must leave as it was, read on a fresh connection."""
    manager = transaction.TransactionManager()
    conn = image.db.open(transaction_manager=manager)
    try:
        root = conn.root()
        return {
            "personas": {n: sorted(p.slot_names()) for n, p in root["personas"].items()},
            "cycles": len(root["psm"].cycles),
            "objects": sorted(root["objects"]),
            "failures": len(root["failures"]),
        }
    finally:
        conn.close()


def test_guided_plans_on_the_real_model_validate(llm_core: Any, mind_image: Image) -> None:
    facets = facets_of(mind_image, "technical_deconstruction")
    question = "How should I cache the results of a slow function in Python?"
    prompt = plan_prompt(question, facets)
    for adapter in ("BRICK", None):  # BRICK's voice, and the base model with adapters off
        reply = generate_guided_plan(
            llm_core, prompt, system="You turn a question into a plan.", facets=list(facets),
            adapter=adapter, max_new_tokens=CycleSettings().plan_tokens,
        )  # fmt: skip
        plan = parse_plan(reply.text, facets)
        assert 2 <= len(plan.relevant_pillars) <= 3
        assert list(plan.sub_queries) == plan.relevant_pillars
        assert all(q.strip() for q in plan.sub_queries.values())
        assert reply.completion_tokens > 0 and reply.ms > 0
        assert (reply.adapter or "").startswith("BRICK") == (adapter == "BRICK")
        assert not any("not closed" in n for n in reply.notices)


def check_trace(trace: Sequence[dict[str, Any]]) -> None:
    for entry in trace:
        assert set(TRACE_FIELDS) <= set(entry)
        assert entry["state"] in STATES and entry["ms"] > 0
        if entry["state"] in MODEL_STATES and not entry["reason"]:
            for name in ("persona", "facet", "adapter", "prompt", "output"):
                assert entry[name], f"{entry['state']} left {name} empty"
            assert entry["tokens"] > 0


def test_a_real_question_runs_a_whole_cycle(mind_image: Image) -> None:
    question = "I feel nervous before every meeting with my manager. What can I do?"
    cycle = mind_image.root["personas"]["ROBIN"].ask(question)
    states = [cycle.step()["state"] for _ in range(3)]  # stepped, as a notebook does
    assert states == ["IDLE", "DECOMPOSING", "DELEGATING"]
    outcome = cycle.run()
    check_trace(outcome.trace)
    decomposing, delegating = outcome.trace[1], outcome.trace[2]
    assert not any("not valid" in n for n in decomposing["notices"])  # the model's own plan
    plan = parse_plan(decomposing["output"], facets_of(mind_image, "emotional_support"))
    assert delegating["facet"].split(",") and set(delegating["facet"].split(",")) == set(
        plan.relevant_pillars
    )
    assert len({c["ms"] for c in delegating["calls"]}) == 1  # the facets answered in one batch
    if outcome.ok:
        assert [e["state"] for e in outcome.trace][-1] == "COMPLETE"
        assert outcome.answer and outcome.answer == outcome.trace[-1]["output"]
        mind_image.sync()
        (kept,) = mind_image.root["psm"].cycles.values()
        assert kept.status == "complete"
        facet = plan.relevant_pillars[0]
        persona = mind_image.root["personas"][facets_owner(mind_image, facet)]
        assert persona.get_slot(facet).provenance["author"] in ("jit-facet", "facet-template")
    else:
        assert outcome.failed_state == "SYNTHESIZING"
        assert GATE_REASONS.search(outcome.reason), outcome.reason


def facets_owner(image: Image, facet: str) -> str:
    return next(n for n, p in image.root["personas"].items() if facet in p.pillars)


def test_a_failed_real_cycle_leaves_the_image_unchanged(
    mind_image: Image, real_mind: ModelMind
) -> None:
    install_templates(mind_image)
    before = snapshot(mind_image)
    history = len(mind_image.history(1000))
    strict = CycleSettings(max_answer_chars=120)  # a woven answer is longer than this
    cycle = start_cycle(mind_image, "Why is the sky blue?", persona="BABS", settings=strict)
    outcome = cycle.run()
    assert outcome.status == "failed" and outcome.failed_state == "SYNTHESIZING"
    assert re.search(r"characters, over 120", outcome.reason)
    check_trace(outcome.trace)
    after = snapshot(mind_image)
    assert after == {**before, "failures": before["failures"] + 1}
    newest = mind_image.history(1)[0]
    assert len(mind_image.history(1000)) == history + 1
    assert "failed in SYNTHESIZING" in newest["note"]
    mind_image.sync()
    record = list(mind_image.root["failures"].values())[-1]
    assert record["kind"] == "cycle" and record["state"] == "SYNTHESIZING"
    assert record["mission"] == "Why is the sky blue?" and "over 120" in record["reason"]
    assert [e["state"] for e in record["trace"]][-2:] == ["SYNTHESIZING", "FAILED"]
    assert record["mind"] == real_mind.model_id


class CorruptingMind:
    """Passes every call to a real mind, but garbles one role's reply as it comes back."""

    def __init__(self, mind: ModelMind, role: str) -> None:
        self.mind, self.role = mind, role
        self.model_id = mind.model_id
        self.seen: list[str] = []

    def _garble(self, role: str, reply: Reply) -> Reply:
        if role != self.role:
            return reply
        self.seen.append(reply.text)
        head = " ".join(reply.text.split()[:4]) or "again"
        return replace(reply, text=" ".join([head] * 12))  # the real words, looping

    def plan(self, request: Request, facets: Sequence[str]) -> Reply:
        return self._garble("plan", self.mind.plan(request, facets))

    def answer(self, request: Request) -> Reply:
        return self._garble(request.role, self.mind.answer(request))

    def answer_batch(self, requests: Sequence[Request]) -> list[Reply]:
        return [self._garble("facet", r) for r in self.mind.answer_batch(requests)]

    def weave(self, request: Request) -> Reply:
        return self._garble("weave", self.mind.weave(request))


def test_garbage_at_one_state_fails_the_cycle_with_its_reason(
    mind_image: Image, real_mind: ModelMind
) -> None:
    install_templates(mind_image)
    before = snapshot(mind_image)
    garbling = CorruptingMind(real_mind, "weave")
    cycle = start_cycle(mind_image, "How do bees make honey?", persona="BABS", mind=garbling)
    outcome = cycle.run()
    assert garbling.seen and garbling.seen[0]  # the real weave was made, then garbled
    assert outcome.failed_state == "SYNTHESIZING"
    assert "repeats itself" in outcome.reason
    assert snapshot(mind_image) == {**before, "failures": before["failures"] + 1}
