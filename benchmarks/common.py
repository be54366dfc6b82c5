"""Helpers shared by the benchmarks: timing and writing a results table."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

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
