"""The generative kernel: ``doesNotUnderstand_`` that writes, checks, installs and runs a method.

When a UvmObject receives a public selector that no slot of it or of its parents answers, the
kernel calls its ``doesNotUnderstand_`` hook. :func:`handle` is that hook once a generator is
installed with :func:`install_generator`; :func:`jit` is the pipeline behind it:

1. refuse selectors that are private, kernel API, or already a slot of another kind;
2. build the prompt (:mod:`batos_lab.dnu_prompt`) and ask the generator: the greedy reply and
   a pool of samples from one prompt cache when it can propose several, else one reply;
3. extract one function named after the selector from each, audit it with the Persistence
   Guardian (the covenant autofix is recorded), and trial-run it on copies of the real
   arguments inside a ZODB savepoint that is always rolled back; of the candidates that pass,
   :func:`~batos_lab.dnu_rank.choose` picks one;
4. when none passes, retry with the error in the prompt (sampled, rising temperature), up to
   ``max_attempts`` rounds;
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from batos_lab.dnu_prompt import (
    GUIDE_NAMES,
    ExtractionError,
    JITPrompt,
    build_prompt,
    extract_function,
    feedback_prompt,
    safe_repr,
)
from batos_lab.dnu_rank import CandidateGenerator, Outcome, choose, data_state, transcript
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
        adapter: the expert that writes, as :func:`use_embedded_model` sets it up, and recorded
            in provenance (None: the base model, every adapter off).
        with_base: with an ``adapter``, let :func:`use_embedded_model` share every pool
            between the base model and the adapter (:class:`~batos_lab.dnu_model.SharedPool`),
            ranked together; each attempt and the provenance name the writer of the candidate.
        candidates: candidates per retry round when the generator can propose several
            (:class:`CandidateGenerator`): each retry round samples this many and ranks the
            passing ones with :func:`~batos_lab.dnu_rank.choose`. 1: one candidate per
            round, the first to pass wins.
        first_candidates: candidates of the first round with such a generator: the greedy
            reply and ``first_candidates - 1`` samples at ``first_temperature``, all from
            one prefill, ranked like a retry pool. 1: the greedy reply alone.
        first_temperature: the sampling temperature of the first round's samples.
        banks: the example banks (:data:`batos_lab.dnu_examples.BANKS`) of the first round's
            prompts: with a pool of at least two candidates per bank, the first round asks
            each bank's prompt for its share (each greedy first) and ranks them together;
            retries use the first bank's prompt.
        guide_names: let the generator restrict ``self.<name>`` to the receiver's slots and
            selectors (a model-backed generator then cannot read a slot copied from an
            example); the last attempt is always free, so a method may still create a slot.
    """

    max_attempts: int = 3
    temperatures: tuple[float, ...] = (0.0, 0.7, 1.0)
    trial_limits: Limits = field(default_factory=lambda: Limits(cpu_seconds=2.0))
    model_id: str = "unknown"
    adapter: str | None = None
    with_base: bool = False
    guide_names: bool = True
    candidates: int = 4
    first_candidates: int = 8
    first_temperature: float = 0.8
    banks: tuple[str, ...] = ("core", "broad")

    def __post_init__(self) -> None:
        if self.with_base and self.adapter is None:
            raise ValueError(
                "with_base=True shares the pools with an adapter: name one in adapter."
            )
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates!r}.")
        if self.first_candidates < 1:
            raise ValueError(f"first_candidates must be at least 1, got {self.first_candidates!r}.")
        if self.first_temperature <= 0:
            raise ValueError(
                f"first_temperature must be above 0, got {self.first_temperature!r}; "
                "first_candidates=1 keeps the first round greedy."
            )
        from batos_lab.dnu_examples import BANKS

        unknown = [b for b in self.banks if b not in BANKS]
        if not self.banks or unknown:
            raise ValueError(
                f"banks must name at least one of {', '.join(BANKS)}; got {self.banks!r}."
            )
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
    """Let the image's embedded model answer unknown messages; return the generator.

    Args:
        image: an open Image whose model was installed with ``install_model``.
        settings: pipeline settings (default: :class:`JITSettings` naming the model). Their
            ``adapter`` chooses the expert that writes (None, the default: the base model
            with every adapter off; ``"JIT"``: the adapter trained on the example banks) and
            ``with_base`` whether the base model writes a share of every pool beside it.

    Returns:
        The installed generator (the model loads on its first call).

    Raises:
        UnknownAdapter: ``settings.adapter`` names no expert of the image.
    """
    import dataclasses

    from batos_lab.dnu_model import SharedPool, model_generator

    adapter = settings.adapter if settings is not None else None
    generator: Any = model_generator(image, adapter=adapter)
    if settings is not None and settings.with_base:
        generator = SharedPool([model_generator(image), generator])
    if settings is None:
        settings = JITSettings(model_id=generator.model_id)
    elif settings.model_id == "unknown":
        settings = dataclasses.replace(settings, model_id=generator.model_id)
    install_generator(image, generator, settings)
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
    prompts = [build_prompt(receiver, selector, args, kwargs, bank=b) for b in settings.banks]
    prompt = prompts[0]
    started = time.perf_counter()
    attempts: list[dict[str, Any]] = []
    learned = learn(
        receiver, selector, args, kwargs, prompt, generator, settings, attempts,
        others=prompts[1:],
    )  # fmt: skip
    if learned is None:
        _fail(receiver, selector, args, kwargs, prompt, settings, attempts)
    source, fixes = learned
    chosen = next((a for a in attempts if a.get("chosen")), {})
    provenance = {
        "author": "jit",
        "model": settings.model_id,
        "adapter": (writer := chosen.get("writer", settings.adapter)),
        "adapter_version": _version_of(generator, writer),
        "prompt_sha256": prompt.sha256,
        "prompts_sha256": [p.sha256 for p in prompts],
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
    *,
    others: Sequence[JITPrompt] = (),
) -> tuple[str, list[str]] | None:
    """Ask, extract, audit and trial until a candidate passes; None when none does.

    ``others`` are more prompts for the same message (other example banks): when the first
    round's pool allows two candidates per prompt, it is shared out over ``prompt`` and them,
    and each attempt records which prompt it came from.

    With a :class:`CandidateGenerator` every round asks for a pool (the first: the greedy
    reply and ``first_candidates - 1`` samples; each later one: ``candidates`` samples),
    trials every candidate, and keeps the passing one :func:`~batos_lab.dnu_rank.choose`
    ranks first; otherwise each round asks for one reply (greedy first) and the first that
    passes wins. A round that passes nothing feeds its first error back into the next
    round's prompt.
    """
    text = prompt.text
    pooled = isinstance(generator, CandidateGenerator) and (
        settings.candidates > 1 or settings.first_candidates > 1
    )
    for round_ in range(settings.max_attempts):
        guided = settings.guide_names and round_ < settings.max_attempts - 1
        token = GUIDE_NAMES.set(prompt.names if guided else None)
        began = time.perf_counter()
        texts = [text]
        if round_ == 0 and pooled and settings.first_candidates >= 2 * (1 + len(others)):
            texts += [p.text for p in others]
        n = settings.first_candidates // len(texts) if len(texts) > 1 else None
        replies: list[tuple[str | BaseException, float, str | None, int]] = []
        try:
            for which, asked in enumerate(texts):
                replies += [
                    (*r, which) for r in _ask(generator, asked, settings, round_, pooled, n)
                ]
        finally:
            GUIDE_NAMES.reset(token)
        generate_s = round((time.perf_counter() - began) / max(1, len(replies)), 3)
        passed: list[tuple[dict[str, Any], str, list[str], Outcome]] = []
        first_error: tuple[str, BaseException] | None = None
        for reply, temperature, writer, which in replies:
            record: dict[str, Any] = {
                "attempt": len(attempts), "round": round_, "temperature": temperature,
                "guided": guided, "generate_s": generate_s, "prompt": which,
            }  # fmt: skip
            if hasattr(generator, "rows"):
                record["writer"] = writer
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
    generator: Generator,
    text: str,
    settings: JITSettings,
    round_: int,
    pooled: bool,
    n: int | None = None,
) -> list[tuple[str | BaseException, float, str | None]]:
    """One round's replies with their temperatures and writers; an error is one failed reply.

    Without a pool each round is one reply, greedy first. With one, round 0 is the greedy
    reply and ``first_candidates - 1`` samples at ``first_temperature``; each later round is
    ``candidates`` replies sampled at that round's temperature. ``n`` overrides the size. A
    generator with writers' shares (:class:`~batos_lab.dnu_model.SharedPool`) says which
    rows are whose and which are greedy; any other writes every row as ``settings.adapter``.
    """
    temperature = settings.temperature(round_)
    if n is None:
        n = settings.first_candidates if round_ == 0 else settings.candidates
    rows = getattr(generator, "rows", None)
    try:
        with paused():
            if pooled and n > 1:
                propose = generator.propose  # type: ignore[attr-defined]
                if round_ == 0:  # greedy first, then samples, from one prompt cache
                    temperature = settings.first_temperature
                replies = [str(r) for r in propose(text, n, temperature, round_)]
                layout = rows(n, round_) if rows is not None else []
                if len(layout) != len(replies):
                    layout = [
                        (settings.adapter, round_ == 0 and i == 0) for i in range(len(replies))
                    ]
                return [
                    (reply, 0.0 if greedy else temperature, writer)
                    for reply, (writer, greedy) in zip(replies, layout, strict=True)
                ]
            reply = str(generator(text, temperature, round_))
    except Exception as exc:  # a generator failure is one failed attempt, never a crash
        return [(exc, temperature, settings.adapter)]
    writer = rows(1, round_)[0][0] if rows is not None else settings.adapter
    return [(reply, temperature, writer)]


def _version_of(generator: Generator, adapter: str | None) -> str | None:
    """``NAME@vN`` of the adapter version that wrote the chosen candidate (None: the base)."""
    if adapter is None:
        return None
    version_of = getattr(generator, "version_of", None)
    if version_of is not None:
        return version_of(adapter)  # type: ignore[no-any-return]
    key = getattr(generator, "version_key", None)
    return str(key) if key is not None and getattr(generator, "adapter", None) == adapter else None


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
            return Outcome(safe_repr(result, 200), data_state(scratch))
        savepoint = jar.transaction_manager.get().savepoint()
        try:
            bound = types.MethodType(func, receiver)
            result = bound(*trial_args, **trial_kwargs)
            _check_result(result)
            return Outcome(safe_repr(result, 200), data_state(receiver))
        finally:
            savepoint.rollback()
    finally:
        _ON_TRIAL.reset(token)


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
