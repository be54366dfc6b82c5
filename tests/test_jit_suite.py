"""The JIT suite's tasks are sound: every reference passes the full pipeline, wrong answers fail."""

from __future__ import annotations

import pytest

from batos_lab.dnu import JITSettings
from batos_lab.limits import Limits
from tests.jit_suite import TASKS, run_suite

SETTINGS = JITSettings(max_attempts=1, trial_limits=Limits(cpu_seconds=1.0), model_id="reference")
BY_SELECTOR = {task.selector: task for task in TASKS}


def _selector_of(prompt: str) -> str:
    return prompt.rsplit("def ", 1)[1].split("(", 1)[0]


def reference_generator(prompt: str, temperature: float, attempt: int) -> str:
    """Answer each prompt with the hand-written reference of its task."""
    return BY_SELECTOR[_selector_of(prompt)].reference


def test_suite_has_enough_distinct_tasks() -> None:
    assert len(TASKS) >= 30
    assert len(BY_SELECTOR) == len(TASKS)


def test_every_reference_passes_through_the_pipeline() -> None:
    report = run_suite(reference_generator, SETTINGS)
    failed = [(r.name, r.error) for r in report.results if not r.ok]
    assert failed == []
    assert report.success_rate == 1.0
    assert report.attempts_per_success == 1
    assert "| increment | yes | 1 |" in report.table()


@pytest.mark.parametrize(
    ("body", "passing"),
    [
        ("    return None\n", set()),
        # right answers without touching state: only the read-only tasks pass
        (None, {t.name for t in TASKS if not t.state}),
    ],
)
def test_wrong_methods_fail_the_checks(body: str | None, passing: set[str]) -> None:
    def wrong(prompt: str, temperature: float, attempt: int) -> str:
        task = BY_SELECTOR[_selector_of(prompt)]
        params = prompt.rsplit("def ", 1)[1].split(":", 1)[0]
        if body is not None:
            return f"def {params}:\n{body}"
        return f"def {params}:\n    return {task.expect!r}\n"

    report = run_suite(wrong, SETTINGS)
    assert {r.name for r in report.results if r.ok} == passing
