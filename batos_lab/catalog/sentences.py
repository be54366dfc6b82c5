"""Sentence splitting with NLTK's punkt algorithm and parameters shipped in the package.

Punkt is unsupervised: ``scripts/train_punkt.py`` trains its parameters (abbreviations,
collocations, sentence starters, orthographic context) on the project's own corpus and writes
them to ``punkt_params.json`` beside this module. Nothing is ever downloaded.
"""

from __future__ import annotations

import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTrainer

PARAMS_PATH = Path(__file__).with_name("punkt_params.json")

#: Abbreviations merged into the trained ones: the corpus is small, and these are common enough
#: in technical English that missing one would cut a sentence in two.
EXTRA_ABBREVIATIONS: tuple[str, ...] = (
    "approx", "cf", "dr", "e.g", "eg", "etc", "fig", "i.e", "ie", "incl", "mr", "mrs", "ms",
    "prof", "resp", "sec", "st", "vol", "vs",
)  # fmt: skip

_LOCK = threading.Lock()
_TOKENIZER: PunktSentenceTokenizer | None = None
_BULLET = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")


def train_parameters(texts: Iterable[str]) -> PunktParameters:
    """Train punkt parameters on some texts and add the extra abbreviations.

    Args:
        texts: plain or markdown texts of the corpus.

    Returns:
        The finalized punkt parameters.
    """
    trainer = PunktTrainer()
    for text in texts:
        trainer.train("\n".join(blocks(text)), finalize=False)
    trainer.finalize_training()
    params = trainer.get_params()
    # On a corpus this small punkt mistakes some sentence-final words for abbreviations (it
    # learned "yes", "day" and "joy" from the codex). Keep only learned types that cannot be
    # ordinary words: multi-part ("e.g") or single letters (initials); add the curated list.
    params.abbrev_types = {a for a in params.abbrev_types if "." in a or len(a) == 1}
    params.abbrev_types.update(EXTRA_ABBREVIATIONS)
    return params


def params_to_json(params: PunktParameters) -> dict[str, Any]:
    """Turn punkt parameters into a JSON-ready dict (sorted, so the file diffs well)."""
    return {
        "format": "batos-punkt-1",
        "abbrev_types": sorted(params.abbrev_types),
        "collocations": sorted([a, b] for a, b in params.collocations),
        "sent_starters": sorted(params.sent_starters),
        "ortho_context": dict(sorted(params.ortho_context.items())),
    }


def params_from_json(data: dict[str, Any]) -> PunktParameters:
    """Rebuild punkt parameters from the dict written by :func:`params_to_json`."""
    params = PunktParameters()
    params.abbrev_types = set(data["abbrev_types"])
    params.collocations = {(a, b) for a, b in data["collocations"]}
    params.sent_starters = set(data["sent_starters"])
    params.ortho_context = defaultdict(int, {k: int(v) for k, v in data["ortho_context"].items()})
    return params


def tokenizer() -> PunktSentenceTokenizer:
    """Return the process-wide punkt tokenizer built from the shipped parameters."""
    global _TOKENIZER
    with _LOCK:
        if _TOKENIZER is None:
            data = json.loads(PARAMS_PATH.read_text(encoding="utf-8"))
            _TOKENIZER = PunktSentenceTokenizer(params_from_json(data))
        return _TOKENIZER


def blocks(text: str) -> list[str]:
    """Cut text into blocks that never share a sentence: paragraphs, list items, headings."""
    out: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if not line.strip() or _BULLET.match(line) or _HEADING.match(line):
            if current:
                out.append(" ".join(current))
                current = []
            if _HEADING.match(line):
                out.append(_HEADING.match(line).group(2))  # type: ignore[union-attr]
                continue
            line = _BULLET.sub("", line)
        if line.strip():
            current.append(line.strip())
    if current:
        out.append(" ".join(current))
    return [_clean(b) for b in out if _clean(b)]


def _clean(block: str) -> str:
    """Drop markdown emphasis marks and squeeze whitespace."""
    block = block.replace("**", "").replace("`", "")
    return re.sub(r"\s+", " ", block).strip()


def split_sentences(text: str, max_words: int = 120) -> list[str]:
    """Split text into sentences with punkt; overlong runs are cut into max_words pieces.

    Args:
        text: plain or markdown text (no headings: see :func:`split_sections`).
        max_words: the most words one returned sentence may have.

    Returns:
        The sentences, in order, without empty ones.

    Example:
        >>> split_sentences("Dr. Who came, e.g. at noon. He left.")
        ['Dr. Who came, e.g. at noon.', 'He left.']
    """
    tok = tokenizer()
    out: list[str] = []
    for block in blocks(text):
        for sent in tok.tokenize(block):
            words = sent.split()
            if len(words) <= max_words:
                out.append(sent)
            else:
                out.extend(
                    " ".join(words[i : i + max_words]) for i in range(0, len(words), max_words)
                )
    return out


def first_heading(text: str) -> str:
    """The text of the first markdown heading, or "" when there is none."""
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            return _clean(match.group(2))
    return ""


def split_sections(text: str, default_title: str = "") -> list[tuple[str, str]]:
    """Split markdown into (heading, body) sections at its headings.

    Args:
        text: markdown or plain text.
        default_title: the title of the leading section without a heading.

    Returns:
        (title, body) pairs, in order, without sections whose body is empty.
    """
    sections: list[tuple[str, list[str]]] = [(default_title, [])]
    for line in text.splitlines():
        match = _HEADING.match(line)
        if match:
            sections.append((_clean(match.group(2)), []))
        else:
            sections[-1][1].append(line)
    return [(title, "\n".join(body)) for title, body in sections if "\n".join(body).strip()]
