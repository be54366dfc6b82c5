"""Train the four small persona adapters shipped in lora_adapters/ (a few minutes each on CPU).

Each persona's voice examples (data/personas/<name>.jsonl: one {"prompt", "response"} per line)
are put through the chat template; the loss counts only the answer tokens. The result is a
rank-8 LoRA on q_proj/v_proj, saved in PEFT's folder format with the base model's fingerprint in
the safetensors metadata, so the image can refuse it on any other base model.

Usage:
    python scripts/train_persona_adapters.py [--epochs 6] [--only ROBIN BRICK]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PERSONAS = ("ROBIN", "BRICK", "BABS", "ALFRED")


def load_examples(name: str) -> list[dict[str, str]]:
    """Read one persona's examples."""
    path = REPO / "data" / "personas" / f"{name.lower()}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def encode(tokenizer, example: dict[str, str]) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """Return input ids and labels (-100 on the prompt) for one example."""
    user = [{"role": "user", "content": example["prompt"]}]
    prompt = tokenizer.apply_chat_template(
        user, add_generation_prompt=True, tokenize=True, return_dict=True
    )["input_ids"]
    full = tokenizer.apply_chat_template(
        [*user, {"role": "assistant", "content": example["response"]}],
        tokenize=True,
        return_dict=True,
    )["input_ids"]
    labels = [-100] * len(prompt) + list(full[len(prompt) :])
    return list(full), labels


def train_one(name: str, folder: Path, fingerprint: str, epochs: int, out_root: Path) -> float:
    """Train one persona adapter and save it under ``out_root/name``; return the last loss."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from batos_lab.llm.adapters import save_adapter_folder
    from batos_lab.llm.convert import DEFAULT_MODEL_ID

    torch.manual_seed(7)
    random.seed(7)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.05,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, config)
    data = [encode(tokenizer, ex) for ex in load_examples(name)]
    optimizer = torch.optim.AdamW([p for p in peft.parameters() if p.requires_grad], lr=1e-3)
    pad = tokenizer.pad_token_id or tokenizer.eos_token_id
    batch_size = 4
    peft.train()
    loss_value = float("nan")
    for epoch in range(epochs):
        random.shuffle(data)
        for start in range(0, len(data), batch_size):
            chunk = data[start : start + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chunk])
            labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chunk])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chunk])
            loss = peft(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            loss_value = float(loss)
        print(f"  {name} epoch {epoch + 1}/{epochs} loss {loss_value:.3f}", flush=True)
    save_adapter_folder(peft, out_root / name, fingerprint, DEFAULT_MODEL_ID)
    return loss_value


def main() -> None:
    """Train the adapters named on the command line (default: all four)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--only", nargs="*", default=list(PERSONAS))
    parser.add_argument("--out", type=Path, default=REPO / "lora_adapters")
    args = parser.parse_args()

    from batos_lab.llm.blobs import folder_fingerprint
    from batos_lab.llm.convert import cached_embedded_folder, file_sha256, offline

    offline()
    folder = cached_embedded_folder()
    fingerprint = folder_fingerprint({p.name: file_sha256(p) for p in folder.glob("*.safetensors")})
    for name in args.only:
        start = time.perf_counter()
        loss = train_one(name, folder, fingerprint, args.epochs, args.out)
        print(f"{name}: final loss {loss:.3f} in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
