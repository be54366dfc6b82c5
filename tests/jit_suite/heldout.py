"""Twenty-four held-out JIT tasks, to check that choices tuned on the main suite generalise.

The tasks are of the same everyday kinds and difficulty as :data:`tests.jit_suite.tasks.TASKS`
(counters and accumulators, text formatting, list filters and transforms, small arithmetic,
summaries and predicates) but none shares a selector, a name or an operation with it, nor a
selector with the worked examples of the prompt (:data:`batos_lab.dnu_examples.EXAMPLES`).
Each behaviour should be clear from the selector, the slot names and the arguments alone.
"""

from __future__ import annotations

from typing import Any

from tests.jit_suite.tasks import UNCHANGED, Task, _approx, _src


def _empty_or_zero(result: Any) -> bool:
    """An emptied list answers with the empty list or with its new length, 0."""
    return bool(result == []) or (type(result) is int and result == 0)


HELDOUT: list[Task] = [
    # --- counters and accumulators
    Task(
        "double_score",
        {"score": 7},
        "double_score",
        (),
        14,
        {"score": 14},
        _src(
            "def double_score(self):",
            "    self.score = self.score * 2",
            "    self._p_changed = True",
            "    return self.score",
        ),
    ),
    Task(
        "halve_size",
        {"size": 20},
        "halve",
        (),
        10,
        {"size": 10},
        _src(
            "def halve(self):",
            "    self.size = self.size // 2",
            "    self._p_changed = True",
            "    return self.size",
        ),
    ),
    Task(
        "toggle_switch",
        {"on": False},
        "toggle",
        (),
        True,
        {"on": True},
        _src(
            "def toggle(self):",
            "    self.on = not self.on",
            "    self._p_changed = True",
            "    return self.on",
        ),
    ),
    Task(
        "clear_items",
        {"items": ["pen", "cup"]},
        "clear_items",
        (),
        [],
        {"items": []},
        _src(
            "def clear_items(self):",
            "    self.items = []",
            "    self._p_changed = True",
            "    return list(self.items)",
        ),
        check=_empty_or_zero,
    ),
    Task(
        "remove_item",
        {"items": ["pen", "cup", "key"]},
        "remove_item",
        ("cup",),
        ["pen", "key"],
        {"items": ["pen", "key"]},
        _src(
            "def remove_item(self, text):",
            "    self.items.remove(text)",
            "    self._p_changed = True",
            "    return list(self.items)",
        ),
    ),
    Task(
        "set_title",
        {"title": "Draft"},
        "set_title",
        ("Final",),
        "Final",
        {"title": "Final"},
        _src(
            "def set_title(self, text):",
            "    self.title = text",
            "    self._p_changed = True",
            "    return self.title",
        ),
    ),
    Task(
        "fill_tank",
        {"fuel": 20, "capacity": 50},
        "fill_up",
        (),
        50,
        {"fuel": 50},
        _src(
            "def fill_up(self):",
            "    self.fuel = self.capacity",
            "    self._p_changed = True",
            "    return self.fuel",
        ),
    ),
    # --- string formatting
    Task(
        "capitalized",
        {"word": "paris"},
        "capitalized",
        (),
        "Paris",
        UNCHANGED,
        _src("def capitalized(self):", "    return self.word.capitalize()"),
    ),
    Task(
        "title_case",
        {"phrase": "the old man"},
        "title_case",
        (),
        "The Old Man",
        UNCHANGED,
        _src("def title_case(self):", "    return self.phrase.title()"),
    ),
    Task(
        "email_address",
        {"user": "ada", "domain": "example.com"},
        "email_address",
        (),
        "ada@example.com",
        UNCHANGED,
        _src("def email_address(self):", "    return self.user + '@' + self.domain"),
    ),
    Task(
        "repeat_word",
        {"word": "ha"},
        "repeated",
        (3,),
        "hahaha",
        UNCHANGED,
        _src("def repeated(self, n):", "    return self.word * n"),
    ),
    Task(
        "file_name",
        {"stem": "report", "extension": "pdf"},
        "file_name",
        (),
        "report.pdf",
        UNCHANGED,
        _src("def file_name(self):", "    return self.stem + '.' + self.extension"),
    ),
    # --- list filtering and transforming
    Task(
        "squares",
        {"numbers": [1, 2, 3, 4]},
        "squares",
        (),
        [1, 4, 9, 16],
        UNCHANGED,
        _src("def squares(self):", "    return [n * n for n in self.numbers]"),
    ),
    Task(
        "descending",
        {"scores": [3, 9, 1, 5]},
        "descending",
        (),
        [9, 5, 3, 1],
        UNCHANGED,
        _src("def descending(self):", "    return sorted(self.scores, reverse=True)"),
    ),
    Task(
        "word_lengths",
        {"words": ["hi", "tree", "a"]},
        "word_lengths",
        (),
        [2, 4, 1],
        UNCHANGED,
        _src("def word_lengths(self):", "    return [len(w) for w in self.words]"),
    ),
    Task(
        "without_item",
        {"items": ["tea", "jam", "tea", "bun"]},
        "without",
        ("tea",),
        ["jam", "bun"],
        UNCHANGED,
        _src("def without(self, text):", "    return [i for i in self.items if i != text]"),
    ),
    Task(
        "between",
        {"numbers": [1, 5, 8, 12, 3]},
        "between",
        (2, 9),
        [5, 8, 3],
        UNCHANGED,
        _src("def between(self, n, n2):", "    return [x for x in self.numbers if n < x < n2]"),
    ),
    # --- small arithmetic
    Task(
        "max_minus_min",
        {"numbers": [4, 10, 1, 7]},
        "max_minus_min",
        (),
        9,
        UNCHANGED,
        _src("def max_minus_min(self):", "    return max(self.numbers) - min(self.numbers)"),
    ),
    Task(
        "square",
        {"number": 7},
        "square",
        (),
        49,
        UNCHANGED,
        _src("def square(self):", "    return self.number * self.number"),
    ),
    Task(
        "remaining",
        {"total": 50, "used": 18},
        "remaining",
        (),
        32,
        UNCHANGED,
        _src("def remaining(self):", "    return self.total - self.used"),
    ),
    Task(
        "percent",
        {"part": 3, "whole": 12},
        "percent",
        (),
        25.0,
        UNCHANGED,
        _src("def percent(self):", "    return self.part / self.whole * 100"),
        check=_approx(25.0),
    ),
    # --- slot-reading summaries and predicates
    Task(
        "count_words",
        {"sentence": "the cat sat down"},
        "count_words",
        (),
        4,
        UNCHANGED,
        _src("def count_words(self):", "    return len(self.sentence.split())"),
    ),
    Task(
        "cheapest_item",
        {"prices": {"tea": 3, "cake": 5, "bun": 2}},
        "cheapest_item",
        (),
        "bun",
        UNCHANGED,
        _src("def cheapest_item(self):", "    return min(self.prices, key=self.prices.get)"),
    ),
    Task(
        "can_afford",
        {"cash": 20},
        "can_afford",
        (15,),
        True,
        UNCHANGED,
        _src("def can_afford(self, n):", "    return self.cash >= n"),
    ),
]
