"""LoRA experts as persistent proxies: each adapter version a blob plus what is known about it.

``pLLM_obj.adapters`` is an OOBTree from persona name to an :class:`AdapterFamily`, which holds
numbered :class:`AdapterProxy` versions and marks one active. Importing a PEFT folder checks it
against the installed base model first (config present and LoRA, weights readable, recorded base
fingerprint, tensor shapes) and refuses it with an error naming the file and the mismatch; the
adapters already in the image are left as they were. Importing the same files twice is a no-op.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from BTrees.OOBTree import OOBTree
from persistent import Persistent
from ZODB.blob import Blob

from batos_lab.errors import AdapterError, UnknownAdapter
from batos_lab.llm.blobs import ModelRecord

__all__ = [
    "ADAPTERS_SLOT",
    "AdapterFamily",
    "AdapterProxy",
    "ImportReport",
    "adapter_names",
    "adapter_registry",
    "add_adapter_version",
    "check_adapter",
    "get_adapter",
    "import_adapter",
    "import_adapters",
    "save_adapter_folder",
    "set_active_version",
]

ADAPTERS_SLOT = "adapters"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
#: safetensors metadata key where an adapter records the fingerprint of its base model.
BASE_KEY = "base_model_fingerprint"
_KEY = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<part>[AB])(?:\.[^.]+)?\.weight$")


class AdapterProxy(Persistent):
    """One version of a LoRA adapter stored in the image.

    Attributes:
        name, version: the persona (or expert) name and the version number (from 1).
        rank, alpha: LoRA rank ``r`` and ``lora_alpha``.
        target_modules: module names the adapter attaches to.
        base_model_sha256: fingerprint of the base model it was trained on.
        size: bytes of the weights file.
        created: ISO time of import.
        config_json: the PEFT config, as text.
        weights: the Blob holding ``adapter_model.safetensors``.
        weights_sha256: hash of the weights file (idempotent import).
        source: where it came from (a folder, the forge, ...).
    """

    def __init__(
        self,
        name: str,
        version: int,
        config: dict[str, Any],
        weights: bytes,
        base_fingerprint: str,
        source: str = "",
    ) -> None:
        self.name = name
        self.version = version
        self.rank = int(config.get("r", 0))
        self.alpha = float(config.get("lora_alpha", self.rank))
        self.target_modules = tuple(sorted(_targets(config)))
        self.base_model_sha256 = base_fingerprint
        self.size = len(weights)
        self.created = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        self.config_json = json.dumps(config, sort_keys=True)
        self.weights_sha256 = hashlib.sha256(weights).hexdigest()
        self.source = source
        self.weights = Blob()
        with self.weights.open("w") as handle:
            handle.write(weights)

    @property
    def key(self) -> str:
        """``NAME@vN``: the name the memory tiers use for this version."""
        return f"{self.name}@v{self.version}"

    def config(self) -> dict[str, Any]:
        """Return the PEFT config as a dict."""
        loaded: dict[str, Any] = json.loads(self.config_json)
        return loaded

    def read_weights(self) -> bytes:
        """Return the safetensors bytes from the blob (raises when the blob file is gone)."""
        with self.weights.open("r") as handle:
            data: bytes = handle.read()
        return data

    def describe(self) -> dict[str, Any]:
        """Return the proxy's metadata as plain data."""
        return {
            "name": self.name,
            "version": self.version,
            "rank": self.rank,
            "alpha": self.alpha,
            "target_modules": list(self.target_modules),
            "base_model_sha256": self.base_model_sha256,
            "size": self.size,
            "created": self.created,
            "source": self.source,
        }

    def __repr__(self) -> str:
        return (
            f"<AdapterProxy {self.key} r={self.rank} alpha={self.alpha:g} "
            f"{'/'.join(self.target_modules)} {self.size / 1e6:.2f} MB>"
        )


class AdapterFamily(Persistent):
    """All versions of one adapter name, with one of them active."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.versions: Any = OOBTree()
        self.active = 0

    def current(self) -> AdapterProxy:
        """Return the active version."""
        proxy: AdapterProxy = self.versions[self.active]
        return proxy

    def __repr__(self) -> str:
        return f"<AdapterFamily {self.name} versions={list(self.versions)} active={self.active}>"


@dataclass
class ImportReport:
    """What an import of adapter folders did."""

    imported: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def _targets(config: dict[str, Any]) -> list[str]:
    targets = config.get("target_modules") or []
    if isinstance(targets, str):  # PEFT allows a regex; keep it as one entry
        return [targets]
    return [str(t) for t in targets]


def adapter_registry(home: Any) -> Any:
    """Return the OOBTree of adapter families on ``pLLM_obj``, creating it when missing."""
    registry = home.get_slot(ADAPTERS_SLOT, None)
    if registry is None:
        registry = OOBTree()
        home.set_slot(ADAPTERS_SLOT, registry)
    return registry


def adapter_names(home: Any) -> list[str]:
    """Return the adapter names held by the image, sorted."""
    registry = home.get_slot(ADAPTERS_SLOT, None)
    return list(registry.keys()) if registry is not None else []


def get_adapter(home: Any, name: str, version: int | None = None) -> AdapterProxy:
    """Return the active (or given) version of an adapter.

    Raises:
        UnknownAdapter: no adapter or version by that name; the message lists the known ones.
    """
    registry = home.get_slot(ADAPTERS_SLOT, None)
    if registry is None or name not in registry:
        known = ", ".join(adapter_names(home)) or "none"
        raise UnknownAdapter(
            f"No adapter named {name!r} in the image (known adapters: {known}). Use one of them, "
            "None for the base model, or import it with import_adapters()."
        )
    family = registry[name]
    if version is None:
        return family.current()
    if version not in family.versions:
        raise UnknownAdapter(
            f"The adapter {name!r} has no version {version} (versions: "
            f"{', '.join(map(str, family.versions))})."
        )
    proxy: AdapterProxy = family.versions[version]
    return proxy


def set_active_version(home: Any, name: str, version: int) -> AdapterProxy:
    """Mark one version of an adapter active and return it (the caller commits)."""
    proxy = get_adapter(home, name, version)
    adapter_registry(home)[name].active = version
    return proxy


def check_adapter(
    config: dict[str, Any] | None, weights: bytes | None, base: ModelRecord, where: str
) -> dict[str, tuple[int, ...]]:
    """Check an adapter's config and weights against the base model; return tensor shapes.

    Args:
        config: the parsed ``adapter_config.json`` (None when the file is missing).
        weights: the safetensors bytes (None when the file is missing).
        base: the installed base model's record.
        where: the folder or name, for the messages.

    Raises:
        AdapterError: the message names the file and the mismatch.
    """
    from safetensors.torch import load as load_bytes

    if config is None:
        raise AdapterError(
            f"{where}/{CONFIG_FILE} is missing; a PEFT adapter folder needs its config beside "
            f"{WEIGHTS_FILE}. Save the adapter with PeftModel.save_pretrained()."
        )
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterError(
            f"{where}/{CONFIG_FILE} says peft_type={config.get('peft_type')!r}; only LoRA "
            "adapters (peft_type 'LORA') can be experts."
        )
    if int(config.get("r", 0) or 0) <= 0 or not _targets(config):
        raise AdapterError(
            f"{where}/{CONFIG_FILE} needs a positive rank 'r' and 'target_modules'; found "
            f"r={config.get('r')!r}, target_modules={config.get('target_modules')!r}."
        )
    if weights is None:
        raise AdapterError(f"{where}/{WEIGHTS_FILE} is missing; the adapter has no weights.")
    try:
        tensors = load_bytes(weights)
        metadata = _metadata(weights)
    except Exception as exc:
        raise AdapterError(
            f"{where}/{WEIGHTS_FILE} is not a readable safetensors file ({exc}); the file is "
            "corrupted or truncated. Save the adapter again."
        ) from None
    recorded = metadata.get(BASE_KEY)
    if recorded and recorded != base.fingerprint:
        raise AdapterError(
            f"{where}/{WEIGHTS_FILE} was trained on another base model (fingerprint "
            f"{recorded[:12]}…, the image's model {base.model_id} is {base.fingerprint[:12]}…). "
            "Train it again on this base model, or install the model it belongs to."
        )
    named = str(config.get("base_model_name_or_path") or "")
    if not recorded and named and not named.startswith(("/", ".")) and named != base.model_id:
        raise AdapterError(
            f"{where}/{CONFIG_FILE} names base model {named!r}, but the image's model is "
            f"{base.model_id!r}. Use an adapter trained on {base.model_id}."
        )
    shapes: dict[str, tuple[int, ...]] = {}
    for key, tensor in tensors.items():
        match = _KEY.match(key)
        if match is None:
            raise AdapterError(
                f"{where}/{WEIGHTS_FILE} holds tensor {key!r}, which is not a LoRA A/B weight; "
                "only plain LoRA adapters (no modules_to_save, no DoRA) can be experts."
            )
        module, part = match["module"], match["part"]
        base_shape = base.shapes.get(module + ".weight")
        if base_shape is None or len(base_shape) != 2:
            raise AdapterError(
                f"{where}/{WEIGHTS_FILE} targets module {module!r}, which the base model "
                f"{base.model_id} does not have as a Linear layer."
            )
        out_features, in_features = base_shape
        rank = tensor.shape[0] if part == "A" else tensor.shape[1]
        want = (rank, in_features) if part == "A" else (out_features, rank)
        if tuple(tensor.shape) != want:
            raise AdapterError(
                f"{where}/{WEIGHTS_FILE}: tensor {key!r} has shape {tuple(tensor.shape)}, but "
                f"module {module!r} of {base.model_id} is {out_features}x{in_features}, so it "
                f"needs {want}. The adapter belongs to a model of another size."
            )
        shapes[key] = tuple(tensor.shape)
    if not shapes:
        raise AdapterError(f"{where}/{WEIGHTS_FILE} holds no tensors.")
    return shapes


def _metadata(weights: bytes) -> dict[str, str]:
    header_len = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + header_len])
    meta: dict[str, str] = header.get("__metadata__", {}) or {}
    return meta


def add_adapter_version(
    home: Any,
    name: str,
    config: dict[str, Any],
    weights: bytes,
    base: ModelRecord,
    *,
    activate: bool = True,
    source: str = "",
) -> tuple[AdapterProxy, bool]:
    """Check and store one adapter version; return ``(proxy, created)`` (the caller commits).

    Storing the same config and weights again returns the existing version with created=False.

    Raises:
        AdapterError: the adapter does not fit the base model (see :func:`check_adapter`).
    """
    check_adapter(config, weights, base, source or name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise AdapterError(f"Adapter names use letters, digits, '_', '.' and '-'; got {name!r}.")
    config = dict(config)
    config.pop(
        "base_model_name_or_path", None
    )  # a path of the training machine; the fingerprint says more
    digest = hashlib.sha256(weights).hexdigest()
    registry = adapter_registry(home)
    family = registry.get(name)
    if family is None:
        family = registry[name] = AdapterFamily(name)
    for version, proxy in family.versions.items():
        if proxy.weights_sha256 == digest and proxy.config() == json.loads(
            json.dumps(config, sort_keys=True)
        ):
            if activate:
                family.active = version
            return proxy, False
    version = (max(family.versions) + 1) if len(family.versions) else 1
    proxy = AdapterProxy(name, version, config, weights, base.fingerprint, source)
    family.versions[version] = proxy
    if activate or not family.active:
        family.active = version
    return proxy, True


def import_adapter(
    home: Any, folder: Path, base: ModelRecord, *, name: str | None = None, activate: bool = True
) -> tuple[AdapterProxy, bool]:
    """Import one PEFT adapter folder; return ``(proxy, created)``.

    Raises:
        AdapterError: missing config or weights, corrupted file, other base model, wrong shapes.
    """
    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    config: dict[str, Any] | None = None
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise AdapterError(f"{config_path} is not valid JSON ({exc}).") from None
    weights = weights_path.read_bytes() if weights_path.is_file() else None
    if config is None or weights is None:
        check_adapter(config, weights, base, str(folder))  # raises, naming the missing file
        raise AdapterError(f"{folder} is not a complete adapter folder.")
    return add_adapter_version(
        home, name or folder.name, config, weights, base, activate=activate, source=str(folder)
    )


def import_adapters(home: Any, root: Path, base: ModelRecord) -> ImportReport:
    """Import every adapter folder under ``root``; refused ones are reported, not raised."""
    report = ImportReport()
    root = Path(root)
    if not root.is_dir():
        return report
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            proxy, created = import_adapter(home, folder, base)
        except AdapterError as exc:
            report.refused[folder.name] = str(exc)
            continue
        (report.imported if created else report.unchanged).append(proxy.key)
    return report


def save_adapter_folder(peft: Any, target: Path, fingerprint: str, base_model_id: str) -> Path:
    """Write a trained PeftModel's adapter as a folder :func:`import_adapter` accepts.

    PEFT's own ``save_pretrained`` writes the files; the config then names ``base_model_id``
    and the weights' safetensors metadata records the base model's ``fingerprint``
    (:data:`BASE_KEY`), so an image with another base model refuses the adapter by name.
    An existing folder at ``target`` is replaced.
    """
    import shutil
    import tempfile

    from safetensors.torch import load_file, save_file

    target = Path(target)
    with tempfile.TemporaryDirectory() as tmp:
        peft.save_pretrained(tmp)
        tensors = load_file(str(Path(tmp) / WEIGHTS_FILE))
        config = json.loads((Path(tmp) / CONFIG_FILE).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model_id
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    (target / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    save_file(tensors, str(target / WEIGHTS_FILE), metadata={"format": "pt", BASE_KEY: fingerprint})
    return target
