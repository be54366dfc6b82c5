"""Judges of the JIT's pools side by side: which signal keeps a right candidate when one is there.

Run: python -m benchmarks.jit_pools --candidates 32 --dump pools.jsonl   (the pools, once)
     python -m benchmarks.jit_judges pools.jsonl --candidates 32          (the judges)
     python -m benchmarks.jit_judges pools.jsonl --candidates 32 --adapter JIT

The pools of ``benchmarks.jit_pools`` hold a right method for far more tasks than the ranking
keeps. This replays a dumped pool without generating again: each first-round candidate is run
on a fresh object holding the task's slots (its outcome: the answer and the slots afterwards),
then every judge ranks the same candidates, at each pool size (each prompt's share cut to its
first rows, as ``jit_pools`` cuts it). Every judge ranks after the shipped facts (reads every
argument, does something; ``batos_lab.dnu_rank``), so it only replaces what decides among the
outcomes that pass them. The judges, scored with the embedded model:

- **shipped**: ``batos_lab.dnu_rank.choose`` itself (votes, then the transcript for ties);
- **transcript**: the model's log-probability of the call's transcript with the outcome;
- **transcript PMI**: the same less its log-probability after a neutral selector (``method``),
  so an answer likely whatever the message asked (a slot's value) gains nothing;
- **source**: the log-probability of the candidate's source after the JIT prompt it answered;
- **source PMI**: the same less that after the prompt with the selector made neutral;
- **votes across prompts**: how many of the prompts (example banks) reached the outcome, then
  votes, then the transcript;
- with ``--adapter NAME``, **NAME's source**: the source's log-probability under that adapter
  (the base model still wrote every candidate).

A group of candidates with one outcome scores as its best member. Writes
benchmarks/results/jit_judges.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from batos_lab.dnu_model import writing_model
from batos_lab.dnu_prompt import build_prompt, safe_repr
from batos_lab.dnu_rank import (
    Outcome,
    choose,
    data_state,
    did_nothing,
    transcript,
    unused_parameters,
)
from benchmarks.common import embedded_generator, write_results
from tests.jit_suite import HELDOUT, TASKS, Task, fresh_object

#: What each dumped candidate must carry to be replayed.
FIELDS = frozenset({"attempt", "round", "prompt", "right", "source"})

#: The neutral selector of the PMI judges' second reading.
NEUTRAL = "method"


class DumpError(ValueError):
    """A pool dump that cannot be replayed; the message names the line and what is wrong."""


@dataclass
class Pooled:
    """One first-round candidate of a dumped pool, run again and scored."""

    attempt: int
    prompt: int
    right: bool
    source: str
    outcome: Outcome
    unused: int
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Row:
    """One message's pool: its set, seed and task, and the candidates that ran."""

    where: str
    seed: int
    task: Task
    candidates: list[Pooled]
    #: per outcome: the transcript judges' scores and whether it did nothing
    outcomes: dict[Outcome, dict[str, float]] = field(default_factory=dict)
    #: the index in ``candidates`` that ``choose`` kept, per pool size
    shipped: dict[int, int] = field(default_factory=dict)


@dataclass
class Group:
    """The candidates of a pool that reached one outcome."""

    outcome: Outcome
    members: list[Pooled]
    facts: tuple[float, float]  # (-unused parameters, -did nothing): the shipped facts

    @property
    def votes(self) -> int:
        return len(self.members)

    def best(self, name: str) -> float:
        return max(m.scores[name] for m in self.members)


def load(path: Path) -> list[dict[str, Any]]:
    """The lines of a ``jit_pools --dump`` file; a line that is not one raises DumpError."""
    known = {t.name: t for t in (*TASKS, *HELDOUT)}
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DumpError(
                f"{where}: not JSON ({exc}); expected a jit_pools --dump line"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("candidates"), list):
            raise DumpError(f"{where}: no list of candidates; expected a jit_pools --dump line")
        missing = {"set", "seed", "task"} - row.keys()
        for c in row["candidates"]:
            missing |= FIELDS - (c.keys() if isinstance(c, dict) else set())
        if missing:
            raise DumpError(f"{where}: missing {', '.join(sorted(missing))}")
        if row["task"] not in known:
            raise DumpError(f"{where}: unknown task {row['task']!r}")
        rows.append(row)
    if not rows:
        raise DumpError(f"{path}: no pools in it")
    return rows


def share_of(candidate: Pooled, per_prompt: int) -> int:
    """The candidate's row within its prompt's share of the first pool (0: the greedy reply)."""
    return candidate.attempt - candidate.prompt * per_prompt


def misplaced(raw: dict[str, Any], per_prompt: int) -> bool:
    """Tell whether a dumped pool has first-round rows outside their prompt's share.

    Attempts are numbered across the prompts, each share ``per_prompt`` long; a prompt whose
    generation failed left a single attempt, so the next prompt's rows no longer sit where
    their share says.
    """
    return any(
        c["round"] == 0 and not 0 <= c["attempt"] - c["prompt"] * per_prompt < per_prompt
        for c in raw["candidates"]
    )


def cut(row: Row, size: int, prompts: int, per_prompt: int) -> list[Pooled]:
    """The candidates a first pool of ``size`` (all prompts together) would have held."""
    return [c for c in row.candidates if share_of(c, per_prompt) < size // prompts]


def groups_of(row: Row, pool: list[Pooled]) -> list[Group]:
    """The pool's outcomes, earliest first, each with the shipped facts about it."""
    found: dict[Outcome, list[Pooled]] = {}
    for c in sorted(pool, key=lambda c: c.attempt):
        found.setdefault(c.outcome, []).append(c)
    return [
        Group(o, members, (-min(m.unused for m in members), -row.outcomes[o]["idle"]))
        for o, members in found.items()
    ]


#: A judge ranks the groups that pass the facts: higher wins, ties go to the earliest.
Judge = Callable[[Row, Group], tuple[float, ...]]


def _judges(adapter: str | None) -> dict[str, Judge]:
    judges: dict[str, Judge] = {
        "transcript": lambda r, g: (r.outcomes[g.outcome]["transcript"],),
        "transcript PMI": lambda r, g: (
            r.outcomes[g.outcome]["transcript"] - r.outcomes[g.outcome]["transcript_neutral"],
        ),
        "votes, transcript PMI": lambda r, g: (
            g.votes,
            r.outcomes[g.outcome]["transcript"] - r.outcomes[g.outcome]["transcript_neutral"],
        ),
        "source": lambda r, g: (g.best("source"),),
        "source PMI": lambda r, g: (g.best("source PMI"),),
        "votes, source PMI": lambda r, g: (g.votes, g.best("source PMI")),
        "votes across prompts": lambda r, g: (
            len({m.prompt for m in g.members}), g.votes, r.outcomes[g.outcome]["transcript"],
        ),
    }  # fmt: skip
    if adapter:
        judges[f"{adapter}'s source"] = lambda r, g: (g.best("adapter"),)
        judges[f"votes, {adapter}'s source"] = lambda r, g: (g.votes, g.best("adapter"))
    return judges


def keep(row: Row, pool: list[Pooled], judge: Judge) -> Pooled | None:
    """The candidate ``judge`` would install from ``pool`` (None for an empty pool)."""
    groups = groups_of(row, pool)
    if not groups:
        return None
    top = max(g.facts for g in groups)
    passing = [g for g in groups if g.facts == top]
    order = {id(g): i for i, g in enumerate(passing)}
    best = max(passing, key=lambda g: (*judge(row, g), -order[id(g)]))
    return best.members[0]


class Scorer:
    """Log-probabilities of endings after a context, each context's cache computed once.

    Scored by the JIT's own writer (:func:`batos_lab.dnu_model.writing_model`): every adapter
    off, or ``adapter`` active; an adapter whose weights cannot be read raises AdapterError.
    """

    def __init__(self, core: Any, adapter: str | None = None) -> None:
        self.core = core
        self.adapter = adapter
        self._contexts: dict[str, tuple[Any, Any]] = {}  # context: (its cache, last logits)

    def __call__(self, context: str, ending: str) -> float:
        """The summed log-probability of ``ending``'s tokens after ``context``'s."""
        import torch

        tokenizer = self.core.tokenizer()
        device = self.core.input_device()
        ids = tokenizer.encode(ending, add_special_tokens=False)
        with writing_model(self.core, self.adapter) as model, torch.inference_mode():
            if context not in self._contexts:
                if len(self._contexts) >= 4:  # a message's prompts and their neutral readings
                    self._contexts.clear()
                head = tokenizer.encode(context, add_special_tokens=False)
                out = model(input_ids=torch.tensor([head], device=device), use_cache=True)
                self._contexts[context] = (out.past_key_values, out.logits[0, -1].float())
            past, last = self._contexts[context]
            out = model(
                input_ids=torch.tensor([ids], device=device),
                past_key_values=copy.deepcopy(past),
                use_cache=True,
            )
            logits = torch.cat([last[None], out.logits[0, :-1].float()])
            picked = torch.log_softmax(logits, -1).gather(
                1, torch.tensor(ids, device=device)[:, None]
            )
            return float(picked.sum())


def _neutral(text: str, selector: str) -> str:
    return re.sub(rf"\b{re.escape(selector)}\b", NEUTRAL, text)


#: A log-probability of an ending after a context (:class:`Scorer`, or a scripted stand-in).
Score = Callable[[str, str], float]


def replay(
    image: Any, raw: dict[str, Any], generator: Any, scorers: dict[str, Score],
    banks: tuple[str, ...], sizes: list[int], per_prompt: int,
) -> Row:  # fmt: skip
    """Run one dumped pool's first-round candidates again and score them with every judge.

    ``scorers`` map a name to a :data:`Score`: ``"base"`` scores the transcripts and the
    sources, any other name the sources as that adapter.
    ``generator`` is the judge ``dnu_rank.choose`` asks on a tie, for the shipped pick at each
    of ``sizes``.
    """
    task = next(t for t in (*TASKS, *HELDOUT) if t.name == raw["task"])
    receiver = fresh_object(image, task, "jit_judges")
    before = data_state(receiver)
    prompts = [build_prompt(receiver, task.selector, task.args, task.kwargs, bank=b) for b in banks]
    image.abort()
    candidates = []
    for c in raw["candidates"]:
        if c["round"] != 0:
            continue
        outcome = _outcome(image, task, c["source"])
        if outcome is not None:
            unused = len(unused_parameters(c["source"]))
            candidates.append(
                Pooled(c["attempt"], c["prompt"], c["right"], c["source"], outcome, unused)
            )
    row = Row(raw["set"], raw["seed"], task, candidates)
    outcomes = list(dict.fromkeys(c.outcome for c in candidates))
    names = [name for name, _ in before]
    shown = [n for n in names if len({dict(o.state).get(n) for o in outcomes}) > 1]
    base = scorers["base"]
    for o in outcomes:
        context, ending = transcript(receiver, task.selector, task.args, task.kwargs, o, shown)
        neutral = context.replace(f".{task.selector}(", f".{NEUTRAL}(")
        row.outcomes[o] = {
            "transcript": base(context, ending),
            "transcript_neutral": base(neutral, ending),
            "idle": float(did_nothing(before, task.args, task.kwargs, o)),
        }
    for name, scorer in scorers.items():
        for c in sorted(candidates, key=lambda c: c.prompt):
            prompt = prompts[c.prompt].text
            head = prompt[: len(prompt) - len(prompts[c.prompt].header)]
            if name == "base":
                c.scores["source"] = scorer(head, c.source)
                plain = scorer(_neutral(head, task.selector), _neutral(c.source, task.selector))
                c.scores["source PMI"] = c.scores["source"] - plain
            else:
                c.scores["adapter"] = scorer(head, c.source)
    for size in sizes:
        pool = cut(row, size, len(banks), per_prompt)
        if pool:
            row.shipped[size] = _shipped(image, task, pool, generator)
    return row


def _outcome(image: Any, task: Task, source: str) -> Outcome | None:
    """The candidate's outcome on a fresh object (None when it fails there); aborted after."""
    probe = fresh_object(image, task, "jit_judges_probe")
    try:
        probe.define(task.selector, source)
        answer = getattr(probe, task.selector)(*task.args, **task.kwargs)
        return Outcome(safe_repr(answer, 200), data_state(probe))
    except Exception:
        return None
    finally:
        image.abort()


def _shipped(image: Any, task: Task, pool: list[Pooled], generator: Any) -> int:
    """The candidate ``batos_lab.dnu_rank.choose`` keeps from ``pool`` (its attempt number)."""
    receiver = fresh_object(image, task, "jit_judges")
    try:
        passed: list[tuple[dict[str, Any], str, list[str], Outcome]] = [
            ({"attempt": c.attempt}, c.source, [], c.outcome) for c in pool
        ]
        index = choose(receiver, task.selector, task.args, task.kwargs, passed, generator)
        return pool[index].attempt
    finally:
        image.abort()


def table(
    rows: list[Row], judges: dict[str, Judge], sizes: list[int], prompts: int, per_prompt: int
) -> list[list[str]]:
    """Tasks kept right per judge and pool size, suite and held-out, summed over the seeds."""

    def count(where: str, pick: Callable[[Row, list[Pooled], int], Pooled | None]) -> str:
        cells = []
        for size in sizes:
            chosen = [
                pick(r, cut(r, size, prompts, per_prompt), size) for r in rows if r.where == where
            ]
            cells.append(str(sum(bool(c and c.right) for c in chosen)))
        return " / ".join(cells)

    def by_attempt(r: Row, pool: list[Pooled], size: int) -> Pooled | None:
        return next((c for c in pool if c.attempt == r.shipped.get(size)), None)

    def reach(r: Row, pool: list[Pooled], size: int) -> Pooled | None:
        return next((c for c in pool if c.right), None)

    picks: dict[str, Callable[[Row, list[Pooled], int], Pooled | None]] = {
        "some candidate right": reach,
        "shipped (dnu_rank.choose)": by_attempt,
    }
    for name, judge in judges.items():
        picks[name] = lambda r, pool, size, judge=judge: keep(r, pool, judge)  # type: ignore[misc]
    return [[name, count("suite", pick), count("held-out", pick)] for name, pick in picks.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dump", type=Path, help="a benchmarks.jit_pools --dump file")
    parser.add_argument(
        "--candidates", type=int, default=32, help="the first pool the dump was drawn with"
    )
    parser.add_argument("--adapter", help="also judge by this adapter's source likelihood")
    args = parser.parse_args()
    try:
        raw = load(args.dump)
    except (OSError, DumpError) as exc:
        parser.error(str(exc))
    with embedded_generator() as (image, generator, settings):
        banks = settings.banks
        prompts = len(banks)
        per_prompt = args.candidates // prompts
        placed = [r for r in raw if not misplaced(r, per_prompt)]
        left_out = [f"{r['set']} {r['seed']} {r['task']}" for r in raw if misplaced(r, per_prompt)]
        if args.candidates % prompts or len(left_out) > len(raw) // 4:
            parser.error(
                f"the dump was not drawn with --candidates {args.candidates} over {prompts} "
                f"banks: {len(left_out)} of {len(raw)} pools have first-round rows outside it"
            )
        if left_out:
            print(f"left out (a prompt's rows cannot be placed): {', '.join(left_out)}")
        sizes = [k * prompts for k in (1, 2, 4, 8, 16, 32, 64) if k <= per_prompt]
        scorers: dict[str, Score] = {"base": Scorer(generator.core)}
        if args.adapter:
            scorers[args.adapter] = Scorer(generator.core, args.adapter)
        from tqdm import tqdm

        rows = [
            replay(image, r, generator, scorers, banks, sizes, per_prompt)
            for r in tqdm(placed, desc="pools", unit="task")
        ]
    judges = _judges(args.adapter)
    seeds = sorted({r.seed for r in rows})
    tasks = {where: sum(r.where == where for r in rows) for where in ("suite", "held-out")}
    write_results(
        "jit_judges",
        "Judges of the JIT's pools side by side",
        ["judge (after the shipped facts)", "suite", "held-out"],
        table(rows, judges, sizes, prompts, per_prompt),
        notes=(
            f"Each cell: the tasks whose kept candidate is right, for first pools of "
            f"{', '.join(map(str, sizes))} (each prompt's first rows), summed over seeds "
            f"{', '.join(map(str, seeds))} ({tasks['suite']} suite and {tasks['held-out']} "
            f"held-out messages in all). Model {settings.model_id}; the pools are "
            f"{args.dump.name}, drawn over the banks {', '.join(banks)}. 'Some candidate right' "
            "is the most any judge could keep."
            + (
                f" Left out, as a prompt's rows could not be placed in its share (its "
                f"generation failed and left one attempt): {', '.join(left_out)}."
                if left_out
                else ""
            )
        ),
    )


if __name__ == "__main__":
    main()
