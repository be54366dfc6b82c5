"""LoRA experts as blobs: import, versions, idempotence and every refusal path."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from batos_lab.errors import AdapterError, UnknownAdapter
from batos_lab.image import Image
from batos_lab.llm import adapters as ad
from batos_lab.llm.blobs import MODEL_SLOT, ModelRecord
from batos_lab.paths import ADAPTERS_DIR

pytestmark = pytest.mark.llm


@pytest.fixture
def home(llm_image: Image) -> Iterator[object]:
    """pLLM_obj of the shared image; every change is aborted afterwards."""
    llm_image.abort()
    yield llm_image.root["pLLM_obj"]
    llm_image.abort()


@pytest.fixture
def record(home: object) -> ModelRecord:
    return home.get_slot(MODEL_SLOT)  # type: ignore[attr-defined]


@pytest.fixture
def robin_copy(tmp_path: Path) -> Path:
    target = tmp_path / "ROBIN"
    shutil.copytree(ADAPTERS_DIR / "ROBIN", target)
    return target


def test_shipped_adapters_are_imported_with_metadata(home: object, record: ModelRecord) -> None:
    assert ad.adapter_names(home) == ["ALFRED", "BABS", "BRICK", "JIT", "ROBIN"]
    proxy = ad.get_adapter(home, "BRICK")
    assert proxy.version == 1 and proxy.rank == 8 and proxy.alpha == 16
    assert proxy.target_modules == ("q_proj", "v_proj")
    assert proxy.base_model_sha256 == record.fingerprint
    assert proxy.size == (ADAPTERS_DIR / "BRICK" / "adapter_model.safetensors").stat().st_size
    assert (
        proxy.read_weights() == (ADAPTERS_DIR / "BRICK" / "adapter_model.safetensors").read_bytes()
    )


def test_import_is_idempotent(home: object, record: ModelRecord) -> None:
    report = ad.import_adapters(home, ADAPTERS_DIR, record)
    assert report.imported == [] and not report.refused
    assert sorted(report.unchanged) == ["ALFRED@v1", "BABS@v1", "BRICK@v1", "JIT@v1", "ROBIN@v1"]


def test_new_version_becomes_active_and_old_one_can_be_restored(
    home: object, record: ModelRecord, robin_copy: Path
) -> None:
    config = json.loads((robin_copy / "adapter_config.json").read_text())
    config["lora_alpha"] = 8
    (robin_copy / "adapter_config.json").write_text(json.dumps(config))
    proxy, created = ad.import_adapter(home, robin_copy, record, name="ROBIN")
    assert created and proxy.version == 2 and proxy.alpha == 8
    assert ad.get_adapter(home, "ROBIN").version == 2
    ad.set_active_version(home, "ROBIN", 1)
    assert ad.get_adapter(home, "ROBIN").version == 1
    with pytest.raises(UnknownAdapter, match="has no version 9"):
        ad.get_adapter(home, "ROBIN", 9)


def test_missing_config_is_refused(home: object, record: ModelRecord, robin_copy: Path) -> None:
    (robin_copy / "adapter_config.json").unlink()
    with pytest.raises(AdapterError, match=r"adapter_config\.json is missing"):
        ad.import_adapter(home, robin_copy, record)


def test_corrupted_safetensors_is_refused(
    home: object, record: ModelRecord, robin_copy: Path
) -> None:
    weights = robin_copy / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(AdapterError, match=r"adapter_model\.safetensors is not a readable"):
        ad.import_adapter(home, robin_copy, record)


def test_adapter_for_another_base_model_is_refused(
    home: object, record: ModelRecord, robin_copy: Path
) -> None:
    from safetensors.torch import load_file, save_file

    weights = robin_copy / "adapter_model.safetensors"
    save_file(load_file(str(weights)), str(weights), metadata={ad.BASE_KEY: "0" * 64})
    with pytest.raises(AdapterError, match="trained on another base model"):
        ad.import_adapter(home, robin_copy, record)


def test_adapter_naming_another_model_is_refused(
    home: object, record: ModelRecord, robin_copy: Path
) -> None:
    from safetensors.torch import load_file, save_file

    weights = robin_copy / "adapter_model.safetensors"
    save_file(load_file(str(weights)), str(weights))  # no fingerprint in the metadata
    config = json.loads((robin_copy / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = "meta-llama/Llama-3.2-1B"
    (robin_copy / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(AdapterError, match="names base model 'meta-llama/Llama-3.2-1B'"):
        ad.import_adapter(home, robin_copy, record)


def test_wrong_shapes_are_refused(home: object, record: ModelRecord, robin_copy: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    weights = robin_copy / "adapter_model.safetensors"
    tensors = load_file(str(weights))
    key = next(k for k in tensors if k.endswith("q_proj.lora_A.weight"))
    tensors[key] = torch.zeros(8, 1024)
    save_file(tensors, str(weights), metadata={ad.BASE_KEY: record.fingerprint})
    with pytest.raises(AdapterError, match=r"has shape \(8, 1024\).*needs \(8, 576\)"):
        ad.import_adapter(home, robin_copy, record)


def test_refused_adapter_leaves_the_others(
    home: object, record: ModelRecord, tmp_path: Path
) -> None:
    root = tmp_path / "adapters"
    shutil.copytree(ADAPTERS_DIR / "BABS", root / "BABS")
    (root / "BROKEN").mkdir()
    (root / "BROKEN" / "adapter_model.safetensors").write_bytes(b"not a tensor file")
    report = ad.import_adapters(home, root, record)
    assert (
        "BROKEN" in report.refused and "adapter_config.json is missing" in report.refused["BROKEN"]
    )
    assert report.unchanged == ["BABS@v1"]
    assert "BROKEN" not in ad.adapter_names(home)


def test_unknown_adapter_lists_known_ones(home: object) -> None:
    with pytest.raises(UnknownAdapter, match=r"known adapters: ALFRED, BABS, BRICK, JIT, ROBIN"):
        ad.get_adapter(home, "JOKER")
