"""The shipped JIT adapter on the embedded model: imported at install, chosen by a setting, writing.

The message is a JIT suite task the adapter answered in its first round on every seed
(benchmarks/results/jit_suite_JIT.md), so the test checks that the adapter is the writer and
that what it writes goes through the same audit, trial and commit as the base model's methods.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from batos_lab import dnu
from batos_lab.dnu import JITSettings, uninstall_generator
from batos_lab.dnu_model import ModelGenerator
from batos_lab.image import Image, open_image
from batos_lab.paths import ADAPTERS_DIR

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def jit_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """An image with the embedded model and the JIT adapter writing its methods."""
    from batos_lab.llm import install_model

    path = tmp_path_factory.mktemp("jit_adapter") / "live_image.fs"
    with open_image(path) as img:
        with img.transaction("install the embedded model"):
            install_model(img)
        dnu.use_embedded_model(img, JITSettings(adapter="JIT"))
        yield img
        uninstall_generator(img)


def test_the_jit_adapter_ships_with_the_persona_adapters_shape(jit_image: Image) -> None:
    from batos_lab.llm import core_for

    assert (ADAPTERS_DIR / "JIT" / "adapter_model.safetensors").is_file()
    proxy = core_for(jit_image).adapter("JIT")
    assert proxy.rank == 8 and proxy.target_modules == ("q_proj", "v_proj")
    entry = dnu.generator_for(jit_image)
    assert entry is not None
    generator, settings = entry
    assert isinstance(generator, ModelGenerator) and generator.adapter == "JIT"
    assert settings.adapter == "JIT" and settings.model_id != "unknown"


def test_a_method_written_by_the_adapter_is_audited_committed_and_recorded(
    jit_image: Image,
) -> None:
    counter = jit_image.new("increment", count=4)
    jit_image.commit("a counter")
    assert counter.increment() == 5
    jit_image.commit("the real run's change")
    method = counter.get_slot("increment")
    assert method.provenance["adapter"] == "JIT"
    assert method.provenance["adapter_version"] == "JIT@v1"  # the version, not only the name
    assert "self._p_changed = True" in method.source  # the covenant, by the model or the autofix
    assert counter.count == 5


def test_a_pool_shared_with_the_base_model_names_the_writer_it_chose(jit_image: Image) -> None:
    from batos_lab.dnu_model import SharedPool

    pool = dnu.use_embedded_model(jit_image, JITSettings(adapter="JIT", with_base=True))
    assert isinstance(pool, SharedPool)
    try:
        counter = jit_image.new("decrement", count=3)
        jit_image.commit("a counter")
        assert counter.decrement() == 2
        jit_image.commit("the real run's change")
    finally:
        dnu.use_embedded_model(jit_image, JITSettings(adapter="JIT"))
    provenance = counter.get_slot("decrement").provenance
    first_round = [a for a in provenance["attempts"] if a["round"] == 0]
    # two banks, four candidates each: two by the base model, then two by the adapter
    assert [a["writer"] for a in first_round] == [None, None, "JIT", "JIT"] * 2
    chosen = [a for a in provenance["attempts"] if a.get("chosen")]
    assert len(chosen) == 1 and provenance["adapter"] == chosen[0]["writer"]
    expected = None if provenance["adapter"] is None else "JIT@v1"
    assert provenance["adapter_version"] == expected
    assert counter.count == 2
