"""Run JIT tasks through the real pipeline with any generator, and summarise the outcome."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from batos_lab.dnu import Generator, JITSettings, install_generator, uninstall_generator
from batos_lab.dnu_prompt import GUIDE_NAMES, ExtractionError, build_prompt, extract_function
from batos_lab.errors import BatosError
from batos_lab.guardian import audit
from batos_lab.image import Image, open_image
from batos_lab.objects import UvmObject, set_method_compiler
from batos_lab.sandbox import compile_method
from tests.jit_suite.tasks import TASKS, Task


@dataclass
class TaskResult:
    """What happened to one task."""

    name: str
    ok: bool
    attempts: int
    latency_s: float
    error: str = ""
    source: str = ""
    rounds: int = 1
    writer: str = ""  # who wrote the installed method: an adapter's name or "base"


@dataclass
class SuiteReport:
    """All results, with the suite's headline numbers."""

    results: list[TaskResult] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        """Share of tasks whose result and state were both right."""
        return sum(r.ok for r in self.results) / len(self.results) if self.results else 0.0

    @property
    def attempts_per_success(self) -> float:
        """Mean generator calls of the tasks that succeeded."""
        done = [r.attempts for r in self.results if r.ok]
        return statistics.mean(done) if done else float("nan")

    @property
    def rounds_per_success(self) -> float:
        """Mean rounds (a pool of candidates, or one reply) of the tasks that succeeded."""
        done = [r.rounds for r in self.results if r.ok]
        return statistics.mean(done) if done else float("nan")

    @property
    def median_latency_s(self) -> float:
        """Median wall time per task, from the message to the answer."""
        return statistics.median(r.latency_s for r in self.results) if self.results else 0.0

    def table(self) -> str:
        """Return a Markdown table of every task."""
        rows = [
            "| task | ok | attempts | rounds | latency (s) | error |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.results:
            error = r.error.replace("|", "/").replace("\n", " ")[:120]
            rows.append(
                f"| {r.name} | {'yes' if r.ok else 'no'} | {r.attempts} | {r.rounds} | "
                f"{r.latency_s:.2f} | {error} |"
            )
        return "\n".join(rows)


def _state_ok(task: Task, obj: UvmObject) -> tuple[bool, str]:
    expected = {**task.slots, **task.state}
    for name, value in expected.items():
        actual = obj.get_slot(name, None)
        plain = (
            list(actual)
            if isinstance(value, list)
            else dict(actual)
            if isinstance(value, dict)
            else actual
        )
        if plain != value:
            return False, f"slot {name!r} is {plain!r} afterwards, expected {value!r}"
    return True, ""


def run_task(image: Image, task: Task, generator: Generator, settings: JITSettings) -> TaskResult:
    """Send the task's message to a fresh object in ``image`` and check answer and state."""
    install_generator(image, generator, settings)
    obj = fresh_object(image, task, f"jit_{task.name}")
    started = time.perf_counter()
    try:
        result = getattr(obj, task.selector)(*task.args, **task.kwargs)
    except BatosError as exc:
        image.abort()
        tried = list(getattr(exc, "attempts", []) or [])
        return TaskResult(
            task.name, False, len(tried), time.perf_counter() - started, str(exc)[:400],
            rounds=_rounds(tried),
        )  # fmt: skip
    latency = time.perf_counter() - started
    method = obj.get_slot(task.selector, None)
    tried = list(method.provenance["attempts"]) if method is not None else []
    source = getattr(method, "source", "")
    rounds = _rounds(tried)
    writer = str(method.provenance.get("adapter") or "base") if method is not None else ""
    if not task.result_ok(result):
        image.abort()
        return TaskResult(
            task.name, False, len(tried), latency, f"answered {result!r}", source, rounds, writer
        )
    ok, why = _state_ok(task, obj)
    image.abort()
    return TaskResult(task.name, ok, len(tried), latency, why, source, rounds, writer)


@dataclass
class Candidate:
    """One candidate of a task's pools that passed its trial, and whether it answers the task."""

    attempt: int
    round: int
    prompt: int
    greedy: bool
    writer: str  # an adapter's name or "base"
    result: str  # the answer's repr on trial
    votes: int
    chosen: bool
    right: bool
    source: str


@dataclass
class PoolReport:
    """Every passing candidate one message drew, for measuring the ranking against the pool."""

    task: str
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def chosen_right(self) -> bool:
        """The installed method answers the task."""
        return any(c.chosen and c.right for c in self.candidates)

    @property
    def any_right(self) -> bool:
        """Some candidate answers the task: the best any ranking of this pool could do."""
        return any(c.right for c in self.candidates)


def pool_of(image: Image, task: Task, generator: Generator, settings: JITSettings) -> PoolReport:
    """Send the task's message, then check every passing candidate on a fresh object.

    The pipeline keeps one candidate; this says whether each of the others would have been
    right too (answer and slots afterwards), so a ranking can be measured against its pool.
    As with :func:`run_task`, the learned method stays committed on the task's object; the
    real run and every probe are aborted.
    """
    obj = fresh_object(image, task, f"jit_{task.name}")
    install_generator(image, generator, settings)
    try:
        getattr(obj, task.selector)(*task.args, **task.kwargs)
        tried = list(obj.get_slot(task.selector).provenance["attempts"])
    except BatosError as exc:
        tried = list(getattr(exc, "attempts", []) or [])
    finally:
        image.abort()
    report = PoolReport(task.name)
    for record in tried:
        if record.get("stage") != "ok":
            continue
        right = answers(image, task, record["source"])
        report.candidates.append(
            Candidate(
                record["attempt"], record.get("round", 0), record.get("prompt", 0),
                record.get("temperature") == 0.0, str(record.get("writer") or "base"),
                str(record.get("result")), int(record.get("votes", 1)),
                bool(record.get("chosen")), bool(right), record["source"],
            )
        )  # fmt: skip
    return report


def answers(image: Image, task: Task, source: str) -> bool:
    """Tell whether ``source``, defined on a fresh object holding the task's slots, answers it.

    The answer and the slots afterwards are checked; the probe object is aborted either way.
    A method that fails to compile or to run is simply not right.
    """
    probe = fresh_object(image, task, f"jit_probe_{task.name}")
    try:
        probe.define(task.selector, source)
        answer = getattr(probe, task.selector)(*task.args, **task.kwargs)
        return task.result_ok(answer) and _state_ok(task, probe)[0]
    except Exception:
        return False
    finally:
        image.abort()


@dataclass(frozen=True)
class PromptVariant:
    """One way of writing the JIT prompt: an example bank, which of its examples, how many.

    ``variant`` 0 shows the ``examples`` best-fitting examples, 1 the next ones, and so on
    (:func:`batos_lab.dnu_prompt.build_prompt`).
    """

    bank: str
    variant: int = 0
    examples: int = 4

    @property
    def label(self) -> str:
        """A short name: bank, slice and count (``core 0 x4``)."""
        return f"{self.bank} {self.variant} x{self.examples}"


@dataclass
class GreedyReport:
    """For one task, whether each prompt variant's greedy reply is a right method."""

    task: str
    right: dict[str, bool] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def greedy_by_prompt(
    generator: Generator, variants: Iterable[PromptVariant], tasks: Iterable[Task] = TASKS
) -> list[GreedyReport]:
    """Ask each variant's prompt for the greedy reply to each task and check it (:func:`answers`).

    The reply goes through the pipeline's extraction and the Guardian (with its autofix), the
    generator sees the same slot-name guide as the pipeline's first round, and nothing is
    installed: each reply is checked on a fresh, aborted object. A reply that cannot be
    extracted or is refused is not right.
    """
    variants = list(variants)
    reports = []
    with _scratch_image() as image:
        for task in tasks:
            obj = fresh_object(image, task, f"jit_{task.name}")
            report = GreedyReport(task.name)
            for v in variants:
                prompt = build_prompt(
                    obj, task.selector, task.args, task.kwargs,
                    examples=v.examples, variant=v.variant, bank=v.bank,
                )  # fmt: skip
                started = time.perf_counter()
                token = GUIDE_NAMES.set(prompt.names)
                try:
                    reply = str(generator(prompt.text, 0.0, 0))
                finally:
                    GUIDE_NAMES.reset(token)
                report.seconds[v.label] = time.perf_counter() - started
                try:
                    source = extract_function(reply, task.selector, prompt.header)
                    source = audit(source, task.selector, autofix=True).source
                except (ExtractionError, BatosError):  # not extractable, or refused
                    report.right[v.label] = False
                    continue
                report.right[v.label] = answers(image, task, source)
            image.abort()
            reports.append(report)
    return reports


def fresh_object(image: Image, task: Task, key: str) -> UvmObject:
    """A committed object holding the task's slots, under ``key`` of the image's root."""
    obj = UvmObject(**{"name": task.name, **task.slots})
    obj.set_slot("parent*", image.root["traits"])
    image[key] = obj
    image.commit(f"jit suite: {task.name}")
    return obj


def _rounds(attempts: list[Any]) -> int:
    """How many rounds the attempts span (each record notes its round; 1 when none does)."""
    seen = [a.get("round", 0) for a in attempts if isinstance(a, dict)]
    return 1 + max(seen) if seen else 1


def run_suite(
    generator: Generator,
    settings: JITSettings | None = None,
    tasks: Iterable[Task] = TASKS,
    prepare: Callable[[Image], None] | None = None,
) -> SuiteReport:
    """Run ``tasks`` on one in-memory image with ``generator`` and return the report.

    ``prepare`` is called with the fresh image before the first task (to switch it to cycle
    mode and give it a Mind, for instance).
    """
    settings = settings or JITSettings()
    with _scratch_image(prepare) as image:
        return SuiteReport([run_task(image, task, generator, settings) for task in tasks])


def run_pools(
    generator: Generator, settings: JITSettings, tasks: Iterable[Task] = TASKS
) -> list[PoolReport]:
    """Every passing candidate of ``tasks`` (:func:`pool_of`), on one in-memory image."""
    with _scratch_image() as image:
        return [pool_of(image, task, generator, settings) for task in tasks]


@contextlib.contextmanager
def _scratch_image(prepare: Callable[[Image], None] | None = None) -> Iterator[Image]:
    """A fresh in-memory image that compiles methods in the sandbox, its generator removed after."""
    previous = set_method_compiler(compile_method)
    try:
        with open_image(None) as image:
            if prepare is not None:
                prepare(image)
            try:
                yield image
            finally:
                uninstall_generator(image)
    finally:
        set_method_compiler(previous)
