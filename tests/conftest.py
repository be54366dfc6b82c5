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
