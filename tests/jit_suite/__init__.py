"""The JIT quality suite: tasks with checks, and a runner shared by tests and benchmarks."""

from __future__ import annotations

from tests.jit_suite.heldout import HELDOUT
from tests.jit_suite.runner import SuiteReport, TaskResult, run_suite, run_task
from tests.jit_suite.tasks import TASKS, Task

__all__ = ["HELDOUT", "TASKS", "SuiteReport", "Task", "TaskResult", "run_suite", "run_task"]
