"""The Synaptic Memory Manager: tiers, budgets, eviction, manifest, degrade, mixed batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from batos_lab.errors import BudgetError, UnknownAdapter
from batos_lab.image import Image
from batos_lab.llm import Budgets, CognitiveCore
from batos_lab.paths import ADAPTERS_DIR


def tiny_core(image: Image, **budgets: int) -> CognitiveCore:
    core = CognitiveCore(image, mode="fp32", device="cpu")
    if budgets:
        core.configure_memory(persist=False, **budgets)
    return core


def logits(core: CognitiveCore, text: str = "hello there") -> object:
    import torch

    ids = torch.tensor([core.tokenizer().encode(text)])
    with torch.inference_mode():
        return core.generator()(input_ids=ids).logits[0, -1].clone()


def test_tiers_cold_then_hot_then_warm(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    one = core.memory().slot_bytes()
    core.configure_memory(persist=False, hot_bytes=one)  # room for one expert only
    first = core.activate_expert("ONE")
    assert first.tier == "cold" and first.bytes_moved > 0 and first.slot_created
    assert core.activate_expert("ONE").tier == "hot"
    second = core.activate_expert("TWO")
    assert second.tier == "cold" and second.evicted == ["ONE@v1"]
    back = core.activate_expert("ONE")
    assert back.tier == "warm" and back.evicted == ["TWO@v1"] and not back.slot_created
    assert [r.tier for r in core.memory().history] == ["cold", "hot", "cold", "warm"]


def test_slot_load_matches_peft_load_adapter(
    tiny_image: Image, tiny_model_dir: dict[str, Path]
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    core = tiny_core(tiny_image)
    for name in ("WIDE", "ONE"):  # ONE (rank 4) goes into a rank-8 slot: zero-padded
        core.activate_expert(name)
        ours = logits(core)
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir["model"]))
        ref = PeftModel.from_pretrained(base, str(tiny_model_dir["adapters"] / name)).eval()
        ids = torch.tensor([core.tokenizer().encode("hello there")])
        with torch.inference_mode():
            theirs = ref(input_ids=ids).logits[0, -1]
        assert torch.allclose(ours, theirs, atol=1e-4), name


def test_base_model_has_every_adapter_disabled(
    tiny_image: Image, tiny_model_dir: dict[str, Path]
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    core = tiny_core(tiny_image)
    core.activate_expert("ONE")
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir["model"])).eval()
    ids = core.tokenizer().apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, return_dict=True
    )
    with torch.inference_mode():
        want = base.generate(
            input_ids=torch.tensor([ids["input_ids"]]), max_new_tokens=5, do_sample=False
        )[0, len(ids["input_ids"]) :]
    got = core.infer("hi", adapter=None, max_new_tokens=5)
    assert (
        got.adapter is None
        and got.text == core.tokenizer().decode(want, skip_special_tokens=True).strip()
    )
    assert core.infer("hi", adapter="ONE", max_new_tokens=5).adapter == "ONE@v1"


def test_budget_too_small_is_refused_at_configuration(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    with pytest.raises(BudgetError, match="hot budget of 100 bytes cannot hold one expert"):
        core.configure_memory(persist=False, hot_bytes=100)
    with pytest.raises(BudgetError, match="warm budget of 10 bytes cannot hold one expert"):
        core.configure_memory(persist=False, warm_bytes=10)
    with pytest.raises(BudgetError, match="device budget of 1000 bytes is smaller"):
        core.configure_memory(persist=False, device_bytes=1000)
    with pytest.raises(BudgetError, match="must be a positive integer"):
        Budgets(device_bytes=0)


def test_budget_is_persisted_on_memory_manager(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    core.configure_memory(context_tokens=1024)
    tiny_image.commit("budgets")
    assert tiny_image.root["memory_manager"].get_slot("budgets")["context_tokens"] == 1024
    assert tiny_core(tiny_image).budgets.context_tokens == 1024


def test_manifest_accounts_and_answers_evictions(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    core.activate_expert("ONE")
    core.activate_expert("TWO")
    manifest = core.manifest()
    assert manifest.hot == ["ONE@v1", "TWO@v1"] and manifest.slots == 2
    assert manifest.cold == ["ONE@v1", "TWO@v1", "WIDE@v1"]
    assert manifest.kv_cache_bytes == 2 * 2 * 2 * 8 * 2048 * 4 * 4
    assert manifest.used_bytes == (
        manifest.base_weights_bytes
        + manifest.kv_cache_bytes
        + manifest.hot_adapter_bytes
        + manifest.overhead_bytes
    )
    assert manifest.evict_for(0) == []
    per_slot = manifest.hot_adapter_bytes // 2
    assert manifest.evict_for(manifest.free_bytes + per_slot) == ["ONE@v1"]
    with pytest.raises(BudgetError, match="do not fit"):
        manifest.evict_for(manifest.budget_bytes * 2)


def test_missing_blob_degrades_to_base_model_with_warning(tiny_image: Image) -> None:
    import os

    core = tiny_core(tiny_image)
    path = core.adapter("TWO").weights.committed()
    os.chmod(path, 0o644)
    os.remove(path)
    record = core.activate_expert("TWO")
    assert record.tier == "degraded" and "could not be loaded from its blob" in (
        record.warning or ""
    )
    result = core.infer("hi", adapter="TWO", max_new_tokens=3)
    assert result.adapter is None and result.tier == "degraded"
    assert any("base model instead" in n for n in result.notices)
    assert core.manifest().warnings
    batch = core.generate_batch(["hi", "yo"], ["ONE", "TWO"], max_new_tokens=3)
    assert [(r.adapter, r.tier) for r in batch] == [("ONE@v1", "cold"), (None, "degraded")]
    assert "answered by the base model" in batch[1].notices[0]


def test_unknown_expert_lists_known(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    with pytest.raises(UnknownAdapter, match="known adapters: ONE, TWO, WIDE"):
        core.activate_expert("THREE")


def test_mixed_batch_matches_single_calls(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    prompts = ["hi", "tell me a story about a cat", "why?"]
    names = ["ONE", None, "TWO"]
    batch = core.generate_batch(prompts, names, max_new_tokens=6)
    single = [
        core.infer(p, adapter=a, max_new_tokens=6) for p, a in zip(prompts, names, strict=True)
    ]
    assert [r.text for r in batch] == [r.text for r in single]
    assert [r.adapter for r in batch] == ["ONE@v1", None, "TWO@v1"]


def test_mixed_batch_needs_room_for_all_its_experts(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    core.configure_memory(persist=False, hot_bytes=core.memory().slot_bytes())
    with pytest.raises(BudgetError, match="all are needed at once"):
        core.generate_batch(["a", "b"], ["ONE", "TWO"], max_new_tokens=2)


@pytest.mark.llm
def test_real_persona_adapter_matches_peft(llm_image: Image) -> None:
    """The fast slot load of a shipped persona gives PEFT's own logits (fp32)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    core = CognitiveCore(llm_image, mode="fp32")
    record = core.activate_expert("ROBIN")
    assert record.tier == "cold"
    ours = logits(core, "I lost my keys today.")
    base = AutoModelForCausalLM.from_pretrained(str(core.folder()))
    ref = PeftModel.from_pretrained(base, str(ADAPTERS_DIR / "ROBIN")).eval()
    ids = torch.tensor([core.tokenizer().encode("I lost my keys today.")])
    with torch.inference_mode():
        theirs = ref(input_ids=ids).logits[0, -1]
    assert torch.allclose(ours, theirs, atol=1e-3)
    core.unload()


def test_evicted_expert_leaves_its_slot_free(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    core.configure_memory(persist=False, hot_bytes=core.memory().slot_bytes())
    core.activate_expert("ONE")
    assert core.memory().evict("ONE", "warm")
    record = core.activate_expert("TWO")
    assert record.tier == "cold" and record.evicted == [] and not record.slot_created
    assert core.manifest().hot == ["TWO@v1"] and core.manifest().warm == ["TWO@v1"]


def test_selecting_a_slot_is_what_peft_reports(tiny_image: Image) -> None:
    core = tiny_core(tiny_image)
    for name in ["ONE", "TWO", "ONE", "TWO"]:  # first selections through PEFT, then the fast path
        record = core.activate_expert(name)
        for layer in core.memory()._layers().values():
            assert layer.active_adapters == [record.slot]
        assert core.peft_model().active_adapter == record.slot


def test_warm_entry_is_a_view_of_the_blob_bytes_when_already_in_slot_order(
    tiny_image: Image,
) -> None:
    from batos_lab.llm.memory import _zero_copy_view, parse_adapter, slot_layout

    core = tiny_core(tiny_image)
    one = core.adapter("ONE")
    data = one.read_weights()
    same = slot_layout(core.record.shapes, 4, ("q_proj", "v_proj"))
    wider = slot_layout(core.record.shapes, 8, ("q_proj", "v_proj"))
    assert _zero_copy_view(data, same) is not None and _zero_copy_view(data, wider) is None
    fast, padded = parse_adapter(one, data, same), parse_adapter(one, data, wider)
    a_fast = fast.flat[: 4 * 32].view(4, 32)
    a_padded = padded.flat[: 8 * 32].view(8, 32)
    assert (a_padded[:4] == a_fast).all() and (a_padded[4:] == 0).all()
