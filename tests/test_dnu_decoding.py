"""The decoding guides of the JIT generator, on a tokenizer small enough to read.

The real tokenizer and model are exercised by tests/test_dnu_real.py; here every token is a
visible piece of text, so each rule of :class:`ReturnGuide` and :class:`GreedyRows` can be
checked on exact scores.
"""

from __future__ import annotations

import pytest
import torch

from batos_lab.dnu_model import (
    GreedyRows,
    NameGuide,
    ReturnGuide,
    body_finished,
    cut_body,
    keep_only,
    leaving_line,
    runaway,
    writes_code,
)

PIECES = [
    "<eos>", "\n   ", "   ", " return", " self", ".count", "\n\n", " #", "\n", "x", "\ndef", ".",
    "count",
]  # fmt: skip
EOS, NEW_LINE, INDENT, RETURN, SELF, COUNT, BLANK, COMMENT, NL, X, DEF, DOT, NAME = range(
    len(PIECES)
)


class Tokenizer:
    """Every id is the piece at that index; ``encode`` knows the few texts the guide asks."""

    eos_token_id = EOS

    def __len__(self) -> int:
        return len(PIECES)

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(PIECES[i] for i in ids if not (skip_special_tokens and i == EOS))

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [PIECES.index(text)]


def scores_for(best: int, *others: int) -> torch.Tensor:
    """One row of scores: ``best`` likeliest, then ``others``, every other token far below."""
    row = torch.full((len(PIECES),), -10.0)
    row[best] = 5.0
    for rank, token in enumerate(others):
        row[token] = 4.0 - rank
    return row[None, :]


def guided(body: list[int], scores: torch.Tensor) -> list[int]:
    """The tokens still possible after the guide, for a body written as ``body``."""
    guide = ReturnGuide(Tokenizer(), start=1, width=len(PIECES))
    ids = torch.tensor([[X, *body]])  # position 0 stands for the prompt
    out = guide(ids, scores.clone())
    return [i for i in range(len(PIECES)) if out[0, i] > float("-inf")]


@pytest.mark.parametrize(
    ("body", "leaves"),
    [
        (" self.count += 1\n    return self.count", None),
        (" self.count += 1\n\n#", 2),
        (" self.count += 1\n # Example 5", 1),  # left of the body's indentation
        (" if self.ok:\n        return 1\n    return 2", None),
        (" x = 1\n   ", None),  # a line still in its indentation
        (" x = 1\ndef", 1),
    ],
)
def test_leaving_line(body: str, leaves: int | None) -> None:
    assert leaving_line(body) == leaves
    assert body_finished(body) is (leaves is not None)


def test_cut_body_keeps_the_function_and_a_fence_ends_it() -> None:
    assert cut_body(" x = 1\n    return x\n\n# Example 2\ndef other") == " x = 1\n    return x"
    assert cut_body(" return 1\n```\nchatter") == " return 1"
    assert body_finished(" return 1\n```")


@pytest.mark.parametrize(
    ("body", "stops"),
    [
        (" total = 0\n    for x in self.items:\n        total += x\n    return total\n", False),
        (" self.items = []" + "\n    self.items.append(self.name)" * 3 + "\n", True),
        (" return '" + "ab" * 90, True),  # an unclosed string
        (" x = 1" + "\n    x = 1" * 2, False),  # the third copy is still being written
    ],
)
def test_runaway_rows_stop(body: str, stops: bool) -> None:
    assert runaway(body) is stops


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (" self.count += 1", True),
        (" self.count += 1\n    return", True),
        (" self.count += 1\n   ", True),
        (" self.count += 1\n", True),
        (" self.count += 1\n\n", False),  # a blank line
        (" self.count += 1\n    # note", False),
        (" self.count += 1\n    'text'", False),
        (" self.count += 1\n\treturn", False),
        (" x = 1\n```", False),
    ],
)
def test_writes_code(body: str, ok: bool) -> None:
    assert writes_code(body) is ok


def test_a_body_that_would_end_without_a_return_is_led_to_one() -> None:
    # after a statement, the model would write a blank line: the new line is forced ...
    assert guided([SELF, COUNT], scores_for(BLANK, NEW_LINE)) == [NEW_LINE]
    # ... it would then write a comment at the body's indentation: the keyword is forced
    assert guided([SELF, COUNT, NEW_LINE], scores_for(COMMENT, SELF)) == [RETURN]
    # at the very start of a line, the indentation comes first
    assert guided([SELF, COUNT, NL], scores_for(DEF, INDENT)) == [INDENT]
    # the end of the text is not an option either
    assert guided([SELF, COUNT], scores_for(EOS)) == [NEW_LINE]


def test_a_body_writing_code_keeps_its_code_choices() -> None:
    allowed = guided([SELF, COUNT, NEW_LINE], scores_for(SELF, RETURN, COMMENT, BLANK))
    # code and more indentation stay; the comment, blank line and every way out are gone
    assert allowed == [INDENT, RETURN, SELF]


def test_a_body_with_its_return_is_left_alone() -> None:
    scores = scores_for(BLANK, DEF, EOS)
    assert guided([RETURN, SELF, COUNT], scores) == list(range(len(PIECES)))


def test_greedy_rows_keep_only_their_likeliest_token() -> None:
    scores = torch.tensor([[0.1, 2.0, 1.0], [0.1, 2.0, 1.0], [3.0, 2.0, 1.0]])
    out = GreedyRows(2)(torch.zeros((3, 1), dtype=torch.long), scores.clone())
    assert out[0].tolist() == [float("-inf"), 2.0, float("-inf")]
    assert out[1].tolist() == [float("-inf"), 2.0, float("-inf")]
    assert out[2].tolist() == [3.0, 2.0, 1.0]  # a sampled row keeps every score
    sampled = torch.multinomial(torch.softmax(out[:2] / 0.8, -1), 20, replacement=True)
    assert set(sampled.flatten().tolist()) == {1}


def test_no_greedy_rows_changes_nothing() -> None:
    scores = torch.tensor([[0.1, 2.0, 1.0]])
    assert GreedyRows(0)(torch.zeros((1, 1), dtype=torch.long), scores.clone()).equal(scores)


def test_bank_headers_take_json_or_python_literals_and_refuse_the_rest() -> None:
    from batos_lab.dnu_examples import _parse_bank

    bank = _parse_bank(
        '## lamp {"on": true} switch_off()\ndef switch_off(self):\n    self.on = False\n'
        "    return self.on\n\n"
        "## pair {'a': (1, 2)} first()\ndef first(self):\n    return self.a[0]\n"
    )
    assert [e.slots for e in bank] == [{"on": True}, {"a": (1, 2)}]
    with pytest.raises(ValueError, match="not a mapping"):  # a set literal
        _parse_bank("## lamp {1, 2} switch_off()\ndef switch_off(self):\n    return 1\n")
    with pytest.raises(ValueError, match="bad example header"):
        _parse_bank("## lamp switch_off\ndef switch_off(self):\n    return 1\n")


def test_keep_only_never_leaves_a_row_without_a_score() -> None:
    """A token forced where an earlier guide had ruled it out keeps a finite score."""
    scores = torch.tensor([[1.0, float("-inf"), float("-inf")], [1.0, 2.0, 3.0]])
    keep_only(scores, 0, [2, 1])
    assert scores[0].tolist() == [float("-inf"), float("-inf"), 0.0]
    keep_only(scores, 1, [0, 2])
    assert scores[1].tolist() == [1.0, float("-inf"), 3.0]


def test_the_return_guide_forcing_after_the_name_guide_leaves_the_batch_samplable() -> None:
    """After `self.` the name guide rules out the new line; when the model would then end the
    text, the return guide forces that new line. Sampling the batch must not fail on that row
    (it once failed every row of the batch, the greedy reply among them)."""
    ids = torch.tensor([[X, SELF, DOT], [X, SELF, DOT]])
    scores = torch.cat([scores_for(EOS, NAME), scores_for(NAME)])
    names = NameGuide(Tokenizer(), start=1, names=["count"], width=len(PIECES))
    out = ReturnGuide(Tokenizer(), start=1, width=len(PIECES))(ids, names(ids, scores.clone()))
    assert torch.isfinite(out).any(-1).all()
    torch.multinomial(torch.softmax(out / 0.8, -1), 1)  # raises on a row with no score


def test_rows_that_have_ended_are_left_alone() -> None:
    ended = torch.tensor([[X, SELF, COUNT, EOS]])
    scores = scores_for(BLANK, DEF)
    out = ReturnGuide(Tokenizer(), start=1, width=len(PIECES))(ended, scores.clone())
    assert torch.equal(out, scores)
    names = NameGuide(Tokenizer(), start=1, names=["other"], width=len(PIECES))
    assert torch.equal(names(torch.tensor([[X, SELF, EOS]]), scores.clone()), scores)
