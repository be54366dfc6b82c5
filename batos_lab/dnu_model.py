"""The embedded model as a JIT generator: the function header is forced, the model writes the body.

:func:`model_generator` wraps an image's cognitive core. It puts the JIT prompt (without its
trailing code fence and header) in the user turn of the chat template, and opens the assistant
turn itself with the fence, the ``def`` header and the first indentation. The model therefore
cannot chat, rename the function or change its parameters: it only continues the body. Decoding
stops as soon as a line leaves the function (no indentation), a fence closes, or the token budget
is spent, so no tokens are wasted on text that extraction would throw away.

The base model is used with every adapter disabled.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["BODY_INDENT", "ModelGenerator", "body_finished", "model_generator"]

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
        import torch

        tokenizer = self.core.tokenizer()
        header = prompt.rstrip().rsplit("\n", 1)[-1]
        # the prompt is a Python file ending with the header; the body starts on the next line
        ids = tokenizer.encode(prompt.rstrip() + "\n" + BODY_INDENT, add_special_tokens=False)
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "stopping_criteria": _stopping(tokenizer, len(ids)),
        }
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        input_ids = torch.tensor([ids], device=self.core.input_device())
        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            with _base_model(self.core) as model, torch.inference_mode():
                out = model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kwargs
                )
        finally:
            torch.set_num_threads(threads)
        body = tokenizer.decode(out[0, len(ids) :].tolist(), skip_special_tokens=True)
        return header + "\n" + BODY_INDENT + cut_body(body) + "\n"


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

            text = tokenizer.decode(input_ids[0, start:].tolist(), skip_special_tokens=True)
            done = body_finished(text)
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool)

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
