"""BRICK's plans on the embedded model: validity, usefulness and latency over 50 questions.

Run: python -m benchmarks.psm_plan            (all questions of benchmarks/data/plan_questions.json)
     python -m benchmarks.psm_plan --limit 10 (the first ten of each kind's order, for a quick look)

Each question is planned twice from the same request DECOMPOSING sends (``stages.plan_request``):
with guided JSON decoding, as cycles plan, and with free decoding of the same prompt, so the
effect of the guide is a ratio taken in one run. Writes benchmarks/results/psm_plan.md.

* valid: the reply parsed and validated by pydantic (``parse_plan``), no fallback used;
* useful: valid, with at least one facet and a non-blank sub-query for every facet chosen;
* sub-queries on topic: of all sub-queries written, those that share a content word with the
  question (a lexical look at whether they are about the question at all).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_results

QUESTIONS = Path(__file__).resolve().parent / "data" / "plan_questions.json"
#: the free-decoding budget: a valid plan closes in about 120 tokens
FREE_TOKENS = 192


@dataclass
class PlanRun:
    """One question planned one way."""

    kind: str
    question: str
    valid: bool
    useful: bool
    on_topic: int = 0
    queries: int = 0
    pillars: list[str] = field(default_factory=list)
    first_query: str = ""
    tokens: int = 0
    ms: float = 0.0
    error: str = ""


def judge(kind: str, question: str, text: str, facets: dict[str, str], reply: Any) -> PlanRun:
    """Parse and score one reply."""
    from batos_lab.errors import PlanError
    from batos_lab.psm.plan import parse_plan
    from batos_lab.psm.stages import content_stems

    run = PlanRun(kind, question, False, False, tokens=reply.completion_tokens, ms=reply.ms)
    try:
        plan = parse_plan(text, facets)
    except PlanError as exc:
        run.error = str(exc)[:120]
        return run
    queries = [plan.sub_queries.get(f, "") for f in plan.relevant_pillars]
    run.valid = True
    run.useful = bool(plan.relevant_pillars) and all(q.strip() for q in queries)
    asked = content_stems(question)
    run.on_topic = sum(bool(content_stems(q) & asked) for q in queries)
    run.queries = len(queries)
    run.pillars = list(plan.relevant_pillars)
    run.first_query = queries[0] if queries else ""
    return run


def plan_all(
    image: Any, mind: Any, items: list[dict[str, str]]
) -> tuple[list[PlanRun], list[PlanRun]]:
    """Plan every question guided and free; return both lists of runs."""
    from batos_lab.psm import CycleSettings
    from batos_lab.psm.stages import plan_request

    settings = CycleSettings()
    root = image.root
    guided: list[PlanRun] = []
    free: list[PlanRun] = []
    for number, item in enumerate(items, 1):
        sequence = root["matrix"].rows[item["workflow"]]["sequence"]
        facets = {f: str(i) for p in sequence for f, i in root["personas"][p].pillars.items()}
        request = plan_request(item["q"], facets, root["personas"]["BRICK"], settings)
        reply = mind.plan(request, list(facets))
        guided.append(judge(item["kind"], item["q"], reply.text, facets, reply))
        loose = mind.answer(replace(request, max_new_tokens=FREE_TOKENS))
        free.append(judge(item["kind"], item["q"], loose.text, facets, loose))
        g = guided[-1]
        print(
            f"{number:2}/{len(items)} {item['kind']:9} guided {'valid' if g.valid else 'INVALID'} "
            f"{g.ms / 1e3:5.1f}s | free {'valid' if free[-1].valid else 'invalid'} "
            f"{free[-1].ms / 1e3:5.1f}s | {item['q'][:50]}",
            flush=True,
        )
    return guided, free


def share(runs: list[PlanRun], attr: str) -> str:
    hits = sum(bool(getattr(r, attr)) for r in runs)
    return f"{hits}/{len(runs)} ({hits / len(runs):.0%})" if runs else "-"


def on_topic(runs: list[PlanRun]) -> str:
    hits, total = sum(r.on_topic for r in runs), sum(r.queries for r in runs)
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def summary_rows(guided: list[PlanRun], free: list[PlanRun]) -> list[list[str]]:
    """The headline table: guided vs free decoding side by side."""
    rows = []
    for label, attr in (("valid (no fallback)", "valid"), ("useful", "useful")):
        rows.append([label, share(guided, attr), share(free, attr)])
    rows.append(["sub-queries on topic (lexical)", on_topic(guided), on_topic(free)])
    for label, runs_of in (("median latency (s)", 0.5), ("p90 latency (s)", 0.9)):
        rows.append(
            [
                label,
                f"{percentile([r.ms / 1e3 for r in guided], runs_of):.2f}",
                f"{percentile([r.ms / 1e3 for r in free], runs_of):.2f}",
            ]
        )
    rows.append(
        [
            "median tokens",
            f"{statistics.median([r.tokens for r in guided]):.0f}",
            f"{statistics.median([r.tokens for r in free]):.0f}",
        ]
    )
    counts = [len(r.pillars) for r in guided if r.valid]
    rows.append(
        [
            "facets per plan",
            ", ".join(f"{n}: {counts.count(n)}" for n in sorted(set(counts))),
            "-",
        ]
    )
    return rows


def details(guided: list[PlanRun], free: list[PlanRun]) -> str:
    """Per kind, then per question."""
    kinds = sorted({r.kind for r in guided})
    lines = [
        "## Per kind (guided)",
        "",
        "| kind | valid | useful | sub-queries on topic | median s |",
        "|---|---|---|---|---|",
    ]
    for kind in kinds:
        runs = [r for r in guided if r.kind == kind]
        lines.append(
            f"| {kind} | {share(runs, 'valid')} | {share(runs, 'useful')} | "
            f"{on_topic(runs)} | {statistics.median(r.ms / 1e3 for r in runs):.2f} |"
        )
    lines += [
        "",
        "## Per question",
        "",
        "| kind | question | guided: facets | first sub-query | free decoding |",
        "|---|---|---|---|---|",
    ]
    for g, f in zip(guided, free, strict=True):
        loose = "valid" if f.valid else f"invalid: {f.error[:60]}"
        query = g.first_query[:70].replace("|", "/")
        lines.append(
            f"| {g.kind} | {g.question[:60]} | {', '.join(g.pillars)} | {query} | {loose} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=0, help="plan only this many questions")
    args = parser.parse_args()
    import torch

    from batos_lab.image import open_image
    from batos_lab.llm import core_for, install_model
    from batos_lab.psm import CycleSettings, ModelMind

    torch.set_num_threads(1)
    items = json.loads(QUESTIONS.read_text())["questions"]
    if args.limit:
        items = items[: args.limit]
    load_before = os.getloadavg()[0]
    with open_image(None) as image:
        with image.transaction("install the embedded model"):
            install_model(image)
        core = core_for(image)
        core.model()
        mind = ModelMind(image)
        began = time.perf_counter()
        guided, free = plan_all(image, mind, items)
        took = time.perf_counter() - began
    notes = "\n".join(
        [
            f"{len(items)} questions from `benchmarks/data/plan_questions.json`, each planned "
            f"with guided decoding (as cycles plan, `plan_tokens` = {CycleSettings().plan_tokens}) "
            f"and with free decoding of the same request ({FREE_TOKENS} tokens), "
            f"one after the other in one run of {took / 60:.1f} min. Model: {mind.model_id}, "
            f"{core.mode} on {core.device}, one thread, BRICK's adapter.",
            f"Load average of the shared machine: {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after (2 cores; latencies are inflated accordingly).",
            "",
            "Valid: parsed and validated by pydantic without the workflow fallback. Useful: "
            "valid with facets and a non-blank sub-query for each (the issue's measure). On "
            "topic: sub-queries sharing a content word (4+ letters, stop words out, first "
            "five letters) with the question. Guided decoding makes validity and usefulness a "
            "property of the grammar (at least two facets, each with a sub-query); whether the "
            "135M model's sub-queries are about the question is what the last row measures, "
            "and why a facet is asked the question itself with its sub-query as a focus.",
            "",
            details(guided, free),
        ]
    )
    write_results(
        "psm_plan",
        "BRICK's plan: guided vs free decoding on the embedded model",
        ["measure", "guided (cycles)", "free decoding"],
        summary_rows(guided, free),
        notes=notes,
    )


if __name__ == "__main__":
    main()
