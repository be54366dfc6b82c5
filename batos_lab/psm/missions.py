"""The mission queue: cycles run by a pool of workers on the caller's event loop.

:class:`MissionQueue` needs a running event loop and starts none: in a notebook, Jupyter's loop
is already running, so ``await queue.start()`` and ``await queue.submit(...)`` work in cells
(never a second ``asyncio.run``). Each worker takes a mission, runs its whole cycle in a thread of
the queue's executor (every cycle has its own connection and transaction, so workers never share
one), and resolves the mission's future with the :class:`~batos_lab.psm.cycle.CycleOutcome`.
A cycle whose commit conflicted with another writer is run again, at most ``retries`` times.

Example (in a notebook cell)::

    queue = MissionQueue(image, workers=2)
    await queue.start()
    futures = [queue.submit(q) for q in questions]
    outcomes = await asyncio.gather(*futures)
    await queue.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from batos_lab.errors import CycleError
from batos_lab.psm.cycle import CycleOutcome, CycleSettings, start_cycle
from batos_lab.psm.mind import Mind

__all__ = ["Mission", "MissionQueue", "run_mission"]


@dataclass(frozen=True)
class Mission:
    """A question for the queue: who is asked, along which workflow."""

    question: str
    persona: str = "BRICK"
    workflow: str | None = None


def run_mission(
    target: Any, mission: Mission, mind: Mind | None, settings: CycleSettings | None, retries: int
) -> CycleOutcome:
    """Run one mission's cycle to its end, again when its commit conflicted; return the outcome."""
    outcome: CycleOutcome | None = None
    for _ in range(retries + 1):
        cycle = start_cycle(
            target,
            mission.question,
            persona=mission.persona,
            workflow=mission.workflow,
            mind=mind,
            settings=settings,
        )
        outcome = cycle.run()
        if outcome.ok or "conflict" not in outcome.reason.lower():
            return outcome
    if outcome is None:  # pragma: no cover - retries >= 0 runs at least once
        raise CycleError("The mission never ran.")
    return outcome


class MissionQueue:
    """An asyncio queue of missions served by a pool of workers.

    Args:
        image: the open Image (cycles open their own connections to its database).
        workers: how many cycles run at once.
        mind: the model interface (default: the one installed for the image).
        settings: cycle settings.
        retries: reruns of a cycle whose commit conflicted.
    """

    def __init__(
        self,
        image: Any,
        *,
        workers: int = 2,
        mind: Mind | None = None,
        settings: CycleSettings | None = None,
        retries: int = 2,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}.")
        self.db = image.db if hasattr(image, "db") and not callable(image.db) else image
        self.workers = workers
        self.mind = mind
        self.settings = settings
        self.retries = retries
        self._queue: asyncio.Queue[tuple[Mission, asyncio.Future[CycleOutcome]]] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self.done = 0

    @property
    def running(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return bool(self._tasks)

    async def start(self) -> None:
        """Start the workers on the running loop.

        Raises:
            CycleError: the queue is already running.
        """
        if self.running:
            raise CycleError("The mission queue is already running; stop it before starting.")
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="batos-mission")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    def submit(
        self, question: str, *, persona: str = "BRICK", workflow: str | None = None
    ) -> asyncio.Future[CycleOutcome]:
        """Queue a mission; return a future that resolves to its outcome.

        Raises:
            CycleError: the queue is not running, or the question is empty.
        """
        if self._queue is None or not self.running:
            raise CycleError("The mission queue is not running; await queue.start() first.")
        if not isinstance(question, str) or not question.strip():
            raise CycleError(f"A mission needs a question; got {question!r}.")
        future: asyncio.Future[CycleOutcome] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((Mission(question, persona, workflow), future))
        return future

    async def join(self) -> None:
        """Wait until every queued mission has ended."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        """Finish the queued missions, then stop the workers."""
        await self.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            mission, future = await self._queue.get()
            try:
                outcome = await loop.run_in_executor(
                    self._executor,
                    run_mission,
                    self.db,
                    mission,
                    self.mind,
                    self.settings,
                    self.retries,
                )
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(outcome)
            finally:
                self.done += 1
                self._queue.task_done()
