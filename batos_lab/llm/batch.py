"""Mixed-adapter batches: several prompts in one ``generate``, each with its own expert.

PEFT routes each row of a batch through the LoRA weights named in ``adapter_names`` (and
``"__base__"`` through none), so facets of several personas decode together. Every expert of the
batch is made hot first and kept there until the batch is done.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from batos_lab.errors import PromptError
from batos_lab.llm.infer import InferResult, finish, generation_kwargs, prepare_prompt
from batos_lab.llm.memory import BASE

if TYPE_CHECKING:
    from batos_lab.llm.core import CognitiveCore

__all__ = ["generate_batch"]


def generate_batch(
    core: CognitiveCore,
    prompts: Sequence[str],
    adapters: Sequence[str | None],
    system: str | Sequence[str | None] | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    stop: Sequence[str] | None = None,
    truncate: bool = False,
    repetition_penalty: float = 1.0,
) -> list[InferResult]:
    """Answer several prompts in one ``generate`` call, each with its own adapter (or None).

    Args:
        core: the cognitive core.
        prompts: the user prompts.
        adapters: one adapter name (or None for the base model) per prompt.
        system: one system text for all, or one per prompt.
        max_new_tokens, temperature, stop, truncate, repetition_penalty: as for ``infer``.

    Returns:
        One InferResult per prompt, in order; ``ms`` is the time of the whole batch.

    Raises:
        PromptError: lengths differ, or a prompt is empty or too long.
        UnknownAdapter: an adapter name the image does not hold.
        BudgetError: the hot budget cannot hold all the batch's experts at once.
    """
    import torch

    if len(prompts) != len(adapters) or not prompts:
        raise PromptError(
            f"generate_batch needs one adapter (or None) per prompt; got {len(prompts)} prompts "
            f"and {len(adapters)} adapters."
        )
    systems: list[str | None] = (
        list(system) if isinstance(system, list | tuple) else [system] * len(prompts)  # type: ignore[list-item]
    )
    if len(systems) != len(prompts):
        raise PromptError(f"Give one system text or one per prompt; got {len(systems)}.")
    encoded = [
        prepare_prompt(core, p, s, max_new_tokens, truncate)
        for p, s in zip(prompts, systems, strict=True)
    ]
    proxies = {name: core.adapter(name) for name in adapters if name is not None}
    kwargs = generation_kwargs(core, max_new_tokens, temperature, stop, repetition_penalty)
    labels: dict[str | None, tuple[str | None, str | None]] = {None: (None, None)}
    slots: dict[str | None, str] = {None: BASE}
    degraded: dict[str, str] = {}
    memory = core.memory()
    pinned = frozenset(p.key for p in proxies.values())
    for name, proxy in proxies.items():
        try:
            record = memory.make_hot(proxy, pinned)
        except (OSError, KeyError, ValueError) as exc:  # the blob is gone: answer with the base
            message = (
                f"The adapter {proxy.key} could not be loaded from its blob "
                f"({type(exc).__name__}: {exc}); its prompts were answered by the base model."
            )
            memory.warnings.append(message)
            degraded[name] = message
            labels[name], slots[name] = (None, "degraded"), BASE
            continue
        memory.history.append(record)
        labels[name], slots[name] = (proxy.key, record.tier), memory.hot[proxy.key]
    model = core.generator()  # after make_hot: the first expert wraps the model in a PeftModel
    mixed = any(slot != BASE for slot in slots.values())
    if mixed:
        kwargs["adapter_names"] = [slots[a] for a in adapters]
    pad = kwargs["pad_token_id"]
    width = max(len(ids) for ids, _ in encoded)
    rows = [[pad] * (width - len(ids)) + ids for ids, _ in encoded]  # left padding for decoding
    mask = [[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in encoded]
    device = core.input_device()
    input_ids = torch.tensor(rows, device=device)
    attention = torch.tensor(mask, device=device)
    with torch.inference_mode():
        start = time.perf_counter()
        peft = core.peft_model()
        if mixed or peft is None:
            out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        else:
            with peft.disable_adapter():
                out = model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        ms = (time.perf_counter() - start) * 1e3
    tokenizer = core.tokenizer()
    eos = tokenizer.eos_token_id
    results = []
    for row, ((ids, notices), wanted) in enumerate(zip(encoded, adapters, strict=True)):
        new_ids = out[row, width:].tolist()
        if eos is not None and eos in new_ids:
            new_ids = new_ids[: new_ids.index(eos) + 1]
        text = tokenizer.decode(new_ids, skip_special_tokens=True)
        text, reason = finish(text, new_ids, eos, max_new_tokens, stop)
        used, tier = labels[wanted]
        notes = list(notices) + ([degraded[wanted]] if wanted in degraded else [])
        results.append(InferResult(text, len(ids), len(new_ids), ms, used, tier, reason, notes))
    return results
