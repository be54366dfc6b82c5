"""The device manifest: where the memory of the cognitive core goes, against a budget.

The budget is the GPU's memory ("VRAM") on CUDA and the machine's RAM on CPU. The manifest adds
the base weights as loaded in the runtime mode, an estimate of the KV cache for the configured
context and batch, the hot adapter slots and a framework overhead, and says what is left and
which experts to evict to make room for a given size.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from batos_lab.errors import BudgetError

if TYPE_CHECKING:
    from batos_lab.llm.core import CognitiveCore
    from batos_lab.llm.memory import SynapticMemoryManager

__all__ = ["Budgets", "Manifest", "build_manifest", "default_budgets", "kv_cache_bytes"]

MiB = 1 << 20


@dataclass
class Budgets:
    """Byte budgets of the memory manager and the context it plans for.

    Attributes:
        device_bytes: what the device may give the core (VRAM on CUDA, RAM on CPU).
        warm_bytes: RAM for parsed adapter tensors.
        hot_bytes: model memory for resident adapters (slots).
        context_tokens: the longest prompt plus answer the core accepts.
        batch: sequences the KV-cache estimate plans for.
        overhead_bytes: framework overhead (allocator, CUDA context, Python objects).
    """

    device_bytes: int
    warm_bytes: int = 64 * MiB
    hot_bytes: int = 16 * MiB
    context_tokens: int = 2048
    batch: int = 4
    overhead_bytes: int = 256 * MiB

    def __post_init__(self) -> None:
        for name in ("device_bytes", "warm_bytes", "hot_bytes", "context_tokens", "batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise BudgetError(f"Budgets.{name} must be a positive integer; got {value!r}.")
        if self.overhead_bytes < 0:
            raise BudgetError(f"Budgets.overhead_bytes must be >= 0; got {self.overhead_bytes}.")

    def as_dict(self) -> dict[str, int]:
        """Return the budgets as plain data (for slots and JSON)."""
        return asdict(self)


def _total_ram() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_budgets(device: str) -> Budgets:
    """Return budgets for the device: all of a GPU's memory, or half of the machine's RAM."""
    if device == "cuda":
        import torch

        total = int(torch.cuda.get_device_properties(0).total_memory)
        return Budgets(device_bytes=total, overhead_bytes=512 * MiB)
    return Budgets(device_bytes=_total_ram() // 2)


def kv_cache_bytes(config: Any, context_tokens: int, batch: int, element_size: int) -> int:
    """Return the KV-cache bytes of a decoder for ``batch`` sequences of ``context_tokens``."""
    layers = int(config.num_hidden_layers)
    heads = int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    head_dim = int(
        getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    )
    return 2 * layers * heads * head_dim * context_tokens * batch * element_size


@dataclass
class Manifest:
    """The accounting of the device budget and the three tiers at one moment."""

    device: str
    mode: str
    mode_source: str
    budget_bytes: int
    base_weights_bytes: int
    kv_cache_bytes: int
    hot_adapter_bytes: int
    overhead_bytes: int
    warm_bytes: int
    warm_budget_bytes: int
    hot_budget_bytes: int
    hot: list[str]
    warm: list[str]
    cold: list[str]
    slots: int
    max_slots: int
    last: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def used_bytes(self) -> int:
        """Bytes accounted on the device."""
        return (
            self.base_weights_bytes
            + self.kv_cache_bytes
            + self.hot_adapter_bytes
            + self.overhead_bytes
        )

    @property
    def free_bytes(self) -> int:
        """Budget left (negative when over budget)."""
        return self.budget_bytes - self.used_bytes

    def evict_for(self, size: int) -> list[str]:
        """Return the hot experts to evict, least recently used first, to fit ``size`` bytes.

        Raises:
            BudgetError: even evicting every hot expert would not make room.
        """
        if size <= self.free_bytes:
            return []
        per_slot = self.hot_adapter_bytes // max(self.slots, 1)
        free = self.free_bytes
        chosen: list[str] = []
        for key in self.hot:  # least recently used first
            chosen.append(key)
            free += per_slot
            if free >= size:
                return chosen
        raise BudgetError(
            f"{size} bytes do not fit in the {self.device} budget of {self.budget_bytes} bytes "
            f"even with every hot expert evicted ({free} bytes would be free). Lower the "
            "context or batch, pick a smaller runtime mode, or raise the budget."
        )

    def as_dict(self) -> dict[str, Any]:
        """Return the manifest as plain data, with the totals."""
        data = asdict(self)
        data["used_bytes"] = self.used_bytes
        data["free_bytes"] = self.free_bytes
        return data


def build_manifest(core: CognitiveCore, memory: SynapticMemoryManager) -> Manifest:
    """Account the core's device memory and tiers now."""
    budgets = memory.budgets
    model = core.model_if_loaded()
    if model is not None:
        from batos_lab.llm.runtime import model_bytes

        base = model_bytes(model) - memory.hot_bytes()
    else:
        base = int(core.record.parameters * 4)
    element = 2 if core.mode in ("bf16", "nf4") and core.device == "cuda" else 4
    if core.mode == "bf16":
        element = 2
    kv = kv_cache_bytes(core.model_config(), budgets.context_tokens, budgets.batch, element)
    cold = [core.adapter(n).key for n in core.adapter_names()]
    return Manifest(
        device=core.device,
        mode=core.mode,
        mode_source=core.mode_source,
        budget_bytes=budgets.device_bytes,
        base_weights_bytes=base,
        kv_cache_bytes=kv,
        hot_adapter_bytes=memory.hot_bytes(),
        overhead_bytes=budgets.overhead_bytes,
        warm_bytes=memory.warm_bytes(),
        warm_budget_bytes=budgets.warm_bytes,
        hot_budget_bytes=budgets.hot_bytes,
        hot=list(memory.hot),
        warm=list(memory.warm),
        cold=cold,
        slots=len(memory.slots),
        max_slots=memory.max_slots if cold else 0,
        last=[asdict(r) for r in memory.history[-8:]],
        warnings=list(memory.warnings[-8:]),
    )
