"""JIT quality: success rate, attempts per success and median latency over tests/jit_suite.

Run: python -m benchmarks.jit_suite            (the embedded model, adapters off)
     python -m benchmarks.jit_suite --reference (hand-written references: checks the harness)

Writes benchmarks/results/jit_suite.md. The generator is a parameter of :func:`run`, so any
model (or a fine-tuned JIT adapter) can be measured on exactly the same tasks.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batos_lab.dnu import Generator, JITSettings, generator_for
from benchmarks.common import write_results
from tests.jit_suite import TASKS, SuiteReport, run_suite


def run(generator: Generator, settings: JITSettings, name: str = "jit_suite") -> SuiteReport:
    """Run every task with ``generator``, print the headline numbers and write the table."""
    report = run_suite(generator, settings)
    rows = [
        ["model", settings.model_id],
        ["adapter", str(settings.adapter)],
        ["tasks", str(len(report.results))],
        ["success rate", f"{report.success_rate:.0%}"],
        ["attempts per success", f"{report.attempts_per_success:.2f}"],
        ["median latency (s)", f"{report.median_latency_s:.2f}"],
        ["max attempts", str(settings.max_attempts)],
        ["temperatures", ", ".join(f"{t:g}" for t in settings.temperatures)],
    ]
    write_results(
        name,
        "JIT suite: doesNotUnderstand_ on the embedded model",
        ["measure", "value"],
        rows,
        notes="## Per task\n\n" + report.table(),
    )
    return report


def _reference(prompt: str, temperature: float, attempt: int) -> str:
    selector = prompt.rsplit("def ", 1)[1].split("(", 1)[0]
    return next(t.reference for t in TASKS if t.selector == selector)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reference", action="store_true", help="use the reference solutions")
    args = parser.parse_args()
    if args.reference:
        run(_reference, JITSettings(model_id="reference"), name="jit_suite_reference")
        return
    from batos_lab.image import open_image

    with open_image(None) as image:
        entry = generator_for(image)
        if entry is None:
            raise SystemExit("No embedded model is available: install it first (batos model).")
        generator, settings = entry
        run(generator, settings)


if __name__ == "__main__":
    main()
