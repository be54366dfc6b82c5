"""The embedded model as a JIT generator: the function header is forced, the model writes the body.

:func:`model_generator` wraps an image's cognitive core. It puts the JIT prompt (without its
trailing code fence and header) in the user turn of the chat template, and opens the assistant
turn itself with the fence, the ``def`` header and the first indentation. The model therefore
cannot chat, rename the function or change its parameters: it only continues the body. Decoding
stops as soon as a line leaves the function (no indentation), a fence closes, or the token budget
is spent, so no tokens are wasted on text that extraction would throw away.

While the pipeline guides names (:data:`~batos_lab.dnu_prompt.GUIDE_NAMES`), a logits
processor keeps every ``self.<name>`` the model writes to the receiver's own slots and selectors:
a small model otherwise copies the slot names of the worked examples (``self.books`` on an object
that has ``words``). Only tokens that would complete a wrong name are removed; whichever valid
name the model ranks highest is kept.

The base model is used with every adapter disabled.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from batos_lab.dnu_prompt import GUIDE_NAMES

__all__ = [
    "BODY_INDENT",
    "ModelGenerator",
    "NameGuide",
    "body_finished",
    "model_generator",
    "names_ok",
]

#: the body opens with a newline and three spaces: one token of the tokenizer, after which
#: the model writes " name..." (the fourth space and the first word) as it saw in training
BODY_INDENT = "   "


def body_finished(body: str) -> bool:
    """Tell whether a generated body has left the function (a fence or an unindented line).

    Args:
        body: the text generated after the forced header and indentation.

    Returns:
        True once a later line starts at column 0 with something other than a blank.
    """
    if "```" in body:
        return True
    lines = body.split("\n")
    # the last line may still be growing; only complete lines count
    return any(line[:1] not in ("", " ", "\t") for line in lines[1:-1])


def cut_body(body: str) -> str:
    """Return the indented lines of ``body`` up to the first line that leaves the function."""
    body = body.split("```", 1)[0]
    kept: list[str] = []
    for number, line in enumerate(body.split("\n")):
        if number > 0 and line[:1] not in ("", " ", "\t"):
            break
        kept.append(line)
    return "\n".join(kept).rstrip()


_SELF_ATTR = re.compile(r"(?<![\w.])self\.(\w*)")
_OPEN_SELF = re.compile(r"(?<![\w.])(?:s|se|sel|self|self\.\w*)$")


def names_ok(tail: str, piece: str, names: Sequence[str]) -> bool:
    """Tell whether writing ``piece`` after ``tail`` keeps every ``self.<name>`` valid.

    Args:
        tail: the current line as written so far.
        piece: the text a token would add.
        names: the attribute names allowed after ``self.``.

    Returns:
        False when ``piece`` completes a ``self.<name>`` whose name is not allowed, or leaves
        an unfinished one that no allowed name starts with.

    Example:
        >>> names_ok("    return self.wo", "rds", ["words"])
        True
        >>> names_ok("x = self.", "books", ["words"])
        False
    """
    text = tail + piece
    for match in _SELF_ATTR.finditer(text):
        if match.end() < len(tail):
            continue  # finished before this piece
        name = match.group(1)
        if match.end() == len(text):
            if not any(n.startswith(name) for n in names):
                return False
        elif name not in names:
            return False
    return True


class NameGuide:
    """A logits processor keeping ``self.<name>`` to allowed names (see :func:`names_ok`).

    At each step it looks at the ``width`` likeliest tokens of each row. When the row is in
    the middle of a ``self.`` reference, or one of those tokens would start or finish a wrong
    one, only the allowed tokens among them keep their scores (all tokens are searched when
    none of the likeliest is allowed). Other steps are left alone.

    Args:
        tokenizer: the model's tokenizer.
        start: the prompt length (generated text begins there).
        names: allowed attribute names.
        width: how many of the likeliest tokens are checked per step.
    """

    def __init__(self, tokenizer: Any, start: int, names: Sequence[str], width: int = 64) -> None:
        self.tokenizer = tokenizer
        self.start = start
        self.names = tuple(names)
        self.width = width

    def _piece(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id], skip_special_tokens=True))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row in range(input_ids.shape[0]):
            text = self.tokenizer.decode(
                input_ids[row, self.start :].tolist(), skip_special_tokens=True
            )
            tail = text.rsplit("\n", 1)[-1]
            top = torch.topk(scores[row], min(self.width, scores.shape[-1])).indices.tolist()
            allowed = [t for t in top if names_ok(tail, self._piece(t), self.names)]
            if len(allowed) == len(top) and not _OPEN_SELF.search(tail):
                continue
            if not allowed:
                allowed = self._search_all(tail)
            if not allowed:
                continue  # nothing fits: leave the row to the checks after generation
            keep = torch.full_like(scores[row], float("-inf"))
            index = torch.tensor(allowed, device=scores.device)
            keep[index] = scores[row, index]
            scores[row] = keep
        return scores

    def _search_all(self, tail: str) -> list[int]:
        key = id(self.tokenizer)
        if key not in _PIECES:
            _PIECES[key] = [self._piece(i) for i in range(len(self.tokenizer))]
        return [
            i for i, piece in enumerate(_PIECES[key])
            if piece and names_ok(tail, piece, self.names)
        ]  # fmt: skip


#: decoded text of every token, per tokenizer (tokenizers live as long as the process)
_PIECES: dict[int, list[str]] = {}


class ModelGenerator:
    """A :class:`~batos_lab.dnu.Generator` backed by a cognitive core, header forced.

    Args:
        core: the image's CognitiveCore (``core_for(image)``).
        max_new_tokens: the most body tokens per attempt.
        threads: CPU threads while generating (0 keeps torch's setting). One thread is the
            default: a 135M model gains little from a second core, and on a shared machine
            two threads contending with other work measured up to ten times slower.
    """

    def __init__(self, core: Any, max_new_tokens: int = 160, threads: int = 1) -> None:
        self.core = core
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.model_id = str(getattr(core, "model_id", None) or _record_id(core))

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        """Write the body of the function the prompt ends with; return header and body."""
        if temperature > 0:
            return self.propose(prompt, 1, temperature, attempt + 1)[0]
        return self.propose(prompt, 1, temperature, 0)[0]

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        """Write ``n`` bodies for the header the prompt ends with: greedy first on round 0.

        The prompt is run through the model once; its key/value cache is copied for the
        greedy row and repeated for the sampled rows, so ``n`` candidates cost one prefill.

        Args:
            prompt: the JIT prompt (a Python file ending with the ``def`` header).
            n: how many candidates.
            temperature: sampling temperature of the sampled rows (0: every row greedy).
            round_: 0 for the first round (its first row is greedy), later rounds sample all.

        Returns:
            ``n`` texts, each the header and one body.
        """
        import torch

        tokenizer = self.core.tokenizer()
        header = prompt.rstrip().rsplit("\n", 1)[-1]
        # the prompt is a Python file ending with the header; the body starts on the next line
        ids = tokenizer.encode(prompt.rstrip() + "\n" + BODY_INDENT, add_special_tokens=False)
        greedy = 1 if round_ == 0 or temperature <= 0 else 0
        sampled = 0 if temperature <= 0 else n - greedy
        rows: list[Any] = []
        with self._threads(), _base_model(self.core) as model, torch.inference_mode():
            input_ids = torch.tensor([ids], device=self.core.input_device())
            cache = model(input_ids=input_ids[:, :-1], use_cache=True).past_key_values
            if greedy or temperature <= 0:
                rows += self._generate(model, tokenizer, input_ids, cache, 1, 0.0)
            if sampled > 0:
                rows += self._generate(model, tokenizer, input_ids, cache, sampled, temperature)
        bodies = [
            tokenizer.decode(row[len(ids) :].tolist(), skip_special_tokens=True) for row in rows
        ]
        return [header + "\n" + BODY_INDENT + cut_body(body) + "\n" for body in bodies][: max(n, 1)]

    def _generate(
        self, model: Any, tokenizer: Any, input_ids: Any, cache: Any, rows: int, temperature: float
    ) -> list[Any]:
        import copy

        import torch
        from transformers import LogitsProcessorList

        start = input_ids.shape[1]
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "stopping_criteria": _stopping(tokenizer, start),
        }
        names = GUIDE_NAMES.get()
        if names:
            kwargs["logits_processor"] = LogitsProcessorList([NameGuide(tokenizer, start, names)])
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        past = copy.deepcopy(cache)
        if rows > 1:
            past.batch_repeat_interleave(rows)
        batch = input_ids.repeat(rows, 1)
        out = model.generate(
            input_ids=batch, attention_mask=torch.ones_like(batch), past_key_values=past, **kwargs
        )
        return list(out)

    def judge(self, context: str, endings: list[str]) -> list[float]:
        """Score each ending by its total log-probability after ``context`` (base model).

        Args:
            context: the text every ending follows.
            endings: the candidate continuations.

        Returns:
            One summed log-probability per ending (higher: the model finds it likelier).
        """
        import torch

        tokenizer = self.core.tokenizer()
        head = tokenizer.encode(context, add_special_tokens=False)
        scores: list[float] = []
        with self._threads(), _base_model(self.core) as model, torch.inference_mode():
            for ending in endings:
                ids = tokenizer.encode(context + ending, add_special_tokens=False)
                tokens = torch.tensor([ids], device=self.core.input_device())
                logits = model(input_ids=tokens).logits[0, :-1].float()
                chosen = torch.log_softmax(logits, -1).gather(1, tokens[0, 1:, None])[:, 0]
                scores.append(float(chosen[max(len(head) - 1, 0) :].sum()))
        return scores

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        import torch

        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _record_id(core: Any) -> str:
    try:
        return str(core.record.model_id)
    except Exception:
        return "embedded"


@contextlib.contextmanager
def _base_model(core: Any) -> Iterator[Any]:
    """Yield the module to generate with, every adapter disabled."""
    peft = core.peft_model()
    if peft is None:
        yield core.generator()
        return
    with peft.disable_adapter():
        yield peft


def _stopping(tokenizer: Any, start: int) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _LeftTheFunction(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            done = [
                body_finished(tokenizer.decode(row[start:].tolist(), skip_special_tokens=True))
                for row in input_ids
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_LeftTheFunction()])


def model_generator(image: Any, max_new_tokens: int = 160) -> ModelGenerator:
    """Return a header-forcing generator over the embedded model of ``image``.

    Args:
        image: an open image with the model installed (``install_model``).
        max_new_tokens: the most body tokens per attempt.

    Returns:
        The generator; the model loads on its first call.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from batos_lab.llm import core_for

    return ModelGenerator(core_for(image), max_new_tokens=max_new_tokens)
