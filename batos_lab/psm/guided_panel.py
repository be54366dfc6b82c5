"""Guided decoding of the panel language: BRICK's widget list and ROBIN's layout.

The approach of :mod:`batos_lab.psm.guided` (a character-level cursor over a fixed JSON shape,
and the tokens whose whole text the cursor accepts), generalised to any shape made of three kinds
of *unit*: a literal (punctuation and keys), a free string (printable, no quote or backslash,
bounded length), and a choice between prefix-free options (slot names, widget kinds, widget ids,
each written with its closing quote). A :class:`Grammar` says which unit follows which;
:class:`GrammarCursor` walks it one character at a time, and :class:`TokenIndex` finds the tokens
whose whole text the cursor accepts (token texts come from the plan decoder's
:func:`~batos_lab.psm.guided.token_texts`).

Two grammars:

* :class:`WidgetGrammar`: ``{"widgets": [{"id": "w1", "slot": ..., "kind": ...,
  "description": ...}, ...]}`` where ids are numbered by the grammar, each slot is one of the
  object's and is used once, and the kind is one that suits that slot;
* :class:`LayoutGrammar`: ``{"arrangement": rows|columns|tabs, "groups": [{"title": ...,
  "widgets": [ids]}, ...]}`` where every widget id is placed exactly once.

:func:`generate_guided` decodes greedily with the cognitive core and *jumps forward*: where the
grammar leaves one possible text (a key, the rest of a slot name), that text is fed to the model
in one forward pass instead of one pass per token. Only the real choices cost a decoding step.

Example:
    >>> grammar = WidgetGrammar(slots=(("count", ("IntSlider", "Label")),))
    >>> cursor = GrammarCursor.start(grammar)
    >>> cursor.forced()
    '{"widgets": [{"id": "w1", "slot": "count", "kind": "'
    >>> cursor.feed('{"widgets": [{"id": "w1", "slot": "count", "kind": "Label"') is not None
    True
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Hashable
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

from batos_lab.psm.guided import CharCursor, TokenTable, string_char

__all__ = [
    "Grammar",
    "GrammarCursor",
    "LayoutGrammar",
    "TokenIndex",
    "Unit",
    "WidgetGrammar",
    "generate_guided",
]


@dataclass(frozen=True)
class Unit:
    """What a grammar expects next.

    Attributes:
        phase: ``lit`` (the text ``text``), ``str`` (a free string of at most ``max_chars``
            characters, closed by a quote), ``choice`` (one of ``options``) or ``end``.
        min_chars: fewest characters of a free string; 0 lets it close at once (a string that
            continues a literal, so it may also start with a space).
    """

    phase: str
    text: str = ""
    options: tuple[str, ...] = ()
    max_chars: int = 0
    min_chars: int = 1

    def __post_init__(self) -> None:
        if self.phase == "choice":
            if not self.options:
                raise ValueError("A choice needs at least one option.")
            for a in self.options:
                for b in self.options:
                    if a != b and b.startswith(a):
                        raise ValueError(f"Choice options must be prefix-free: {a!r}, {b!r}.")


def lit(text: str) -> Unit:
    """A literal unit."""
    return Unit("lit", text=text)


def free(max_chars: int, *, min_chars: int = 1) -> Unit:
    """A free string unit (its opening quote, and any text it continues, are a literal before)."""
    return Unit("str", max_chars=max(1, max_chars), min_chars=min_chars)


def choice(options: tuple[str, ...]) -> Unit:
    """A choice unit."""
    return Unit("choice", options=options)


END = Unit("end")


class Grammar(Protocol):
    """A JSON shape as a chain of units; implementations are frozen (hashable) dataclasses."""

    def first(self) -> tuple[Unit, Hashable]:
        """Return the first unit and the state after it."""
        ...

    def follow(self, state: Any, value: str) -> tuple[Unit, Hashable]:
        """Return the unit after ``state`` and the new state; ``value`` is the chosen option
        (empty after a literal or a free string)."""
        ...


@dataclass(frozen=True)
class GrammarCursor(CharCursor):
    """Where a partial text stands in a grammar; :meth:`feed` returns the next cursor or None.

    Attributes:
        grammar: the grammar walked.
        state: the grammar's state (what the current unit belongs to).
        phase: ``lit``, ``str``, ``choice`` or ``end``.
        rest: the literal still expected (``lit``).
        options: the options still open (``choice``).
        partial: the option typed so far (``choice``).
        count: characters of the current free string (``str``).
        max_chars: most characters of the current free string (``str``).
        min_chars: fewest characters of the current free string (``str``).
    """

    grammar: Any
    state: Any
    phase: str
    rest: str = ""
    options: tuple[str, ...] = ()
    partial: str = ""
    count: int = 0
    max_chars: int = 0
    min_chars: int = 1

    @classmethod
    def start(cls, grammar: Any) -> GrammarCursor:
        """Return the cursor before the first character of ``grammar``."""
        unit, state = grammar.first()
        return cls._at(grammar, state, unit)

    @classmethod
    def _at(cls, grammar: Any, state: Any, unit: Unit) -> GrammarCursor:
        if unit.phase == "lit" and not unit.text:  # an empty literal: go straight on
            following, after = grammar.follow(state, "")
            return cls._at(grammar, after, following)
        return cls(
            grammar,
            state,
            unit.phase,
            rest=unit.text,
            options=unit.options,
            max_chars=unit.max_chars,
            min_chars=unit.min_chars,
        )

    @property
    def done(self) -> bool:
        """True once the grammar's last character has been written."""
        return self.phase == "end"

    def _next(self, value: str) -> GrammarCursor:
        unit, state = self.grammar.follow(self.state, value)
        return self._at(self.grammar, state, unit)

    def step(self, ch: str) -> GrammarCursor | None:
        """Accept one character; return the new cursor, or None when it is not allowed."""
        if self.phase == "lit":
            if not self.rest.startswith(ch):
                return None
            return replace(self, rest=self.rest[1:]) if len(self.rest) > 1 else self._next("")
        if self.phase == "str":
            if ch == '"':
                return self._next("") if self.count >= self.min_chars else None
            if self.count == 0 and self.min_chars > 0 and ch.isspace():  # no blank strings
                return None
            if string_char(ch) and self.count < self.max_chars:
                return replace(self, count=self.count + 1)
            return None
        if self.phase == "choice":
            typed = self.partial + ch
            still = tuple(o for o in self.options if o.startswith(typed))
            if not still:
                return None
            if typed in still:  # options are prefix-free: nothing longer can match
                return self._next(typed)
            return replace(self, options=still, partial=typed)
        return None

    def first_chars(self) -> set[str] | None:
        """Characters that may come next; None in a free string (any string character)."""
        if self.phase == "lit":
            return {self.rest[0]}
        if self.phase == "str":
            return None
        if self.phase == "choice":
            return {o[len(self.partial)] for o in self.options}
        return set()

    def forced(self) -> str:
        """Return the text the grammar allows and requires next (empty where there is a choice)."""
        text: list[str] = []
        cursor: GrammarCursor | None = self
        while cursor is not None and not cursor.done:
            heads = cursor.first_chars()
            if heads is None or len(heads) != 1:
                break
            (ch,) = heads
            text.append(ch)
            cursor = cursor.step(ch)
        return "".join(text)


# --------------------------------------------------------------------------- the two shapes


def label(slot: str) -> str:
    """Return a slot name as the start of a description: ``room_name`` -> ``Room name``."""
    words = slot.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@dataclass(frozen=True)
class WidgetGrammar:
    """BRICK's widget list: ids numbered w1, w2, ...; each slot once; a kind that suits it.

    A description starts with the slot's name (``Target``); the model may go on (``Target
    temperature``) or close it there.

    Attributes:
        slots: ``(slot, kinds)`` pairs: the slots a widget may show and the kinds each suits.
        max_widgets: most widgets in the list.
        max_chars: most characters of a description.
        min_widgets: fewest widgets in the list (fewer when there are fewer slots).
    """

    slots: tuple[tuple[str, tuple[str, ...]], ...]
    max_widgets: int = 6
    max_chars: int = 40
    min_widgets: int = 1

    def __post_init__(self) -> None:
        if not self.slots or any(not kinds for _, kinds in self.slots):
            raise ValueError("A widget grammar needs at least one slot, each with a kind.")
        if self.min_widgets > self.max_widgets:
            raise ValueError(
                f"min_widgets ({self.min_widgets}) is above max_widgets ({self.max_widgets}); "
                "the list could never close."
            )

    def _opening(self, number: int) -> str:
        return f'{{"id": "w{number}", "slot": "'

    def _slot_choice(self, used: tuple[str, ...]) -> Unit:
        return choice(tuple(f'{name}"' for name, _ in self.slots if name not in used))

    def first(self) -> tuple[Unit, Hashable]:
        """Open the list and the first widget."""
        return lit('{"widgets": [' + self._opening(1)), ("open", 1, ())

    def follow(self, state: Any, value: str) -> tuple[Unit, Hashable]:
        """Return the unit after ``state`` (see the class docstring for the shape)."""
        step, number, used = state[0], state[1], state[2]
        if step == "open":
            return self._slot_choice(used), ("slot", number, used)
        if step == "slot":
            slot = value[:-1]
            return lit(', "kind": "'), ("kind_key", number, (*used, slot))
        if step == "kind_key":
            kinds = dict(self.slots)[used[-1]]
            return choice(tuple(f'{k}"' for k in kinds)), ("kind", number, used)
        if step == "kind":  # a description starts with the slot's name, the model goes on
            return lit(f', "description": "{label(used[-1])}'), ("desc_key", number, used)
        if step == "desc_key":
            return free(self.max_chars, min_chars=0), ("desc", number, used)
        if step == "desc":
            more = number < self.max_widgets and len(used) < len(self.slots)
            enough = number >= min(self.min_widgets, len(self.slots))
            options = (("}, " + self._opening(number + 1),) if more else ()) + (
                ("}]}",) if enough or not more else ()
            )
            return choice(options), ("close", number, used)
        if step == "close" and value != "}]}":
            return self._slot_choice(used), ("slot", number + 1, used)
        return END, ("end", number, used)


@dataclass(frozen=True)
class LayoutGrammar:
    """ROBIN's layout: an arrangement, then groups that place every widget id exactly once.

    Attributes:
        ids: the widget ids to place.
        arrangements: the arrangements to choose from.
        max_chars: most characters of a group title.
    """

    ids: tuple[str, ...]
    arrangements: tuple[str, ...] = ("rows", "columns", "tabs")
    max_chars: int = 24

    def __post_init__(self) -> None:
        if not self.ids:
            raise ValueError("A layout grammar needs at least one widget id to place.")

    def _id_choice(self, placed: tuple[str, ...]) -> Unit:
        return choice(tuple(f'{i}"' for i in self.ids if i not in placed))

    def first(self) -> tuple[Unit, Hashable]:
        """Open the layout."""
        return lit('{"arrangement": "'), ("open", ())

    def follow(self, state: Any, value: str) -> tuple[Unit, Hashable]:
        """Return the unit after ``state`` (see the class docstring for the shape)."""
        step, placed = state
        if step == "open":
            return choice(tuple(f'{a}"' for a in self.arrangements)), ("arrangement", placed)
        if step == "arrangement":
            return lit(', "groups": [{"title": "'), ("title_key", placed)
        if step == "title_key":
            return free(self.max_chars), ("title", placed)
        if step == "title":
            return lit(', "widgets": ["'), ("id_key", placed)
        if step == "id_key":
            return self._id_choice(placed), ("id", placed)
        if step == "id":
            placed = (*placed, value[:-1])
            if len(placed) < len(self.ids):
                return choice((', "', ']}, {"title": "')), ("after", placed)
            return lit("]}]}"), ("last", placed)
        if step == "after":
            if value == ', "':
                return self._id_choice(placed), ("id", placed)
            return free(self.max_chars), ("title", placed)
        return END, ("end", placed)


# --------------------------------------------------------------------------- token masks

#: Tokens are indexed by their first characters, up to this many.
_PREFIX = 3


class TokenIndex(TokenTable):
    """The token texts of one tokenizer, indexed for :class:`GrammarCursor` (the panel grammars).

    The index is the plan's :class:`~batos_lab.psm.guided.TokenTable` (built once per
    tokenizer); only the question it answers differs. At a structural position (a literal or a
    choice) the few texts the cursor may write next are spelled out to :data:`_PREFIX`
    characters and only tokens starting with them are tried; inside a free string every
    string-safe token short enough fits (one vector comparison), plus the tokens holding a
    quote that close the string validly.
    """

    # its own cache: a TokenTable's memo is keyed by plan cursors
    _cache: ClassVar[dict[int, Any]] = {}

    def allowed(self, cursor: GrammarCursor) -> Any:  # type: ignore[override]
        """Return the token ids whose whole text the cursor accepts, as a sorted numpy array."""
        import numpy as np

        if cursor.phase == "str":
            mask = self.safe_len <= cursor.max_chars - cursor.count
            if cursor.count == 0 and cursor.min_chars > 0:
                mask &= ~self.space_led
            closers = [t for t in self.quoted if cursor.feed(self.texts[t] or "") is not None]
            mask[closers] = True
            return np.flatnonzero(mask)
        known = self._memo.get(cursor)
        if known is None:
            candidates: set[int] = set()
            for text, how in _spellings(cursor):
                table = self.by_text if how == "exact" else self.by_prefix
                candidates.update(table.get(text, ()))
            fits = sorted(t for t in candidates if cursor.feed(self.texts[t] or "") is not None)
            known = np.asarray(fits, dtype=np.int64)
            if len(self._memo) < 4096:
                self._memo[cursor] = known
        return known


def _spellings(cursor: GrammarCursor) -> list[tuple[str, str]]:
    """The texts the cursor may write next, up to ``_PREFIX`` characters, and how to match them.

    ``"exact"``: a token whose text is exactly this (a shorter token that ends there);
    ``"prefix"``: a token whose text starts with this (the text is ``_PREFIX`` long, or a free
    string follows it, so the token may go on).
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[GrammarCursor, str]] = [(cursor, "")]
    while stack:
        current, text = stack.pop()
        heads = current.first_chars()
        if text and (len(text) == _PREFIX or heads is None):
            found.append((text, "prefix"))
            continue
        if text:
            found.append((text, "exact"))
        for head in heads or ():
            nxt = current.step(head)
            if nxt is not None:
                stack.append((nxt, text + head))
    return found


# --------------------------------------------------------------------------- decoding


def _select(core: Any, adapter: str | None, notices: list[str]) -> tuple[Any, str | None]:
    """Activate ``adapter`` (or disable every adapter); return the context and the name used."""
    used: str | None = None
    if adapter is not None:
        try:
            record = core.activate_expert(adapter)
            if getattr(record, "tier", None) != "degraded":
                used = f"{record.name}@v{record.version}"
        except Exception as exc:  # decode with the base model rather than not at all
            notices.append(f"The adapter {adapter} could not be used ({exc}); base model used.")
    peft = core.peft_model() if used is None else None
    return (peft.disable_adapter() if peft is not None else contextlib.nullcontext()), used


def generate_guided(
    core: Any,
    prompt: str,
    *,
    system: str | None,
    start: GrammarCursor,
    adapter: str | None,
    max_new_tokens: int = 256,
    jump: bool = True,
    repetition_penalty: float = 1.15,
) -> Any:
    """Decode greedily under a grammar with the cognitive core; return a Reply.

    Args:
        core: a ``batos_lab.llm`` CognitiveCore.
        prompt: the user text.
        system: the system text (None: none).
        start: the grammar cursor to start from.
        adapter: the adapter to decode with (None, unknown or degraded: the base model).
        max_new_tokens: the most tokens to add (a text cut by it fails its audit).
        jump: feed text the grammar forces in one forward pass (False: token by token, each
            chosen by the model among the allowed ones).
        repetition_penalty: applied inside free strings to tokens the reply already holds.

    Returns:
        A :class:`~batos_lab.psm.mind.Reply`; its notices say how many tokens the model chose,
        how many the grammar forced, and whether the text was closed.
    """
    import torch

    from batos_lab.llm.infer import prepare_prompt
    from batos_lab.psm.mind import Reply

    ids, notices = prepare_prompt(core, prompt, system, max_new_tokens, True)
    tokenizer = core.tokenizer()
    context, used = _select(core, adapter, notices)
    model = core.generator()
    vocab = int(getattr(model.config, "vocab_size", 0) or 0) or None
    table = TokenIndex.for_tokenizer(tokenizer, vocab)
    device = core.input_device()
    new: list[int] = []
    chosen = forced_count = 0
    cursor = start
    with context, torch.inference_mode():
        began = time.perf_counter()
        out = model(input_ids=torch.tensor([ids], device=device), use_cache=True, logits_to_keep=1)
        while not cursor.done and len(new) < max_new_tokens:
            chunk, cursor, was_forced = _next_chunk(
                cursor, out.logits[0, -1], table, tokenizer, new, jump, repetition_penalty
            )
            if not chunk:
                notices.append("No token fits the grammar here; decoding stopped.")
                break
            new += chunk
            chosen += 0 if was_forced else len(chunk)
            forced_count += len(chunk) if was_forced else 0
            if cursor.done:
                break
            out = model(
                input_ids=torch.tensor([chunk], device=device),
                past_key_values=out.past_key_values,
                use_cache=True,
                logits_to_keep=1,
            )
        ms = (time.perf_counter() - began) * 1e3
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    notices.append(
        f"Guided decoding: {chosen} token(s) chosen by the model, {forced_count} forced by the "
        f"grammar, {ms:.0f} ms."
    )
    if not cursor.done:
        notices.append(f"The text was not closed within {max_new_tokens} tokens.")
    return Reply(text, len(ids), len(new), ms, used, notices)


def _next_chunk(
    cursor: GrammarCursor,
    logits: Any,
    table: TokenIndex,
    tokenizer: Any,
    written: list[int],
    jump: bool,
    penalty: float,
) -> tuple[list[int], GrammarCursor, bool]:
    """Return the next token ids, the cursor after them, and whether the grammar forced them."""
    import torch

    forced = cursor.forced() if jump else ""
    if forced:
        chunk = tokenizer.encode(forced, add_special_tokens=False)
        after = cursor.feed(forced)
        if after is not None and tokenizer.decode(chunk) == forced:
            return chunk, after, True
    allowed = table.allowed(cursor)
    allowed = allowed[allowed < logits.shape[-1]]
    if not len(allowed):
        return [], cursor, False
    index = torch.as_tensor(allowed, device=logits.device)
    scores = logits[index].float()
    if cursor.phase == "str" and penalty != 1.0 and written:
        seen = torch.isin(index, torch.as_tensor(written, device=logits.device))
        scores = torch.where(
            seen, torch.where(scores > 0, scores / penalty, scores * penalty), scores
        )
    token = int(allowed[int(torch.argmax(scores))])
    after = cursor.feed(table.texts[token] or "")
    if after is None:  # pragma: no cover - the table only offers tokens the cursor accepts
        return [], cursor, False
    return [token], after, False
