"""Sentence splitting: shipped punkt parameters, markdown blocks, size caps."""

from __future__ import annotations

import json

from batos_lab.catalog import sentences
from batos_lab.catalog.sentences import (
    params_from_json,
    params_to_json,
    split_sections,
    split_sentences,
    train_parameters,
)


def test_abbreviations_do_not_end_sentences() -> None:
    text = "Dr. Moreau met Mr. Jones, e.g. at noon, i.e. before lunch. They talked about ZODB."
    assert split_sentences(text) == [
        "Dr. Moreau met Mr. Jones, e.g. at noon, i.e. before lunch.",
        "They talked about ZODB.",
    ]


def test_list_items_and_paragraphs_never_share_a_sentence() -> None:
    text = "Steps to follow\n- open the image\n- ingest the codex\n\nThen search. Done"
    assert split_sentences(text) == [
        "Steps to follow", "open the image", "ingest the codex", "Then search.", "Done",
    ]  # fmt: skip


def test_markdown_emphasis_is_removed() -> None:
    assert split_sentences("The **image** keeps `slots`.") == ["The image keeps slots."]


def test_overlong_run_is_cut_to_max_words() -> None:
    words = " ".join(f"w{i}" for i in range(25))
    parts = split_sentences(words, max_words=10)
    assert [len(p.split()) for p in parts] == [10, 10, 5]
    assert " ".join(parts) == words


def test_sections_follow_headings() -> None:
    text = "intro line.\n# Title\n\n## First\nalpha.\n## Empty\n## Second\nbeta.\n"
    assert split_sections(text, default_title="doc") == [
        ("doc", "intro line."), ("First", "alpha."), ("Second", "beta."),
    ]  # fmt: skip


def test_params_round_trip_through_json() -> None:
    corpus = ["The cat sat on the mat. The dog ran off, e.g. to the park. It rained."] * 20
    params = train_parameters(corpus)
    data = json.loads(json.dumps(params_to_json(params)))
    again = params_from_json(data)
    assert again.abbrev_types == params.abbrev_types
    assert again.collocations == params.collocations
    assert again.sent_starters == params.sent_starters
    assert dict(again.ortho_context) == dict(params.ortho_context)
    assert "e.g" in again.abbrev_types


def test_shipped_parameters_were_trained_on_the_codex() -> None:
    data = json.loads(sentences.PARAMS_PATH.read_text(encoding="utf-8"))
    assert data["format"] == "batos-punkt-1"
    assert any(name.startswith("codex/") for name in data["trained_on"])
    assert set(sentences.EXTRA_ABBREVIATIONS) <= set(data["abbrev_types"])


def test_sentence_final_words_are_not_taken_for_abbreviations() -> None:
    text = 'BABS said "Yes. Same prompts." It was a good day. Then J. R. Smith came.'
    assert split_sentences(text) == [
        'BABS said "Yes.', 'Same prompts."', "It was a good day.", "Then J. R. Smith came.",
    ]  # fmt: skip
    data = json.loads(sentences.PARAMS_PATH.read_text(encoding="utf-8"))
    assert not {"yes", "day", "joy"} & set(data["abbrev_types"])
