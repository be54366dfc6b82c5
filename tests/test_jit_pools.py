"""Measuring the JIT's ranking against its pools, on a scripted writer whose votes tie."""

from __future__ import annotations

import pytest

from batos_lab.dnu import JITSettings
from batos_lab.image import open_image
from batos_lab.objects import set_method_compiler
from batos_lab.sandbox import compile_method
from benchmarks.jit_pools import cell, losses, reach_by_size, summary
from tests.jit_suite import TASKS, PoolReport, pool_of

AREA = next(t for t in TASKS if t.name == "area")  # width 3, height 4: the area is 12


class TiedWriter:
    """Writes a right and a wrong body by turns; the judge prefers the wrong answer (7)."""

    model_id = "scripted"

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        return self.propose(prompt, 1, temperature, attempt)[0]

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        bodies = ["self.width * self.height", "self.width + self.height"]
        return [f"def area(self):\n    return {bodies[i % 2]}\n" for i in range(n)]

    def judge(self, context: str, endings: list[str]) -> list[float]:
        return [1.0 if ending.startswith("7") else 0.0 for ending in endings]


def _pool(writer: TiedWriter, settings: JITSettings) -> PoolReport:
    """The area task's pool drawn by ``writer`` on a fresh in-memory image."""
    previous = set_method_compiler(compile_method)
    try:
        with open_image(None) as image:
            return pool_of(image, AREA, writer, settings)
    finally:
        set_method_compiler(previous)


def test_a_right_candidate_the_ranking_lost_is_reported() -> None:
    settings = JITSettings(banks=("core",), first_candidates=4, model_id="scripted")
    previous = set_method_compiler(compile_method)
    try:
        with open_image(None) as image:
            report = pool_of(image, AREA, TiedWriter(), settings)
            assert image["jit_area"].area() == 7  # the judge's choice was installed
            assert not image["jit_probe_area"].has_slot("area")  # each probe was aborted
    finally:
        set_method_compiler(previous)
    assert [c.right for c in report.candidates] == [True, False, True, False]
    assert [c.result for c in report.candidates] == ["12", "7", "12", "7"]
    assert [c.chosen for c in report.candidates] == [False, True, False, False]
    assert [c.greedy for c in report.candidates] == [True, False, False, False]
    assert {c.votes for c in report.candidates} == {2} and {
        c.writer for c in report.candidates
    } == {"base"}
    assert report.any_right and not report.chosen_right
    runs = {("suite", 0): [report]}
    assert summary(runs) == [["suite", "0", "1", "0 (0%)", "1 (100%)", "0.00"]]
    assert "| suite | 0 | area | `7` (2) | `12` (2, base, yes) |" in losses(runs)


def test_a_pool_with_nothing_right_is_not_a_loss() -> None:
    """When no candidate answers the task, no ranking could have: the table leaves it out."""

    class Wrong(TiedWriter):
        def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
            return ["def area(self):\n    return self.width - self.height\n"] * n

    settings = JITSettings(banks=("core",), first_candidates=2, model_id="scripted")
    report = _pool(Wrong(), settings)
    assert report.candidates and not report.any_right and not report.chosen_right
    assert losses({("suite", 0): [report]}).count("\n") == 1  # the header alone


def test_reach_by_size_cuts_each_prompts_share_of_the_first_pool() -> None:
    """The right body is only the second reply to the second prompt: a pool of four reaches it,
    a pool of two (each prompt's greedy reply) does not."""

    class SecondPromptSecondRow(TiedWriter):
        asked = 0

        def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
            self.asked += 1
            bodies = ["self.width + self.height"] * n
            if self.asked == 2:
                bodies[-1] = "self.width * self.height"
            return [f"def area(self):\n    return {b}\n" for b in bodies]

    settings = JITSettings(banks=("core", "broad"), first_candidates=4, model_id="scripted")
    report = _pool(SecondPromptSecondRow(), settings)
    assert [(c.prompt, c.right) for c in report.candidates] == [
        (0, False), (0, False), (1, False), (1, True)
    ]  # fmt: skip
    sizes, rows = reach_by_size({("suite", 0): [report]}, per_prompt=2, prompts=2)
    assert sizes == [2, 4]
    assert rows == [["suite", "0", "1", "0 (0%)", "1 (100%)"]]


def test_cells_stay_on_one_line_without_separators() -> None:
    assert cell("a |\n b `c`") == "a / b 'c'"
    assert cell("x" * 50, width=10) == "x" * 9 + "…"


def test_run_pools_checks_each_task_on_its_own_object() -> None:
    """Two tasks on one scratch image: each report is its task's, with the same candidates
    as :func:`pool_of` gives alone."""
    from tests.jit_suite import run_pools

    settings = JITSettings(banks=("core",), first_candidates=4, model_id="scripted")
    reports = run_pools(TiedWriter(), settings, [AREA, AREA])
    assert [r.task for r in reports] == ["area", "area"]
    assert [[c.right for c in r.candidates] for r in reports] == [[True, False, True, False]] * 2


@pytest.mark.llm
def test_the_real_models_pool_for_a_counter_holds_the_method_it_keeps(llm_core: object) -> None:
    """On the embedded model: `increment` is learned at the first round (its greedy reply is
    right), and the installed candidate is among those the re-check finds right."""
    from batos_lab.dnu_model import ModelGenerator
    from tests.jit_suite import run_pools

    generator = ModelGenerator(llm_core)
    increment = next(t for t in TASKS if t.name == "increment")
    (report,) = run_pools(generator, JITSettings(model_id=generator.model_id), [increment])
    assert report.candidates and sum(c.chosen for c in report.candidates) == 1
    assert report.chosen_right and report.any_right
    assert {c.writer for c in report.candidates} == {"base"}
    assert any(c.greedy and c.right for c in report.candidates)


def test_greedy_by_prompt_checks_each_variants_greedy_reply() -> None:
    """A scripted writer that is right only when shown four examples, and writes prose for six."""
    from benchmarks.jit_prompts import reached, table
    from tests.jit_suite import PromptVariant, greedy_by_prompt

    asked: list[float] = []

    def writer(prompt: str, temperature: float, attempt: int) -> str:
        asked.append(temperature)
        if "# Example 6." in prompt:
            return "I would multiply the sides."
        body = "self.width * self.height" if "# Example 4." in prompt else "self.width"
        return f"def area(self):\n    return {body}\n"

    variants = [
        PromptVariant("core", 0, 4),
        PromptVariant("core", 0, 2),
        PromptVariant("broad", 0, 6),
    ]
    reports = greedy_by_prompt(writer, variants, [AREA])
    assert asked == [0.0, 0.0, 0.0]  # greedy, once per variant
    assert reports[0].right == {"core 0 x4": True, "core 0 x2": False, "broad 0 x6": False}
    assert set(reports[0].seconds) == set(reports[0].right)
    assert reached(reports, ["core 0 x2", "broad 0 x6"]) == 0
    assert reached(reports, ["core 0 x4", "core 0 x2"]) == 1
    rows = table({"suite": reports}, [v.label for v in variants])
    assert rows[0] == ["core 0 x4", "1 (100%)"] and rows[-1] == ["all 3 together", "1 (100%)"]
