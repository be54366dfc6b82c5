"""What keeps a small model's cycle honest: the gate, the plan's floor, the facet check."""

from __future__ import annotations

import pytest

from batos_lab.errors import MindUnavailable
from batos_lab.image import Image
from batos_lab.psm import CycleSettings, ModelMind, Plan, ScriptedMind, ensure_psm, install_mind
from batos_lab.psm.facets import asks_model
from batos_lab.psm.guided import PlanCursor
from batos_lab.psm.plan import gist, plan_prompt
from batos_lab.psm.stages import content_stems, distinct_share, facet_query, gate, weave_prompt

FACETS = ("sage_facet_", "tamland_facet_", "guide_facet_")
QUESTION = "How do I back up a database while it runs?"
PARTIALS = [
    "Use the database's online backup tool, which copies pages while writes go on.",
    "Keep the copies off-site and test that a restore works.",
]


def test_the_gate_names_loops_and_answers_that_wove_nothing() -> None:
    settings = CycleSettings()
    woven = "Back up the database with its online tool, keep copies off-site, test a restore."
    assert gate(woven, PARTIALS, settings, QUESTION) == ""
    loop = "back up the data " * 10
    assert "repeats itself" in gate(loop, PARTIALS, settings, QUESTION)
    drift = "The moment we begin without fear brings light to the quiet heart of morning."
    assert "wove nothing" in gate(drift, PARTIALS, settings, QUESTION)
    assert gate(drift, PARTIALS, CycleSettings(min_shared_words=0), QUESTION) == ""
    short_loop = "yes yes yes yes"  # too few words to call a loop
    assert "repeats" not in gate(short_loop, PARTIALS, settings, QUESTION)


def test_stems_and_distinct_share() -> None:
    assert content_stems("Backups of databases") == {"backu", "datab"}
    assert content_stems("Back up the database") & content_stems(QUESTION) == {"back", "datab"}
    assert "about" not in content_stems("about the matter")  # a stop word
    assert distinct_share("a b c d e") == 1.0
    assert distinct_share("x y") == 1.0  # no triple at all
    assert distinct_share("a b c a b c a b c a b c") < 0.35


def test_a_facet_is_asked_the_question_and_its_part() -> None:
    plan = Plan(
        strategy="s",
        relevant_pillars=["sage_facet_", "guide_facet_"],
        sub_queries={"sage_facet_": "Why does it matter?"},
    )
    assert (
        facet_query(QUESTION, plan, "sage_facet_") == f"{QUESTION}\nFocus on: Why does it matter?"
    )
    assert facet_query(QUESTION, plan, "guide_facet_") == QUESTION  # no part: the question
    same = Plan(
        strategy="s", relevant_pillars=["sage_facet_"], sub_queries={"sage_facet_": QUESTION}
    )
    assert facet_query(QUESTION, same, "sage_facet_") == QUESTION


def test_prompts_put_the_question_last() -> None:
    prompt = plan_prompt(QUESTION, {f: "Say it. Then more." for f in FACETS}, context="A hint.")
    assert prompt.splitlines()[-1] == f"Question: {QUESTION}"
    assert "- guide_facet_: Say it." in prompt and "Then more" not in prompt
    assert "Background from the knowledge catalog:\nA hint." in prompt
    assert gist("x" * 300).endswith("...") and len(gist("x" * 300)) == 100
    woven = weave_prompt(QUESTION, ["one\n two", "three"])
    assert woven.splitlines()[1:3] == ["- one two", "- three"]
    assert woven.splitlines()[-2] == f"Question: {QUESTION}"


def test_a_plan_must_choose_at_least_min_pillars() -> None:
    head = '{"strategy": "s", "relevant_pillars": ["sage_facet_"'
    one = PlanCursor.start(FACETS, max_pillars=3, min_pillars=2)
    assert one.feed(head + "]") is None  # one facet is not a plan to weave
    assert one.feed(head + ', "guide_facet_"]') is not None
    assert PlanCursor.start(("sage_facet_",), min_pillars=2).feed(head + "]") is not None
    with pytest.raises(ValueError, match="min_pillars \\(4\\) is above max_pillars \\(3\\)"):
        PlanCursor.start(FACETS, max_pillars=3, min_pillars=4)


def test_asks_model_recognises_a_facet() -> None:
    assert asks_model("def f(self, query):\n    return self.infer(query, system='x')")
    assert not asks_model("def f(self, query):\n    return query.upper()")
    assert not asks_model("def f(self, query):\n    return other.infer(query)")
    assert not asks_model("def f(self, query:\n")


def test_a_facet_that_never_asks_the_model_is_replaced_by_the_template(image: Image) -> None:
    ensure_psm(image)
    mind = ScriptedMind(code="    return 'always the same words'\n", facet="A real view.")
    install_mind(image, mind)
    outcome = image.root["personas"]["BRICK"].ask(QUESTION).run()
    assert outcome.ok
    assert any("template was installed" in n for n in outcome.trace[2]["notices"])
    image.sync()
    facet = outcome.trace[1]["facet"].split(",")[0]
    owner = next(p for p in image.root["personas"].values() if facet in p.pillars)
    method = owner.get_slot(facet)
    assert method.provenance["author"] == "facet-template"
    assert method.provenance["attempts"][-1]["stage"] == "facet"
    assert "never calls self.infer" in method.provenance["attempts"][-1]["error"]


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"min_distinct": 1.5}, "min_distinct must be in"),
        ({"min_shared_words": -1}, "min_shared_words must be 0"),
        ({"weave_tokens": 0}, "weave_tokens must be at least 1"),
        ({"plan_tokens": -5}, "plan_tokens must be at least 1"),
    ],
)
def test_cycle_settings_refuse_nonsense(changes: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CycleSettings(**changes)  # type: ignore[arg-type]


def test_model_mind_refuses_bad_arguments() -> None:
    with pytest.raises(MindUnavailable, match="needs an image with a model, or a core"):
        ModelMind()
    with pytest.raises(ValueError, match="threads must be 0"):
        ModelMind(core=object(), threads=-1)
    with pytest.raises(ValueError, match="repetition_penalty must be above 0"):
        ModelMind(core=object(), repetition_penalty=0)
    with pytest.raises(ValueError, match="plan_facets must be"):
        ModelMind(core=object(), plan_facets=(3, 2))
    assert ModelMind(core=object()).model_id == "embedded"


class StandInCore:
    """Records what a ModelMind asks of a core, and how many threads torch had meanwhile."""

    model_id = "stand-in"

    def __init__(self) -> None:
        self.seen: list[tuple[str, int, float]] = []

    def infer(self, prompt: str, **kwargs: object) -> object:
        import torch

        from batos_lab.llm.infer import InferResult

        self.seen.append((prompt, torch.get_num_threads(), float(kwargs["repetition_penalty"])))
        return InferResult("a reply", 3, 2, 1.0, kwargs.get("adapter"))  # type: ignore[arg-type]


def test_model_mind_decodes_on_its_threads_with_a_penalty_on_prose() -> None:
    import torch

    from batos_lab.psm import Request

    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        core = StandInCore()
        mind = ModelMind(core=core, threads=1, repetition_penalty=1.3)
        mind.answer(Request(role="facet", prompt="why?"))
        mind.answer(Request(role="check", prompt="ok?"))
        mind.answer(Request(role="code", prompt="def f(self):", adapter="BRICK"))
        assert core.seen == [("why?", 1, 1.3), ("ok?", 1, 1.3), ("def f(self):", 1, 1.0)]
        assert torch.get_num_threads() == 2  # restored
        ModelMind(core=core, threads=0).answer(Request(role="facet", prompt="as is"))
        assert core.seen[-1][1] == 2
        assert mind.model_id == "stand-in"
    finally:
        torch.set_num_threads(original)
