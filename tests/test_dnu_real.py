"""doesNotUnderstand_ with the embedded model itself: learn, commit, record, reopen, fail, await.

The objects and messages are those of JIT suite tasks the model answers at its first, greedy
attempt (benchmarks/results/jit_suite.md), so the tests check the pipeline, not the model's luck.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batos_lab import dnu
from batos_lab.dnu import JITSettings, install_generator, jit_async, uninstall_generator
from batos_lab.dnu_model import ModelGenerator
from batos_lab.errors import DoesNotUnderstand
from batos_lab.image import Image, open_image

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def model_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Image, Path]]:
    """A FileStorage image with the embedded model installed and serving doesNotUnderstand_."""
    from batos_lab.llm import core_for, install_model

    path = tmp_path_factory.mktemp("dnu_real") / "live_image.fs"
    with open_image(path) as img:
        with img.transaction("install the embedded model"):
            install_model(img)
        generator = ModelGenerator(core_for(img))
        install_generator(img, generator, JITSettings(model_id=generator.model_id))
        yield img, path
        uninstall_generator(img)


@pytest.fixture(scope="module")
def generator(model_image: tuple[Image, Path]) -> ModelGenerator:
    """The image's real generator (the model loads on its first call)."""
    entry = dnu.generator_for(model_image[0])
    assert entry is not None
    gen = entry[0]
    assert isinstance(gen, ModelGenerator)
    return gen


def test_counter_method_is_learned_committed_and_answers(
    model_image: tuple[Image, Path],
) -> None:
    img, _ = model_image
    counter = img.new("increment", count=4)
    img.commit("a counter")
    assert counter.increment() == 5
    assert counter.count == 5  # the real run's change, in the caller's transaction
    img.abort()  # the method itself was committed before it ran
    assert counter.count == 4
    method = counter.get_slot("increment")
    assert "def increment(self" in method.source
    assert "self._p_changed = True" in method.source
    assert img.history(limit=1)[0]["note"].endswith("learned increment")


def test_provenance_names_model_prompt_attempts_and_latency(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    img, _ = model_image
    account = img.new("withdraw", balance=100)
    img.commit("an account")
    assert account.withdraw(30) == 70
    prov = account.get_slot("withdraw").provenance
    assert prov["model"] == generator.model_id != "unknown"
    assert prov["adapter"] is None
    assert re.fullmatch(r"[0-9a-f]{64}", prov["prompt_sha256"])
    assert len(prov["prompts_sha256"]) == 2 and prov["prompts_sha256"][0] == prov["prompt_sha256"]
    (chosen,) = [a for a in prov["attempts"] if a.get("chosen")]  # one of the pool's candidates
    assert chosen["stage"] == "ok" and "votes" in chosen
    assert {a["prompt"] for a in prov["attempts"] if a["round"] == 0} == {0, 1}
    assert prov["latency_s"] > 0
    assert prov["author"] == "jit"


def test_failure_leaves_the_image_unchanged_and_keeps_a_record(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    img, _ = model_image
    box = img.new("item_count", items=["x", "y"])
    img.commit("a box")
    before = img.history(limit=1)[0]["id"]

    def hostile(prompt: str, temperature: float, attempt: int) -> str:
        # the model's real reply, with a forbidden import slipped into the body
        reply = generator(prompt, temperature, attempt)
        return reply.replace("\n", "\n    import os\n", 1)

    with pytest.raises(DoesNotUnderstand, match="could not learn 'item_count'") as info:
        dnu.jit(
            box,
            "item_count",
            generator=hostile,
            settings=JITSettings(max_attempts=2, model_id=generator.model_id),
        )
    assert len(info.value.attempts) == 2
    assert all(a["stage"] == "audit" for a in info.value.attempts)
    img.abort()
    assert not box.has_slot("item_count")
    assert list(box.items) == ["x", "y"]
    history = img.history(limit=3)
    assert history[1]["id"] == before  # only the failure record was written since
    records = [r for r in img.root["failures"].values() if r["selector"] == "item_count"]
    assert records and len(records[-1]["attempts"]) == 2
    assert records[-1]["model"] == generator.model_id


def test_async_variant_learns_and_answers(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    img, _ = model_image
    tally = img.new("increment_by", count=10)
    img.commit("a tally")
    settings = JITSettings(model_id=generator.model_id)

    async def main() -> Any:
        return await jit_async(tally, "increment_by", 7, generator=generator, settings=settings)

    assert asyncio.run(main()) == 17
    assert tally.count == 17
    img.abort()
    assert tally.has_slot("increment_by")
    assert tally.increment_by(1) == 11


def test_pools_are_guided_to_real_slots_and_judged(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    from batos_lab.dnu_prompt import GUIDE_NAMES, build_prompt

    img, _ = model_image
    box = img.new("box", width=3, height=4)
    prompt = build_prompt(box, "area", (), {})
    token = GUIDE_NAMES.set(prompt.names)
    try:
        replies = generator.propose(prompt.text, 3, 1.0, 1)
    finally:
        GUIDE_NAMES.reset(token)
    assert len(replies) == 3 and all(r.startswith("def area(self):\n") for r in replies)
    for reply in replies:  # every self.<name> the model wrote is a slot or selector of box
        read = re.findall(r"(?<![\w.])self\.(\w+)", reply)
        assert set(read) <= set(prompt.names), reply
    scores = generator.judge(
        ">>> box = Object(width=3, height=4)\n>>> box.area()\n", ["12\n", "qqq\n"]
    )
    assert len(scores) == 2 and all(s < 0 for s in scores)
    img.abort()


def test_every_reply_that_finishes_has_a_return(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    """Left alone, the model's greedy body for ``increment`` stops after ``self.count += 1``;
    the return guide (:class:`batos_lab.dnu_model.ReturnGuide`) leads it to a return."""
    from batos_lab.dnu_prompt import build_prompt

    img, _ = model_image
    counter = img.new("counter", count=4)
    prompt = build_prompt(counter, "increment", (), {}, bank="broad")
    kernel = generator.core.model().config._attn_implementation
    replies = generator.propose(prompt.text, 4, 0.8, 0)
    assert len(replies) == 4
    # the JIT decodes with its own attention kernel on CPU and gives the model back unchanged
    assert generator.core.model().config._attn_implementation == kernel
    # a reply ends inside its function only at the token budget or a runaway line
    finished = [r for r in replies if len(r) < 400]
    assert finished and all(re.search(r"^\s+return\b", r, re.M) for r in finished), replies
    img.abort()


def test_samples_repeat_for_a_seed_and_change_with_it(
    model_image: tuple[Image, Path], generator: ModelGenerator
) -> None:
    from batos_lab.dnu_prompt import build_prompt

    img, _ = model_image
    word = img.new("word", text="hello")
    prompt = build_prompt(word, "shout", (), {})
    before = generator.seed
    try:
        first = generator.propose(prompt.text, 3, 1.0, 1)
        assert generator.propose(prompt.text, 3, 1.0, 1) == first  # same prompt, round, seed
        others = []
        for seed in (1, 2, 3):
            generator.seed = seed
            others.append(generator.propose(prompt.text, 3, 1.0, 1))
        assert any(o != first for o in others)
    finally:
        generator.seed = before
    img.abort()


def test_learned_method_runs_after_reopening_without_the_model(  # last: it closes the image
    model_image: tuple[Image, Path],
) -> None:
    img, path = model_image
    shelf = img.new("above", numbers=[5, 12, 7, 20])
    img.commit("a shelf")
    assert shelf.above(6) == [12, 7, 20]
    img.close()
    asked: list[str] = []

    def refuse(prompt: str, temperature: float, attempt: int) -> str:
        asked.append(prompt)
        raise AssertionError("the model must not be asked again")

    with open_image(path) as again:
        install_generator(again, refuse, JITSettings(max_attempts=1))
        try:
            again["above"].numbers = [1, 9, 30]
            assert again["above"].above(6) == [9, 30]
        finally:
            uninstall_generator(again)
            again.abort()
    assert asked == []
