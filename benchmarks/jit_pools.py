"""The JIT's ranking against its pools: how often it keeps a right candidate when one is there.

Run: python -m benchmarks.jit_pools                        (the base model; 2 seeds)
     python -m benchmarks.jit_pools --adapter JIT           (the JIT adapter writes)
     python -m benchmarks.jit_pools --adapter JIT --with-base  (the pool both writers share)
     python -m benchmarks.jit_pools --dump pools.jsonl      (every candidate, one task a line)
     python -m benchmarks.jit_pools --candidates 32         (bigger first pools; reach by size)

For each task of the suite and the held-out set the message is sent once per seed, and every
candidate that passed its trial is run again on a fresh object and checked against the task
(``tests.jit_suite.run_pools``). The table sets the tasks the installed method answers beside
the tasks some candidate answers, the most any ranking of the same pools could reach, and the
list below it names each task where a right candidate was in the pool and lost. ``--dump``
writes every candidate (outcome, votes, writer, greedy or sampled, right or not), so another
ranking can be tried on the same pools without the model. Writes
benchmarks/results/jit_pools.md (``--adapter NAME``: jit_pools_NAME.md, with ``--with-base``
jit_pools_NAME_with_base.md; ``--candidates N`` adds ``_poolN``). A last table counts the tasks
some candidate answers when each prompt's share of the first pool is cut to its first rows: how
the reach grows with the pool.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batos_lab.dnu import Generator, JITSettings
from benchmarks.common import embedded_generator, write_results
from tests.jit_suite import HELDOUT, TASKS, PoolReport, Task, run_pools


def measure(
    generator: Generator, settings: JITSettings, tasks: list[Task], seed: int
) -> list[PoolReport]:
    """The pools of ``tasks`` on one fresh in-memory image, drawn with sampling seed ``seed``."""
    for writer in getattr(generator, "writers", [generator]):
        if hasattr(writer, "seed"):
            writer.seed = seed
    return run_pools(generator, settings, tasks)


def summary(runs: dict[tuple[str, int], list[PoolReport]]) -> list[list[str]]:
    """One row per task set and seed: chosen right, some candidate right, and their ratio."""
    rows = []
    for (where, seed), reports in runs.items():
        chosen = sum(r.chosen_right for r in reports)
        reach = sum(r.any_right for r in reports)
        rows.append(
            [
                where, str(seed), str(len(reports)), f"{chosen} ({chosen / len(reports):.0%})",
                f"{reach} ({reach / len(reports):.0%})", f"{chosen / max(reach, 1):.2f}",
            ]
        )  # fmt: skip
    return rows


def losses(runs: dict[tuple[str, int], list[PoolReport]]) -> str:
    """A Markdown table of the tasks whose pool held a right candidate the ranking did not keep."""
    lines = [
        "| set | seed | task | kept (votes) | right (votes, writers, greedy) |",
        "|---|---|---|---|---|",
    ]
    for (where, seed), reports in runs.items():
        for report in reports:
            if report.chosen_right or not report.any_right:
                continue
            kept = next((c for c in report.candidates if c.chosen), None)
            right = [c for c in report.candidates if c.right]
            kept_text = f"`{cell(kept.result)}` ({kept.votes})" if kept else "nothing installed"
            writers = ", ".join(sorted({c.writer for c in right}))
            greedy = "yes" if any(c.greedy for c in right) else "no"
            lines.append(
                f"| {where} | {seed} | {report.task} | {kept_text} | "
                f"`{cell(right[0].result)}` ({right[0].votes}, {writers}, {greedy}) |"
            )
    return "\n".join(lines)


def reach_by_size(
    runs: dict[tuple[str, int], list[PoolReport]], per_prompt: int, prompts: int
) -> tuple[list[int], list[list[str]]]:
    """How many tasks some candidate answers when each prompt's share of the first pool is cut.

    Each prompt's rows are its greedy reply, then samples drawn independently, so the first
    ``k`` rows of a share are a pool of ``k`` per prompt as the pipeline would draw it. Only
    first-round candidates count (a smaller pool that passed nothing would have retried).
    Returns the pool sizes (all prompts together) and one row per set and seed.
    """
    sizes = sorted({min(k, per_prompt) for k in (1, 2, 4, 8, 16, 32, 64, per_prompt)})
    rows = []
    for (where, seed), reports in runs.items():
        counts = []
        for k in sizes:
            reached = sum(
                any(
                    c.right and c.round == 0 and c.attempt - c.prompt * per_prompt < k
                    for c in report.candidates
                )
                for report in reports
            )
            counts.append(f"{reached} ({reached / len(reports):.0%})")
        rows.append([where, str(seed), str(len(reports)), *counts])
    return [k * prompts for k in sizes], rows


def reach_section(runs: dict[tuple[str, int], list[PoolReport]], settings: JITSettings) -> str:
    """The Markdown table of :func:`reach_by_size`, for the results' notes."""
    prompts = len(settings.banks)
    sizes, rows = reach_by_size(runs, settings.first_candidates // prompts, prompts)
    lines = [
        "\n## Some candidate right, by the size of the first pool",
        "",
        f"The first k rows of each of the {prompts} prompts' shares (greedy, then samples): "
        "the most any ranking could reach with a pool of that size.",
        "",
        "| set | seed | tasks | " + " | ".join(f"pool of {n}" for n in sizes) + " |",
        "|" + "---|" * (3 + len(sizes)),
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def cell(text: str, width: int = 40) -> str:
    """``text`` on one line, short enough for a table cell, with no column separator."""
    flat = " ".join(text.split()).replace("|", "/").replace("`", "'")
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def dump(runs: dict[tuple[str, int], list[PoolReport]], path: Path) -> None:
    """Write every task's candidates as JSON lines (one line per set, seed and task)."""
    with path.open("w") as handle:
        for (where, seed), reports in runs.items():
            for report in reports:
                record: dict[str, Any] = {
                    "set": where, "seed": seed, "task": report.task,
                    "candidates": [dataclasses.asdict(c) for c in report.candidates],
                }  # fmt: skip
                handle.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2, help="sampling seeds (runs of each set)")
    parser.add_argument("--adapter", help="an adapter that writes instead of the base model")
    parser.add_argument(
        "--with-base", action="store_true", help="with --adapter: the base model shares each pool"
    )
    parser.add_argument("--dump", type=Path, help="write every candidate here as JSON lines")
    parser.add_argument(
        "--candidates", type=int, help="candidates of the first round (default: the setting, 8)"
    )
    args = parser.parse_args()
    if args.with_base and not args.adapter:
        parser.error("--with-base needs --adapter")
    from batos_lab.dnu_model import ModelGenerator, SharedPool

    with embedded_generator() as (_image, base, settings):
        generator: Any = base
        name, label = "jit_pools", "the base model"
        if args.adapter:
            tuned = ModelGenerator(base.core, adapter=args.adapter)  # type: ignore[attr-defined]
            generator = SharedPool([base, tuned]) if args.with_base else tuned  # type: ignore[list-item]
            settings = dataclasses.replace(settings, adapter=args.adapter, with_base=args.with_base)
            name += f"_{args.adapter}" + ("_with_base" if args.with_base else "")
            label = (
                f"the pool shared by the base model and {args.adapter}"
                if args.with_base
                else args.adapter
            )
        if args.candidates is not None:
            prompts = len(settings.banks)
            if args.candidates < 2 * prompts or args.candidates % prompts:
                parser.error(
                    f"--candidates must be a multiple of {prompts} (one share per example "
                    f"bank) and at least {2 * prompts}, got {args.candidates}"
                )
            settings = dataclasses.replace(settings, first_candidates=args.candidates)
            name += f"_pool{args.candidates}"
        runs: dict[tuple[str, int], list[PoolReport]] = {}
        for seed in range(args.seeds):
            for where, tasks in (("suite", TASKS), ("held-out", HELDOUT)):
                runs[(where, seed)] = measure(generator, settings, list(tasks), seed)
    if args.dump:
        dump(runs, args.dump)
    write_results(
        name,
        f"JIT ranking against its pools: {label}",
        [
            "set",
            "seed",
            "tasks",
            "installed method right",
            "some candidate right",
            "kept / reachable",
        ],
        summary(runs),
        notes=(
            f"Model {settings.model_id}; first round {settings.first_candidates} candidates over "
            f"the banks {', '.join(settings.banks)}. 'Some candidate right' is the most any "
            "ranking of the same pools could reach.\n\n## Right candidates the ranking did not "
            "keep\n\n" + losses(runs) + reach_section(runs, settings)
        ),
    )


if __name__ == "__main__":
    main()
