"""CPU-time and depth limits for sandboxed method calls, on any thread.

A single daemon watchdog thread watches every thread that is running sandboxed code. It reads the
thread's own CPU clock (``time.pthread_getcpuclockid``), and once the budget is spent it raises an
internal ``BaseException`` in that thread with ``PyThreadState_SetAsyncExc``. Sandboxed code cannot
name or catch it (no bare ``except``, no ``BaseException`` in its builtins), and the watchdog fires
again every few milliseconds until the call has ended, so ``try``/``finally`` loops end too. The
outermost sandboxed call turns it into :class:`~batos_lab.errors.SandboxTimeout`.

The watchdog fires only while the innermost frame of the thread is sandboxed code (or a guard of
:mod:`batos_lab.sandbox`), so library code such as ZODB's is not interrupted half-way; after twice
the budget it fires wherever the thread is, as long as sandboxed code is on its stack.

Why not the alternatives (measured by ``benchmarks/sandbox_limits.py``): ``signal.setitimer`` only
works on the main thread, and ``sys.settrace`` replaces debuggers' and coverage's tracers and slows
every traced line several times over, while arming this watchdog costs a few microseconds a call.

A C call that never returns to the interpreter (a catastrophic regular expression) cannot be
interrupted by any of these; the guards of :mod:`batos_lab.sandbox` bound the common ones.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from batos_lab.errors import SandboxRecursion, SandboxTimeout

__all__ = ["DEFAULT_LIMITS", "SANDBOX_FILENAME_PREFIX", "Limits", "call_limited", "paused"]

#: Code compiled for the sandbox carries a filename starting with this prefix.
SANDBOX_FILENAME_PREFIX = "<batos method"

_POLL_SECONDS = 0.005
_REFIRE_SECONDS = 0.02


@dataclass(frozen=True)
class Limits:
    """Limits for one outermost sandboxed call (nested calls share it).

    Attributes:
        cpu_seconds: CPU time the call may use.
        max_depth: how deeply sandboxed methods may call each other (recursion included).
    """

    cpu_seconds: float = 2.0
    max_depth: int = 64

    def __post_init__(self) -> None:
        if not self.cpu_seconds > 0:
            raise ValueError(f"cpu_seconds must be positive, got {self.cpu_seconds!r}.")
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, got {self.max_depth!r}.")


DEFAULT_LIMITS = Limits()


_local = threading.local()


class _Interrupt(BaseException):
    """Raised asynchronously in a thread whose sandboxed call ran past its budget."""


class _Entry:
    """The watch state of one thread, reused by every outermost call on it.

    Arming is a handful of attribute writes: the watchdog itself reads the thread's CPU clock
    when it first sees a new call (``gen`` changed), so an outermost call costs well under a
    microsecond when nothing goes wrong.
    """

    __slots__ = (
        "active",
        "budget",
        "clock",
        "fired",
        "firing",
        "gen",
        "ident",
        "last_fire",
        "paused",
        "seen",
        "start",
    )

    def __init__(self) -> None:
        self.ident = threading.get_ident()
        self.clock = _thread_clock(self.ident)
        self.budget = 0.0
        self.start: float | None = None
        self.gen = 0
        self.seen = 0
        self.active = False
        self.fired = False
        self.firing = False
        self.last_fire = 0.0
        self.paused = 0


def _thread_clock(ident: int) -> int | None:
    try:
        return time.pthread_getcpuclockid(ident)
    except (AttributeError, OSError):  # not on Linux: fall back to wall time
        return None


def _read(clock: int | None) -> float:
    return time.clock_gettime(clock) if clock is not None else time.monotonic()


def _set_async_exc(ident: int, exc: type[BaseException] | None) -> None:
    target = ctypes.py_object(exc) if exc is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)


def _is_guarded_frame(filename: str) -> bool:
    return filename.startswith(SANDBOX_FILENAME_PREFIX) or filename.endswith(
        ("batos_lab/sandbox.py", "batos_lab/sandbox_guards.py")
    )


class _Watchdog:
    """One thread that interrupts sandboxed calls running past their CPU budget."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._entries: dict[int, _Entry] = {}
        self._thread: threading.Thread | None = None

    def _register(self) -> _Entry:
        entry = _Entry()
        with self._lock:
            self._entries[entry.ident] = entry
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="batos-sandbox-watchdog", daemon=True
                )
                self._thread.start()
        _local.watch = entry
        return entry

    def arm(self, budget: float) -> _Entry:
        entry: _Entry | None = getattr(_local, "watch", None)
        if entry is None:
            entry = self._register()
        entry.budget = budget
        entry.start = None
        entry.fired = False
        entry.gen += 1
        entry.active = True
        if not self._wake.is_set():
            self._wake.set()
        return entry

    def disarm(self, entry: _Entry) -> bool:
        """Stop watching ``entry``; return whether it was ever interrupted."""
        while True:
            try:
                entry.active = False
                while entry.firing:  # the watchdog is deciding right now: let it finish
                    time.sleep(0)
                if entry.fired:
                    _set_async_exc(entry.ident, None)  # drop an interrupt still pending
                return entry.fired
            except _Interrupt:  # delivered between the last check and the clearing
                continue

    def _run(self) -> None:
        while True:
            active = [e for e in list(self._entries.values()) if e.active]
            if not active:
                self._wake.clear()
                if not any(e.active for e in list(self._entries.values())):
                    self._prune()
                    self._wake.wait()
                continue
            wait = _POLL_SECONDS * 4
            for entry in active:
                wait = min(wait, self._check(entry))
            time.sleep(max(wait, 0.001))

    def _prune(self) -> None:
        alive = {t.ident for t in threading.enumerate()}
        with self._lock:
            for ident in [i for i in self._entries if i not in alive]:
                del self._entries[ident]

    def _check(self, entry: _Entry) -> float:
        if entry.paused:
            return _POLL_SECONDS
        gen = entry.gen
        if entry.seen != gen or entry.start is None:
            entry.seen = gen
            entry.start = _read(entry.clock)  # the call began at most one poll ago
            return _POLL_SECONDS
        used = _read(entry.clock) - entry.start
        left = entry.budget - used
        if left > 0:
            return min(left, _POLL_SECONDS * 4)
        now = time.monotonic()
        if entry.fired and now - entry.last_fire < _REFIRE_SECONDS:
            return _POLL_SECONDS
        if not self._may_fire(entry, overdue=used > 2 * entry.budget):
            return _POLL_SECONDS
        entry.firing = True
        try:
            if entry.active and entry.gen == gen and not entry.paused:
                entry.fired = True
                entry.last_fire = now
                _set_async_exc(entry.ident, _Interrupt)
        finally:
            entry.firing = False
        return _POLL_SECONDS

    @staticmethod
    def _may_fire(entry: _Entry, overdue: bool) -> bool:
        frame = sys._current_frames().get(entry.ident)
        if frame is None:
            return False
        if _is_guarded_frame(frame.f_code.co_filename):
            return True
        if not overdue:
            return False
        while frame is not None:
            if frame.f_code.co_filename.startswith(SANDBOX_FILENAME_PREFIX):
                return True
            frame = frame.f_back
        return False


_WATCHDOG = _Watchdog()


def call_limited(
    func: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    name: str,
    limits: Limits = DEFAULT_LIMITS,
    finish: Callable[[Any], Any] | None = None,
) -> Any:
    """Call ``func`` under CPU-time and depth limits.

    The outermost call on a thread arms the watchdog; nested calls only count depth.

    Args:
        func: the sandboxed function.
        args: positional arguments.
        kwargs: keyword arguments.
        name: the method name, for messages.
        limits: the limits of an outermost call.
        finish: applied to the result while the limits still hold (e.g. to materialise an
            iterator the method returned).

    Returns:
        What ``func`` (then ``finish``) returned.

    Raises:
        SandboxTimeout: the outermost call used more CPU time than ``limits.cpu_seconds``.
        SandboxRecursion: sandboxed calls nested deeper than ``limits.max_depth``, or Python's
            own recursion limit was reached inside sandboxed code.
    """
    depth: int = getattr(_local, "depth", 0)
    budget: Limits = getattr(_local, "limits", limits) if depth else limits
    if depth >= budget.max_depth:
        raise SandboxRecursion(
            f"Method '{name}' was called {depth} levels deep in sandboxed code; the limit is "
            f"{budget.max_depth}. Give the recursion a base case or use a loop."
        )
    _local.depth = depth + 1
    if depth == 0:
        _local.limits = limits
        entry: _Entry | None = _WATCHDOG.arm(limits.cpu_seconds)
        _local.entry = entry
    else:
        entry = None
    try:
        result = func(*args, **kwargs)
        return finish(result) if finish is not None else result
    except _Interrupt:
        if entry is None:
            raise  # only the outermost call reports the timeout
        raise SandboxTimeout(
            f"Method '{name}' used more than {limits.cpu_seconds:g} s of CPU time and was "
            "stopped. Check its loops for a missing exit condition."
        ) from None
    except RecursionError:
        if entry is None:
            raise
        raise SandboxRecursion(
            f"Method '{name}' exceeded Python's recursion limit inside sandboxed code. Give "
            "the recursion a base case or use a loop."
        ) from None
    finally:
        _local.depth = depth
        if entry is not None:
            _local.entry = None
            _WATCHDOG.disarm(entry)


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """Stop counting CPU time for the current thread's sandboxed call while the block runs.

    Host work started from inside a method (the model writing a missing method) must not be
    charged to that method's budget.
    """
    entry: _Entry | None = getattr(_local, "entry", None)
    if entry is None:
        yield
        return
    before = _read(entry.clock)
    if entry.start is None:  # the watchdog has not seen this call yet
        entry.start = before
        entry.seen = entry.gen
    entry.paused += 1
    try:
        yield
    finally:
        if entry.start is not None:
            entry.start += _read(entry.clock) - before
        entry.paused -= 1
