"""The JIT quality suite: tasks with checks, and a runner shared by tests and benchmarks."""

from __future__ import annotations

from tests.jit_suite.heldout import HELDOUT
from tests.jit_suite.runner import (
    Candidate,
    GreedyReport,
    PoolReport,
    PromptVariant,
    SuiteReport,
    TaskResult,
    answers,
    fresh_object,
    greedy_by_prompt,
    pool_of,
    run_pools,
    run_suite,
    run_task,
)
from tests.jit_suite.tasks import TASKS, Task

__all__ = [
    "HELDOUT",
    "TASKS",
    "Candidate",
    "GreedyReport",
    "PoolReport",
    "PromptVariant",
    "SuiteReport",
    "Task",
    "TaskResult",
    "answers",
    "fresh_object",
    "greedy_by_prompt",
    "pool_of",
    "run_pools",
    "run_suite",
    "run_task",
]
