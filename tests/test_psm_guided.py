"""Guided JSON decoding of plans, and plan validation, on a tiny word-level tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from batos_lab.errors import PlanError
from batos_lab.psm.guided import PlanCursor, PlanLogitsProcessor, TokenTable
from batos_lab.psm.plan import fallback_plan, parse_plan

FACETS = ("sage_facet_", "tamland_facet_", "guide_facet_")
PIECES = [
    "{", "}", "[", "]", '"', ":", ",", " ", '{"', '":', ' "', '",', '"]', '"}', "}}", '"}}',
    "strategy", "relevant_pillars", "sub_queries", "sage", "_facet_", "tamland", "guide",
    *FACETS, "sage_facet_extra", "the", " cat", "a", "why", " is", "?", "\\", "\n", "import",
    '"x', "ok", '", "', "'", "\t",
]  # fmt: skip


@pytest.fixture(scope="module")
def tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "<unk>": 1}
    for piece in PIECES:
        vocab.setdefault(piece, len(vocab))
    backend = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<eos>", unk_token="<unk>")


def decode(tokenizer, ids: list[int]) -> str:
    table = TokenTable.for_tokenizer(tokenizer)
    return "".join(table.texts[i] or "" for i in ids if i != tokenizer.eos_token_id)


@pytest.mark.parametrize("seed", range(12))
def test_adversarial_scores_still_give_a_valid_plan(tokenizer, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    processor = PlanLogitsProcessor(tokenizer, FACETS, tokenizer.eos_token_id, max_chars=24)
    prompt = torch.tensor([[1, 1, 1]])
    ids = prompt
    garbage = [tokenizer.convert_tokens_to_ids(t) for t in ("\\", "\n", "import", "}")]
    for _ in range(400):
        scores = torch.randn(1, len(tokenizer), generator=generator)
        scores[0, garbage] += 5.0  # the "model" prefers garbage
        masked = processor(ids, scores)
        choice = int(torch.multinomial(torch.softmax(masked[0], -1), 1, generator=generator))
        ids = torch.cat([ids, torch.tensor([[choice]])], dim=1)
        if choice == tokenizer.eos_token_id:
            break
    text = decode(tokenizer, ids[0, 3:].tolist())
    plan = parse_plan(text, FACETS)
    assert processor.cursors[0] is not None and processor.cursors[0].done
    assert list(plan.sub_queries) == plan.relevant_pillars  # keys forced to the chosen facets
    assert json.loads(text)["strategy"].strip() == plan.strategy


def test_a_tiny_model_generates_valid_plans_under_the_processor(tokenizer) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    prompt = torch.tensor([[tokenizer.convert_tokens_to_ids("why")] * 4])
    processors = [
        PlanLogitsProcessor(tokenizer, FACETS, tokenizer.eos_token_id, max_chars=12)
        for _ in range(2)
    ]
    for processor, sample in zip(processors, (False, True), strict=True):
        out = model.generate(
            input_ids=prompt,
            attention_mask=torch.ones_like(prompt),
            logits_processor=LogitsProcessorList([processor]),
            max_new_tokens=200,
            do_sample=sample,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.eos_token_id,
        )
        plan = parse_plan(decode(tokenizer, out[0, 4:].tolist()), FACETS)
        assert set(plan.relevant_pillars) <= set(FACETS)


def test_cursor_refuses_what_the_shape_forbids() -> None:
    start = PlanCursor.start(FACETS, max_pillars=2, max_chars=5)
    head = '{"strategy": "'
    assert start.feed(head) is not None
    assert start.feed('{"strategy": ""') is None  # an empty strategy
    assert start.feed(head + "toolong") is None  # over max_chars
    assert start.feed(head + " a") is None  # a string starting blank
    assert start.feed(head + 'a\\"') is None  # a backslash
    body = head + 'abc", "relevant_pillars": ["'
    assert start.feed(body + 'joker_"') is None  # an unknown facet
    assert start.feed(body + 'sage_facet_", "sage_facet_"') is None  # chosen twice
    assert start.feed(body + 'sage_facet_", "guide_facet_", ') is None  # over max_pillars
    full = body + 'sage_facet_"], "sub_queries": {"sage_facet_": "why"}}'
    end = start.feed(full)
    assert end is not None and end.done and end.feed("}") is None
    assert start.feed(body + 'sage_facet_"], "sub_queries": {"guide_facet_"') is None
    with pytest.raises(ValueError, match="at least one facet"):
        PlanCursor.start(())


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("no json here", "held none"),
        ('{"strategy": "x",', "not valid JSON"),
        ('{"strategy": " ", "relevant_pillars": ["sage_facet_"]}', "strategy is blank"),
        ('{"strategy": "x", "relevant_pillars": []}', "relevant_pillars"),
        ('{"strategy": "x", "relevant_pillars": ["joker_"]}', "unknown facet"),
        ('{"strategy": "x", "relevant_pillars": ["sage_facet_", "sage_facet_"]}', "chosen twice"),
        (
            '{"strategy": "x", "relevant_pillars": ["sage_facet_"], '
            '"sub_queries": {"guide_facet_": "q"}}',
            "not chosen",
        ),
        ('{"strategy": "x", "relevant_pillars": ["sage_facet_"], "extra": 1}', "extra"),
    ],
)
def test_parse_plan_errors(text: str, match: str) -> None:
    with pytest.raises(PlanError, match=match):
        parse_plan(text, FACETS)


def test_parse_plan_ignores_chatter_and_fallback_uses_the_matrix() -> None:
    plan = parse_plan('Sure! {"strategy": "s", "relevant_pillars": ["guide_facet_"]} done', FACETS)
    assert plan.query_for("guide_facet_", "the mission") == "the mission"
    fallback = fallback_plan("m", ["BRICK", "ROBIN"], {"BRICK": ["a_"], "ROBIN": ["b_"]}, "row")
    assert fallback.relevant_pillars == ["a_", "b_"] and "row" in fallback.strategy
    with pytest.raises(PlanError, match="names no persona with facets"):
        fallback_plan("m", ["JOKER"], {}, "row")
