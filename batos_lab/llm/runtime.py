"""Runtime modes of the base model: how its weights sit in memory while it thinks.

``fp32`` and ``bf16`` keep every weight in floating point; ``int8`` quantizes the Linear layers
dynamically with torch (weights int8, activations quantized on the fly), except the modules
LoRA adapters attach to, which stay float so PEFT can wrap them, and ``down_proj``, whose inputs
carry activation outliers that per-tensor quantization crushes (with it quantized, greedy
choices agreed with fp32 at about 0.5 here); ``nf4`` is 4-bit NormalFloat through bitsandbytes
(the design's choice on CUDA; it also runs on CPU). On CPU, ``calibrate()`` measures every mode
and keeps the fastest whose greedy choices agree with fp32 (:func:`measure_modes`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batos_lab.errors import RuntimeModeError

__all__ = [
    "DEFAULT_CPU_MODE",
    "DEFAULT_CUDA_MODE",
    "KEEP_FLOAT",
    "MODES",
    "ModeMeasurement",
    "available_modes",
    "choose_mode",
    "default_device",
    "load_base_model",
    "measure_modes",
    "model_bytes",
]

MODES = ("fp32", "bf16", "int8", "nf4")
DEFAULT_CUDA_MODE = "nf4"
#: The measured choice on a 2-core CPU (bf16 agreed with fp32 on 0.99 of greedy choices, int8
#: on far fewer); calibrate() re-measures on the machine at hand.
DEFAULT_CPU_MODE = "bf16"
#: Linear layers left in float under int8, so that LoRA adapters can attach to them.
KEEP_FLOAT = ("q_proj", "k_proj", "v_proj", "o_proj")
#: Linear layers left in float under int8 because quantizing them loses too much.
INT8_SENSITIVE = ("down_proj",)

PROBES = (
    "What is the capital of France? Answer in one sentence.",
    "Name three colours of the rainbow.",
    "Write one sentence about the sea.",
)


def default_device() -> str:
    """Return ``cuda`` when a GPU is visible to torch, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def available_modes(device: str) -> list[str]:
    """Return the modes that can run on ``device`` in this environment."""
    import importlib.util

    modes = ["fp32", "bf16"]
    if device == "cpu":
        modes.append("int8")
    if importlib.util.find_spec("bitsandbytes") is not None:
        modes.append("nf4")
    return modes


def _check_mode(mode: str, device: str) -> None:
    if mode not in MODES:
        raise RuntimeModeError(f"Unknown runtime mode {mode!r}; choose one of {', '.join(MODES)}.")
    if mode not in available_modes(device):
        raise RuntimeModeError(
            f"The runtime mode {mode!r} cannot run on {device} here (available: "
            f"{', '.join(available_modes(device))}). int8 is the CPU path of torch's dynamic "
            "quantization; nf4 needs `pip install bitsandbytes`."
        )


def _quantize_int8(model: Any, keep_float: Sequence[str]) -> Any:
    import torch
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    spec = {
        name: default_dynamic_qconfig
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and name.rsplit(".", 1)[-1] not in (*keep_float, *INT8_SENSITIVE)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch announces the move of this API to torchao
        return quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)


def load_base_model(
    folder: Path, mode: str, device: str | None = None, keep_float: Sequence[str] = KEEP_FLOAT
) -> Any:
    """Load a causal LM from an HF folder in the given runtime mode, ready for inference.

    Args:
        folder: the HF folder (for the image: the folder of links to committed blobs).
        mode: one of ``MODES``.
        device: ``cpu`` or ``cuda``; default: :func:`default_device`.
        keep_float: module names left in float under ``int8`` (LoRA targets).

    Returns:
        The model, in eval mode.

    Raises:
        RuntimeModeError: the mode is unknown or unavailable on the device.
    """
    import torch
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    _check_mode(mode, device)
    kwargs: dict[str, Any] = {}
    if mode == "nf4":
        from transformers import BitsAndBytesConfig

        compute = torch.bfloat16 if device == "cuda" else torch.float32
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute
        )
        kwargs["device_map"] = {"": device if device == "cpu" else 0}
        kwargs["dtype"] = compute
    else:
        kwargs["dtype"] = torch.bfloat16 if mode == "bf16" else torch.float32
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    if mode != "nf4" and device != "cpu":
        model = model.to(device)
    if mode == "int8":
        model = _quantize_int8(model, keep_float)
    model.eval()
    return model


def model_bytes(model: Any) -> int:
    """Return the bytes the model's weights take, counting dynamic int8 packed weights too."""
    import torch

    seen: set[int] = set()
    total = 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        total += tensor.numel() * tensor.element_size()
    for module in model.modules():
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and hasattr(module, "_packed_params"):
            weight = weight_fn()
            total += weight.numel() * weight.element_size()
            if isinstance(module.bias(), torch.Tensor):
                total += module.bias().numel() * 4
    return total


@dataclass
class ModeMeasurement:
    """One runtime mode measured on this machine."""

    mode: str
    device: str
    tokens_per_s: float
    agreement: float  # share of greedy next-token choices equal to fp32's on fp32's answers
    weight_bytes: int
    load_s: float

    def as_dict(self) -> dict[str, Any]:
        """Return the measurement as plain data."""
        return asdict(self)


def _decode_rate(model: Any, inputs: dict[str, Any], tokens: int) -> float:
    import torch

    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=2, do_sample=False)
        start = time.perf_counter()
        out = model.generate(
            **inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False
        )
        elapsed = time.perf_counter() - start
    return float(out.shape[1] - inputs["input_ids"].shape[1]) / elapsed


def _agreement(model: Any, sequences: list[Any], prompt_lens: list[int]) -> float:
    import torch

    same = total = 0
    with torch.inference_mode():
        for seq, start in zip(sequences, prompt_lens, strict=True):
            logits = model(seq.to(model.device)).logits[0, start - 1 : -1]
            choice = logits.argmax(-1).cpu()
            target = seq[0, start:]
            same += int((choice == target).sum())
            total += int(target.numel())
    return same / max(total, 1)


def measure_modes(
    folder: Path,
    tokenizer: Any,
    modes: Sequence[str] | None = None,
    device: str | None = None,
    tokens: int = 32,
) -> list[ModeMeasurement]:
    """Measure decode speed and agreement with fp32 for each mode, one model at a time.

    fp32 answers a few probe prompts greedily; each mode's agreement is the share of positions
    where its own greedy choice, fed fp32's answer so far, equals fp32's token.

    Returns:
        One measurement per mode, fp32 first.
    """
    import gc

    device = device or default_device()
    modes = list(modes or available_modes(device))
    if "fp32" in modes:
        modes.remove("fp32")
    modes.insert(0, "fp32")
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        for p in PROBES
    ]
    sequences: list[Any] = []
    results: list[ModeMeasurement] = []
    for mode in modes:
        start = time.perf_counter()
        model = load_base_model(folder, mode, device)
        load_s = time.perf_counter() - start
        inputs = {k: v.to(model.device) for k, v in prompts[0].items()}
        rate = _decode_rate(model, inputs, tokens)
        if mode == "fp32":
            import torch

            with torch.inference_mode():
                for p in prompts:
                    out = model.generate(
                        **{k: v.to(model.device) for k, v in p.items()},
                        max_new_tokens=tokens,
                        do_sample=False,
                    )
                    sequences.append(out.cpu())
        agreement = _agreement(model, sequences, [p["input_ids"].shape[1] for p in prompts])
        results.append(ModeMeasurement(mode, device, rate, agreement, model_bytes(model), load_s))
        del model
        gc.collect()
    return results


def choose_mode(measurements: Sequence[ModeMeasurement], min_agreement: float = 0.85) -> str:
    """Return the fastest measured mode whose agreement with fp32 is at least ``min_agreement``."""
    good = [m for m in measurements if m.agreement >= min_agreement] or [
        m for m in measurements if m.mode == "fp32"
    ]
    if not good:
        raise RuntimeModeError("No runtime mode was measured; measure fp32 at least.")
    return max(good, key=lambda m: m.tokens_per_s).mode
