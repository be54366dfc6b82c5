"""Where the project's data lives on disk."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository (or source tree) holding ``data/``, ``notebooks/`` and ``lora_adapters/``.
REPO_ROOT = Path(os.environ.get("BATOS_REPO_ROOT", Path(__file__).resolve().parent.parent))

#: Data the image ingests: the codex, persona examples, training sets.
DATA_DIR = REPO_ROOT / "data"

#: The persona codex: structured facts plus prose documents.
CODEX_DIR = DATA_DIR / "codex"

#: Persona adapters in PEFT's folder format.
ADAPTERS_DIR = REPO_ROOT / "lora_adapters"

#: The embedded default image: a FileStorage file with its blob directory beside it.
DEFAULT_IMAGE = Path(os.environ.get("BATOS_IMAGE", "image/live_image.fs"))
