"""Inference: chat template, greedy or sampled decoding, streaming, counts and timings.

``infer`` answers one prompt with one expert (or the base model with every adapter disabled);
``prepare_prompt`` is shared with mixed batches and refuses empty prompts and prompts longer
than the configured context, or cuts them with a notice when asked to.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batos_lab.errors import PromptError

if TYPE_CHECKING:
    from batos_lab.llm.core import CognitiveCore

__all__ = ["InferResult", "TextCallbackStreamer", "infer", "prepare_prompt"]


@dataclass
class InferResult:
    """One answer with what it cost.

    Attributes:
        text: the answer (cut before a stop string when one was met).
        prompt_tokens, completion_tokens: token counts.
        ms: wall time of generation, milliseconds.
        adapter: the expert used (``NAME@vN``), or None for the base model.
        tier: where the expert was found (hot/warm/cold/degraded), None for the base model.
        finish_reason: ``"stop"`` (end of turn or stop string) or ``"length"``.
        notices: what the core changed or could not honour (truncation, degraded expert).
    """

    text: str
    prompt_tokens: int
    completion_tokens: int
    ms: float
    adapter: str | None = None
    tier: str | None = None
    finish_reason: str = "stop"
    notices: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Completion tokens per second of generation."""
        return self.completion_tokens / (self.ms / 1e3) if self.ms > 0 else 0.0

    def __str__(self) -> str:
        return self.text


class TextCallbackStreamer:
    """A transformers streamer that hands decoded text to a callback as tokens arrive."""

    def __init__(self, tokenizer: Any, callback: Callable[[str], None], skip: int = 1) -> None:
        self.tokenizer = tokenizer
        self.callback = callback
        self._skip = skip  # generate first puts the prompt; skip it
        self._ids: list[int] = []
        self._sent = 0

    def put(self, value: Any) -> None:
        """Receive new token ids (called by ``generate``)."""
        if self._skip:
            self._skip -= 1
            return
        self._ids.extend(int(t) for t in value.reshape(-1).tolist())
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
            return
        if len(text) > self._sent:
            self.callback(text[self._sent :])
            self._sent = len(text)

    def end(self) -> None:
        """Flush what is left (called by ``generate`` at the end)."""
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if len(text) > self._sent:
            self.callback(text[self._sent :])
            self._sent = len(text)


def _print_chunk(chunk: str) -> None:
    print(chunk, end="", flush=True)


def prepare_prompt(
    core: CognitiveCore, prompt: str, system: str | None, max_new_tokens: int, truncate: bool
) -> tuple[list[int], list[str]]:
    """Return the chat-templated token ids of a prompt and the notices about it.

    Raises:
        PromptError: an empty prompt, or one too long for the context when ``truncate`` is
            False (the message gives both lengths and the ways out).
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptError(
            f"The prompt is empty ({prompt!r}); give the model a question or an instruction."
        )
    if max_new_tokens <= 0:
        raise PromptError(f"max_new_tokens must be positive; got {max_new_tokens}.")
    tokenizer = core.tokenizer()
    limit = core.budgets.context_tokens - max_new_tokens
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": prompt}
    ]
    ids = _chat_ids(tokenizer, messages)
    notices: list[str] = []
    if len(ids) <= limit:
        return ids, notices
    if not truncate:
        raise PromptError(
            f"The prompt takes {len(ids)} tokens with the chat template, and with "
            f"max_new_tokens={max_new_tokens} that passes the context of "
            f"{core.budgets.context_tokens} tokens. Shorten it, lower max_new_tokens, or pass "
            "truncate=True to keep its end and be told what was cut."
        )
    overhead = len(ids) - len(tokenizer.encode(prompt, add_special_tokens=False))
    keep = limit - overhead
    if keep <= 0:
        raise PromptError(
            f"The system text and chat template alone take {overhead} tokens, more than the "
            f"{limit} left for the prompt; shorten the system text or raise context_tokens."
        )
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    cut = len(prompt_ids) - keep
    messages[-1]["content"] = tokenizer.decode(prompt_ids[cut:])
    ids = _chat_ids(tokenizer, messages)
    while len(ids) > limit and keep > 1:  # re-tokenising a decoded cut can differ by a token
        keep -= len(ids) - limit
        messages[-1]["content"] = tokenizer.decode(prompt_ids[len(prompt_ids) - keep :])
        ids = _chat_ids(tokenizer, messages)
    notices.append(
        f"The prompt was cut: its first {len(prompt_ids) - keep} of {len(prompt_ids)} tokens were "
        f"dropped to fit the context of {core.budgets.context_tokens} tokens with "
        f"max_new_tokens={max_new_tokens}."
    )
    return ids, notices


def _chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    out = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(out["input_ids"])


def generation_kwargs(
    core: CognitiveCore,
    max_new_tokens: int,
    temperature: float,
    stop: Sequence[str] | None,
    repetition_penalty: float = 1.0,
) -> dict[str, Any]:
    """Return the ``generate`` keyword arguments for a decoding choice."""
    if temperature < 0:
        raise PromptError(f"temperature must be >= 0 (0 is greedy); got {temperature}.")
    if repetition_penalty <= 0:
        raise PromptError(f"repetition_penalty must be > 0 (1 is none); got {repetition_penalty}.")
    tokenizer = core.tokenizer()
    kwargs: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "repetition_penalty": repetition_penalty if repetition_penalty != 1.0 else None,
    }
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if stop:
        kwargs.update(stop_strings=list(stop), tokenizer=tokenizer)
    return kwargs


def finish(
    text: str,
    new_ids: Sequence[int],
    eos: int | None,
    max_new_tokens: int,
    stop: Sequence[str] | None,
) -> tuple[str, str]:
    """Return the answer cut before the first stop string, and the finish reason."""
    reason = "length" if len(new_ids) >= max_new_tokens else "stop"
    if eos is not None and eos in new_ids:
        reason = "stop"
    for marker in stop or ():
        at = text.find(marker)
        if at >= 0:
            text, reason = text[:at], "stop"
    return text.strip(), reason


@contextlib.contextmanager
def _adapter_context(
    core: CognitiveCore, adapter: str | None, notices: list[str]
) -> Iterator[tuple[str | None, str | None]]:
    """Select the expert for one call, or disable every adapter for the base model."""
    if adapter is not None:
        record = core.activate_expert(adapter)
        if record.tier != "degraded":
            yield f"{record.name}@v{record.version}", record.tier
            return
        notices.append(record.warning or f"The adapter {adapter} is degraded to the base model.")
        adapter, tier = None, "degraded"
    else:
        tier = None
    peft = core.peft_model()
    if peft is None:
        yield None, tier
        return
    with peft.disable_adapter():
        yield None, tier


def infer(
    core: CognitiveCore,
    prompt: str,
    adapter: str | None = None,
    system: str | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    stream: bool | Callable[[str], None] = False,
    truncate: bool = False,
    repetition_penalty: float = 1.0,
) -> InferResult:
    """Answer one prompt; see :meth:`CognitiveCore.infer`."""
    import torch

    ids, notices = prepare_prompt(core, prompt, system, max_new_tokens, truncate)
    kwargs = generation_kwargs(core, max_new_tokens, temperature, stop, repetition_penalty)
    if adapter is not None:
        core.adapter(adapter)  # unknown names fail here, before any work
    if stream:
        callback = stream if callable(stream) else _print_chunk
        kwargs["streamer"] = TextCallbackStreamer(core.tokenizer(), callback)
    input_ids = torch.tensor([ids], device=core.input_device())
    with _adapter_context(core, adapter, notices) as (used, tier), torch.inference_mode():
        model = core.generator()
        start = time.perf_counter()
        out = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
        )
        ms = (time.perf_counter() - start) * 1e3
    new_ids = out[0, len(ids) :].tolist()
    tokenizer = core.tokenizer()
    text = tokenizer.decode(new_ids, skip_special_tokens=True)
    text, reason = finish(text, new_ids, tokenizer.eos_token_id, max_new_tokens, stop)
    if stream and not callable(stream):
        print()
    return InferResult(text, len(ids), len(new_ids), ms, used, tier, reason, notices)
