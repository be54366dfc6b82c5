"""Worked examples for the JIT prompt, and the choice of the few that fit a message best.

A small model copies the shape of the examples it is shown far more than it follows rules, so
the prompt shows the examples closest to the message at hand: a filter for a message on a list
slot with a number argument, a sum for a message on a list with no argument, a string template
for a message on text slots. :data:`EXAMPLES` is a bank of everyday methods (counters,
accumulators, text formatting, list filters, arithmetic, summaries over dicts): the first ones
here, then a broader bank in ``jit_examples.txt`` and a third in ``jit_examples_extra.txt``
(each written without looking at the quality suite; a bank's examples are JSON or Python
literals). None of them shares a selector with a task of the JIT quality suite or its held-out
tasks (``tests/jit_suite``), or with an example of another bank, and a test keeps it that way.

:func:`choose_examples` ranks the bank against a message by the words of the selector and slot
names (split at underscores, with a few common stems folded together) and by the *shape* of the
call: the kinds of the slot values (number, text, list of numbers, list of text, mapping, flag)
and of the arguments. Shape matches count most: the shape decides the code's skeleton; the words
then pick the operation. Ranking is deterministic and needs no model.

Example:
    >>> [e.selector for e in choose_examples("mean_age", {"ages": [3, 4]}, (), k=2)][-1]
    'mean_price'
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BANKS",
    "BROAD_EXAMPLES",
    "CORE_EXAMPLES",
    "EXAMPLES",
    "EXTRA_EXAMPLES",
    "Example",
    "choose_examples",
    "kind_of",
    "render_example",
]


@dataclass(frozen=True)
class Example:
    """One worked example: an object's slots, a message to it, and the method answering it.

    Attributes:
        label: the object's name.
        slots: its slots (plain values).
        selector: the message.
        args: the message's arguments.
        source: a correct method, without the persistence mark (the Guardian adds it).
    """

    label: str
    slots: Mapping[str, Any]
    selector: str
    args: tuple[Any, ...]
    source: str


#: The bank, one example per block: ``## label {slots} selector(args)``, then the method.
_BANK = """
## clicker {"clicks": 7} click()
def click(self):
    self.clicks = self.clicks + 1
    return self.clicks

## player {"lives": 3} lose_life()
def lose_life(self):
    self.lives = self.lives - 1
    return self.lives

## timer {"seconds": 95} clear()
def clear(self):
    self.seconds = 0
    return self.seconds

## scoreboard {"points": 12} add_points(5)
def add_points(self, n):
    self.points = self.points + n
    return self.points

## wallet {"money": 50.0} spend(12.5)
def spend(self, x):
    self.money = self.money - x
    return self.money

## door {"is_open": False} open_door()
def open_door(self):
    self.is_open = True
    return self.is_open

## logbook {"entries": ["start"], "last": "start"} note("lunch")
def note(self, text):
    self.entries.append(text)
    self.last = text
    return len(self.entries)

## inbox {"notes": ["hi"]} add_note("call Bo")
def add_note(self, text):
    self.notes.append(text)
    return self.notes

## library {"books": ["Dune", "Emma"]} lend("Emma")
def lend(self, text):
    self.books.remove(text)
    return self.books

## poll {"votes": {"yes": 2}} vote("no")
def vote(self, text):
    self.votes[text] = self.votes.get(text, 0) + 1
    return self.votes[text]

## pantry {"jars": {"jam": 1}} restock("honey", 3)
def restock(self, text, n):
    self.jars[text] = self.jars.get(text, 0) + n
    return self.jars[text]

## readings {"temps": [21, -3, 18, -7]} keep_positive()
def keep_positive(self):
    self.temps = [t for t in self.temps if t > 0]
    return self.temps

## stack {"plates": ["red", "blue"]} pop_plate()
def pop_plate(self):
    plate = self.plates.pop()
    return plate

## place {"city": "Lyon", "country": "France"} city_line()
def city_line(self):
    return self.city + ", " + self.country

## letter {"closing": "Regards"} sign("Bo")
def sign(self, text):
    return self.closing + ", " + text

## word {"text": "QUIET"} whisper()
def whisper(self):
    return self.text.lower()

## user {"login": "ada"} handle()
def handle(self):
    return "@" + self.login

## book {"title": "Middlemarch"} short_title(4)
def short_title(self, n):
    return self.title[:n]

## word {"text": "banana"} letter_count()
def letter_count(self):
    return len(self.text)

## sentence {"text": "to be or not"} word_list()
def word_list(self):
    return self.text.split()

## ticket {"event": "concert", "day": "Friday"} describe()
def describe(self):
    return f"{self.event} on {self.day}"

## bill {"amount": 7.5} formatted()
def formatted(self):
    return f"${self.amount:.2f}"

## person {"first": "Mary", "last": "Shelley"} monogram()
def monogram(self):
    return self.first[0] + self.last[0]

## crate {"label": "pears", "weights": [2, 3, 4]} report()
def report(self):
    return f"{self.label}: {len(self.weights)} boxes"

## song {"lines": ["la", "di", "da"]} chorus("-")
def chorus(self, text):
    return text.join(self.lines)

## code {"text": "x1y2"} mirrored()
def mirrored(self):
    return self.text[::-1]

## shelf {"books": ["Dune", "Emma", "Ulysses"]} titles_longer_than(4)
def titles_longer_than(self, n):
    return [t for t in self.books if len(t) > n]

## weather {"readings": [14, 3, 22, 9]} below(10)
def below(self, n):
    return [r for r in self.readings if r < n]

## team {"members": ["Bo", "Bea", "Cy"]} names_with("B")
def names_with(self, text):
    return [m for m in self.members if text in m]

## exam {"marks": [40, 75, 52, 90]} passing()
def passing(self):
    return [m for m in self.marks if m >= 50]

## basket {"counts": [3, 8, 5, 6]} odd_counts()
def odd_counts(self):
    return [c for c in self.counts if c % 2 == 1]

## line {"waiting": ["Al", "Bo"]} size()
def size(self):
    return len(self.waiting)

## menu {"prices": [4.5, 2.0, 6.25]} cheapest()
def cheapest(self):
    return min(self.prices)

## game {"rounds": [10, 7, 12]} total_score()
def total_score(self):
    return sum(self.rounds)

## shop {"prices": [3, 5, 10]} mean_price()
def mean_price(self):
    return sum(self.prices) / len(self.prices)

## playlist {"songs": ["Zoo", "Air"]} sorted_songs()
def sorted_songs(self):
    return sorted(self.songs)

## club {"members": ["Al", "Bo"]} is_member("Bo")
def is_member(self, text):
    return text in self.members

## cart {"items": ["tea"], "capacity": 3} is_full()
def is_full(self):
    return len(self.items) >= self.capacity

## box {"things": []} has_things()
def has_things(self):
    return len(self.things) > 0

## series {"values": [1, 2, 3]} scaled(10)
def scaled(self, n):
    return [v * n for v in self.values]

## budget {"costs": {"rent": 500, "food": 200}} spent()
def spent(self):
    return sum(self.costs.values())

## zoo {"animals": {"lion": 2, "owl": 5}} species()
def species(self):
    return list(self.animals.keys())

## recipe {"grams": {"flour": 200, "sugar": 50}} doubled()
def doubled(self):
    return {k: v * 2 for k, v in self.grams.items()}

## room {"length": 5, "breadth": 4, "depth": 3} volume()
def volume(self):
    return self.length * self.breadth * self.depth

## circle {"radius": 2.0} circumference()
import math
def circumference(self):
    return 2 * math.pi * self.radius

## trip {"km": 100} in_miles()
def in_miles(self):
    return self.km * 0.621

## loan {"amount": 200} with_interest(5)
def with_interest(self, n):
    return self.amount * (1 + n / 100)

## pair {"a": 9, "b": 4} difference()
def difference(self):
    return self.a - self.b

## dice {"sides": 6} plus(2)
def plus(self, n):
    return self.sides + n
"""

_HEAD = re.compile(r"## (\w+) (\{.*\}) (\w+)\((.*)\)$")


def _parse_bank(text: str) -> tuple[Example, ...]:
    examples = []
    for block in text.strip().split("\n## "):
        head, source = block.removeprefix("## ").split("\n", 1)
        match = _HEAD.match("## " + head)
        if match is None:
            raise ValueError(f"bad example header: {head!r}")
        label, slots, selector, args = match.groups()
        values = ast.literal_eval(f"({args},)") if args else ()
        examples.append(Example(label, _slots(slots), selector, values, source.rstrip()))
    return tuple(examples)


def _slots(text: str) -> dict[str, Any]:
    """The slots of an example header: JSON, or a Python literal (``True``, tuples)."""
    try:
        value = json.loads(text)
    except ValueError:
        value = ast.literal_eval(text)
    if not isinstance(value, dict):
        raise ValueError(f"example slots are not a mapping: {text!r}")
    return value


def _shipped_bank(file_name: str) -> tuple[Example, ...]:
    """A bank shipped beside this module (``jit_examples*.txt``), in the format above."""
    from importlib.resources import files

    return _parse_bank(files("batos_lab").joinpath(file_name).read_text("utf-8"))


#: the first bank: everyday idioms, one or two per kind of message
CORE_EXAMPLES: tuple[Example, ...] = _parse_bank(_BANK)
#: the broad bank: wider coverage of operations on numbers, text, lists, mappings and flags
BROAD_EXAMPLES: tuple[Example, ...] = _shipped_bank("jit_examples.txt")
#: a third bank, written later and on its own, over the same range of everyday operations
EXTRA_EXAMPLES: tuple[Example, ...] = _shipped_bank("jit_examples_extra.txt")
EXAMPLES: tuple[Example, ...] = CORE_EXAMPLES + BROAD_EXAMPLES + EXTRA_EXAMPLES
#: the banks a prompt may draw its examples from, by name
BANKS: dict[str, tuple[Example, ...]] = {
    "core": CORE_EXAMPLES,
    "broad": BROAD_EXAMPLES,
    "extra": EXTRA_EXAMPLES,
    "all": EXAMPLES,
}


def kind_of(value: Any) -> str:
    """Name the shape of a value as the examples are ranked by it."""
    if isinstance(value, bool):
        return "flag"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple, set, frozenset)) or _is_sequence(value):
        items = list(value)
        if items and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items):
            return "numbers"
        if items and all(isinstance(v, str) for v in items):
            return "texts"
        return "list"
    return "object"


def _is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


_STEMS = {
    "total": "sum",
    "sum": "sum",
    "spent": "sum",
    "add": "add",
    "plus": "add",
    "count": "count",
    "size": "count",
    "number": "count",
    "len": "count",
    "length": "count",
    "mean": "mean",
    "average": "mean",
    "avg": "mean",
    "max": "max",
    "largest": "max",
    "biggest": "max",
    "maximum": "max",
    "most": "max",
    "min": "min",
    "smallest": "min",
    "cheapest": "min",
    "minimum": "min",
    "least": "min",
    "is": "is",
    "has": "is",
    "can": "is",
    "contains": "is",
}


def _words(text: str) -> set[str]:
    words = {w for w in re.split(r"[^a-z0-9]+", text.lower()) if w}
    return words | {_STEMS[w] for w in words if w in _STEMS}


def _shape(slots: Mapping[str, Any], args: Sequence[Any]) -> tuple[set[str], tuple[str, ...]]:
    return {kind_of(v) for v in slots.values()}, tuple(kind_of(a) for a in args)


def _score(example: Example, selector: str, slots: Mapping[str, Any], args: Sequence[Any]) -> float:
    slot_kinds, arg_kinds = _shape(slots, args)
    ex_slot_kinds, ex_arg_kinds = _shape(example.slots, example.args)
    score = 0.0
    score += 2.0 * len(slot_kinds & ex_slot_kinds) - 0.5 * len(ex_slot_kinds - slot_kinds)
    score += (
        3.0 if arg_kinds == ex_arg_kinds else (1.0 if len(arg_kinds) == len(ex_arg_kinds) else 0.0)
    )
    score += 2.0 * len(_words(selector) & _words(example.selector))
    names = " ".join(slots)
    score += 0.5 * len(_words(names) & _words(" ".join(example.slots)))
    return score


def choose_examples(
    selector: str,
    slots: Mapping[str, Any],
    args: Sequence[Any],
    k: int = 4,
    skip: int = 0,
    bank: Sequence[Example] | None = None,
    leave_out: str | None = None,
) -> list[Example]:
    """Return the ``k`` examples that fit a message best, the best one last.

    Args:
        selector: the message.
        slots: the receiver's own data slots (name -> value; no methods or parents).
        args: the message's arguments (positional and keyword values).
        k: how many to return.
        skip: leave out the ``skip`` best ones first (another set of examples for the same
            message, as an ensemble of prompts needs).
        bank: the examples to choose from (default: :data:`EXAMPLES`, every bank).
        leave_out: a selector whose example may not be shown (a prompt built to train on
            that example must not show its answer).

    Returns:
        Examples ordered from the weakest to the strongest match, so the closest one sits
        right above the task in the prompt. Ties keep the bank's order.
    """
    pool = tuple(e for e in (EXAMPLES if bank is None else bank) if e.selector != leave_out)
    ranked = sorted(
        range(len(pool)),
        key=lambda i: (-_score(pool[i], selector, slots, args), i),
    )[skip : skip + max(0, k)]
    return [pool[i] for i in reversed(ranked)]


def render_example(number: int, example: Example, summary: Any) -> str:
    """Write one example as the prompt shows it: comments with the object and call, the code.

    Args:
        number: the example's number in the prompt.
        example: the example.
        summary: a ``repr``-like function shortening slot values (``safe_repr``).
    """
    slots = ", ".join(f"{name} = {summary(value)}" for name, value in example.slots.items())
    call = ", ".join(summary(a) for a in example.args)
    return "\n".join(
        [
            f"# Example {number}. Object '{example.label}' has slots: {slots}",
            f"# Message: {example.label}.{example.selector}({call})",
            example.source,
        ]
    )
