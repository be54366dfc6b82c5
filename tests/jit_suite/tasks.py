"""At least thirty JIT tasks: an object, a message, and checks of the answer and the state after.

Each task holds a reference solution written by hand; the suite's own test runs every reference
through the full pipeline (scripted generator) so a task whose checks are wrong is caught there,
not blamed on the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

UNCHANGED: dict[str, Any] = {}


@dataclass(frozen=True)
class Task:
    """One message to learn.

    Attributes:
        name: unique id.
        slots: the receiver's initial slots.
        selector: the message.
        args: positional arguments.
        expect: the expected result (compared with ``==``), unless ``check`` is given.
        state: expected slot values afterwards; slots not named must be unchanged.
        reference: a correct method, written by hand.
        kwargs: keyword arguments.
        check: a predicate on the result, for answers ``==`` cannot judge.
    """

    name: str
    slots: dict[str, Any]
    selector: str
    args: tuple[Any, ...]
    expect: Any
    state: dict[str, Any]
    reference: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any], bool] | None = None

    def result_ok(self, result: Any) -> bool:
        """Tell whether ``result`` answers the task."""
        if self.check is not None:
            return bool(self.check(result))
        return bool(result == self.expect)


def _src(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _approx(value: float) -> Callable[[Any], bool]:
    return lambda r: isinstance(r, (int, float)) and abs(r - value) < 1e-6


TASKS: list[Task] = [
    # --- counters
    Task(
        "increment",
        {"count": 4},
        "increment",
        (),
        5,
        {"count": 5},
        _src(
            "def increment(self):",
            "    self.count = self.count + 1",
            "    self._p_changed = True",
            "    return self.count",
        ),
    ),
    Task(
        "increment_by",
        {"count": 10},
        "increment_by",
        (7,),
        17,
        {"count": 17},
        _src(
            "def increment_by(self, n):",
            "    self.count += n",
            "    self._p_changed = True",
            "    return self.count",
        ),
    ),
    Task(
        "decrement",
        {"count": 3},
        "decrement",
        (),
        2,
        {"count": 2},
        _src(
            "def decrement(self):",
            "    self.count -= 1",
            "    self._p_changed = True",
            "    return self.count",
        ),
    ),
    Task(
        "reset_counter",
        {"count": 42},
        "reset",
        (),
        0,
        {"count": 0},
        _src(
            "def reset(self):",
            "    self.count = 0",
            "    self._p_changed = True",
            "    return self.count",
        ),
    ),
    Task(
        "count_visit",
        {"visits": 0, "last_visitor": ""},
        "visit",
        ("Ada",),
        1,
        {"visits": 1, "last_visitor": "Ada"},
        _src(
            "def visit(self, text):",
            "    self.visits += 1",
            "    self.last_visitor = text",
            "    self._p_changed = True",
            "    return self.visits",
        ),
    ),
    # --- accumulators
    Task(
        "add_to_total",
        {"total": 2.5},
        "add",
        (4,),
        6.5,
        {"total": 6.5},
        _src(
            "def add(self, n):",
            "    self.total = self.total + n",
            "    self._p_changed = True",
            "    return self.total",
        ),
    ),
    Task(
        "append_item",
        {"items": ["a"]},
        "add_item",
        ("b",),
        ["a", "b"],
        {"items": ["a", "b"]},
        _src(
            "def add_item(self, text):",
            "    self.items.append(text)",
            "    self._p_changed = True",
            "    return list(self.items)",
        ),
    ),
    Task(
        "record_score",
        {"scores": [3, 5]},
        "record",
        (4,),
        3,
        {"scores": [3, 5, 4]},
        _src(
            "def record(self, n):",
            "    self.scores.append(n)",
            "    self._p_changed = True",
            "    return len(self.scores)",
        ),
    ),
    Task(
        "deposit",
        {"balance": 100},
        "deposit",
        (25,),
        125,
        {"balance": 125},
        _src(
            "def deposit(self, n):",
            "    self.balance += n",
            "    self._p_changed = True",
            "    return self.balance",
        ),
    ),
    Task(
        "withdraw",
        {"balance": 100},
        "withdraw",
        (30,),
        70,
        {"balance": 70},
        _src(
            "def withdraw(self, n):",
            "    self.balance -= n",
            "    self._p_changed = True",
            "    return self.balance",
        ),
    ),
    Task(
        "tag_add",
        {"tags": {"red": 1}},
        "tag",
        ("blue",),
        2,
        {"tags": {"red": 1, "blue": 1}},
        _src(
            "def tag(self, text):",
            "    self.tags[text] = self.tags.get(text, 0) + 1",
            "    self._p_changed = True",
            "    return len(self.tags)",
        ),
    ),
    # --- string formatting
    Task(
        "greet",
        {"greeting": "Hello"},
        "greet",
        ("Ada",),
        "Hello, Ada!",
        UNCHANGED,
        _src("def greet(self, text):", "    return self.greeting + ', ' + text + '!'"),
    ),
    Task(
        "full_name",
        {"first": "Grace", "last": "Hopper"},
        "full_name",
        (),
        "Grace Hopper",
        UNCHANGED,
        _src("def full_name(self):", "    return self.first + ' ' + self.last"),
    ),
    Task(
        "shout",
        {"word": "hello"},
        "shout",
        (),
        "HELLO",
        UNCHANGED,
        _src("def shout(self):", "    return self.word.upper()"),
    ),
    Task(
        "initials",
        {"first": "Alan", "last": "Turing"},
        "initials",
        (),
        "A.T.",
        UNCHANGED,
        _src("def initials(self):", "    return self.first[0] + '.' + self.last[0] + '.'"),
    ),
    Task(
        "label_price",
        {"item": "tea", "price": 3.5},
        "label",
        (),
        "tea: 3.50",
        UNCHANGED,
        _src("def label(self):", "    return f'{self.item}: {self.price:.2f}'"),
    ),
    Task(
        "join_words",
        {"words": ["red", "green", "blue"]},
        "joined",
        (", ",),
        "red, green, blue",
        UNCHANGED,
        _src("def joined(self, text):", "    return text.join(self.words)"),
    ),
    Task(
        "reverse_title",
        {"title": "abc"},
        "reversed_title",
        (),
        "cba",
        UNCHANGED,
        _src("def reversed_title(self):", "    return self.title[::-1]"),
    ),
    # --- list filtering
    Task(
        "evens",
        {"numbers": [1, 2, 3, 4, 6]},
        "evens",
        (),
        [2, 4, 6],
        UNCHANGED,
        _src("def evens(self):", "    return [n for n in self.numbers if n % 2 == 0]"),
    ),
    Task(
        "above",
        {"numbers": [5, 12, 7, 20]},
        "above",
        (6,),
        [12, 7, 20],
        UNCHANGED,
        _src("def above(self, n):", "    return [x for x in self.numbers if x > n]"),
    ),
    Task(
        "long_words",
        {"words": ["a", "tree", "is", "green"]},
        "long_words",
        (3,),
        ["tree", "green"],
        UNCHANGED,
        _src("def long_words(self, n):", "    return [w for w in self.words if len(w) > n]"),
    ),
    Task(
        "starts_with",
        {"names": ["Ada", "Alan", "Grace"]},
        "starting_with",
        ("A",),
        ["Ada", "Alan"],
        UNCHANGED,
        _src(
            "def starting_with(self, text):",
            "    return [n for n in self.names if n.startswith(text)]",
        ),
    ),
    Task(
        "remove_negatives",
        {"values": [3, -1, 0, -5, 2]},
        "drop_negatives",
        (),
        [3, 0, 2],
        {"values": [3, 0, 2]},
        _src(
            "def drop_negatives(self):",
            "    self.values = [v for v in self.values if v >= 0]",
            "    self._p_changed = True",
            "    return list(self.values)",
        ),
    ),
    # --- small arithmetic
    Task(
        "area",
        {"width": 3, "height": 4},
        "area",
        (),
        12,
        UNCHANGED,
        _src("def area(self):", "    return self.width * self.height"),
    ),
    Task(
        "perimeter",
        {"width": 3, "height": 4},
        "perimeter",
        (),
        14,
        UNCHANGED,
        _src("def perimeter(self):", "    return 2 * (self.width + self.height)"),
    ),
    Task(
        "average",
        {"numbers": [2, 4, 9]},
        "average",
        (),
        5.0,
        UNCHANGED,
        _src("def average(self):", "    return sum(self.numbers) / len(self.numbers)"),
        check=_approx(5.0),
    ),
    Task(
        "maximum",
        {"numbers": [4, 11, 7]},
        "largest",
        (),
        11,
        UNCHANGED,
        _src("def largest(self):", "    return max(self.numbers)"),
    ),
    Task(
        "times",
        {"factor": 3},
        "times",
        (7,),
        21,
        UNCHANGED,
        _src("def times(self, n):", "    return self.factor * n"),
    ),
    Task(
        "celsius",
        {"fahrenheit": 212},
        "to_celsius",
        (),
        100.0,
        UNCHANGED,
        _src("def to_celsius(self):", "    return (self.fahrenheit - 32) * 5 / 9"),
        check=_approx(100.0),
    ),
    Task(
        "discount",
        {"price": 80},
        "discounted",
        (25,),
        60.0,
        UNCHANGED,
        _src("def discounted(self, n):", "    return self.price * (100 - n) / 100"),
        check=_approx(60.0),
    ),
    # --- slot-reading summaries
    Task(
        "item_count",
        {"items": ["x", "y", "z"]},
        "item_count",
        (),
        3,
        UNCHANGED,
        _src("def item_count(self):", "    return len(self.items)"),
    ),
    Task(
        "is_empty",
        {"queue": []},
        "is_empty",
        (),
        True,
        UNCHANGED,
        _src("def is_empty(self):", "    return len(self.queue) == 0"),
    ),
    Task(
        "summary",
        {"name": "box", "items": [1, 2]},
        "summary",
        (),
        "box has 2 items",
        UNCHANGED,
        _src("def summary(self):", "    return f'{self.name} has {len(self.items)} items'"),
    ),
    Task(
        "total_stock",
        {"stock": {"apple": 3, "pear": 5}},
        "total_stock",
        (),
        8,
        UNCHANGED,
        _src("def total_stock(self):", "    return sum(self.stock.values())"),
    ),
    Task(
        "has_tag",
        {"tags": ["new", "sale"]},
        "has_tag",
        ("sale",),
        True,
        UNCHANGED,
        _src("def has_tag(self, text):", "    return text in self.tags"),
    ),
]
