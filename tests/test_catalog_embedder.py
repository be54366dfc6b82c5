"""The offline embedder: found via importlib, unit vectors, a clear error when missing."""

from __future__ import annotations

import numpy as np
import pytest

from batos_lab.catalog import embedder
from batos_lab.errors import EmbedderMissing


def test_model_dir_is_inside_the_package() -> None:
    folder = embedder.model_dir()
    assert folder.name == "model" and (folder / "model.safetensors").is_file()


@pytest.mark.parametrize("package", ["batos_absent_minilm", "json"])
def test_missing_package_or_files_say_what_to_do(package: str) -> None:
    with pytest.raises(EmbedderMissing, match="pip install"):
        embedder.model_dir(package)
    with pytest.raises(EmbedderMissing, match="pip install"):
        embedder.get_embedder(package)


@pytest.mark.llm
def test_encode_gives_unit_rows_and_similar_sentences_are_close(catalog_embedder: object) -> None:
    enc = embedder.get_embedder()
    assert enc is catalog_embedder  # one model per process
    vecs = enc.encode(["A cat sat on the mat.", "A kitten rested on the rug.", "Tax law changed."])
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    assert enc.encode([]).shape == (0, 384)
