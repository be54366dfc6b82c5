"""The cognitive core of an image: its base model, its LoRA experts and their memory manager.

``core_for(image)`` returns the one core of an open image. The persistent state (model blobs,
adapter proxies, the chosen runtime mode, budgets) lives in ``pLLM_obj`` and ``memory_manager``;
the model, tokenizer, PeftModel and memory tiers are volatile ``_v_`` attributes of the core,
built on first use and rebuilt after the image is reopened.

Example:
    >>> core = core_for(image)
    >>> core.infer("Who are you?", adapter="ROBIN").text
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batos_lab.errors import AdapterError, BudgetError, ModelNotInstalled, RuntimeModeError
from batos_lab.llm import adapters as _adapters
from batos_lab.llm.blobs import MODEL_SLOT, ModelRecord, materialize_folder, store_model_folder
from batos_lab.llm.convert import (
    DEFAULT_MODEL_ID,
    cached_embedded_folder,
    file_sha256,
    find_embedded_gguf,
    offline,
)
from batos_lab.llm.infer import InferResult, infer
from batos_lab.llm.manifest import Budgets, Manifest, default_budgets
from batos_lab.llm.memory import ActivationRecord, SynapticMemoryManager
from batos_lab.llm.runtime import (
    DEFAULT_CPU_MODE,
    DEFAULT_CUDA_MODE,
    KEEP_FLOAT,
    ModeMeasurement,
    choose_mode,
    default_device,
    load_base_model,
    measure_modes,
)

__all__ = ["CognitiveCore", "InstallReport", "core_for", "install_model"]

HOME = "pLLM_obj"
MEMORY_HOME = "memory_manager"


@dataclass
class InstallReport:
    """What ``install_model`` did."""

    record: ModelRecord
    installed: bool
    adapters: _adapters.ImportReport = field(default_factory=_adapters.ImportReport)


def _home(image: Any) -> Any:
    home = image.root.get(HOME)
    if home is None:
        raise ModelNotInstalled(
            f"The image has no {HOME} object; open it with genesis (open_image(path)) first."
        )
    return home


def install_model(
    image: Any,
    folder: str | Path | None = None,
    *,
    model_id: str | None = None,
    adapters_dir: str | Path | None = None,
    force: bool = False,
) -> InstallReport:
    """Store a base model's files as blobs on ``pLLM_obj`` and import the persona adapters.

    Does not commit: call it inside the caller's transaction. Cheap when the same model is
    already installed (the embedded default is recognised by its GGUF hash, a folder by the
    hashes of its files).

    Args:
        image: the open image.
        folder: a local HF model folder; None for the embedded SmolLM2-135M-Instruct.
        model_id: the name to record (default: from the folder's config).
        adapters_dir: adapter folders to import (default ``lora_adapters/`` of the repo);
            adapters refused for this model are reported in the result, not raised.
        force: store the files again even when the same model is installed.

    Returns:
        An InstallReport with the ModelRecord, whether files were stored, and the adapter import.

    Raises:
        ModelSourceError: the folder or the embedded GGUF cannot be used.
    """
    offline()
    home = _home(image)
    current: ModelRecord | None = home.get_slot(MODEL_SLOT, None)
    if folder is None:
        source = f"embedded:{file_sha256(find_embedded_gguf())[:16]}"
        if current is not None and current.source == source and not force:
            return InstallReport(current, False, _import_shipped(home, current, adapters_dir))
        path = cached_embedded_folder()
        record = store_model_folder(path, model_id=model_id or DEFAULT_MODEL_ID, source=source)
    else:
        path = Path(folder).expanduser().resolve()
        hashes = (
            {p.name: file_sha256(p) for p in path.iterdir() if p.is_file()}
            if (path.is_dir())
            else {}
        )
        if (
            current is not None
            and not force
            and dict(current.sha256) == hashes
            and (model_id is None or model_id == current.model_id)
        ):
            return InstallReport(current, False, _import_shipped(home, current, adapters_dir))
        record = store_model_folder(path, model_id=model_id, source=str(path), hashes=hashes)
    home.set_slot(MODEL_SLOT, record)
    home.set_slot("model_id", record.model_id)
    for registry_name in list(_adapters.adapter_names(home)):
        proxy = _adapters.get_adapter(home, registry_name)
        if proxy.base_model_sha256 != record.fingerprint:
            home.get_slot(_adapters.ADAPTERS_SLOT).pop(registry_name)  # trained on the old base
    return InstallReport(record, True, _import_shipped(home, record, adapters_dir))


def _import_shipped(
    home: Any, record: ModelRecord, adapters_dir: str | Path | None
) -> _adapters.ImportReport:
    if adapters_dir is None:
        from batos_lab.paths import ADAPTERS_DIR

        adapters_dir = ADAPTERS_DIR
    report = _adapters.import_adapters(home, Path(adapters_dir), record)
    if report.refused:
        home.set_slot("adapter_refusals", dict(report.refused))
    return report


_CORES: weakref.WeakKeyDictionary[Any, CognitiveCore] = weakref.WeakKeyDictionary()


def core_for(image: Any, *, mode: str | None = None, device: str | None = None) -> CognitiveCore:
    """Return the cognitive core of an open image (one per image object; built lazily)."""
    core = _CORES.get(image)
    if (
        core is None
        or (mode is not None and mode != core.mode)
        or (device is not None and device != core.device)
    ):
        core = CognitiveCore(image, mode=mode, device=device)
        _CORES[image] = core
    return core


class CognitiveCore:
    """The base model, tokenizer, PeftModel and memory manager of one open image.

    Args:
        image: the open image (with a model installed by ``install_model``).
        mode: runtime mode override (``fp32``, ``bf16``, ``int8``, ``nf4``); default: the mode
            recorded in ``pLLM_obj.runtime_mode``, else the one chosen by ``calibrate()``, else
            nf4 on CUDA and bf16 on CPU.
        device: ``cpu`` or ``cuda``; default: CUDA when available.
    """

    def __init__(self, image: Any, *, mode: str | None = None, device: str | None = None) -> None:
        offline()
        self.image = image
        self.device = device or default_device()
        home = _home(image)
        if mode is not None:
            self.mode, self.mode_source = mode, "argument"
        elif home.get_slot("runtime_mode", None):
            self.mode, self.mode_source = (
                str(home.get_slot("runtime_mode")),
                "pLLM_obj.runtime_mode",
            )
        elif (home.get_slot("calibration", None) or {}).get(self.device):
            chosen = home.get_slot("calibration")[self.device]["chosen"]
            self.mode, self.mode_source = str(chosen), "measured by calibrate()"
        elif self.device == "cuda":
            self.mode, self.mode_source = DEFAULT_CUDA_MODE, "default on CUDA"
        else:
            self.mode, self.mode_source = DEFAULT_CPU_MODE, "default on CPU (see calibrate())"
        self._v_folder: Path | None = None
        self._v_model: Any = None
        self._v_tokenizer: Any = None
        self._v_peft: Any = None
        self._v_memory: SynapticMemoryManager | None = None
        self._v_budgets: Budgets | None = None
        self.load_s = 0.0

    # ------------------------------------------------------------------ persistent side

    @property
    def home(self) -> Any:
        """``pLLM_obj`` of the image."""
        return _home(self.image)

    @property
    def record(self) -> ModelRecord:
        """The installed base model's record.

        Raises:
            ModelNotInstalled: no model in the image.
        """
        record: ModelRecord | None = self.home.get_slot(MODEL_SLOT, None)
        if record is None:
            raise ModelNotInstalled(
                "The image holds no base model. Run install_model(image) (genesis does) and "
                "commit, or `batos genesis --model PATH` for a local HF folder."
            )
        return record

    def adapter_names(self) -> list[str]:
        """Names of the experts in the image."""
        return _adapters.adapter_names(self.home)

    def adapter(self, name: str, version: int | None = None) -> _adapters.AdapterProxy:
        """Return an expert's active (or given) version; raises UnknownAdapter listing names."""
        return _adapters.get_adapter(self.home, name, version)

    def import_adapters(self, root: str | Path | None = None) -> _adapters.ImportReport:
        """Import adapter folders (default ``lora_adapters/``); the caller commits."""
        return _import_shipped(self.home, self.record, root)

    # ------------------------------------------------------------------ volatile side

    def folder(self) -> Path:
        """The volatile folder of links to the committed model blobs."""
        if self._v_folder is None:
            self._v_folder = materialize_folder(self.record)
        return self._v_folder

    def tokenizer(self) -> Any:
        """The tokenizer, loaded from the blobs on first use."""
        if self._v_tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(self.folder()))
            tokenizer.padding_side = "left"
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._v_tokenizer = tokenizer
        return self._v_tokenizer

    def model(self) -> Any:
        """The base model in the runtime mode, loaded from the blobs on first use."""
        if self._v_model is None:
            start = time.perf_counter()
            self._v_model = load_base_model(
                self.folder(), self.mode, self.device, self._keep_float()
            )
            self.load_s = time.perf_counter() - start
        return self._v_model

    def model_if_loaded(self) -> Any:
        """The loaded model (the PeftModel when wrapped), or None."""
        return self._v_peft if self._v_peft is not None else self._v_model

    def model_config(self) -> Any:
        """The HF config of the base model (read from the blob, without loading weights)."""
        if self._v_model is not None:
            return self._v_model.config
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(self.folder()))

    def _keep_float(self) -> tuple[str, ...]:
        targets = set(KEEP_FLOAT)
        for name in self.adapter_names():
            targets.update(self.adapter(name).target_modules)
        return tuple(sorted(targets))

    def check_targets_float(self, targets: Sequence[str]) -> None:
        """Refuse LoRA targets that int8 mode quantized (PEFT cannot wrap those layers).

        Raises:
            AdapterError: a target is quantized in this runtime mode.
        """
        if self.mode != "int8" or self._v_model is None:
            return
        import torch

        floats = {
            n.rsplit(".", 1)[-1]
            for n, m in self._v_model.named_modules()
            if isinstance(m, torch.nn.Linear)
        }
        missing = sorted(set(targets) - floats)
        if missing:
            raise AdapterError(
                f"The runtime mode int8 quantized {', '.join(missing)}, which an adapter targets. "
                "Reopen the core (core_for(image, mode=...)) after importing the adapter, so those "
                "layers stay float, or use mode 'fp32'."
            )

    def peft_model(self) -> Any:
        """The PeftModel wrapping the base model, or None before the first expert was loaded."""
        return self._v_peft

    def wrap_peft(self, slot: str, config: Any) -> Any:
        """Wrap the base model in a PeftModel whose first adapter is ``slot``."""
        from peft import get_peft_model

        self._v_peft = get_peft_model(self.model(), config, adapter_name=slot)
        self._v_peft.eval()
        return self._v_peft

    def generator(self) -> Any:
        """The module to call ``generate`` on: the PeftModel when there is one."""
        return self._v_peft if self._v_peft is not None else self.model()

    def input_device(self) -> Any:
        """The device input ids go to."""
        return next(self.model().parameters()).device

    # ------------------------------------------------------------------ memory

    @property
    def budgets(self) -> Budgets:
        """The memory budgets (from ``memory_manager.budgets`` or the device defaults)."""
        if self._v_budgets is None:
            stored = self.image.root.get(MEMORY_HOME)
            saved = stored.get_slot("budgets", None) if stored is not None else None
            self._v_budgets = Budgets(**dict(saved)) if saved else default_budgets(self.device)
        return self._v_budgets

    def memory(self) -> SynapticMemoryManager:
        """The Synaptic Memory Manager of this core."""
        if self._v_memory is None:
            self._v_memory = SynapticMemoryManager(self, self.budgets)
        return self._v_memory

    def configure_memory(self, *, persist: bool = True, **changes: int) -> Budgets:
        """Change memory budgets, checked now; stored on ``memory_manager`` when ``persist``.

        Raises:
            BudgetError: a budget too small for one expert, or a device budget smaller than the
                base weights, KV cache and overhead together.
        """
        data = self.budgets.as_dict()
        unknown = sorted(set(changes) - set(data))
        if unknown:
            raise BudgetError(f"Unknown budget(s) {unknown}; known: {sorted(data)}.")
        data.update(changes)
        budgets = Budgets(**data)
        if self._v_memory is not None:
            self._v_memory.check_budgets(budgets)
        else:
            SynapticMemoryManager(self, budgets)  # checks, then is dropped
        old = self._v_budgets
        self._v_budgets = budgets
        try:
            manifest = self.manifest()
            floor = manifest.used_bytes - manifest.hot_adapter_bytes
            if budgets.device_bytes < floor:
                raise BudgetError(
                    f"The device budget of {budgets.device_bytes} bytes is smaller than the base "
                    f"weights ({manifest.base_weights_bytes}), KV cache "
                    f"({manifest.kv_cache_bytes}) and overhead ({manifest.overhead_bytes}) "
                    f"together ({floor}). Raise device_bytes, or lower context_tokens or batch."
                )
        except BudgetError:
            self._v_budgets = old
            raise
        if self._v_memory is not None:
            self._v_memory.budgets = budgets
        home = self.image.root.get(MEMORY_HOME)
        if persist and home is not None:
            home.set_slot("budgets", budgets.as_dict())
        return budgets

    def activate_expert(self, name: str, version: int | None = None) -> ActivationRecord:
        """Make an expert hot and active; see SynapticMemoryManager.activate_expert."""
        return self.memory().activate_expert(name, version)

    def manifest(self) -> Manifest:
        """The device and tier accounting now."""
        return self.memory().manifest()

    # ------------------------------------------------------------------ thinking

    def infer(
        self,
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
        """Answer one prompt with an expert, or with the base model when ``adapter`` is None.

        Args:
            prompt: the user's text (chat template applied).
            adapter: an expert name, or None for the base model with every adapter disabled.
            system: an optional system text.
            max_new_tokens: the most tokens to generate.
            temperature: 0 for greedy decoding, above 0 to sample.
            stop: strings that end the answer (cut before them).
            stream: True prints text as it is generated (into a notebook cell); a callable
                receives each new piece of text.
            truncate: cut an over-long prompt (keeping its end) with a notice instead of raising.
            repetition_penalty: above 1 discourages repeating tokens (small adapters loop).

        Returns:
            InferResult with text, token counts, milliseconds, the expert and its tier.

        Raises:
            PromptError: empty prompt, or too long for the context without ``truncate``.
            UnknownAdapter: an adapter name the image does not hold (the known ones are listed).
        """
        return infer(
            self,
            prompt,
            adapter,
            system,
            max_new_tokens,
            temperature,
            stop,
            stream,
            truncate,
            repetition_penalty,
        )

    def generate_batch(
        self, prompts: Sequence[str], adapters: Sequence[str | None], **kwargs: Any
    ) -> list[InferResult]:
        """Answer several prompts in one ``generate``, each with its own expert or None."""
        from batos_lab.llm.batch import generate_batch

        return generate_batch(self, prompts, adapters, **kwargs)

    # ------------------------------------------------------------------ modes

    def calibrate(
        self, modes: Sequence[str] | None = None, min_agreement: float = 0.85
    ) -> list[ModeMeasurement]:
        """Measure every runtime mode here, record the fastest sensible one (the caller commits).

        The choice is stored in ``pLLM_obj.calibration[device]``; a core opened later uses it
        unless ``pLLM_obj.runtime_mode`` or the ``mode`` argument overrides it.
        """
        measurements = measure_modes(self.folder(), self.tokenizer(), modes, self.device)
        chosen = choose_mode(measurements, min_agreement)
        calibration = dict(self.home.get_slot("calibration", None) or {})
        calibration[self.device] = {
            "chosen": chosen,
            "min_agreement": min_agreement,
            "measurements": [m.as_dict() for m in measurements],
        }
        self.home.set_slot("calibration", json.loads(json.dumps(calibration)))
        return measurements

    def set_mode(self, mode: str) -> None:
        """Override the runtime mode (stored in ``pLLM_obj.runtime_mode``; the caller commits)."""
        from batos_lab.llm.runtime import MODES

        if mode not in MODES:
            raise RuntimeModeError(f"Unknown runtime mode {mode!r}; choose one of {MODES}.")
        self.home.set_slot("runtime_mode", mode)
        self.unload()
        self.mode, self.mode_source = mode, "pLLM_obj.runtime_mode"

    def unload(self) -> None:
        """Drop the model, PeftModel and tiers (they load again on next use)."""
        self._v_model = self._v_peft = self._v_memory = None
        import gc

        gc.collect()

    def __repr__(self) -> str:
        state = "loaded" if self._v_model is not None else "not loaded"
        return f"<CognitiveCore {self.device}/{self.mode} {state}>"
