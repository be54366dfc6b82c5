"""Helpers shared by the benchmarks: timing and writing a results table."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Return the fastest of ``repeat`` runs of ``fn`` in seconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write_results(
    name: str, title: str, header: list[str], rows: list[list[str]], notes: str = ""
) -> Path:
    """Write a Markdown table to ``benchmarks/results/<name>.md`` and print it."""
    RESULTS.mkdir(exist_ok=True)
    lines = [
        f"# {title}",
        "",
        f"Measured {_dt.datetime.now().isoformat(timespec='minutes')} on {machine()}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    if notes:
        lines += ["", notes]
    text = "\n".join(lines) + "\n"
    path = RESULTS / f"{name}.md"
    path.write_text(text)
    print(text)
    return path


@contextmanager
def embedded_generator(adapters_dir: Path | None = None) -> Iterator[tuple[Any, Any, Any]]:
    """An in-memory image with the embedded model installed: (image, generator, settings).

    The generator and settings are the JIT's own (``batos_lab.dnu.generator_for``); both live
    as long as the image, so measure inside the block. Exits with a clear message when no
    embedded model can be installed.
    """
    from batos_lab.dnu import generator_for
    from batos_lab.image import open_image
    from batos_lab.llm import install_model

    with open_image(None) as image:
        with image.transaction("install the embedded model"):
            install_model(image, adapters_dir=adapters_dir)
        entry = generator_for(image)
        if entry is None:
            raise SystemExit("No embedded model is available: install it first (batos model).")
        generator, settings = entry
        yield image, generator, settings
