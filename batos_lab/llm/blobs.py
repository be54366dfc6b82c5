"""Blob-proxy storage of the base model: one ZODB blob per file of an HF folder.

No tar and no extraction: each file of the folder (config, tokenizer, safetensors weights)
becomes its own :class:`ZODB.blob.Blob`, described by a persistent :class:`ModelRecord` kept in
the ``base_model`` slot of ``pLLM_obj``. Loading builds a volatile folder of symlinks that point
at the committed blob files, so safetensors memory-maps the weights straight from blob storage.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.POSException import POSKeyError

from batos_lab.errors import ModelNotInstalled, ModelSourceError
from batos_lab.llm.convert import file_sha256

__all__ = [
    "MODEL_SLOT",
    "ModelRecord",
    "folder_fingerprint",
    "materialize_folder",
    "read_weight_header",
    "store_model_folder",
]

#: The slot of ``pLLM_obj`` that holds the ModelRecord.
MODEL_SLOT = "base_model"

#: Files an HF causal-LM folder needs at least.
REQUIRED_FILES = ("config.json",)

_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "I8": 1, "U8": 1, "F64": 8, "I64": 8, "I32": 4}


def read_weight_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Return ``{tensor name: (dtype, shape)}`` from a safetensors file, reading its header only."""
    from safetensors import safe_open

    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():
            piece = handle.get_slice(key)
            out[key] = (str(piece.get_dtype()), tuple(piece.get_shape()))
    return out


def folder_fingerprint(sha256: dict[str, str]) -> str:
    """Return the base-model fingerprint: a sha256 over the hashes of the weight files."""
    digest = hashlib.sha256()
    for name in sorted(sha256):
        if name.endswith(".safetensors"):
            digest.update(f"{name}:{sha256[name]}\n".encode())
    return digest.hexdigest()


class ModelRecord(Persistent):
    """A base model stored in the image: its files as blobs and what is known about them.

    Attributes:
        model_id: the model's name (e.g. ``HuggingFaceTB/SmolLM2-135M-Instruct``).
        source: where the files came from (``embedded:<gguf sha>`` or the folder path).
        files: OOBTree file name -> Blob.
        sha256: file name -> hex digest.
        sizes: file name -> bytes.
        fingerprint: sha256 over the weight files' hashes; adapters record it as their base.
        parameters: number of parameters in the weight files.
        dtype: the stored dtype of the weights (e.g. ``F32``).
        shapes: tensor name -> shape, for checking adapters without loading the model.
        installed: ISO time of installation.
    """

    def __init__(self, model_id: str, source: str) -> None:
        self.model_id = model_id
        self.source = source
        self.files: Any = OOBTree()
        self.sha256: Any = PersistentMapping()
        self.sizes: Any = PersistentMapping()
        self.fingerprint = ""
        self.parameters = 0
        self.dtype = ""
        self.shapes: Any = PersistentMapping()
        self.installed = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")

    @property
    def total_bytes(self) -> int:
        """Bytes of every stored file together."""
        return sum(self.sizes.values())

    def describe(self) -> dict[str, Any]:
        """Return the record as plain data (for manifests and notebooks)."""
        return {
            "model_id": self.model_id,
            "source": self.source,
            "parameters": self.parameters,
            "dtype": self.dtype,
            "fingerprint": self.fingerprint,
            "files": {
                name: {"bytes": self.sizes[name], "sha256": self.sha256[name]}
                for name in self.files
            },
            "installed": self.installed,
        }

    def __repr__(self) -> str:
        return (
            f"<ModelRecord {self.model_id} {self.parameters / 1e6:.1f}M params {self.dtype}, "
            f"{len(self.files)} files>"
        )


def _model_id_of(folder: Path, config: dict[str, Any]) -> str:
    return str(config.get("_name_or_path") or config.get("name_or_path") or folder.name)


def store_model_folder(
    folder: Path,
    *,
    model_id: str | None = None,
    source: str = "",
    hashes: dict[str, str] | None = None,
) -> ModelRecord:
    """Copy every file of an HF folder into its own blob and return the (unsaved) record.

    The caller stores the record in a slot and commits; nothing is committed here.

    Args:
        folder: a local HF model folder (config.json, tokenizer files, ``*.safetensors``).
        model_id: the name to record; default the config's name or the folder's name.
        source: where the folder came from, for the record.
        hashes: sha256 per file when already known (saves reading the files twice).

    Returns:
        A ModelRecord whose blobs hold the files.

    Raises:
        ModelSourceError: not a folder, no config.json, or no safetensors weights.
    """
    import json

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelSourceError(f"Expected a local HF model folder; {folder} is not a folder.")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise ModelSourceError(
                f"The model folder {folder} has no {name}; give a folder written by "
                "save_pretrained (config.json, tokenizer files and *.safetensors weights)."
            )
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelSourceError(
            f"The model folder {folder} holds no *.safetensors weights; convert .bin weights "
            "with save_pretrained(safe_serialization=True) first."
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    record = ModelRecord(model_id or _model_id_of(folder, config), source or str(folder))
    hashes = dict(hashes or {})
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        blob = Blob()
        with open(path, "rb") as src, blob.open("w") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        record.files[path.name] = blob
        record.sha256[path.name] = hashes.get(path.name) or file_sha256(path)
        record.sizes[path.name] = path.stat().st_size
    params = 0
    dtypes: set[str] = set()
    for path in weights:
        for tensor, (dtype, shape) in read_weight_header(path).items():
            count = 1
            for dim in shape:
                count *= dim
            params += count
            dtypes.add(dtype)
            record.shapes[tensor] = shape
    record.parameters = params
    record.dtype = "+".join(sorted(dtypes))
    record.fingerprint = folder_fingerprint(dict(record.sha256))
    return record


_TEMP_DIRS: list[str] = []


@atexit.register
def _remove_temp_dirs() -> None:
    for path in _TEMP_DIRS:
        shutil.rmtree(path, ignore_errors=True)


def materialize_folder(record: ModelRecord) -> Path:
    """Return a volatile folder of symlinks to the record's committed blob files.

    Nothing is copied: the HF loader reads ``config.json`` and the tokenizer through the links
    and memory-maps the safetensors weights from the blob directory itself.

    Raises:
        ModelNotInstalled: the record's blobs are not committed yet, or a blob file is gone.
    """
    folder = Path(tempfile.mkdtemp(prefix="batos-model-"))
    _TEMP_DIRS.append(str(folder))
    for name, blob in record.files.items():
        try:
            target = blob.committed()
        except (POSKeyError, Exception) as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise ModelNotInstalled(
                f"The blob of model file {name!r} cannot be read ({type(exc).__name__}: {exc}). "
                "Commit the transaction that installed the model before loading it, or reinstall "
                "it with install_model(image)."
            ) from exc
        (folder / name).symlink_to(target)
    return folder
