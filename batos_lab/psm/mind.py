"""The Mind: the one interface through which cycles reach a language model.

Every state of a cycle that needs a model builds a :class:`Request` (who speaks, with which
adapter, what system text and prompt) and hands it to a :class:`Mind`. Two minds exist:

* :class:`ModelMind` answers with the image's cognitive core (:mod:`batos_lab.llm`): ``infer``
  for one request, the mixed-adapter ``generate_batch`` for several, and guided JSON decoding
  (:mod:`batos_lab.psm.guided`) for BRICK's plan;
* :class:`ScriptedMind` answers from scripts (strings, lists or callables per role) so the
  machinery can be tested and measured without a model.

Which mind serves an image is volatile process state: :func:`install_mind` sets it,
:func:`mind_for` reads it (and falls back to a ModelMind when the core is available).

Example:
    >>> mind = ScriptedMind(facet="A facet's view.")
    >>> mind.answer(Request(role="facet", prompt="Why?")).text
    "A facet's view."
"""

from __future__ import annotations

import json
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from batos_lab.errors import MindUnavailable
from batos_lab.limits import paused

__all__ = [
    "PROSE_ROLES",
    "ROLES",
    "Mind",
    "ModelMind",
    "Reply",
    "Request",
    "ScriptedMind",
    "install_mind",
    "mind_for",
    "remember_image",
    "scripted_answers",
    "uninstall_mind",
]

#: What a request is for. Scripts of a ScriptedMind are keyed by these.
ROLES = ("plan", "facet", "weave", "check", "code", "doc")
#: Roles answered in prose, where a ModelMind applies its repetition penalty.
PROSE_ROLES = frozenset({"facet", "weave", "check", "doc"})


@dataclass(frozen=True)
class Request:
    """One question to the model.

    Attributes:
        role: one of :data:`ROLES`.
        prompt: the user text.
        system: the system text (None: none).
        persona: who speaks (``"BRICK"``), None for the base model.
        facet: the facet that speaks, when one does.
        adapter: the LoRA adapter to use, None for the base model with every adapter off.
        max_new_tokens: the most tokens to generate.
        temperature: 0 for greedy decoding.
        stop: strings that end the answer (cut before them).
    """

    role: str
    prompt: str
    system: str | None = None
    persona: str | None = None
    facet: str | None = None
    adapter: str | None = None
    max_new_tokens: int = 160
    temperature: float = 0.0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}; got {self.role!r}.")


@dataclass
class Reply:
    """What the model said, and what it cost.

    Attributes:
        text: the answer.
        prompt_tokens: tokens of the prompt (template included).
        completion_tokens: tokens generated.
        ms: milliseconds of generation (for a batch: the whole batch).
        adapter: the adapter that answered (``NAME@vN``) or None.
        notices: what the model layer changed or could not honour (a cut prompt).
    """

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ms: float = 0.0
    adapter: str | None = None
    notices: list[str] = field(default_factory=list)


@runtime_checkable
class Mind(Protocol):
    """The model calls a cycle makes."""

    model_id: str

    def plan(self, request: Request, facets: Sequence[str]) -> Reply:
        """Return BRICK's plan as raw JSON text; ``facets`` are the names it may choose."""
        ...

    def answer(self, request: Request) -> Reply:
        """Answer one request."""
        ...

    def answer_batch(self, requests: Sequence[Request]) -> list[Reply]:
        """Answer several requests together (one mixed-adapter batch); replies in order."""
        ...

    def weave(self, request: Request) -> Reply:
        """ROBIN's synthesis of the partial answers (the prompt holds them)."""
        ...


# --------------------------------------------------------------------------- scripted

Script = str | Sequence[str] | Callable[[Request], str] | None

_HEADER = re.compile(r"def (\w+)\(self[^)]*\):\s*$")


def _question(prompt: str) -> str:
    found = re.search(r"^Question: (.*)$", prompt, re.MULTILINE)
    return (found.group(1) if found else prompt)[:80]


def _default_plan(request: Request, facets: Sequence[str]) -> str:
    chosen = list(facets[::3][:3]) or list(facets[:1])
    question = _question(request.prompt)
    return json.dumps(
        {
            "strategy": "Split the question into the views of a few facets, then weave them.",
            "relevant_pillars": chosen,
            "sub_queries": {f: f"Seen as {f.rstrip('_')}: {question}" for f in chosen},
        }
    )


def _default_facet(request: Request) -> str:
    topic = " ".join(request.prompt.split()[:12])
    return f"{request.persona or 'base'} via {request.facet or 'no facet'}: a view on '{topic}'."


def _default_weave(request: Request) -> str:
    views = [line[2:].strip() for line in request.prompt.splitlines() if line.startswith("- ")]
    return "Taken together: " + " ".join(views or [request.prompt[:200]])


def _default_code(request: Request) -> str:
    match = _HEADER.search(request.prompt.rstrip())
    name = match.group(1) if match else "method"
    return (
        f"    intent = self.pillars[{name!r}]\n"
        "    system = 'You are ' + self.name + '. ' + intent\n"
        "    return self.infer(query, system=system)\n"
    )


_DEFAULTS: dict[str, Callable[[Request], str]] = {
    "facet": _default_facet,
    "weave": _default_weave,
    "check": lambda r: "PASS: the answer addresses the question.",
    "code": _default_code,
    "doc": lambda r: "Answer the message sent to the object.",
}


class ScriptedMind:
    """A Mind that answers from scripts: a fixed string, a list consumed in order, or a callable.

    Args:
        plan, facet, weave, check, code, doc: the script of each role (None: a sensible default
            that lets a cycle complete).
        delay_s: seconds each call sleeps (to stand in for model time).

    Attributes:
        calls: every request answered, in order.
        batches: the size of every ``answer_batch`` call.
    """

    model_id = "scripted"

    def __init__(
        self,
        *,
        plan: Script = None,
        facet: Script = None,
        weave: Script = None,
        check: Script = None,
        code: Script = None,
        doc: Script = None,
        delay_s: float = 0.0,
    ) -> None:
        self.scripts: dict[str, Script] = {
            "plan": plan,
            "facet": facet,
            "weave": weave,
            "check": check,
            "code": code,
            "doc": doc,
        }
        self._queues: dict[str, list[str]] = {
            role: list(s) for role, s in self.scripts.items() if isinstance(s, list | tuple)
        }
        self.delay_s = delay_s
        self.calls: list[Request] = []
        self.batches: list[int] = []
        self._lock = threading.Lock()

    def _text(self, request: Request, facets: Sequence[str] = ()) -> str:
        script = self.scripts[request.role]
        with self._lock:
            self.calls.append(request)
            if request.role in self._queues:
                queue = self._queues[request.role]
                if not queue:
                    raise RuntimeError(f"The script for role {request.role!r} is used up.")
                return queue.pop(0)
        if isinstance(script, str):
            return script
        if callable(script):
            return str(script(request))
        if request.role == "plan":
            return _default_plan(request, facets)
        return _DEFAULTS[request.role](request)

    def _reply(self, request: Request, text: str, began: float) -> Reply:
        if self.delay_s:
            time.sleep(self.delay_s)
        return Reply(
            text=text,
            prompt_tokens=len(request.prompt.split()) + len((request.system or "").split()),
            completion_tokens=len(text.split()),
            ms=(time.perf_counter() - began) * 1e3,
            adapter=request.adapter,
        )

    def plan(self, request: Request, facets: Sequence[str]) -> Reply:
        """Return the scripted (or a default, valid) plan."""
        began = time.perf_counter()
        return self._reply(request, self._text(request, facets), began)

    def answer(self, request: Request) -> Reply:
        """Return the scripted answer of the request's role."""
        began = time.perf_counter()
        return self._reply(request, self._text(request), began)

    def answer_batch(self, requests: Sequence[Request]) -> list[Reply]:
        """Answer each request in order, counted as one batch."""
        with self._lock:
            self.batches.append(len(requests))
        began = time.perf_counter()
        texts = [self._text(r) for r in requests]
        if self.delay_s:
            time.sleep(self.delay_s)
        ms = (time.perf_counter() - began) * 1e3
        return [
            Reply(t, len(r.prompt.split()), len(t.split()), ms, r.adapter)
            for r, t in zip(requests, texts, strict=True)
        ]

    def weave(self, request: Request) -> Reply:
        """Return the scripted synthesis."""
        return self.answer(replace(request, role="weave"))


# --------------------------------------------------------------------------- the real model


class ModelMind:
    """A Mind backed by the image's cognitive core (``batos_lab.llm.core_for(image)``).

    Calls are serialized with a lock: cycles may run in worker threads, the model is one.
    Generation runs on ``threads`` CPU threads (one by default: on a small shared machine a
    135M model decodes several times faster on one thread than on two that contend with other
    work), and prose (facets, weave, check) is decoded with a repetition penalty, since the
    small model otherwise loops on a phrase until its budget is spent. A ``code`` request with
    no adapter (a facet method being written) continues a forced ``def`` header instead of
    chatting (:class:`batos_lab.dnu_model.ModelGenerator`).

    Args:
        image: the open Image whose ``pLLM_obj`` holds the model (or None with ``core``).
        core: a cognitive core to use instead of the image's (one model serving cycles of
            several images, as the tests do).
        plan_adapter: the adapter BRICK plans with (None: the base model).
        threads: CPU threads while generating (0 leaves torch's setting alone).
        repetition_penalty: applied to prose replies (1.0: none).
        plan_facets: fewest and most facets a plan may choose. The embedded model always
            stops at the fewest, so this sets how many facets answer: three by default, the
            smallest batch measured to answer twice as fast as the same facets one by one
            (benchmarks/results/psm_cycle.md).

    Raises:
        MindUnavailable: the model layer is not importable, or neither image nor core was given.
        ValueError: ``threads`` below 0, ``repetition_penalty`` not above 0, or ``plan_facets``
            not a range of at least one facet.
    """

    def __init__(
        self,
        image: Any = None,
        *,
        core: Any = None,
        plan_adapter: str | None = "BRICK",
        threads: int = 1,
        repetition_penalty: float = 1.2,
        plan_facets: tuple[int, int] = (3, 3),
    ) -> None:
        if not 1 <= plan_facets[0] <= plan_facets[1]:
            raise ValueError(
                f"plan_facets must be (fewest, most) with 1 <= fewest <= most; got {plan_facets}."
            )
        if threads < 0:
            raise ValueError(f"threads must be 0 (torch's setting) or more; got {threads}.")
        if repetition_penalty <= 0:
            raise ValueError(
                f"repetition_penalty must be above 0 (1.0 is none); got {repetition_penalty}."
            )
        if core is None:
            if image is None:
                raise MindUnavailable("A ModelMind needs an image with a model, or a core.")
            try:
                from batos_lab.llm import core_for
            except ImportError as exc:
                raise MindUnavailable(
                    f"The model layer cannot be imported ({exc}); install batos_lab[llm], or "
                    "give the cycle a ScriptedMind."
                ) from None
            core = core_for(image)
        self.core = core
        self.plan_adapter = plan_adapter
        self.threads = threads
        self.repetition_penalty = repetition_penalty
        self.plan_facets = plan_facets
        self.model_id = _model_id(core)
        self._lock = threading.Lock()

    @contextmanager
    def _generating(self) -> Iterator[None]:
        """Hold the model: the lock, the sandbox clock paused, the thread count set."""
        with self._lock, paused():
            if not self.threads:
                yield
                return
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(self.threads)
            try:
                yield
            finally:
                torch.set_num_threads(before)

    @staticmethod
    def _from(result: Any) -> Reply:
        return Reply(
            text=str(result.text),
            prompt_tokens=int(result.prompt_tokens),
            completion_tokens=int(result.completion_tokens),
            ms=float(result.ms),
            adapter=result.adapter,
            notices=list(getattr(result, "notices", []) or []),
        )

    def _penalty(self, request: Request) -> float:
        return self.repetition_penalty if request.role in PROSE_ROLES else 1.0

    def answer(self, request: Request) -> Reply:
        """Answer one request with ``core.infer`` (an over-long prompt is cut, with a notice)."""
        if request.role == "code" and request.adapter is None:
            return self._code(request)
        with self._generating():
            result = self.core.infer(
                request.prompt,
                adapter=request.adapter,
                system=request.system,
                max_new_tokens=request.max_new_tokens,
                temperature=request.temperature,
                stop=list(request.stop) or None,
                truncate=True,
                repetition_penalty=self._penalty(request),
            )
        return self._from(result)

    def _code(self, request: Request) -> Reply:
        """Write the body of the function the prompt ends with (its header forced)."""
        from batos_lab.dnu_model import ModelGenerator

        generator = ModelGenerator(self.core, max_new_tokens=request.max_new_tokens, threads=0)
        with self._generating():
            began = time.perf_counter()
            text = generator(request.prompt, request.temperature, 0)
            ms = (time.perf_counter() - began) * 1e3
            tokenizer = self.core.tokenizer()
            prompt_tokens = len(tokenizer.encode(request.prompt, add_special_tokens=False))
            body = text.split("\n", 1)[-1]  # the header was given, not generated
            written = len(tokenizer.encode(body, add_special_tokens=False))
        return Reply(text, prompt_tokens, written, ms, None)

    def answer_batch(self, requests: Sequence[Request]) -> list[Reply]:
        """Answer all requests in one mixed-adapter ``generate_batch`` call."""
        if not requests:
            return []
        with self._generating():
            results = self.core.generate_batch(
                [r.prompt for r in requests],
                [r.adapter for r in requests],
                system=[r.system for r in requests],
                max_new_tokens=max(r.max_new_tokens for r in requests),
                temperature=requests[0].temperature,
                stop=sorted({s for r in requests for s in r.stop}) or None,
                truncate=True,
                repetition_penalty=max(self._penalty(r) for r in requests),
            )
        return [self._from(r) for r in results]

    def weave(self, request: Request) -> Reply:
        """ROBIN's synthesis: one ``infer`` call."""
        return self.answer(request)

    def plan(self, request: Request, facets: Sequence[str]) -> Reply:
        """Generate the plan with JSON-guided decoding restricted to ``facets``."""
        from batos_lab.psm.guided import generate_guided_plan

        with self._generating():
            return generate_guided_plan(
                self.core,
                request.prompt,
                system=request.system,
                facets=facets,
                adapter=request.adapter if request.adapter is not None else self.plan_adapter,
                max_new_tokens=request.max_new_tokens,
                min_pillars=self.plan_facets[0],
                max_pillars=self.plan_facets[1],
            )


def _model_id(core: Any) -> str:
    """The model's id as the core records it ("embedded" when it cannot say)."""
    named = getattr(core, "model_id", None)
    if named:
        return str(named)
    try:
        return str(core.record.model_id)
    except Exception:  # a core without a stored record (a stand-in) still serves
        return "embedded"


# --------------------------------------------------------------------------- registry

_MINDS: dict[int, Mind] = {}
_IMAGES: dict[int, weakref.ref[Any]] = {}


def remember_image(image: Any) -> None:
    """Remember the Image of a database, so a ModelMind can be opened from any connection."""
    _IMAGES[id(db_of(image))] = weakref.ref(image)


def db_of(target: Any) -> Any:
    from batos_lab.dnu import db_of

    return db_of(target)


def install_mind(image: Any, mind: Mind) -> None:
    """Make ``mind`` answer the cycles of ``image`` (an Image, DB or connection)."""
    _MINDS[id(db_of(image))] = mind


def uninstall_mind(image: Any) -> None:
    """Forget the mind installed for ``image``."""
    _MINDS.pop(id(db_of(image)), None)


def mind_for(image: Any, *, required: bool = True) -> Mind | None:
    """Return the mind serving ``image``: the installed one, else a ModelMind when possible.

    Raises:
        MindUnavailable: none is installed, ``image`` is not an Image, or the model layer is
            missing (only when ``required``).
    """
    mind = _MINDS.get(id(db_of(image)))
    if mind is not None:
        return mind
    if not hasattr(image, "transaction_manager") or not hasattr(image, "conn"):
        ref = _IMAGES.get(id(db_of(image)))
        image = (ref() if ref is not None else None) or image
    if hasattr(image, "transaction_manager") and hasattr(image, "conn"):
        try:
            mind = ModelMind(image)
        except Exception as exc:
            if required:
                raise MindUnavailable(
                    f"No mind serves this image and the model could not be opened ({exc}). "
                    "Install one with install_mind(image, ModelMind(image)) or a ScriptedMind."
                ) from None
            return None
        _MINDS[id(db_of(image))] = mind
        return mind
    if required:
        raise MindUnavailable(
            "No mind serves this image's cycles. Call install_mind(image, mind) first, with a "
            "ModelMind(image) or a ScriptedMind."
        )
    return None


def scripted_answers(texts: Mapping[str, str]) -> Callable[[Request], str]:
    """Return a script that answers a facet request by its facet name (default: generic)."""

    def answer(request: Request) -> str:
        return texts.get(request.facet or "", _default_facet(request))

    return answer
