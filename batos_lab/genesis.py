"""Genesis: the primordial objects of a new image, created once in one transaction.

The root of an image after genesis::

    genesis            version, creation time, settings (dnu_mode)
    traits             the shared parent: kernel behaviour by importable name
    personas           OOBTree: ROBIN, BRICK, BABS, ALFRED prototypes built from the codex
    pLLM_obj           home of the cognitive core (model blobs, adapters)
    memory_manager, knowledge_catalog_home, heartbeat, forge, bridge
                       homes of the later subsystems
    failures           OOBTree of failure records, read by the heartbeat
    objects            OOBTree of objects a researcher keeps by name
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from BTrees.OOBTree import OOBTree

from batos_lab import __version__
from batos_lab.errors import ImageError
from batos_lab.objects import NativeMethod, UvmObject, summarize
from batos_lab.paths import CODEX_DIR

if TYPE_CHECKING:
    from batos_lab.image import Image

__all__ = ["PERSONAS", "SUBSYSTEM_HOMES", "describe", "ensure_genesis", "load_codex", "tour"]

PERSONAS = ("ROBIN", "BRICK", "BABS", "ALFRED")

#: Homes of the subsystems that later parts of the image fill in, with what each is for.
SUBSYSTEM_HOMES = {
    "pLLM_obj": "the cognitive core: base model files as blobs and the persona adapters",
    "memory_manager": "the Synaptic Memory Manager: adapter tiers and the device manifest",
    "knowledge_catalog_home": "the knowledge catalog: the image's searchable memory",
    "heartbeat": "the autotelic heartbeat: audits, entropy metrics, self-improvement missions",
    "forge": "the autotelic forge: datasets and fine-tuning jobs for better adapters",
    "bridge": "the synaptic bridge: ZeroMQ access for other programs",
}


def load_codex(path: Path | None = None) -> dict[str, Any]:
    """Read the persona codex (``personas.toml``) and check it names the four personas.

    Raises:
        ImageError: the file is missing, does not parse, or lacks a persona or a field.
    """
    path = path or CODEX_DIR / "personas.toml"
    try:
        codex = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImageError(f"The persona codex {path} is missing; genesis needs it.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ImageError(f"The persona codex {path} does not parse: {exc}.") from None
    for name in PERSONAS:
        entry = codex.get(name)
        if not isinstance(entry, dict):
            raise ImageError(f"The persona codex {path} has no [{name}] table.")
        for field in ("title", "core_mission", "adapter", "pillars"):
            if field not in entry:
                raise ImageError(f"The persona codex {path} lacks '{field}' for {name}.")
    return codex


def _codex_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _build(image: Image) -> None:
    root = image.root
    codex_path = CODEX_DIR / "personas.toml"
    codex = load_codex(codex_path)
    traits = UvmObject(
        name="traits",
        doc="The shared parent of every object: kernel behaviour, referenced by import name.",
        doesNotUnderstand_=NativeMethod("batos_lab.objects:raise_does_not_understand"),
        describe=NativeMethod("batos_lab.genesis:describe"),
    )
    root["traits"] = traits
    root["genesis"] = UvmObject(
        name="genesis",
        version=__version__,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        codex_sha256=_codex_hash(codex_path),
        dnu_mode="jit",
        **{"parent*": traits},
    )
    personas = OOBTree()
    for name in PERSONAS:
        entry = codex[name]
        personas[name] = UvmObject(
            name=name,
            title=entry["title"],
            core_mission=" ".join(entry["core_mission"].split()),
            adapter=entry["adapter"],
            codex_document=entry.get("document", ""),
            pillars={k: " ".join(v.split()) for k, v in entry["pillars"].items()},
            **{"parent*": traits},
        )
    root["personas"] = personas
    root["matrix"] = UvmObject(
        name="matrix",
        doc="The Collaborative Dynamics Matrix: query archetype -> persona sequence and lead.",
        rows={k: dict(v) for k, v in codex.get("matrix", {}).items()},
        **{"parent*": traits},
    )
    for home, purpose in SUBSYSTEM_HOMES.items():
        root[home] = UvmObject(name=home, purpose=purpose, **{"parent*": traits})
    root["failures"] = OOBTree()
    root["objects"] = OOBTree()


def ensure_genesis(image: Image, *, model: str | None = None) -> bool:
    """Run genesis when the image has none; return True when it ran.

    Genesis is one transaction: it either creates every primordial object or nothing.

    Args:
        image: the open image.
        model: also install a base model in ``pLLM_obj``: ``"embedded"`` for the default
            SmolLM2-135M-Instruct, or the path of a local HF model folder. An image that exists
            without that model gets it in a transaction of its own.
    """
    created = False

    def run() -> None:
        nonlocal created
        if "genesis" not in image.root:  # another client may have won the race
            _build(image)
            created = True
        if model is not None:
            from batos_lab.llm import install_model

            install_model(image, None if model == "embedded" else model)

    if "genesis" not in image.root:
        image.transact(run, note="genesis: the primordial objects")
    elif model is not None:
        image.transact(run, note=f"genesis: install the base model ({model})")
    return created


def describe(self: UvmObject) -> str:
    """Return a few lines saying what an object holds (a native method on ``traits``)."""
    lines = [repr(self)]
    for name in self.slot_names():
        lines.append(f"  {name:<24} {summarize(self.get_slot(name), 70)}")
    inherited = [s for s in self.selectors() if not self.has_slot(s)]
    if inherited:
        lines.append(f"  inherited: {', '.join(inherited)}")
    return "\n".join(lines)


def tour(image: Image) -> str:
    """Return a printable tour of what the image holds."""
    root = image.root
    genesis = root["genesis"]
    lines = [
        f"Image at {image.location}",
        f"  genesis {genesis.created}, batos_lab {genesis.version}, dnu_mode={genesis.dnu_mode}",
        "Personas:",
    ]
    for name, persona in root["personas"].items():
        lines.append(f"  {name:<7} {persona.title}: {summarize(persona.core_mission, 80)}")
        lines.append(f"          facets: {', '.join(persona.pillars)}")
    lines.append("Collaborative Dynamics Matrix:")
    for archetype, row in root["matrix"].rows.items():
        lines.append(f"  {archetype:<26} {' -> '.join(row['sequence'])} (lead {row['lead']})")
    lines.append("Subsystem homes:")
    for home in SUBSYSTEM_HOMES:
        obj = root[home]
        extra = [s for s in obj.slot_names() if s not in ("name", "purpose", "parent*")]
        lines.append(f"  {home:<24} {obj.purpose}" + (f" [{', '.join(extra)}]" if extra else ""))
    objects = root["objects"]
    lines.append(f"Named objects: {', '.join(objects.keys()) or '(none yet)'}")
    lines.append(f"Failure records: {len(root['failures'])}")
    return "\n".join(lines)
