"""Candidate pools, outcome ranking, slot-name guidance and example choice in the JIT pipeline."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from batos_lab import dnu
from batos_lab.dnu import CandidateGenerator, JITSettings, install_generator
from batos_lab.dnu_examples import EXAMPLES, choose_examples, kind_of
from batos_lab.dnu_model import names_ok
from batos_lab.dnu_prompt import GUIDE_NAMES, build_prompt
from batos_lab.dnu_rank import Outcome, did_nothing, unused_parameters
from batos_lab.errors import DoesNotUnderstand
from batos_lab.guardian import audit
from batos_lab.image import Image, open_image
from batos_lab.limits import Limits
from batos_lab.objects import UvmObject, set_method_compiler
from batos_lab.sandbox import compile_method
from tests.jit_suite import HELDOUT, TASKS

# first_candidates=1: these tests prepare one greedy reply for the first round
SETTINGS = JITSettings(
    max_attempts=3,
    candidates=3,
    first_candidates=1,
    trial_limits=Limits(cpu_seconds=0.3),
    model_id="pool",
)
FIRST_POOL = dataclasses.replace(SETTINGS, first_candidates=3)


class Pool:
    """A candidate generator with prepared rounds and a judge that prefers listed answers."""

    def __init__(self, rounds: list[list[str]], likes: dict[str, float] | None = None) -> None:
        self.rounds = list(rounds)
        self.likes = likes or {}
        self.calls: list[tuple[int, float, tuple[str, ...] | None]] = []
        self.judged: list[tuple[str, list[str]]] = []
        self.prompts: list[str] = []

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        self.calls.append((1, temperature, GUIDE_NAMES.get()))
        (reply,) = self.rounds.pop(0)
        return reply

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        self.calls.append((n, temperature, GUIDE_NAMES.get()))
        self.prompts.append(prompt)
        return self.rounds.pop(0)

    def judge(self, context: str, endings: list[str]) -> list[float]:
        self.judged.append((context, endings))
        return [self.likes.get(e.split("\n", 1)[0], 0.0) for e in endings]


@pytest.fixture
def img() -> Iterator[Image]:
    previous = set_method_compiler(compile_method)
    with open_image(None) as image:
        image.new("box", width=3, height=4)
        image.commit("a box")
        yield image
        dnu.uninstall_generator(image)
    set_method_compiler(previous)


ADD = "def area(self):\n    return self.width + self.height\n"
MUL = "def area(self):\n    return self.width * self.height\n"
BAD = "def area(self):\n    return self.depth\n"


def test_pool_generator_is_recognised() -> None:
    assert isinstance(Pool([]), CandidateGenerator)
    assert not isinstance(lambda p, t, a: "", CandidateGenerator)


def test_the_judge_settles_a_tie_and_is_recorded(img: Image) -> None:
    pool = Pool([[BAD], [ADD, MUL]], likes={"12": -1.0, "7": -5.0})
    install_generator(img, pool, SETTINGS)
    assert img["box"].area() == 12
    method = img["box"].get_slot("area")
    attempts = method.provenance["attempts"]
    assert [a["stage"] for a in attempts] == ["trial", "ok", "ok"]
    assert [a.get("chosen", False) for a in attempts] == [False, False, True]
    assert attempts[2]["judge"] == -1.0 and attempts[1]["judge"] == -5.0
    assert [a["votes"] for a in attempts[1:]] == [1, 1]
    assert attempts[0]["temperature"] == 0.0 and attempts[1]["temperature"] == 0.7
    context, endings = pool.judged[0]
    assert context == ">>> box = Object(width=3, height=4)\n>>> box.area()\n"
    assert sorted(endings) == ["12\n", "7\n"]  # one ending per distinct outcome


def test_votes_come_before_the_judge(img: Image) -> None:
    pool = Pool([[BAD], [ADD, MUL, ADD]], likes={"12": -1.0, "7": -5.0})
    install_generator(img, pool, SETTINGS)
    assert img["box"].area() == 7
    assert pool.judged == []  # no tie, no judge


def test_the_first_round_is_greedy_and_samples_from_one_prompt(img: Image) -> None:
    pool = Pool([[ADD, MUL, MUL]])
    install_generator(img, pool, FIRST_POOL)
    assert img["box"].area() == 12
    assert [(n, t) for n, t, _names in pool.calls] == [(3, 0.8)]
    attempts = img["box"].get_slot("area").provenance["attempts"]
    assert [a["temperature"] for a in attempts] == [0.0, 0.8, 0.8]
    assert [a["round"] for a in attempts] == [0, 0, 0]


def test_the_first_round_is_shared_over_the_example_banks(img: Image) -> None:
    banks = dataclasses.replace(SETTINGS, first_candidates=4, banks=("core", "broad"))
    pool = Pool([[ADD, MUL], [MUL, BAD]])
    install_generator(img, pool, banks)
    assert img["box"].area() == 12  # two votes across the two prompts
    assert [(n, t) for n, t, _names in pool.calls] == [(2, 0.8), (2, 0.8)]
    core, broad = pool.prompts
    assert core != broad and core.endswith("def area(self):")
    assert broad.endswith("def area(self):")
    provenance = img["box"].get_slot("area").provenance
    assert [a["prompt"] for a in provenance["attempts"]] == [0, 0, 1, 1]
    assert [a["temperature"] for a in provenance["attempts"]] == [0.0, 0.8, 0.0, 0.8]
    assert len(set(provenance["prompts_sha256"])) == 2
    assert provenance["prompt_sha256"] == provenance["prompts_sha256"][0]


def test_prompts_draw_on_the_bank_they_name(img: Image) -> None:
    from batos_lab.dnu_examples import BROAD_EXAMPLES, CORE_EXAMPLES

    core = build_prompt(img["box"], "area", (), {}, bank="core").text
    broad = build_prompt(img["box"], "area", (), {}, bank="broad").text
    assert any(f"def {e.selector}(" in core for e in CORE_EXAMPLES)
    assert not any(f"def {e.selector}(" in core for e in BROAD_EXAMPLES)
    assert any(f"def {e.selector}(" in broad for e in BROAD_EXAMPLES)
    with pytest.raises(ValueError, match="Unknown example bank 'nope'; the banks are core"):
        build_prompt(img["box"], "area", (), {}, bank="nope")


def test_a_candidate_ignoring_an_argument_loses_to_one_that_reads_it(img: Image) -> None:
    ignore = "def grow(self, n):\n    return self.width + 1\n"
    use = "def grow(self, n):\n    return self.width + n\n"
    install_generator(img, Pool([[ignore, ignore, use]]), FIRST_POOL)
    assert img["box"].grow(5) == 8
    attempts = img["box"].get_slot("grow").provenance["attempts"]
    assert [a["unused"] for a in attempts] == [["n"], ["n"], []]


def test_an_outcome_that_did_nothing_loses_to_one_that_did_something(img: Image) -> None:
    echo = "def area(self):\n    return self.width\n"
    install_generator(img, Pool([[echo, echo, MUL]]), FIRST_POOL)
    assert img["box"].area() == 12
    attempts = img["box"].get_slot("area").provenance["attempts"]
    assert [a["did_nothing"] for a in attempts] == [True, True, False]


def test_an_outcome_that_did_nothing_still_wins_alone(img: Image) -> None:
    echo = "def area(self):\n    return self.width\n"
    install_generator(img, Pool([[echo, BAD, BAD]]), FIRST_POOL)
    assert img["box"].area() == 3


def test_unused_parameters_and_did_nothing() -> None:
    assert unused_parameters("def f(self, a, b, *rest, key=1):\n    return a + key\n") == [
        "b",
        "rest",
    ]
    assert unused_parameters("def f(self):\n    return 1\n") == []
    before = (("count", "42"), ("name", "'c'"))
    assert did_nothing(before, (), {}, Outcome("42", before))
    assert did_nothing(before, ("x",), {}, Outcome("'x'", before))  # an argument handed back
    assert not did_nothing(before, (), {}, Outcome("0", before))
    assert not did_nothing(before, (), {}, Outcome("42", (("count", "0"), ("name", "'c'"))))


def test_jit_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="first_candidates must be at least 1, got 0"):
        JITSettings(first_candidates=0)
    with pytest.raises(ValueError, match="first_temperature must be above 0"):
        JITSettings(first_temperature=0.0)
    with pytest.raises(ValueError, match="banks must name at least one of core, broad, extra, all"):
        JITSettings(banks=("core", "mine"))
    with pytest.raises(ValueError, match="banks must name at least one"):
        JITSettings(banks=())


def test_ties_go_to_the_larger_group_then_to_greedy(img: Image) -> None:
    install_generator(img, Pool([[BAD], [ADD, MUL, MUL]]), SETTINGS)
    assert img["box"].area() == 12
    img["box"].del_slot("area")
    img.commit("forget area")
    install_generator(img, Pool([[BAD], [ADD, MUL, BAD]]), SETTINGS)
    assert img["box"].area() == 7


def test_a_greedy_pass_ends_the_first_round(img: Image) -> None:
    pool = Pool([[ADD]])
    install_generator(img, pool, SETTINGS)
    assert img["box"].area() == 7
    assert pool.calls == [(1, 0.0, pool.calls[0][2])] and pool.judged == []


def test_one_outcome_needs_no_judge(img: Image) -> None:
    pool = Pool([[BAD], [MUL, BAD, MUL]])
    install_generator(img, pool, SETTINGS)
    assert img["box"].area() == 12
    assert pool.judged == []


def test_slots_are_shown_to_the_judge_only_where_outcomes_differ(img: Image) -> None:
    keep = "def grow(self, n):\n    return self.width + n\n"
    change = "def grow(self, n):\n    self.width = self.width + n\n    return self.width\n"
    pool = Pool([["no code"], [keep, change]], likes={"5": 0.0})
    install_generator(img, pool, SETTINGS)
    img["box"].grow(2)
    _context, endings = pool.judged[0]
    assert sorted(endings) == ["5\n>>> box.width\n3\n", "5\n>>> box.width\n5\n"]


def test_a_round_with_no_pass_feeds_back_and_the_last_round_is_unguided(img: Image) -> None:
    pool = Pool([[BAD], [BAD, BAD, BAD], [MUL, MUL, MUL]])
    install_generator(img, pool, SETTINGS)
    assert img["box"].area() == 12
    (n0, t0, names0), (n1, t1, names1), (n2, t2, names2) = pool.calls
    assert (n0, n1, n2) == (1, 3, 3) and (t0, t1, t2) == (0.0, 0.7, 1.0)
    assert names0 == names1 and names0 is not None
    assert "width" in names0 and "area" not in names0
    assert names2 is None  # the last round may create slots
    attempts = img["box"].get_slot("area").provenance["attempts"]
    assert [a["round"] for a in attempts] == [0, 1, 1, 1, 2, 2, 2]
    assert "self.depth is not a slot" in attempts[0]["error"]


def test_every_round_failing_leaves_the_image_unchanged(img: Image) -> None:
    install_generator(img, Pool([[BAD], [BAD] * 3, ["no code at all"] * 3]), SETTINGS)
    with pytest.raises(DoesNotUnderstand) as info:
        img["box"].area()
    assert len(info.value.attempts) == 7
    img.abort()
    assert "area" not in img["box"].slot_names()


def test_a_failing_judge_keeps_the_first_passing_candidate(img: Image) -> None:
    class Broken(Pool):
        def judge(self, context: str, endings: list[str]) -> list[float]:
            raise RuntimeError("the judge fell over")

    install_generator(img, Broken([[BAD], [BAD, ADD, MUL]]), SETTINGS)
    assert img["box"].area() == 7


def test_one_candidate_per_round_keeps_the_first_to_pass(img: Image) -> None:
    replies = [BAD, ADD]

    def single(prompt: str, temperature: float, attempt: int) -> str:
        return replies.pop(0)

    install_generator(img, single, JITSettings(max_attempts=2, model_id="single"))
    assert img["box"].area() == 7


@pytest.mark.parametrize(
    ("tail", "piece", "ok"),
    [
        ("    return self.", "width", True),
        ("    return self.", "wid", True),
        ("    return self.", "books", False),
        ("    return self.wid", "th * 2", True),
        ("    return self.widths", " + 1", False),
        ("    return sel", "f.height)", True),
        ("    return sel", "f.depth)", False),
        ("    return x", ".books", True),  # not an attribute of self
        ("    return myself", ".books", True),
        ("    self.width", ".append(1)", True),
        ("    return self.width + self", ".", True),
    ],
)
def test_names_ok(tail: str, piece: str, ok: bool) -> None:
    assert names_ok(tail, piece, ["width", "height"]) is ok


def test_prompt_names_are_slots_and_selectors_but_not_the_message(img: Image) -> None:
    prompt = build_prompt(img["box"], "area", (), {})
    assert {"width", "height", "_p_changed"} <= set(prompt.names)
    assert "area" not in prompt.names and "parent*" not in prompt.names


def test_no_worked_example_is_a_suite_task() -> None:
    suite = {t.selector for t in (*TASKS, *HELDOUT)}
    assert not suite & {e.selector for e in EXAMPLES}
    assert len({e.selector for e in EXAMPLES}) == len(EXAMPLES) > 150
    for example in EXAMPLES:  # each passes the Guardian (mark appended) and runs
        source = audit(example.source, example.selector, autofix=True).source
        obj = UvmObject(**example.slots)
        result = compile_method(source, example.selector)(obj, *example.args)
        assert result is not None, example.selector


def test_examples_are_chosen_by_shape_and_words() -> None:
    chosen = choose_examples("mean_length", {"lengths": [3, 4]}, (), k=3)
    assert chosen[-1].selector == "mean_price"  # best last
    # the two best have the receiver's shape; words alone bring in one more (by_length)
    assert all(kind_of(next(iter(e.slots.values()))) == "numbers" for e in chosen[-2:])
    words = choose_examples("names_over", {"names": ["a"]}, (2,), k=1)[0]
    assert (
        kind_of(words.args[0]) == "number"
        and kind_of(words.slots[next(iter(words.slots))]) == "texts"
    )
    assert choose_examples("x", {}, (), k=2, skip=1) != choose_examples("x", {}, (), k=2)
    assert choose_examples("x", {}, (), k=0) == []


def test_the_prompt_shows_the_chosen_examples(img: Image) -> None:
    text = build_prompt(img["box"], "area", (), {}, examples=2).text
    assert text.count("# Example ") == 2
    assert "# Example 3." not in text
    other = build_prompt(img["box"], "area", (), {}, examples=2, variant=1).text
    assert other != text


def test_uvm_receiver_without_slots_still_gets_a_prompt() -> None:
    with open_image(None) as image:
        bare = UvmObject()
        bare.set_slot("parent*", image.root["traits"])
        prompt = build_prompt(bare, "hello", ("x",), {})
        assert prompt.header == "def hello(self, text):"
        assert "_p_changed" in prompt.names
