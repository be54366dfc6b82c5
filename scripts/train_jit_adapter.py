"""Train the JIT adapter shipped in lora_adapters/JIT (about an hour on a 2-core CPU).

The pairs come from :func:`batos_lab.jit_training.training_pairs`: every worked example of the
banks, asked exactly as the pipeline asks the embedded model (its prompt, with that example
left out, ending in the forced header and indentation), answered with the example's body. The
loss counts the body tokens only.

To keep a step cheap on a CPU, the prompt runs once without gradients (through the adapter, so
the body attends to what the adapter makes of it) and only the body is trained on top of that
cache: the adapter learns how to write a body for a prompt, not how to read the prompt. A few
examples are held out by selector and their loss is printed before and after, as a check that
the adapter learned something that carries over.

The adapter has the persona adapters' shape (rank 8 on q_proj and v_proj), so the memory
manager's hot slots hold it beside them without being resized.

Usage:
    python scripts/train_jit_adapter.py [--epochs 2] [--lr 5e-4] [--out lora_adapters]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "JIT"


def encode(tokenizer, pairs):  # type: ignore[no-untyped-def]
    """Token ids of each pair: the prompt, and the body the model should write after it."""
    return [
        (
            tokenizer.encode(p.prompt, add_special_tokens=False),
            tokenizer.encode(p.completion, add_special_tokens=False),
        )
        for p in pairs
    ]


def body_loss(model, prompt_ids, body_ids):  # type: ignore[no-untyped-def]
    """Mean cross-entropy of the body tokens after the prompt (prompt without gradients)."""
    import torch

    with torch.no_grad():
        cache = model(input_ids=torch.tensor([prompt_ids[:-1]]), use_cache=True).past_key_values
    tail = torch.tensor([prompt_ids[-1:] + body_ids])
    logits = model(input_ids=tail, past_key_values=cache, use_cache=True).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits.float(), torch.tensor(body_ids))


def mean_loss(model, data) -> float:  # type: ignore[no-untyped-def]
    """The mean body loss over ``data`` without training."""
    import torch

    with torch.no_grad():
        return statistics.mean(float(body_loss(model, p, b)) for p, b in data)


def main() -> None:
    """Build the pairs, train, report held-out loss, save ``lora_adapters/JIT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--accumulate", type=int, default=4, help="pairs per optimizer step")
    parser.add_argument("--held-out", type=int, default=12, help="examples kept for the check")
    parser.add_argument("--limit", type=int, default=0, help="train on this many pairs (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "lora_adapters")
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from batos_lab.jit_training import training_pairs
    from batos_lab.llm.adapters import save_adapter_folder
    from batos_lab.llm.blobs import folder_fingerprint
    from batos_lab.llm.convert import (
        DEFAULT_MODEL_ID,
        cached_embedded_folder,
        file_sha256,
        offline,
    )

    offline()
    torch.set_num_threads(args.threads)
    torch.manual_seed(11)
    rng = random.Random(11)
    folder = cached_embedded_folder()
    fingerprint = folder_fingerprint({p.name: file_sha256(p) for p in folder.glob("*.safetensors")})
    pairs, skipped = training_pairs()
    for why in skipped:
        print(f"skipped: {why}")
    selectors = sorted({p.selector for p in pairs})
    held = set(rng.sample(selectors, args.held_out))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    train = encode(tokenizer, [p for p in pairs if p.selector not in held])
    check = encode(tokenizer, [p for p in pairs if p.selector in held])
    if args.limit:
        train = rng.sample(train, min(args.limit, len(train)))
    print(f"{len(train)} training pairs, {len(check)} held-out pairs ({len(held)} examples)")

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )  # fmt: skip
    peft = get_peft_model(model, config)
    peft.eval()
    print(f"held-out body loss before: {mean_loss(peft, check):.3f}", flush=True)
    trainable = [p for p in peft.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.0)
    steps = args.epochs * ((len(train) + args.accumulate - 1) // args.accumulate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.05, 1 - s / steps))
    started = time.perf_counter()
    for epoch in range(args.epochs):
        peft.train()
        rng.shuffle(train)
        losses: list[float] = []
        for index, (prompt_ids, body_ids) in enumerate(train, start=1):
            loss = body_loss(peft, prompt_ids, body_ids)
            (loss / args.accumulate).backward()
            losses.append(float(loss.detach()))
            if index % args.accumulate == 0 or index == len(train):
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if index % 40 == 0:
                elapsed = time.perf_counter() - started
                print(
                    f"  epoch {epoch + 1} pair {index}/{len(train)} "
                    f"loss {statistics.mean(losses[-40:]):.3f} ({elapsed:.0f} s)",
                    flush=True,
                )
        peft.eval()
        print(
            f"epoch {epoch + 1}: train loss {statistics.mean(losses):.3f}, "
            f"held-out {mean_loss(peft, check):.3f}",
            flush=True,
        )
    target = save_adapter_folder(peft, args.out / NAME, fingerprint, DEFAULT_MODEL_ID)
    print(f"saved {target} after {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
