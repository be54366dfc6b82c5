"""Train the punkt sentence splitter on the project's corpus and write its parameters.

Usage: python scripts/train_punkt.py [--out batos_lab/catalog/punkt_params.json]

The corpus is every ``*.md``/``*.txt`` file under ``data/codex/`` and ``data/corpus/``.
The parameters are written as JSON (no pickle) and shipped in the package.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from batos_lab.catalog.sentences import PARAMS_PATH, params_to_json, train_parameters
from batos_lab.paths import DATA_DIR


def corpus_files(data_dir: Path = DATA_DIR) -> list[Path]:
    """Return the corpus files punkt is trained on, sorted for a reproducible result."""
    files: list[Path] = []
    for sub in ("codex", "corpus"):
        for pattern in ("*.md", "*.txt"):
            files.extend((data_dir / sub).rglob(pattern))
    return sorted(files)


def main() -> None:
    """Train on the corpus and write the JSON parameters."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=PARAMS_PATH)
    args = parser.parse_args()
    files = corpus_files()
    if not files:
        raise SystemExit(
            f"No corpus files under {DATA_DIR}/codex or {DATA_DIR}/corpus; add some first."
        )
    params = train_parameters(f.read_text(encoding="utf-8") for f in files)
    data = params_to_json(params)
    data["trained_on"] = [str(f.relative_to(DATA_DIR)) for f in files]
    args.out.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(
        f"wrote {args.out}: {len(data['abbrev_types'])} abbreviations, "
        f"{len(data['sent_starters'])} sentence starters, from {len(files)} files"
    )


if __name__ == "__main__":
    main()
