"""How far the embedded model's greedy replies reach when the JIT prompt is written many ways.

Run: python -m benchmarks.jit_prompts

Each task of the suite and the held-out set is asked once per prompt variant (an example bank,
which slice of its best-fitting examples, how many of them), greedily, and the reply is checked
against the task (``tests.jit_suite.greedy_by_prompt``). Greedy replies are deterministic, so
one run is the measurement. The table gives each variant alone, the two the pipeline's first
round starts from (``core 0 x4`` and ``broad 0 x4``) together, and every variant together: the
last is the most any ranking over these prompts could reach, and sets the prompt's share of
the gap to the quality target beside the model's. Writes benchmarks/results/jit_prompts.md.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batos_lab.dnu import Generator
from benchmarks.common import embedded_generator, write_results
from tests.jit_suite import HELDOUT, TASKS, GreedyReport, PromptVariant, greedy_by_prompt

#: the prompts measured: each bank's best four, its next four, two and six
VARIANTS = [
    *(PromptVariant(bank, variant) for bank in ("core", "broad", "extra") for variant in (0, 1)),
    *(PromptVariant(bank, 0, 2) for bank in ("core", "broad", "extra")),
    *(PromptVariant(bank, 0, 6) for bank in ("core", "broad", "extra")),
]
#: the prompts of the pipeline's first round (``JITSettings.banks``)
SHIPPED = ("core 0 x4", "broad 0 x4")


def reached(reports: list[GreedyReport], labels: tuple[str, ...] | list[str]) -> int:
    """How many tasks some variant in ``labels`` answers."""
    return sum(any(r.right.get(label, False) for label in labels) for r in reports)


def table(runs: dict[str, list[GreedyReport]], labels: list[str]) -> list[list[str]]:
    """One row per variant, then the shipped pair and every variant together."""

    def cells(chosen: tuple[str, ...] | list[str]) -> list[str]:
        return [f"{reached(r, chosen)} ({reached(r, chosen) / len(r):.0%})" for r in runs.values()]

    rows = [[label, *cells([label])] for label in labels]
    rows.append(["the first round's two (" + ", ".join(SHIPPED) + ")", *cells(SHIPPED)])
    rows.append([f"all {len(labels)} together", *cells(labels)])
    return rows


def measure(generator: Generator) -> dict[str, list[GreedyReport]]:
    """The greedy reply of every variant for every task of both sets."""
    return {
        "suite": greedy_by_prompt(generator, VARIANTS, TASKS),
        "held-out": greedy_by_prompt(generator, VARIANTS, HELDOUT),
    }


def main() -> None:
    with embedded_generator() as (_image, generator, settings):
        runs = measure(generator)
    labels = [v.label for v in VARIANTS]
    seconds = [s for reports in runs.values() for r in reports for s in r.seconds.values()]
    write_results(
        "jit_prompts",
        "JIT prompts: what the greedy replies of many prompt variants reach",
        ["prompt (bank, slice, examples)", "suite (35)", "held-out (24)"],
        table(runs, labels),
        notes=(
            f"Model {settings.model_id}, adapters off, greedy; median "
            f"{statistics.median(seconds):.2f} s per reply. A variant answers a task when its "
            "greedy reply, extracted and audited, is right on a fresh object (answer and slots "
            "afterwards).\n\n" + "\n".join(coverage(where, r, labels) for where, r in runs.items())
        ),
    )


def coverage(where: str, reports: list[GreedyReport], labels: list[str]) -> str:
    """One line naming the tasks only other variants reach, and those no variant reaches."""
    only = [r.task for r in reports if reached([r], labels) and not reached([r], SHIPPED)]
    never = [r.task for r in reports if not reached([r], labels)]
    return (
        f"- {where}: reached only outside the first round's two: {', '.join(only) or 'none'}; "
        f"by no variant: {', '.join(never) or 'none'}."
    )


if __name__ == "__main__":
    main()
