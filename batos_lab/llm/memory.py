"""The Synaptic Memory Manager: LoRA experts moving between disk, RAM and the model.

Three tiers:

* **cold**: the adapter's blob in the image (always there);
* **warm**: its tensors parsed from the blob's bytes and kept in RAM, LRU under a byte budget;
* **hot**: its weights resident in the PeftModel, LRU under a byte budget.

The hot tier is a set of *slots*: LoRA adapters injected into the PeftModel once, through
PEFT's ``add_adapter``, with the largest rank and the union of target modules of the known
experts. The LoRA weights of a slot are re-seated as views of one flat buffer, and a warm
expert is kept in RAM in exactly that layout, so making it hot is one copy of its bytes into a
free (or least recently used) slot plus setting the per-layer scalings: no modules are rebuilt
and no file is written. A smaller rank is zero-padded, which leaves ``B @ A`` unchanged.
Slots are removed with PEFT's ``delete_adapter`` when the slot shape must grow or the manager
is reset. Switching between hot experts only re-points the active slot of each LoRA layer.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from batos_lab.errors import AdapterError, BudgetError
from batos_lab.llm.adapters import _KEY, AdapterProxy
from batos_lab.llm.manifest import Budgets, Manifest, build_manifest

if TYPE_CHECKING:
    from batos_lab.llm.core import CognitiveCore

__all__ = ["ActivationRecord", "SlotLayout", "SynapticMemoryManager", "WarmEntry", "slot_layout"]

BASE = "__base__"  # PEFT's name for "no adapter" in a mixed batch
_CHUNK = 32768  # torch's intra-op grain size, in elements


@dataclass
class ActivationRecord:
    """What one ``activate_expert`` call did."""

    name: str
    version: int
    tier: str  # where it was found: "hot", "warm", "cold"; "degraded" when it could not load
    bytes_moved: int
    ms: float
    slot: str | None = None
    evicted: list[str] = field(default_factory=list)
    slot_created: bool = False
    warning: str | None = None
    at: float = field(default_factory=time.time)


@dataclass
class WarmEntry:
    """An expert's weights in RAM, laid out flat exactly as a hot slot holds them.

    Attributes:
        key: ``NAME@vN``.
        flat: one fp32 tensor: for each target module in layout order, A (zero-padded to the slot
            rank) then B (zero-padded likewise; all zeros for a module the expert leaves alone).
        scalings: module name -> LoRA scaling (alpha / r).
        nbytes: bytes of ``flat``.
        spec: the slot shape (rank, targets) the layout was made for.
        source_bytes: bytes of the adapter's own tensors.
    """

    key: str
    flat: Any
    scalings: dict[str, float]
    nbytes: int
    spec: tuple[int, tuple[str, ...]]
    source_bytes: int


@dataclass
class SlotLayout:
    """Where each target module's A and B sit in a slot's flat buffer."""

    rank: int
    targets: tuple[str, ...]
    entries: list[tuple[str, int, int, int, int]]  # module, a_offset, in, b_offset, out
    numel: int


def slot_layout(shapes: Any, rank: int, targets: tuple[str, ...]) -> SlotLayout:
    """Lay out a slot of ``rank`` over every Linear of the base whose name ends in a target."""
    entries = []
    offset = 0
    for name in sorted(shapes):
        shape = shapes[name]
        module = name[: -len(".weight")] if name.endswith(".weight") else name
        if len(shape) != 2 or module.rsplit(".", 1)[-1] not in targets:
            continue
        out_features, in_features = shape
        a_offset = offset
        b_offset = a_offset + rank * in_features
        offset = b_offset + out_features * rank
        entries.append((module, a_offset, in_features, b_offset, out_features))
    return SlotLayout(rank, targets, entries, offset)


def _layer_scaling(config: dict[str, Any], module: str, rank: int) -> float:
    alpha = float(config.get("lora_alpha", rank))
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if module.endswith(pattern):
            alpha = float(value)
    if config.get("use_rslora"):
        return alpha / math.sqrt(rank)
    return alpha / rank


def _zero_copy_view(data: bytes, layout: SlotLayout) -> Any:
    """Return the adapter's tensor bytes as one flat fp32 view when they already sit in slot order.

    A safetensors file stores its tensors by name, which is the layout's order (module, A, B);
    when the adapter has the slot's rank and covers every slot module in fp32, its data section
    is the slot buffer already, and no tensor needs to be built. Otherwise returns None.
    """
    import json
    import warnings

    import torch

    header_len = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + header_len])
    header.pop("__metadata__", None)
    if len(header) != 2 * len(layout.entries):
        return None
    rank = layout.rank
    for module, a_offset, in_features, b_offset, out_features in layout.entries:
        for part, offset, shape in (
            ("A", a_offset, [rank, in_features]),
            ("B", b_offset, [out_features, rank]),
        ):
            info = header.get(f"base_model.model.{module}.lora_{part}.weight")
            if (
                info is None
                or info["dtype"] != "F32"
                or info["shape"] != shape
                or info["data_offsets"][0] != offset * 4
            ):
                return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a read-only buffer: the view is only ever copied from
        return torch.frombuffer(
            data, dtype=torch.float32, count=layout.numel, offset=8 + header_len
        )


def parse_adapter(proxy: AdapterProxy, data: bytes, layout: SlotLayout) -> WarmEntry:
    """Turn an adapter's safetensors bytes into a warm entry in the slot layout (no temp file).

    When the bytes already are in slot order (the usual case) the entry is a view of them;
    otherwise the tensors are parsed with ``safetensors.torch.load`` and zero-padded into place.
    """
    import torch
    from safetensors.torch import load as load_bytes

    config = proxy.config()
    flat_view = _zero_copy_view(data, layout)
    if flat_view is not None:
        view_scalings = {
            module: _layer_scaling(config, module, layout.rank) for module, *_ in layout.entries
        }
        return WarmEntry(
            proxy.key,
            flat_view,
            view_scalings,
            len(data),
            (layout.rank, layout.targets),
            layout.numel * 4,
        )
    tensors = load_bytes(data)
    parts: dict[str, dict[str, Any]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise AdapterError(f"Adapter {proxy.key} holds a tensor {key!r} that is not LoRA A/B.")
        parts.setdefault(match["module"], {})[match["part"]] = tensor
    flat = torch.zeros(layout.numel, dtype=torch.float32)
    scalings: dict[str, float] = {}
    rank = layout.rank
    for module, a_offset, in_features, b_offset, out_features in layout.entries:
        pair = parts.pop(module, None)
        if pair is None:
            continue  # B stays zero: the expert leaves this module alone
        a, b = pair["A"], pair["B"]
        r = a.shape[0]
        flat[a_offset : a_offset + rank * in_features].view(rank, in_features)[:r].copy_(a)
        flat[b_offset : b_offset + out_features * rank].view(out_features, rank)[:, :r].copy_(b)
        scalings[module] = _layer_scaling(config, module, r)
    if parts:
        raise AdapterError(
            f"Adapter {proxy.key} targets {sorted(parts)[0]!r}, which the hot slots do not cover."
        )
    source = sum(t.numel() * t.element_size() for t in tensors.values())
    return WarmEntry(
        proxy.key, flat, scalings, flat.numel() * 4, (layout.rank, layout.targets), source
    )


class SynapticMemoryManager:
    """Moves LoRA experts between the cold, warm and hot tiers of one cognitive core.

    Args:
        core: the CognitiveCore whose model and image it serves.
        budgets: byte budgets; checked here and again when experts are known.

    Raises:
        BudgetError: a budget too small for one expert (raised at configuration time).
    """

    def __init__(self, core: CognitiveCore, budgets: Budgets) -> None:
        self.core = core
        self.budgets = budgets
        self.warm: OrderedDict[str, WarmEntry] = OrderedDict()
        self.hot: OrderedDict[str, str] = OrderedDict()  # expert key -> slot
        self.slots: list[str] = []
        self.slot_rank = 0
        self.slot_targets: tuple[str, ...] = ()
        self.history: list[ActivationRecord] = []
        self.warnings: list[str] = []
        self.active: str | None = None
        self._lora_layers: dict[str, Any] = {}
        self._flat: dict[str, Any] = {}  # slot -> the flat buffer its LoRA weights are views of
        self._layout: SlotLayout | None = None
        self._selected_once: set[str] = set()
        self.check_budgets(budgets)

    # ------------------------------------------------------------------ budgets

    def slot_bytes(self, rank: int | None = None, targets: tuple[str, ...] | None = None) -> int:
        """Return the bytes one hot slot takes for a rank and target set (fp32 LoRA weights)."""
        rank = rank or self.slot_rank or self._wanted_spec()[0]
        targets = targets or self.slot_targets or self._wanted_spec()[1]
        return slot_layout(self.core.record.shapes, rank, targets).numel * 4

    def _wanted_spec(self) -> tuple[int, tuple[str, ...]]:
        rank, targets = 0, set[str]()
        for name in self.core.adapter_names():
            proxy = self.core.adapter(name)
            rank = max(rank, proxy.rank)
            targets.update(proxy.target_modules)
        return rank, tuple(sorted(targets))

    def check_budgets(self, budgets: Budgets) -> None:
        """Refuse budgets that cannot hold the largest known expert in each tier.

        Raises:
            BudgetError: the message names the budget, what it holds and what it must hold.
        """
        rank, targets = self._wanted_spec()
        if rank == 0:
            return
        largest = max(self.core.adapter(n).size for n in self.core.adapter_names())
        if budgets.warm_bytes < largest:
            raise BudgetError(
                f"The warm budget of {budgets.warm_bytes} bytes cannot hold one expert: the "
                f"largest adapter takes {largest} bytes. Give warm_bytes at least {largest}."
            )
        need = self.slot_bytes(rank, targets)
        if budgets.hot_bytes < need:
            raise BudgetError(
                f"The hot budget of {budgets.hot_bytes} bytes cannot hold one expert: one slot "
                f"of rank {rank} on {', '.join(targets)} takes {need} bytes. Give hot_bytes at "
                f"least {need}."
            )

    @property
    def max_slots(self) -> int:
        """How many experts the hot budget holds at once."""
        return max(1, self.budgets.hot_bytes // max(self.slot_bytes(), 1))

    # ------------------------------------------------------------------ tiers

    def layout(self) -> SlotLayout:
        """The flat layout of the current slot shape."""
        if self._layout is None or (self._layout.rank, self._layout.targets) != (
            self.slot_rank,
            self.slot_targets,
        ):
            self._layout = slot_layout(self.core.record.shapes, self.slot_rank, self.slot_targets)
        return self._layout

    def _ensure_warm(self, proxy: AdapterProxy) -> tuple[WarmEntry, str, int]:
        key = proxy.key
        entry = self.warm.get(key)
        if entry is not None and entry.spec == (self.slot_rank, self.slot_targets):
            self.warm.move_to_end(key)
            return entry, "warm", 0
        self.warm.pop(key, None)  # laid out for an older slot shape
        data = proxy.read_weights()  # the cold tier: raises when the blob file is gone
        entry = parse_adapter(proxy, data, self.layout())
        while self.warm and self.warm_bytes() + entry.nbytes > self.budgets.warm_bytes:
            self.warm.popitem(last=False)
        self.warm[key] = entry
        return entry, "cold", len(data)

    def _layers(self) -> dict[str, Any]:
        if not self._lora_layers:
            from peft.tuners.lora import LoraLayer

            inner = self.core.peft_model().base_model.model
            self._lora_layers = {
                name: module
                for name, module in inner.named_modules()
                if isinstance(module, LoraLayer)
            }
        return self._lora_layers

    def _fits(self, proxy: AdapterProxy) -> bool:
        return proxy.rank <= self.slot_rank and set(proxy.target_modules) <= set(self.slot_targets)

    def _reset_slots(self, proxy: AdapterProxy) -> None:
        """Remove every slot (delete_adapter) and size new ones for all known experts."""
        rank, targets = self._wanted_spec()
        rank = max(rank, proxy.rank)
        targets = tuple(sorted(set(targets) | set(proxy.target_modules)))
        self.core.check_targets_float(targets)
        peft = self.core.peft_model()
        if peft is not None:
            for slot in list(self.slots):
                if slot in peft.peft_config:
                    peft.delete_adapter(slot)
        self.slots.clear()
        self._flat.clear()
        self._selected_once.clear()
        self.hot.clear()
        self.active = None
        self._lora_layers = {}
        self.slot_rank, self.slot_targets = rank, targets
        self.check_budgets(self.budgets)

    def _new_slot(self) -> str:
        """Add a slot through PEFT, then re-seat its weights as views of one flat buffer."""
        import torch
        from peft import LoraConfig

        name = f"slot{len(self.slots)}"
        config = LoraConfig(
            r=self.slot_rank,
            lora_alpha=self.slot_rank,
            target_modules=list(self.slot_targets),
            init_lora_weights=False,
            lora_dropout=0.0,
            inference_mode=True,
            task_type="CAUSAL_LM",
        )
        peft = self.core.peft_model()
        if peft is None:
            self.core.wrap_peft(name, config)
        else:
            peft.add_adapter(name, config)
        self._lora_layers = {}
        layers = self._layers()
        layout = self.layout()
        rank = layout.rank
        first = layers[layout.entries[0][0]].lora_A[name].weight
        flat = torch.zeros(layout.numel, dtype=first.dtype, device=first.device)
        for module, a_offset, in_features, b_offset, out_features in layout.entries:
            layer = layers[module]
            a_view = flat[a_offset : a_offset + rank * in_features].view(rank, in_features)
            b_view = flat[b_offset : b_offset + out_features * rank].view(out_features, rank)
            layer.lora_A[name].weight = torch.nn.Parameter(a_view, requires_grad=False)
            layer.lora_B[name].weight = torch.nn.Parameter(b_view, requires_grad=False)
        self._flat[name] = flat
        self.slots.append(name)
        return name

    def _fill_slot(self, slot: str, entry: WarmEntry) -> int:
        """Copy a warm entry into a slot: one copy of the flat buffer, then the scalings."""
        import torch

        target = self._flat[slot]
        with torch.no_grad():
            if target.device.type == "cpu":
                # Pieces below torch's parallel grain size are copied by this thread alone: a
                # 2 MB copy handed to the intra-op pool can wait milliseconds for a busy core.
                for start in range(0, target.numel(), _CHUNK):
                    target[start : start + _CHUNK].copy_(entry.flat[start : start + _CHUNK])
            else:
                target.copy_(entry.flat, non_blocking=True)
        layers = self._layers()
        for module, scaling in entry.scalings.items():
            layers[module].scaling[slot] = scaling
        return int(entry.nbytes)

    def select(self, slot: str | None) -> None:
        """Make one slot the active adapter of every LoRA layer (None: leave them as they are)."""
        if slot is None:
            return
        if slot not in self._selected_once:
            for layer in self._layers().values():
                layer.set_adapter(slot, inference_mode=True)  # PEFT's own bookkeeping, once
            self._selected_once.add(slot)
        else:
            # What BaseTunerLayer.set_adapter ends with; its requires_grad bookkeeping was done
            # on the first selection and does not change in inference mode. One attribute per
            # layer keeps a switch between hot experts well under a millisecond.
            for layer in self._layers().values():
                layer._active_adapter = [slot]
        peft = self.core.peft_model()
        peft.base_model.active_adapter = slot  # as PeftModel.set_adapter leaves them
        peft.active_adapter = slot

    def make_hot(
        self, proxy: AdapterProxy, pinned: frozenset[str] = frozenset()
    ) -> ActivationRecord:
        """Bring one expert into a hot slot (without selecting it) and return what it took."""
        start = time.perf_counter()
        key = proxy.key
        if key in self.hot:
            self.hot.move_to_end(key)
            return ActivationRecord(
                proxy.name,
                proxy.version,
                "hot",
                0,
                (time.perf_counter() - start) * 1e3,
                self.hot[key],
            )
        created = False
        evicted: list[str] = []
        if not self.slots or not self._fits(proxy):
            evicted = list(self.hot)
            self._reset_slots(proxy)
        entry, tier, read = self._ensure_warm(proxy)
        free = [s for s in self.slots if s not in self.hot.values()]
        if free:
            slot = free[0]  # left by an evicted expert
        elif len(self.slots) < self.max_slots:
            slot = self._new_slot()
            created = True
        else:
            victims = [k for k in self.hot if k not in pinned]
            if not victims:
                raise BudgetError(
                    f"The hot budget holds {self.max_slots} expert(s) and all are needed at "
                    f"once; {key} does not fit. Raise hot_bytes to at least "
                    f"{(len(pinned) + 1) * self.slot_bytes()} bytes."
                )
            victim = victims[0]
            slot = self.hot.pop(victim)
            evicted.append(victim)
            if self.active == victim:
                self.active = None  # its slot now holds another expert
        moved = self._fill_slot(slot, entry)
        self.hot[key] = slot
        return ActivationRecord(
            proxy.name,
            proxy.version,
            tier,
            moved + read,
            (time.perf_counter() - start) * 1e3,
            slot,
            evicted,
            created,
        )

    def activate_expert(self, name: str, version: int | None = None) -> ActivationRecord:
        """Make an expert hot and active; return where it was found, bytes moved and time.

        A missing or unreadable blob degrades the expert to the base model: the record's tier
        is ``"degraded"``, its warning says why, and the warning is kept in ``warnings``.

        Raises:
            UnknownAdapter: no such expert; the message lists the known ones.
            BudgetError: the hot budget cannot hold it.
        """
        proxy = self.core.adapter(name, version)
        start = time.perf_counter()
        try:
            record = self.make_hot(proxy)
        except (OSError, KeyError, ValueError) as exc:
            # a blob file gone from the blob directory, or bytes that no longer parse
            message = (
                f"The adapter {proxy.key} could not be loaded from its blob ({type(exc).__name__}: "
                f"{exc}); answering with the base model instead. Re-import it from "
                f"lora_adapters/{proxy.name}/ to restore it."
            )
            self.warnings.append(message)
            record = ActivationRecord(
                proxy.name,
                proxy.version,
                "degraded",
                0,
                (time.perf_counter() - start) * 1e3,
                warning=message,
            )
            self.active = None
            self.history.append(record)
            return record
        if self.active != proxy.key:
            self.select(record.slot)
        self.active = proxy.key
        record.ms = (time.perf_counter() - start) * 1e3
        self.history.append(record)
        return record

    def evict(self, name: str, tier: str = "hot") -> bool:
        """Drop an expert from the hot tier (``"hot"``) or from both RAM tiers (``"warm"``)."""
        proxy = self.core.adapter(name)
        dropped = self.hot.pop(proxy.key, None) is not None
        if self.active == proxy.key:
            self.active = None
        if tier == "warm":
            dropped = self.warm.pop(proxy.key, None) is not None or dropped
        return dropped

    def reset(self) -> None:
        """Empty the warm and hot tiers and delete every slot from the PeftModel."""
        peft = self.core.peft_model()
        if peft is not None:
            for slot in self.slots[1:]:  # the first slot stays: the PeftModel keeps one adapter
                if slot in peft.peft_config:
                    peft.delete_adapter(slot)
                self._flat.pop(slot, None)
                self._selected_once.discard(slot)
        self.slots = self.slots[:1]
        self.hot.clear()
        self.warm.clear()
        self.active = None
        self._lora_layers = {}

    # ------------------------------------------------------------------ accounting

    def hot_bytes(self) -> int:
        """Bytes the slots take in the model."""
        return len(self.slots) * self.slot_bytes() if self.slots else 0

    def warm_bytes(self) -> int:
        """Bytes of the warm tier."""
        return sum(e.nbytes for e in self.warm.values())

    def manifest(self) -> Manifest:
        """Return the accounting of the device budget and of the three tiers."""
        return build_manifest(self.core, self)
