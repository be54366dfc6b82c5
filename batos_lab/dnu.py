"""The generative kernel: ``doesNotUnderstand_`` that writes, checks, installs and runs a method.

When a UvmObject receives a public selector that no slot of it or of its parents answers, the
kernel calls its ``doesNotUnderstand_`` hook. :func:`handle` is that hook once a generator is
installed with :func:`install_generator`; :func:`jit` is the pipeline behind it:

1. refuse selectors that are private, kernel API, or already a slot of another kind;
2. build the prompt (:mod:`batos_lab.dnu_prompt`) and ask the generator, greedy first, then
   sampled with rising temperature;
3. extract one function named after the selector, audit it with the Persistence Guardian (the
   covenant autofix is recorded), and trial-run it on copies of the real arguments inside a ZODB
   savepoint that is always rolled back;
4. on any failure, retry with the error in the prompt, up to ``max_attempts``;
5. on success install it with provenance, commit with a note, run it for real, return its result;
6. on final failure raise :class:`~batos_lab.errors.DoesNotUnderstand` carrying every attempt's
   diagnostics, leave the image as it was, and write a failure record (in its own transaction,
   on its own connection) to ``root["failures"]`` for the heartbeat.

A *generator* is any callable ``(prompt, temperature, attempt) -> str``: the real model's
adapter-free ``infer`` in use, a scripted list of replies in tests.
"""

from __future__ import annotations

import ast
import asyncio
import contextvars
import copy
import datetime as dt
import functools
import pickle
import time
import types
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, runtime_checkable

from batos_lab.dnu_prompt import (
    GUIDE_NAMES,
    ExtractionError,
    JITPrompt,
    build_prompt,
    extract_function,
    feedback_prompt,
    safe_repr,
)
from batos_lab.errors import BatosError, DoesNotUnderstand, GuardianRejection
from batos_lab.failures import record_failure
from batos_lab.guardian import audit
from batos_lab.limits import Limits, paused
from batos_lab.sandbox import compile_method

__all__ = [
    "CandidateGenerator",
    "Generator",
    "JITSettings",
    "Outcome",
    "check_selector",
    "choose",
    "db_of",
    "generator_for",
    "handle",
    "install_generator",
    "jit",
    "jit_async",
    "learn",
    "transcript",
    "uninstall_generator",
    "use_embedded_model",
]

HOOK_REF = "batos_lab.dnu:handle"

#: set while a candidate runs on trial: unknown messages then fail instead of learning
_ON_TRIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("dnu_on_trial", default=False)


class Generator(Protocol):
    """Writes method source: ``(prompt, temperature, attempt) -> reply text``."""

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str: ...


@dataclass(frozen=True)
class JITSettings:
    """How the JIT pipeline asks and checks.

    Attributes:
        max_attempts: generator calls before giving up.
        temperatures: temperature per attempt (the last repeats); greedy (0.0) comes first.
        trial_limits: limits of the trial run inside the savepoint.
        model_id: recorded in provenance.
        adapter: recorded in provenance (None: the base model, every adapter off).
        candidates: candidates per retry round when the generator can propose several
            (:class:`CandidateGenerator`): the first round is one greedy reply, each later
            round samples this many and ranks the passing ones with :func:`choose`.
            1: one candidate per round, the first to pass wins.
        guide_names: let the generator restrict ``self.<name>`` to the receiver's slots and
            selectors (a model-backed generator then cannot read a slot copied from an
            example); the last attempt is always free, so a method may still create a slot.
    """

    max_attempts: int = 3
    temperatures: tuple[float, ...] = (0.0, 0.7, 1.0)
    trial_limits: Limits = field(default_factory=lambda: Limits(cpu_seconds=2.0))
    model_id: str = "unknown"
    adapter: str | None = None
    guide_names: bool = True
    candidates: int = 4

    def __post_init__(self) -> None:
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates!r}.")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts!r}.")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be non-negative, got {self.temperatures!r}.")

    def temperature(self, attempt: int) -> float:
        """Return the temperature of attempt ``attempt`` (0-based)."""
        return self.temperatures[min(attempt, len(self.temperatures) - 1)]


# --- the registry of generators (volatile: one per database in this process) -----------------

_REGISTRY: dict[int, tuple[Generator, JITSettings]] = {}


def db_of(target: Any) -> Any:
    db = getattr(target, "db", None)
    if callable(db):  # a ZODB Connection
        return db()
    if db is not None:  # an Image
        return db
    jar = getattr(target, "_p_jar", None)
    if jar is not None:
        return jar.db()
    return target  # a DB itself


def install_generator(
    image: Any, generator: Generator, settings: JITSettings | None = None, *, hook: bool = True
) -> None:
    """Make ``generator`` write the missing methods of ``image``'s objects.

    Args:
        image: an Image (or a ZODB DB or connection).
        generator: the callable that writes source.
        settings: pipeline settings (defaults: :class:`JITSettings`).
        hook: also point ``traits.doesNotUnderstand_`` at :func:`handle` and commit.
    """
    _REGISTRY[id(db_of(image))] = (generator, settings or JITSettings())
    root = getattr(image, "root", None)
    if hook and root is not None and "traits" in root:
        from batos_lab.objects import NativeMethod

        traits = root["traits"]
        current = traits.get_slot("doesNotUnderstand_", None)
        if getattr(current, "ref", None) != HOOK_REF:
            traits.set_slot("doesNotUnderstand_", NativeMethod(HOOK_REF))
            txn = image.transaction_manager.get()
            txn.note("dnu: the generative kernel answers unknown messages")
            image.transaction_manager.commit()


def use_embedded_model(image: Any, settings: JITSettings | None = None) -> Generator:
    """Let the image's embedded model (adapters off) answer unknown messages; return it.

    Args:
        image: an open Image whose model was installed with ``install_model``.
        settings: pipeline settings (default: :class:`JITSettings` naming the model).

    Returns:
        The installed generator (the model loads on its first call).
    """
    from batos_lab.dnu_model import model_generator

    generator = model_generator(image)
    install_generator(image, generator, settings or JITSettings(model_id=generator.model_id))
    return generator


def uninstall_generator(image: Any) -> None:
    """Forget the generator of ``image`` (the hook then raises DoesNotUnderstand)."""
    _REGISTRY.pop(id(db_of(image)), None)


def generator_for(image: Any) -> tuple[Generator, JITSettings] | None:
    """Return the generator and settings serving ``image``, or None when there is none.

    An installed generator wins; otherwise the embedded model of the image writes the body of
    a forced function header, every adapter disabled (:mod:`batos_lab.dnu_model`).
    """
    entry = _REGISTRY.get(id(db_of(image)))
    if entry is not None:
        return entry
    root = getattr(image, "root", None)
    if root is None or callable(root) or "pLLM_obj" not in root:
        return None  # only an open Image (not a bare connection) can load its core
    if getattr(root["pLLM_obj"], "get_slot", lambda *a: None)("base_model", None) is None:
        return None
    try:
        from batos_lab.llm import core_for  # type: ignore[attr-defined]
    except ImportError:
        return None
    from batos_lab.dnu_model import ModelGenerator

    generator = ModelGenerator(core_for(image))
    return generator, JITSettings(model_id=generator.model_id)


# --- the hook and the pipeline ----------------------------------------------------------------


def handle(receiver: Any, selector: str, *args: Any, **kwargs: Any) -> Any:
    """The ``doesNotUnderstand_`` hook: learn the method when a generator serves the image.

    ``genesis.dnu_mode`` chooses how: ``"jit"`` (the default) runs :func:`jit`; ``"cycle"``
    hands the message to a method cycle of the state machine
    (:func:`batos_lab.psm.method_cycle.cycle_dnu`), whose result the caller gets the same way.

    Raises:
        DoesNotUnderstand: no generator (JIT mode), or every attempt failed.
    """
    from batos_lab.objects import raise_does_not_understand

    jar = getattr(receiver, "_p_jar", None)
    if jar is not None and not _ON_TRIAL.get() and _mode(receiver) == "cycle":
        from batos_lab.psm.method_cycle import cycle_dnu

        return cycle_dnu(receiver, selector, *args, **kwargs)
    entry = generator_for(jar) if jar is not None and not _ON_TRIAL.get() else None
    if entry is None:
        return raise_does_not_understand(receiver, selector, *args, **kwargs)
    generator, settings = entry
    return jit(receiver, selector, args, kwargs, generator=generator, settings=settings)


def _mode(receiver: Any) -> str:
    jar = getattr(receiver, "_p_jar", None)
    if jar is None:
        return "jit"
    genesis = jar.root().get("genesis")
    mode = genesis.get_slot("dnu_mode", "jit") if genesis is not None else "jit"
    return str(mode)


def check_selector(receiver: Any, selector: str) -> None:
    from batos_lab.objects import KERNEL_SELECTORS

    if not isinstance(selector, str) or not selector.isidentifier() or selector.startswith("_"):
        raise DoesNotUnderstand(
            f"{selector!r} is not a public selector; only public identifiers are learned.",
            receiver=receiver,
            selector=str(selector),
        )
    if selector in KERNEL_SELECTORS:
        raise DoesNotUnderstand(
            f"{selector!r} is a selector of the kernel itself and cannot be learned.",
            receiver=receiver,
            selector=selector,
        )
    owner, value = receiver.lookup(selector)
    if owner is not None:
        where = "it" if owner is receiver else f"its parent {owner.short_name()}"
        raise DoesNotUnderstand(
            f"{receiver.short_name()} cannot learn {selector!r}: {where} already holds a slot "
            f"of that name of another kind ({type(value).__name__}: {safe_repr(value, 40)}). "
            "Rename the message or the slot.",
            receiver=receiver,
            selector=selector,
        )


def jit(
    receiver: Any,
    selector: str,
    args: tuple[Any, ...] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    generator: Generator,
    settings: JITSettings | None = None,
) -> Any:
    """Learn ``selector`` for ``receiver`` from ``generator``, install it, and answer the call.

    Args:
        receiver: the UvmObject that received the message.
        selector: the message name.
        args: positional arguments of the call.
        kwargs: keyword arguments of the call.
        generator: writes the source.
        settings: attempts, temperatures, trial limits, provenance labels.

    Returns:
        What the installed method returned when run for real.

    Raises:
        DoesNotUnderstand: the selector cannot be learned, the image is in cycle mode, or every
            attempt failed (``.attempts`` holds each one's diagnostics).
    """
    settings = settings or JITSettings()
    kwargs = dict(kwargs or {})
    check_selector(receiver, selector)
    if _mode(receiver) != "jit":
        raise DoesNotUnderstand(
            f"The image is in dnu_mode={_mode(receiver)!r}: unknown messages are answered by "
            "cognitive cycles, not JIT. Set genesis.dnu_mode = 'jit' to learn methods directly.",
            receiver=receiver,
            selector=selector,
        )
    prompt = build_prompt(receiver, selector, args, kwargs)
    started = time.perf_counter()
    attempts: list[dict[str, Any]] = []
    learned = learn(receiver, selector, args, kwargs, prompt, generator, settings, attempts)
    if learned is None:
        _fail(receiver, selector, args, kwargs, prompt, settings, attempts)
    source, fixes = learned
    provenance = {
        "author": "jit",
        "model": settings.model_id,
        "adapter": settings.adapter,
        "prompt_sha256": prompt.sha256,
        "attempts": attempts,
        "latency_s": round(time.perf_counter() - started, 3),
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "autofix": fixes,
    }
    receiver.define(selector, source, provenance=provenance)
    jar = getattr(receiver, "_p_jar", None)
    if jar is not None:
        manager = jar.transaction_manager
        manager.get().note(f"jit: {receiver.short_name()} learned {selector}")
        manager.commit()
    return receiver.send(selector, *args, **kwargs)


async def jit_async(
    receiver: Any,
    selector: str,
    *args: Any,
    generator: Generator,
    settings: JITSettings | None = None,
    **kwargs: Any,
) -> Any:
    """Run :func:`jit` in a worker thread and await its result.

    The image's connection is not thread-safe: do not use it elsewhere until this returns.
    """
    loop = asyncio.get_running_loop()
    call = functools.partial(
        jit, receiver, selector, args, kwargs, generator=generator, settings=settings
    )
    return await loop.run_in_executor(None, call)


def learn(
    receiver: Any,
    selector: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    prompt: JITPrompt,
    generator: Generator,
    settings: JITSettings,
    attempts: list[dict[str, Any]],
) -> tuple[str, list[str]] | None:
    """Ask, extract, audit and trial until a candidate passes; None when none does.

    The first round asks for one greedy reply. With a :class:`CandidateGenerator` and
    ``settings.candidates > 1`` each later round asks for a pool of samples, trials every one,
    and keeps the passing one whose outcome the generator judges likeliest (:func:`choose`);
    otherwise each round asks for one reply and the first that passes wins. A round that
    passes nothing feeds its first error back into the next round's prompt.
    """
    text = prompt.text
    pooled = settings.candidates > 1 and isinstance(generator, CandidateGenerator)
    for round_ in range(settings.max_attempts):
        guided = settings.guide_names and round_ < settings.max_attempts - 1
        token = GUIDE_NAMES.set(prompt.names if guided else None)
        began = time.perf_counter()
        try:
            replies = _ask(generator, text, settings, round_, pooled)
        finally:
            GUIDE_NAMES.reset(token)
        generate_s = round((time.perf_counter() - began) / max(1, len(replies)), 3)
        passed: list[tuple[dict[str, Any], str, list[str], Outcome]] = []
        first_error: tuple[str, BaseException] | None = None
        for reply, temperature in replies:
            record: dict[str, Any] = {
                "attempt": len(attempts), "round": round_, "temperature": temperature,
                "guided": guided, "generate_s": generate_s,
            }  # fmt: skip
            attempts.append(record)
            checked = time.perf_counter()
            source = ""
            try:
                if isinstance(reply, BaseException):
                    raise reply
                record["reply"] = str(reply)[:2000]
                source = extract_function(str(reply), selector, prompt.header)
                report = audit(source, selector, autofix=True)
                source = report.source
                outcome = _trial(receiver, selector, source, args, kwargs, settings.trial_limits)
            except Exception as exc:  # every failure becomes feedback for the next round
                record.update(stage=_stage(exc), error=_describe(exc), source=source)
                record["latency_s"] = round(generate_s + time.perf_counter() - checked, 3)
                first_error = first_error or (source, exc)
                continue
            record.update(stage="ok", error=None, source=source, fixes=list(report.fixes))
            record["result"] = outcome.result
            record["latency_s"] = round(generate_s + time.perf_counter() - checked, 3)
            passed.append((record, source, list(report.fixes), outcome))
            if not pooled:
                break
        if passed:
            best = choose(receiver, selector, args, kwargs, passed, generator) if pooled else 0
            record, source, fixes, _outcome = passed[best]
            record["chosen"] = True
            return source, fixes
        assert first_error is not None
        text = feedback_prompt(prompt, first_error[0], _hint(receiver, first_error[1]))
    return None


def _ask(
    generator: Generator, text: str, settings: JITSettings, round_: int, pooled: bool
) -> list[tuple[str | BaseException, float]]:
    """One round's replies with their temperatures; a generator error is one failed reply.

    Round 0 is one greedy reply; with a pool, each later round is ``settings.candidates``
    replies sampled at that round's temperature.
    """
    temperature = settings.temperature(round_)
    try:
        with paused():
            if pooled and round_ > 0:
                propose = generator.propose  # type: ignore[attr-defined]
                replies = list(propose(text, settings.candidates, temperature, round_))
            else:
                replies = [generator(text, temperature, round_)]
    except Exception as exc:  # a generator failure is one failed attempt, never a crash
        return [(exc, temperature)]
    return [(str(reply), temperature) for reply in replies]


@dataclass(frozen=True)
class Outcome:
    """What a candidate did on trial: its answer and the receiver's data slots afterwards.

    Both are one-line reprs taken before the savepoint was rolled back.
    """

    result: str
    state: tuple[tuple[str, str], ...]


@runtime_checkable
class CandidateGenerator(Protocol):
    """A generator that can also write several candidates at once and judge outcomes.

    ``propose(prompt, n, temperature, round)`` returns ``n`` replies: on round 0 the first is
    greedy and the rest are sampled at ``temperature``. ``judge(context, endings)`` returns one
    score per ending: how likely the model finds ``context + ending`` (higher is likelier).
    """

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str: ...

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]: ...

    def judge(self, context: str, endings: list[str]) -> list[float]: ...


def transcript(
    receiver: Any, selector: str, args: tuple[Any, ...], kwargs: dict[str, Any],
    outcome: Outcome, shown: list[str],
) -> tuple[str, str]:  # fmt: skip
    """Write a call and its outcome as an interactive session: (the call, what it printed).

    The context creates an object with the receiver's data slots and sends the message; the
    ending is the answer, then the value of each slot in ``shown`` afterwards.
    """
    name = receiver.get_slot("name", None)
    label = name if isinstance(name, str) and name.isidentifier() else "obj"
    before = dict(_data_state(receiver))
    slots = ", ".join(f"{slot}={value}" for slot, value in before.items() if slot != "name")
    call = [safe_repr(a, 200) for a in args] + [
        f"{k}={safe_repr(v, 200)}" for k, v in kwargs.items()
    ]
    context = f">>> {label} = Object({slots})\n>>> {label}.{selector}({', '.join(call)})\n"
    after = dict(outcome.state)
    ending = (
        outcome.result + "\n" + "".join(f">>> {label}.{n}\n{after.get(n, '')}\n" for n in shown)
    )
    return context, ending


def choose(
    receiver: Any, selector: str, args: tuple[Any, ...], kwargs: dict[str, Any],
    passed: list[tuple[dict[str, Any], str, list[str], Outcome]], generator: Any,
) -> int:  # fmt: skip
    """Pick the passing candidate whose outcome the model finds likeliest (execution ranking).

    Candidates with the same outcome (answer and slots afterwards) form one group, judged once;
    slots are shown only where the groups disagree. The likeliest group wins, ties go to the
    larger group, then to the earliest candidate (greedy first). Each record gets its
    ``judge`` score; a failing judge leaves the first passing candidate.
    """
    groups: dict[Outcome, list[int]] = {}
    for index, (*_rest, outcome) in enumerate(passed):
        groups.setdefault(outcome, []).append(index)
    if len(groups) == 1:
        return 0
    keys = list(groups)
    names = [name for name, _ in keys[0].state]
    shown = [n for n in names if len({dict(k.state).get(n) for k in keys}) > 1]
    endings = []
    context = ""
    for key in keys:
        context, ending = transcript(receiver, selector, args, kwargs, key, shown)
        endings.append(ending)
    try:
        with paused():
            scores = [float(x) for x in generator.judge(context, endings)]
    except Exception:
        return 0
    for key, score in zip(keys, scores, strict=True):
        for index in groups[key]:
            passed[index][0]["judge"] = round(score, 3)
    best = max(
        range(len(keys)), key=lambda i: (scores[i], len(groups[keys[i]]), -groups[keys[i]][0])
    )
    return groups[keys[best]][0]


def _stage(exc: BaseException) -> str:
    if isinstance(exc, ExtractionError):
        return "extract"
    if isinstance(exc, GuardianRejection):
        return "audit"
    return "trial"


def _hint(receiver: Any, exc: BaseException) -> str:
    """The error as feedback for the model, with the fix when a common mistake is recognised."""
    text = _describe(exc)
    if isinstance(exc, NameError) and getattr(exc, "name", None):
        if receiver.lookup(exc.name)[0] is not None:
            return f"{text}; the slot is read as self.{exc.name}"
    if "returned a function" in text:
        return f"{text}; call it with ()"
    if "returned None" in text:
        return f"{text}; end with a return statement"
    return text


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GuardianRejection):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _trial(
    receiver: Any,
    selector: str,
    source: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    limits: Limits,
) -> Outcome:
    """Run the candidate on copies of the arguments, note its outcome, roll every change back."""
    _check_slot_reads(receiver, selector, source)
    func = compile_method(source, selector, limits=limits)
    trial_args, trial_kwargs = _copies(args), _copies(kwargs)
    jar = getattr(receiver, "_p_jar", None)
    token = _ON_TRIAL.set(True)
    try:
        if jar is None:
            scratch = receiver.clone()
            result = func(scratch, *trial_args, **trial_kwargs)
            _check_result(result)
            return Outcome(safe_repr(result, 200), _data_state(scratch))
        savepoint = jar.transaction_manager.get().savepoint()
        try:
            bound = types.MethodType(func, receiver)
            result = bound(*trial_args, **trial_kwargs)
            _check_result(result)
            return Outcome(safe_repr(result, 200), _data_state(receiver))
        finally:
            savepoint.rollback()
    finally:
        _ON_TRIAL.reset(token)


def _data_state(receiver: Any) -> tuple[tuple[str, str], ...]:
    """The receiver's data slots (no parents, no methods) as one-line reprs."""
    from batos_lab.objects import Method, NativeMethod, is_parent_slot

    state = []
    for name in receiver.slot_names():
        value = receiver.get_slot(name)
        if not (is_parent_slot(name) or isinstance(value, (Method, NativeMethod))):
            state.append((name, safe_repr(_plain(value), 200)))
    return tuple(state)


def _plain(value: Any) -> Any:
    """Persistent containers as the plain ones they stand for, for a readable repr."""
    from persistent.list import PersistentList
    from persistent.mapping import PersistentMapping

    if isinstance(value, PersistentList):
        return [_plain(v) for v in value]
    if isinstance(value, PersistentMapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class UnknownSlotRead(LookupError):
    """A candidate reads ``self.name`` where the receiver has no such slot or selector."""


def _check_slot_reads(receiver: Any, selector: str, source: str) -> None:
    """Refuse a candidate that reads a slot the receiver does not have (and never assigns)."""
    func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    reads: list[str] = []
    written = {selector, "_p_changed"}
    for node in ast.walk(func):
        if not (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            continue
        if isinstance(node.ctx, ast.Load):
            reads.append(node.attr)
        else:
            written.add(node.attr)
    calls_itself = any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "self"
        and n.func.attr == selector
        for n in ast.walk(func)
    )
    if calls_itself:
        raise UnknownSlotRead(
            f"the method calls self.{selector}(), itself: compute the answer from the slots."
        )
    for name in reads:
        if name in written or name.startswith("_"):
            continue
        owner, _value = receiver.lookup(name)
        if owner is None:
            slots = [n for n in receiver.slot_names() if not n.endswith("*")]
            raise UnknownSlotRead(
                f"self.{name} is not a slot of the object; its slots are "
                f"{', '.join(slots) or '(none)'}."
            )


def _copies(value: Any) -> Any:
    try:
        return copy.deepcopy(value)
    except Exception:  # uncopyable arguments: the trial sees the originals
        return value


def _check_result(result: Any) -> None:
    from batos_lab.objects import Message

    if result is None:
        raise TypeError("the method returned None; it must return the answer to the message")
    if isinstance(result, Message):
        raise TypeError(f"the method returned {result!r}; return a value instead")
    if callable(result) and not hasattr(result, "_p_jar"):
        raise TypeError("the method returned a function; return a value instead")
    if isinstance(result, BatosError):
        raise TypeError("the method returned an error object; return a value instead")
    try:
        pickle.dumps(result)
    except Exception:
        from persistent import Persistent

        if not isinstance(result, Persistent):
            raise TypeError(
                f"the method returned a {type(result).__name__}, which cannot be stored"
            ) from None


def _fail(
    receiver: Any,
    selector: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    prompt: JITPrompt,
    settings: JITSettings,
    attempts: list[dict[str, Any]],
) -> NoReturn:
    """Write the failure record on a separate connection, then raise DoesNotUnderstand."""
    summary = "; ".join(
        f"attempt {a['attempt'] + 1} ({a.get('stage')}): {str(a.get('error')).rstrip('.')}"
        for a in attempts
    )
    record = {
        "selector": selector,
        "receiver_oid": receiver.oid_hex(),
        "receiver": receiver.short_name(),
        "args": [safe_repr(a) for a in args] + [f"{k}={safe_repr(v)}" for k, v in kwargs.items()],
        "attempts": attempts,
        "reason": f"no attempt passed extraction, audit and trial ({len(attempts)} tried)",
        "model": settings.model_id,
        "prompt_sha256": prompt.sha256,
        "created": dt.datetime.now(dt.UTC).isoformat(),
    }
    jar = getattr(receiver, "_p_jar", None)
    if jar is not None:
        record_failure(jar.db(), record, f"dnu failure: {record['selector']}")
    raise DoesNotUnderstand(
        f"{receiver.short_name()} could not learn {selector!r}: {summary}. The image is "
        "unchanged; a failure record was kept for the heartbeat.",
        receiver=receiver,
        selector=selector,
        attempts=attempts,
    )
