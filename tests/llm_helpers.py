"""Small real models and adapters built on the spot for the cognitive-core tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def make_tiny_model(folder: Path, tokenizer_from: Path) -> Path:
    """Write a randomly initialised 2-layer Llama with the embedded model's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (tokenizer_from / name).exists():
            shutil.copy(tokenizer_from / name, folder / name)
    return folder


def make_adapter(
    folder: Path,
    base: Path,
    fingerprint: str,
    rank: int = 4,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
    seed: int = 1,
) -> Path:
    """Write a LoRA adapter with random (non-zero) A and B for ``base`` in PEFT's format."""
    import torch
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM

    from batos_lab.llm.adapters import BASE_KEY

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(str(base))
    peft = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=list(targets))
    )
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    peft.save_pretrained(folder)
    weights = folder / "adapter_model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={BASE_KEY: fingerprint})
    config = json.loads((folder / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "tiny-test-llama"
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder
