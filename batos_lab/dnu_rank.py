"""Choosing among JIT candidates that passed their trial: outcomes, votes, and what was asked.

A pool of candidates (greedy and sampled replies to one prompt) is trialled on the real
arguments; every candidate that passes leaves an :class:`Outcome`, its answer and the
receiver's data slots afterwards. :func:`choose` picks one. Candidates with the same outcome
form a group, and groups are ranked by, in order:

1. **uses what it was given**: a candidate that never reads one of the message's arguments
   ignores what the caller said (``tag('blue')`` answered without ``blue``);
2. **does something**: an outcome that changes no slot and answers with a value the call
   already held (a slot's value or an argument, unchanged) did no work: on the embedded model
   this is the commonest wrong answer (``above(6)`` answering the whole list, ``reset()`` the
   old count);
3. **votes**: how many candidates reached the outcome (independent samples agreeing);
4. **the judge**: how likely the generator finds the call's transcript with that outcome
   (:func:`transcript`), when it can judge (:class:`CandidateGenerator`);
5. the earliest candidate (greedy first).

The first two are facts about the candidate and the call, not guesses about the task: each only
orders candidates that also passed the trial, so an outcome that fails them still wins when it
is the only one.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from batos_lab.dnu_prompt import safe_repr
from batos_lab.limits import paused

__all__ = [
    "CandidateGenerator",
    "Outcome",
    "choose",
    "data_state",
    "did_nothing",
    "transcript",
    "unused_parameters",
]


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


def plain(value: Any) -> Any:
    """Persistent containers as the plain ones they stand for, for a readable repr."""
    from persistent.list import PersistentList
    from persistent.mapping import PersistentMapping

    if isinstance(value, PersistentList):
        return [plain(v) for v in value]
    if isinstance(value, PersistentMapping):
        return {k: plain(v) for k, v in value.items()}
    return value


def data_state(receiver: Any) -> tuple[tuple[str, str], ...]:
    """The receiver's data slots (no parents, no methods) as one-line reprs."""
    from batos_lab.objects import Method, NativeMethod, is_parent_slot

    state = []
    for name in receiver.slot_names():
        value = receiver.get_slot(name)
        if not (is_parent_slot(name) or isinstance(value, (Method, NativeMethod))):
            state.append((name, safe_repr(plain(value), 200)))
    return tuple(state)


def unused_parameters(source: str) -> list[str]:
    """Return the parameters (``self`` aside) that the method's body never reads.

    Example:
        >>> unused_parameters("def tag(self, word):\\n    return 1\\n")
        ['word']
    """
    func = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef))
    a = func.args
    params = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)][1:]
    params += [p.arg for p in (a.vararg, a.kwarg) if p is not None]
    read = {n.id for n in ast.walk(func) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return [p for p in params if p not in read]


def did_nothing(
    before: Sequence[tuple[str, str]], args: Sequence[Any], kwargs: dict[str, Any], outcome: Outcome
) -> bool:
    """Tell whether an outcome changed no slot and answered with a value the call already held.

    Example:
        >>> did_nothing((("count", "42"),), (), {}, Outcome("42", (("count", "42"),)))
        True
    """
    if tuple(outcome.state) != tuple(before):
        return False
    held = {value for _name, value in before}
    held |= {safe_repr(a, 200) for a in (*args, *kwargs.values())}
    return outcome.result in held


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
    before = dict(data_state(receiver))
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
    """Pick the passing candidate to install; return its index in ``passed``.

    ``passed`` holds (attempt record, source, fixes, outcome) per candidate. Groups of equal
    outcomes are ranked as the module docstring says; the judge is asked only when groups
    remain tied on the first three keys (slots are shown to it only where outcomes differ).
    Each record gets its group's ``votes``, ``unused`` parameters and ``did_nothing`` flag,
    and ``judge`` when the judge was asked; a failing judge leaves the earliest candidate.
    """
    before = data_state(receiver)
    groups: dict[Outcome, list[int]] = {}
    for index, (*_rest, outcome) in enumerate(passed):
        groups.setdefault(outcome, []).append(index)
    keys = list(groups)
    ignored = [unused_parameters(source) for _record, source, *_rest in passed]
    unused = {k: min(len(ignored[i]) for i in groups[k]) for k in keys}
    idle = {k: did_nothing(before, args, kwargs, k) for k in keys}
    for key in keys:
        for index in groups[key]:
            passed[index][0].update(
                votes=len(groups[key]), unused=ignored[index], did_nothing=idle[key]
            )

    def facts(k: Outcome) -> tuple[int, int, int]:
        return (-unused[k], -int(idle[k]), len(groups[k]))

    best = max(facts(k) for k in keys)
    tied = [k for k in keys if facts(k) == best]
    scores = {k: 0.0 for k in keys}
    if len(tied) > 1 and isinstance(generator, CandidateGenerator):
        names = [name for name, _ in tied[0].state]
        shown = [n for n in names if len({dict(k.state).get(n) for k in tied}) > 1]
        endings = []
        context = ""
        for key in tied:
            context, ending = transcript(receiver, selector, args, kwargs, key, shown)
            endings.append(ending)
        try:
            with paused():
                judged = [float(x) for x in generator.judge(context, endings)]
        except Exception:  # a failing judge leaves the earliest candidate of the tie
            judged = [0.0] * len(tied)
        for key, score in zip(tied, judged, strict=True):
            scores[key] = score
            for index in groups[key]:
                passed[index][0]["judge"] = round(score, 3)
    winner = max(tied, key=lambda k: (scores[k], -groups[k][0]))
    return groups[winner][0]
