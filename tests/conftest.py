"""Shared fixtures. Expensive ones are session-scoped; append new fixtures, don't rewrite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from batos_lab.image import Image, open_image


@pytest.fixture
def image() -> Iterator[Image]:
    """A fresh in-memory image after genesis."""
    with open_image(None) as img:
        yield img


@pytest.fixture
def image_path(tmp_path: Path) -> Path:
    """A path for a FileStorage image in a temporary folder."""
    return tmp_path / "image" / "live_image.fs"


@pytest.fixture
def file_image(image_path: Path) -> Iterator[Image]:
    """A fresh FileStorage image (with history and undo) after genesis."""
    with open_image(image_path) as img:
        yield img


@pytest.fixture(scope="session")
def catalog_embedder() -> object:
    """The real all-MiniLM-L6-v2 embedder, loaded once per test session."""
    from batos_lab.catalog.embedder import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def codex_catalog(catalog_embedder: object) -> Iterator[object]:
    """A session-wide in-memory image whose knowledge catalog holds the codex (do not mutate)."""
    from batos_lab.catalog import catalog_for, ingest_codex

    with open_image(None) as img:
        catalog = catalog_for(img)
        ingest_codex(catalog)
        yield catalog


@pytest.fixture(scope="session")
def llm_image(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Image]:
    """A FileStorage image with the embedded model and persona adapters installed (committed).

    The GGUF conversion is cached under .cache/batos_lab/, so it runs once per machine. Tests
    may read from this image and load its core; changes must be aborted, not committed.
    """
    from batos_lab.llm import install_model

    path = tmp_path_factory.mktemp("llm") / "live_image.fs"
    with open_image(path) as img:
        with img.transaction("install the embedded model"):
            install_model(img)
        yield img


@pytest.fixture(scope="session")
def llm_core(llm_image: Image) -> object:
    """The cognitive core of ``llm_image`` in its default runtime mode, loaded once."""
    from batos_lab.llm import core_for

    core = core_for(llm_image)
    core.model()
    return core


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 2-layer random Llama folder and three LoRA adapters for it (ranks 4, 4 and 8)."""
    from batos_lab.llm.blobs import folder_fingerprint
    from batos_lab.llm.convert import cached_embedded_folder, file_sha256
    from tests.llm_helpers import make_adapter, make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    model = make_tiny_model(root / "model", cached_embedded_folder())
    weights = model / "model.safetensors"
    fingerprint = folder_fingerprint({"model.safetensors": file_sha256(weights)})
    adapters = root / "adapters"
    make_adapter(adapters / "ONE", model, fingerprint, rank=4, seed=1)
    make_adapter(adapters / "TWO", model, fingerprint, rank=4, seed=2)
    make_adapter(
        adapters / "WIDE",
        model,
        fingerprint,
        rank=8,
        seed=3,
        targets=("q_proj", "v_proj", "o_proj"),
    )
    return {"model": model, "adapters": adapters}


@pytest.fixture
def tiny_image(tiny_model_dir: dict[str, Path]) -> Iterator[Image]:
    """An in-memory image holding the tiny model and its three adapters (committed)."""
    from batos_lab.llm import install_model

    with open_image(None) as img:
        with img.transaction("install the tiny model"):
            install_model(
                img,
                tiny_model_dir["model"],
                model_id="tiny-test-llama",
                adapters_dir=tiny_model_dir["adapters"],
            )
        yield img
