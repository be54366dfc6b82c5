"""Guided JSON decoding of BRICK's plan: a logits processor that only lets valid plans through.

The plan has one fixed shape::

    {"strategy": "<text>", "relevant_pillars": ["<facet>", ...],
     "sub_queries": {"<facet>": "<text>", ...}}

:class:`PlanCursor` is a character-level state machine over that shape: literal punctuation and
keys, free strings (printable, no quote or backslash, bounded length), facet names restricted to
the known ones (each at most once), and ``sub_queries`` keys forced to be the chosen facets in
the order they were chosen. :class:`PlanLogitsProcessor` runs one cursor per batch row and, at
each step, leaves only the tokens whose whole text the cursor accepts (the end-of-sequence token
once the closing brace is written). Token texts are indexed once per tokenizer: tokens are grouped
by first character for structural positions, and string-safe tokens are kept as a length vector
so a free-string step is one tensor comparison plus a check of the few tokens holding a quote.

Example:
    >>> cursor = PlanCursor.start(("sage_facet_",))
    >>> cursor.feed('{"strategy": "x", "relevant_pillars": ["sage_facet_"], ') is not None
    True
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

__all__ = [
    "CharCursor",
    "PlanCursor",
    "PlanLogitsProcessor",
    "TokenTable",
    "generate_guided_plan",
    "string_budget",
    "string_char",
    "token_texts",
]

_KEY_STRATEGY = '{"strategy": "'
_KEY_PILLARS = ', "relevant_pillars": ['
_KEY_SUBS = ', "sub_queries": {'


def string_char(ch: str) -> bool:
    """True for a character a guided JSON string may hold as it is (no quote, no escape)."""
    return ch.isprintable() and ch not in '"\\'


class CharCursor:
    """A cursor that reads text one character at a time: :meth:`step`, and :meth:`feed` over it."""

    def step(self, ch: str) -> Self | None:
        """Accept one character; return the new cursor, or None when it is not allowed."""
        raise NotImplementedError

    def feed(self, text: str) -> Self | None:
        """Accept every character of ``text``; None as soon as one is not allowed."""
        cursor: Self | None = self
        for ch in text:
            cursor = cursor.step(ch)  # type: ignore[union-attr]
            if cursor is None:
                return None
        return cursor


@dataclass(frozen=True)
class PlanCursor(CharCursor):
    """Where a partial plan stands; :meth:`feed` returns the next cursor or None (invalid).

    Attributes:
        names: the facet names a plan may choose.
        phase: ``lit`` (a literal remains), ``str``, ``open`` (a name's quote), ``name``,
            ``after`` (after a name: ``,`` or ``]``), ``end``.
        rest: the literal still expected (``lit``).
        then: the phase after the literal or string, as ``(phase, index)``.
        chosen: the facets chosen so far.
        partial: the facet name typed so far.
        count: characters of the current string.
        index: which sub-query is being written.
        max_pillars: most facets a plan may choose.
        max_chars: most characters of a string.
        min_pillars: fewest facets a plan may choose (fewer when fewer names exist).
    """

    names: tuple[str, ...]
    phase: str = "lit"
    rest: str = _KEY_STRATEGY
    then: tuple[str, int] = ("str", -1)
    chosen: tuple[str, ...] = ()
    partial: str = ""
    count: int = 0
    index: int = -1
    max_pillars: int = 4
    max_chars: int = 240
    min_pillars: int = 1

    @classmethod
    def start(
        cls,
        names: Sequence[str],
        *,
        max_pillars: int = 4,
        max_chars: int = 240,
        min_pillars: int = 1,
    ) -> PlanCursor:
        """Return the cursor before the first character.

        Raises:
            ValueError: no names, or ``min_pillars`` above ``max_pillars``.
        """
        if not names:
            raise ValueError("A guided plan needs at least one facet name to choose from.")
        if min_pillars > max_pillars:
            raise ValueError(
                f"min_pillars ({min_pillars}) is above max_pillars ({max_pillars}); a plan "
                "could never close."
            )
        # a plan cannot choose more facets than exist, so the floor follows the names
        floor = max(1, min(min_pillars, len(set(names))))
        return cls(
            tuple(names),
            max_pillars=max(1, max_pillars),
            max_chars=max(1, max_chars),
            min_pillars=floor,
        )

    @property
    def done(self) -> bool:
        """True once the closing brace has been written."""
        return self.phase == "end"

    def _enter(self, phase: str, index: int) -> PlanCursor:
        if phase == "str":
            return replace(self, phase="str", count=0, index=index)
        if phase == "name":
            return replace(self, phase="name", partial="", index=index)
        if phase == "sub":  # the key of sub-query ``index``, then its string
            key = self.chosen[index]
            return replace(self, phase="lit", rest=f'"{key}": "', then=("str", index))
        return replace(self, phase=phase, index=index)

    def _after_string(self) -> PlanCursor:
        if self.index < 0:  # the strategy
            return replace(self, phase="lit", rest=_KEY_PILLARS + '"', then=("name", 0))
        nxt = self.index + 1
        if nxt < len(self.chosen):
            return replace(self, phase="lit", rest=", ", then=("sub", nxt))
        return replace(self, phase="lit", rest="}}", then=("end", 0))

    def step(self, ch: str) -> PlanCursor | None:
        """Accept one character; return the new cursor, or None when it is not allowed."""
        phase = self.phase
        if phase == "lit":
            if not self.rest.startswith(ch):
                return None
            rest = self.rest[1:]
            if rest:
                return replace(self, rest=rest)
            return self._enter(*self.then)
        if phase == "str":
            if ch == '"':
                return self._after_string() if self.count > 0 else None
            if self.count == 0 and ch.isspace():  # no blank or space-led strings
                return None
            if string_char(ch) and self.count < self.max_chars:
                return replace(self, count=self.count + 1)
            return None
        if phase == "open":
            return replace(self, phase="name", partial="") if ch == '"' else None
        if phase == "name":
            if ch == '"':
                if self.partial in self.names and self.partial not in self.chosen:
                    return replace(self, phase="after", chosen=(*self.chosen, self.partial))
                return None
            partial = self.partial + ch
            if any(n.startswith(partial) and n not in self.chosen for n in self.names):
                return replace(self, partial=partial)
            return None
        if phase == "after":
            left = len(self.chosen) < min(self.max_pillars, len(self.names))
            if ch == "," and left:
                return replace(self, phase="lit", rest=' "', then=("name", 0))
            if ch == "]" and len(self.chosen) >= self.min_pillars:
                return replace(self, phase="lit", rest=_KEY_SUBS, then=("sub", 0))
            return None
        return None  # "end" accepts nothing more

    def first_chars(self) -> set[str] | None:
        """Characters that may come next; None in a free string (any string character)."""
        if self.phase == "lit":
            return {self.rest[0]}
        if self.phase == "str":
            return None
        if self.phase == "open":
            return {'"'}
        if self.phase == "name":
            heads = {n[len(self.partial)] for n in self.names if self._open_name(n)}
            if self.partial in self.names and self.partial not in self.chosen:
                heads.add('"')
            return heads
        if self.phase == "after":
            return {",", "]"} if len(self.chosen) >= self.min_pillars else {","}
        return set()

    def _open_name(self, name: str) -> bool:
        return name not in self.chosen and name.startswith(self.partial) and name != self.partial


def token_texts(tokenizer: Any) -> list[str | None]:
    """Return the text each token id adds when decoded (None for special or partial tokens)."""
    size = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    texts: list[str | None] = []
    for token_id in range(size):
        if token_id in special:
            texts.append(None)
            continue
        token = tokenizer.convert_ids_to_tokens(token_id)
        if token is None:
            texts.append(None)
            continue
        text = tokenizer.convert_tokens_to_string([token])
        if token.startswith("\u2581") and not text.startswith(" "):  # sentencepiece word start
            text = " " + text
        texts.append(text if text and "\ufffd" not in text else None)
    return texts


#: Token ids are indexed by their first characters up to this many.
_PREFIX = 3


def _paths(cursor: PlanCursor) -> list[tuple[str, str]]:
    """The texts the cursor may write next, up to ``_PREFIX`` characters, and how each ends.

    Each path is ``(text, how)``: ``"full"`` (``_PREFIX`` characters long), ``"open"`` (a free
    string follows, so any token starting with the text may fit) or ``"end"`` (nothing may
    follow but the end of the plan).
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[PlanCursor, str]] = [(cursor, "")]
    while stack:
        current, text = stack.pop()
        if len(text) == _PREFIX:
            found.append((text, "full"))
            continue
        heads = current.first_chars()
        if heads is None:
            found.append((text, "open"))
            continue
        if text:
            found.append((text, "end"))  # tokens that are exactly this text
        for head in heads:
            nxt = current.step(head)
            if nxt is not None:
                stack.append((nxt, text + head))
    return found


class TokenTable:
    """Token texts of one tokenizer, indexed for the plan cursor.

    Attributes:
        texts: text per token id (None: never allowed).
        by_prefix: token ids by each of their first 1..3 characters (a token of text ``ab`` is
            under ``a`` and ``ab``).
        by_text: token ids by their whole text.
        safe_len: per id, the length of a string-safe text (no quote, backslash or control
            character), or a large number when the token is not string-safe.
        quoted: ids of printable tokens holding a quote (they may close a string).
        space_led: per id, whether the text starts with white space (never a string's first).
    """

    _cache: ClassVar[dict[int, Any]] = {}

    def __init__(self, texts: Sequence[str | None], vocab_size: int | None = None) -> None:
        import numpy as np

        self.texts = list(texts)
        size = max(vocab_size or 0, len(self.texts))
        self.by_prefix: dict[str, list[int]] = {}
        self.by_text: dict[str, list[int]] = {}
        big = 1 << 30
        lengths = [big] * size
        self.quoted: list[int] = []
        for token_id, text in enumerate(self.texts):
            if not text:
                continue
            for k in range(1, min(_PREFIX, len(text)) + 1):
                self.by_prefix.setdefault(text[:k], []).append(token_id)
            self.by_text.setdefault(text, []).append(token_id)
            if all(string_char(c) for c in text):
                lengths[token_id] = len(text)
            elif '"' in text and "\\" not in text and text.isprintable():
                self.quoted.append(token_id)
        # numpy, not torch: one thread, no intra-op scheduling for a 50k-element compare
        self.safe_len = np.asarray(lengths, dtype=np.int64)
        led = [t[0].isspace() if t else False for t in self.texts]
        self.space_led = np.asarray(led + [False] * (size - len(led)), dtype=bool)
        self._memo: dict[Any, Any] = {}  # cursor -> allowed ids

    @classmethod
    def for_tokenizer(cls, tokenizer: Any, vocab_size: int | None = None) -> Self:
        """Return the (cached) table of a tokenizer (one per class: subclasses keep their own)."""
        key = id(tokenizer)
        table = cls._cache.get(key)
        if table is None or (vocab_size and len(table.safe_len) < vocab_size):
            table = cls(token_texts(tokenizer), vocab_size)
            cls._cache[key] = table
        return table

    def allowed(self, cursor: PlanCursor) -> Any:
        """Return the token ids the cursor accepts next, as a sorted numpy array."""
        import numpy as np

        if cursor.phase == "str":  # every safe token that fits, plus the valid closers
            mask = self.safe_len <= (cursor.max_chars - cursor.count)
            if cursor.count == 0:
                mask &= ~self.space_led
            closers = [t for t in self.quoted if cursor.feed(self.texts[t] or "") is not None]
            mask[closers] = True
            return np.flatnonzero(mask)
        known = self._memo.get(cursor)
        if known is not None:
            return known
        candidates: set[int] = set()
        for text, how in _paths(cursor):
            if how == "end":
                candidates.update(self.by_text.get(text, ()))
            elif text:
                candidates.update(self.by_prefix.get(text, ()))
        ids = sorted(t for t in candidates if cursor.feed(self.texts[t] or "") is not None)
        result = np.asarray(ids, dtype=np.int64)
        if len(self._memo) < 4096:
            self._memo[cursor] = result
        return result


class PlanLogitsProcessor:
    """A transformers logits processor that forces every row to write a valid plan.

    Args:
        tokenizer: the model's tokenizer (token texts are read from it once).
        names: the facet names the plan may choose.
        eos_token_id: the token that ends generation once the plan is closed.
        max_pillars: most facets a plan may choose.
        max_chars: most characters of the strategy and of each sub-query.
        vocab_size: the model's vocabulary size, when larger than the tokenizer's.
        min_pillars: fewest facets a plan may choose.

    Attributes:
        cursors: one cursor per row (None where a row left the grammar).
        ms: milliseconds spent computing masks (the guiding overhead).
    """

    def __init__(
        self,
        tokenizer: Any,
        names: Sequence[str],
        eos_token_id: int,
        *,
        max_pillars: int = 4,
        max_chars: int = 240,
        vocab_size: int | None = None,
        min_pillars: int = 1,
    ) -> None:
        self.table = TokenTable.for_tokenizer(tokenizer, vocab_size)
        self.start = PlanCursor.start(
            names,
            max_pillars=max_pillars,
            max_chars=max_chars,
            min_pillars=min_pillars,
        )
        self.eos = eos_token_id
        self.cursors: list[PlanCursor | None] = []
        self.prompt_len: int | None = None
        self.seen = 0
        self.ms = 0.0

    def _advance(self, input_ids: Any) -> None:
        rows, length = input_ids.shape
        if self.prompt_len is None:
            self.prompt_len = length
            self.cursors = [self.start] * rows
        new = input_ids[:, self.prompt_len + self.seen :].tolist()
        for row, ids in enumerate(new):
            cursor = self.cursors[row]
            for token_id in ids:
                if cursor is None or cursor.done:
                    break
                text = self.table.texts[token_id] if token_id < len(self.table.texts) else None
                cursor = cursor.feed(text) if text else None
            self.cursors[row] = cursor
        self.seen = length - self.prompt_len

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        """Mask ``scores`` (rows x vocab) so only grammatical tokens remain."""
        import numpy as np
        import torch

        began = time.perf_counter()
        self._advance(input_ids)
        rows, width = scores.shape
        bias = np.full((rows, width), -np.inf, dtype=np.float32)
        for row, cursor in enumerate(self.cursors):
            allowed = None if cursor is None or cursor.done else self.table.allowed(cursor)
            if allowed is None or not len(allowed):  # done, or nothing fits: end the row
                bias[row, self.eos] = 0.0
            else:
                bias[row, allowed[allowed < width]] = 0.0
        masked = scores + torch.from_numpy(bias).to(device=scores.device, dtype=scores.dtype)
        self.ms += (time.perf_counter() - began) * 1e3
        return masked


def string_budget(max_new_tokens: int, max_pillars: int) -> int:
    """Return the most characters per free string so a plan closes within ``max_new_tokens``.

    A degenerate model writes one character per token, and a plan holds ``1 + max_pillars``
    free strings plus about 40 tokens of structure per facet.
    """
    return max(16, (max_new_tokens - 40 * (max_pillars + 1)) // (max_pillars + 1))


def generate_guided_plan(
    core: Any,
    prompt: str,
    *,
    system: str | None,
    facets: Sequence[str],
    adapter: str | None,
    max_new_tokens: int = 384,
    max_pillars: int = 3,
    min_pillars: int = 2,
    repetition_penalty: float = 1.15,
) -> Any:
    """Generate a plan with the cognitive core under :class:`PlanLogitsProcessor`.

    Args:
        core: a ``batos_lab.llm`` CognitiveCore.
        prompt: the planning prompt.
        system: BRICK's system text.
        facets: the facet names the plan may choose.
        adapter: the adapter to plan with; unknown or degraded falls back to the base model.
        max_new_tokens: the token budget of the plan (strings are bounded to fit in it).
        max_pillars: most facets the plan may choose.
        min_pillars: fewest facets the plan may choose (a plan of one facet has nothing to
            weave; fewer when the workflow offers fewer).
        repetition_penalty: discourages the loops small models fall into in free text.

    Returns:
        A :class:`~batos_lab.psm.mind.Reply` whose text is the plan JSON; its notices say how
        long the guiding took and whether the plan was closed.
    """
    import contextlib

    import torch
    from transformers import LogitsProcessorList

    from batos_lab.llm.infer import generation_kwargs, prepare_prompt
    from batos_lab.psm.mind import Reply

    ids, notices = prepare_prompt(core, prompt, system, max_new_tokens, True)
    kwargs = generation_kwargs(core, max_new_tokens, 0.0, None)
    kwargs["repetition_penalty"] = repetition_penalty
    tokenizer = core.tokenizer()
    used: str | None = None
    context: Any = contextlib.nullcontext()
    if adapter is not None:
        try:
            record = core.activate_expert(adapter)
            if getattr(record, "tier", None) != "degraded":
                used = f"{record.name}@v{record.version}"
        except Exception as exc:  # plan with the base model rather than not at all
            notices.append(f"The adapter {adapter} could not be used ({exc}); base model used.")
    if used is None:
        peft = core.peft_model()
        if peft is not None:
            context = peft.disable_adapter()
    model = core.generator()
    processor = PlanLogitsProcessor(
        tokenizer,
        facets,
        int(kwargs["eos_token_id"]),
        max_pillars=max_pillars,
        max_chars=string_budget(max_new_tokens, max_pillars),
        min_pillars=min_pillars,
        vocab_size=int(getattr(model.config, "vocab_size", 0) or 0) or None,
    )
    input_ids = torch.tensor([ids], device=core.input_device())
    with context, torch.inference_mode():
        began = time.perf_counter()
        out = model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            logits_processor=LogitsProcessorList([processor]),
            **kwargs,
        )
        ms = (time.perf_counter() - began) * 1e3
    new_ids = out[0, len(ids) :].tolist()
    text = tokenizer.decode(new_ids, skip_special_tokens=True).strip()
    notices.append(f"Guided decoding took {processor.ms:.0f} ms of the {ms:.0f} ms.")
    if processor.cursors and not (processor.cursors[0] and processor.cursors[0].done):
        notices.append("The plan was not closed within max_new_tokens.")
    return Reply(text, len(ids), len(new_ids), ms, used, notices)
