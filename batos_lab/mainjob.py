"""The main job on the embedded default: what the README's first command runs."""

from __future__ import annotations

import time

from batos_lab.genesis import ensure_genesis, tour
from batos_lab.image import open_image

__all__ = ["run_main_job"]


def run_main_job(where: str) -> None:
    """Open (or create) the image at ``where``, run genesis once, and print a tour."""
    started = time.perf_counter()
    with open_image(where, genesis=False) as image:
        created = ensure_genesis(image)
        print(("[genesis] created " if created else "[genesis] resumed ") + image.location)
        print(tour(image))
        print(f"[main] done in {time.perf_counter() - started:.1f} s")
