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
