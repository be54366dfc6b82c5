"""Training pairs for the JIT adapter: the pipeline's own prompts, never showing their answer."""

from __future__ import annotations

import pytest

from batos_lab.dnu_examples import BANKS, Example, choose_examples
from batos_lab.dnu_model import BODY_INDENT
from batos_lab.jit_training import END, body_of, training_pairs
from tests.jit_suite import HELDOUT, TASKS


@pytest.fixture(scope="module")
def pairs() -> tuple[list, list[str]]:
    return training_pairs()


def test_every_usable_example_gives_one_pair_per_prompt_bank(pairs: tuple[list, list]) -> None:
    made, skipped = pairs
    selectors = {e.selector for e in BANKS["all"]}
    assert {p.selector for p in made} | {s.split("'")[1] for s in skipped} == selectors
    assert len(made) == 2 * (len(selectors) - len(skipped))
    assert {p.bank for p in made} == {"core", "broad"}


def test_a_prompt_never_shows_the_example_it_trains_on(pairs: tuple[list, list]) -> None:
    for pair in pairs[0]:
        assert f".{pair.selector}(" in pair.prompt  # the task's own message line
        assert pair.prompt.count(f"def {pair.selector}(") == 1  # only the forced header
        assert pair.prompt.endswith("\n" + BODY_INDENT)
        assert pair.completion.endswith(END)


def test_no_pair_comes_from_the_suite_or_its_held_out_tasks(pairs: tuple[list, list]) -> None:
    tasks = {t.selector for t in (*TASKS, *HELDOUT)}
    assert not tasks & {p.selector for p in pairs[0]}


def test_parameters_named_otherwise_are_renamed_in_the_body() -> None:
    example = Example(
        "cafe", {"menu": ["tea"]}, "swap_item", ("tea", "coffee"),
        "def swap_item(self, old, new):\n"
        "    self.menu = [new if x == old else x for x in self.menu]\n"
        "    return 'old' + str(self.menu)",
    )  # fmt: skip
    body = body_of(example, "def swap_item(self, text, text2):")
    assert body.startswith(" self.menu = [text2 if x == text else x for x in self.menu]")
    assert "'old'" in body and ".menu" in body  # strings and attributes are kept


@pytest.mark.parametrize(
    ("source", "header", "why"),
    [
        ("import math\ndef area(self):\n    return 1", "def area(self):", "starts 'import math'"),
        ("def area(self, n):\n    return n", "def area(self):", "the pipeline writes"),
        ("def area(self):\nreturn 1", "def area(self):", "no indented body"),
    ],
)
def test_unusable_examples_are_refused_with_the_reason(source: str, header: str, why: str) -> None:
    example = Example("box", {}, "area", (), source)
    with pytest.raises(ValueError, match=why):
        body_of(example, header)


def test_leave_out_drops_only_that_example() -> None:
    shown = choose_examples("click", {"clicks": 0}, [], k=4, bank=BANKS["core"])
    assert shown[-1].selector == "click"
    without = choose_examples(
        "click", {"clicks": 0}, [], k=4, bank=BANKS["core"], leave_out="click"
    )
    assert "click" not in {e.selector for e in without} and len(without) == 4
