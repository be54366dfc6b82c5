"""The JIT suite's tasks are sound: every reference passes the full pipeline, wrong answers fail."""

from __future__ import annotations

import pytest

from batos_lab.dnu import JITSettings
from batos_lab.dnu_examples import BROAD_EXAMPLES, CORE_EXAMPLES, EXAMPLES, EXTRA_EXAMPLES
from batos_lab.limits import Limits
from tests.jit_suite import HELDOUT, TASKS, Task, run_suite

SETTINGS = JITSettings(max_attempts=1, trial_limits=Limits(cpu_seconds=1.0), model_id="reference")
BY_SELECTOR = {task.selector: task for task in TASKS}
HELDOUT_BY_SELECTOR = {task.selector: task for task in HELDOUT}
#: the suite, and the held-out tasks that check choices made on it generalise
SUITES = pytest.mark.parametrize("tasks", [TASKS, HELDOUT], ids=["suite", "heldout"])


def _selector_of(prompt: str) -> str:
    return prompt.rsplit("def ", 1)[1].split("(", 1)[0]


def reference_generator(prompt: str, temperature: float, attempt: int) -> str:
    """Answer each prompt with the hand-written reference of its task (suite or held-out)."""
    selector = _selector_of(prompt)
    return (BY_SELECTOR.get(selector) or HELDOUT_BY_SELECTOR[selector]).reference


def test_suite_has_enough_distinct_tasks() -> None:
    assert len(TASKS) >= 30
    assert len(BY_SELECTOR) == len(TASKS)


def test_heldout_has_24_distinct_tasks() -> None:
    assert len(HELDOUT) == 24
    assert len(HELDOUT_BY_SELECTOR) == len(HELDOUT)
    assert len({task.name for task in HELDOUT}) == len(HELDOUT)


def test_heldout_shares_no_selector_or_name_with_the_suite() -> None:
    assert not set(HELDOUT_BY_SELECTOR) & set(BY_SELECTOR)
    assert not {t.name for t in HELDOUT} & {t.name for t in TASKS}
    # nor with the prompt's worked examples, which would hand the model the answer
    assert not set(HELDOUT_BY_SELECTOR) & {e.selector for e in EXAMPLES}


def test_no_worked_example_shares_a_selector_with_a_task_or_another_bank() -> None:
    banks = [{e.selector for e in bank} for bank in (CORE_EXAMPLES, BROAD_EXAMPLES, EXTRA_EXAMPLES)]
    assert sum(map(len, banks)) == len(EXAMPLES)  # no bank repeats a selector of its own
    assert len(set().union(*banks)) == len(EXAMPLES)  # nor one of another bank
    assert not set().union(*banks) & (set(BY_SELECTOR) | set(HELDOUT_BY_SELECTOR))


@SUITES
def test_every_reference_passes_through_the_pipeline(tasks: list[Task]) -> None:
    report = run_suite(reference_generator, SETTINGS, tasks=tasks)
    failed = [(r.name, r.error) for r in report.results if not r.ok]
    assert failed == []
    assert len(report.results) == len(tasks)
    assert report.success_rate == 1.0
    assert report.attempts_per_success == 1
    assert f"| {tasks[0].name} | yes | 1 |" in report.table()


@SUITES
@pytest.mark.parametrize("body", ["    return None\n", None])
def test_wrong_methods_fail_the_checks(tasks: list[Task], body: str | None) -> None:
    # None: the right answer without touching state, so only the read-only tasks pass
    passing = set() if body is not None else {t.name for t in tasks if not t.state}
    by_selector = {task.selector: task for task in tasks}

    def wrong(prompt: str, temperature: float, attempt: int) -> str:
        task = by_selector[_selector_of(prompt)]
        params = prompt.rsplit("def ", 1)[1].split(":", 1)[0]
        if body is not None:
            return f"def {params}:\n{body}"
        return f"def {params}:\n    return {task.expect!r}\n"

    report = run_suite(wrong, SETTINGS, tasks=tasks)
    assert {r.name for r in report.results if r.ok} == passing
