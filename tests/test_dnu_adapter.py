"""An adapter as the JIT's writer: chosen by the settings, checked up front, really used."""

from __future__ import annotations

import pytest

from batos_lab import dnu
from batos_lab.dnu import JITSettings
from batos_lab.dnu_model import ModelGenerator
from batos_lab.errors import UnknownAdapter
from batos_lab.image import Image

PROMPT = "# a task\n# Message: box.area()\ndef area(self):"


def test_an_unknown_adapter_is_refused_before_any_message(tiny_image: Image) -> None:
    from batos_lab.llm import core_for

    with pytest.raises(UnknownAdapter, match="NOPE"):
        ModelGenerator(core_for(tiny_image), adapter="NOPE")
    with pytest.raises(UnknownAdapter):
        dnu.use_embedded_model(tiny_image, JITSettings(adapter="NOPE"))
    assert dnu.generator_for(tiny_image) is not None  # the embedded default still serves
    assert dnu.generator_for(tiny_image)[0].adapter is None  # type: ignore[index, union-attr]


def test_the_settings_adapter_writes_and_the_base_model_is_left_as_it_was(
    tiny_image: Image,
) -> None:
    from batos_lab.llm import core_for

    core = core_for(tiny_image)
    base = ModelGenerator(core, max_new_tokens=12)
    before = base.propose(PROMPT, 1, 0.0, 0)
    tuned = dnu.use_embedded_model(tiny_image, JITSettings(adapter="ONE"))
    assert isinstance(tuned, ModelGenerator) and tuned.adapter == "ONE"
    settings = dnu.generator_for(tiny_image)[1]  # type: ignore[index]
    assert settings.adapter == "ONE" and settings.model_id == tuned.model_id
    tuned.max_new_tokens = 12
    with_adapter = tuned.propose(PROMPT, 1, 0.0, 0)
    assert core.memory().active == core.adapter("ONE").key  # the expert was made active
    assert tuned.version_key == core.adapter("ONE").key and base.version_key is None
    assert with_adapter != before  # a random adapter on a random model changes the greedy text
    assert base.propose(PROMPT, 1, 0.0, 0) == before  # adapters are off again for the base
    dnu.uninstall_generator(tiny_image)


def test_an_adapter_whose_blob_is_gone_fails_the_message_and_names_it(tiny_image: Image) -> None:
    """A degraded expert would write as the base model while the provenance named it: the
    pipeline refuses that, and the image keeps nothing of the message."""
    import os

    from batos_lab.errors import DoesNotUnderstand
    from batos_lab.llm import core_for

    path = core_for(tiny_image).adapter("TWO").weights.committed()
    os.chmod(path, 0o644)
    os.remove(path)
    dnu.use_embedded_model(tiny_image, JITSettings(adapter="TWO", max_attempts=1))
    box = tiny_image.new("box", width=3)
    tiny_image.commit("a box")
    failures = len(tiny_image.root.get("failures", ()))
    with pytest.raises(DoesNotUnderstand) as failed:
        box.area()
    assert "could not be loaded" in str(failed.value.attempts[0]["error"])
    assert not box.has_slot("area")
    tiny_image.abort()
    assert not box.has_slot("area")
    assert len(tiny_image.root["failures"]) == failures + 1  # written in its own transaction
    dnu.uninstall_generator(tiny_image)


def test_with_base_needs_an_adapter() -> None:
    with pytest.raises(ValueError, match="name one in adapter"):
        JITSettings(with_base=True)


def test_a_shared_pool_gives_each_writer_its_share_greedy_first(tiny_image: Image) -> None:
    from batos_lab.dnu_model import SharedPool
    from batos_lab.llm import core_for

    core = core_for(tiny_image)
    pool = dnu.use_embedded_model(tiny_image, JITSettings(adapter="ONE", with_base=True))
    assert isinstance(pool, SharedPool) and [w.adapter for w in pool.writers] == [None, "ONE"]
    assert pool.shares(5) == [3, 2] and pool.shares(1) == [1, 0]
    assert pool.rows(4, 0) == [(None, True), (None, False), ("ONE", True), ("ONE", False)]
    assert pool.rows(4, 1) == [(None, False), (None, False), ("ONE", False), ("ONE", False)]
    for writer in pool.writers:
        writer.max_new_tokens = 12
    shared = pool.propose(PROMPT, 4, 0.8, 0)
    base = ModelGenerator(core, max_new_tokens=12).propose(PROMPT, 2, 0.8, 0)
    tuned = ModelGenerator(core, max_new_tokens=12, adapter="ONE").propose(PROMPT, 2, 0.8, 0)
    assert shared == base + tuned  # the same seeded rows as each writer alone
    assert pool.version_of("ONE") == "ONE@v1" and pool.version_of(None) is None
    with pytest.raises(ValueError, match="must differ"):
        SharedPool([pool.writers[1], ModelGenerator(core, adapter="ONE")])
    with pytest.raises(ValueError, match="at least one"):
        SharedPool([])
    dnu.uninstall_generator(tiny_image)


class _Writer:
    """A scripted writer: the same body for every row, under its adapter's name."""

    def __init__(self, adapter: str | None, body: str) -> None:
        self.adapter, self.body, self.model_id = adapter, body, "scripted"
        self.version_key = None if adapter is None else f"{adapter}@v3"

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        return f"def area(self):\n    {self.body}\n"

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        return [self(prompt, temperature, round_) for _ in range(n)]

    def judge(self, context: str, endings: list[str]) -> list[float]:
        return [0.0] * len(endings)


def test_the_writer_of_the_chosen_candidate_is_recorded(tiny_image: Image) -> None:
    """The base model's rows fail the trial, the adapter's pass: the method, its provenance
    and every attempt name who wrote what."""
    from batos_lab.dnu_model import SharedPool

    pool = SharedPool([_Writer(None, "return self.nope"), _Writer("ONE", "return self.width * 2")])  # type: ignore[list-item]
    settings = JITSettings(adapter="ONE", with_base=True, banks=("core",), model_id="scripted")
    dnu.install_generator(tiny_image, pool, settings)
    box = tiny_image.new("box", width=3)
    tiny_image.commit("a box")
    assert box.area() == 6
    provenance = box.get_slot("area").provenance
    assert provenance["adapter"] == "ONE" and provenance["adapter_version"] == "ONE@v3"
    writers = [(a["writer"], a["stage"]) for a in provenance["attempts"]]
    assert writers == [(None, "trial")] * 4 + [("ONE", "ok")] * 4
    assert [a["temperature"] for a in provenance["attempts"]] == [0.0, 0.8, 0.8, 0.8] * 2
    dnu.uninstall_generator(tiny_image)
