"""Cognitive cycles on the embedded model: time per state, machinery overhead, batched facets.

Run: python -m benchmarks.psm_cycle              (six questions, one after another)
     python -m benchmarks.psm_cycle --questions 3

Three measurements in one run, written to benchmarks/results/psm_cycle.md:

1. Real cycles with the default CycleSettings on a fresh image (so the first cycles also compile
   the facets they use): milliseconds and tokens per state.
2. Machinery overhead: the same cycles again on another fresh image, with a ScriptedMind that
   gives back the real run's texts in the same order (plans, facet methods, facet answers,
   weaves, verdicts). Everything but the model runs as before: ZODB, the JIT pipeline's audit
   and trial of each facet method, plan validation, the gate, the trace. The ratio of the two
   totals is the machinery's share of a real cycle.
3. DELEGATING's facets answered in one mixed-adapter batch vs one after another: the real
   requests of each cycle, timed both ways back to back (alternating which goes first), and
   decoding with one thread vs two on one woven answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import write_results

QUESTIONS = Path(__file__).resolve().parent / "data" / "plan_questions.json"
#: who is asked, by the workflow a question belongs to (the personas' default workflows)
ASKED = {"technical_deconstruction": "BRICK", "emotional_support": "ROBIN", "research": "BABS"}
#: one question of each kind, then a second technical one (indexes into the question file)
PICKS = (0, 10, 20, 30, 40, 4)
WORKING = ("DECOMPOSING", "DELEGATING", "SYNTHESIZING")


class RecordingMind:
    """A Mind that passes every call to a real one and keeps each reply, in order, by role."""

    def __init__(self, mind: Any) -> None:
        self.mind = mind
        self.model_id = mind.model_id
        self.texts: dict[str, list[str]] = {r: [] for r in ("plan", "facet", "weave", "check")}
        self.texts.update(code=[], doc=[])
        self.batches: list[list[Any]] = []
        self.code_ms = 0.0

    def plan(self, request: Any, facets: Sequence[str]) -> Any:
        reply = self.mind.plan(request, facets)
        self.texts["plan"].append(reply.text)
        return reply

    def answer(self, request: Any) -> Any:
        reply = self.mind.answer(request)
        self.texts[request.role].append(reply.text)
        if request.role == "code":
            self.code_ms += reply.ms
        return reply

    def answer_batch(self, requests: Sequence[Any]) -> list[Any]:
        replies = self.mind.answer_batch(requests)
        self.batches.append(list(requests))
        self.texts["facet"] += [r.text for r in replies]
        return replies

    def weave(self, request: Any) -> Any:
        reply = self.mind.weave(request)
        self.texts["weave"].append(reply.text)
        return reply


@dataclass
class CycleRun:
    """One cycle as it ran."""

    question: str
    persona: str
    status: str
    reason: str
    ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    compile_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return sum(self.ms.values())


def run_cycle(image: Any, mind: Any, question: str, persona: str) -> CycleRun:
    """Run one cycle to its end; return its timings from the trace."""
    from batos_lab.psm import start_cycle

    outcome = start_cycle(image, question, persona=persona, mind=mind).run()
    run = CycleRun(question, persona, outcome.status, outcome.reason)
    for entry in outcome.trace:
        run.ms[entry["state"]] = float(entry["ms"])
        run.tokens[entry["state"]] = int(entry["tokens"] or 0)
    return run


def fresh_image(model: bool) -> Any:
    """An in-memory image with the state machine (and the embedded model when asked)."""
    from batos_lab.image import open_image
    from batos_lab.llm import install_model
    from batos_lab.psm import ensure_psm

    image = open_image(None)
    if model:
        with image.transaction("install the embedded model"):
            install_model(image)
    ensure_psm(image)
    return image


def real_cycles(items: list[dict[str, str]]) -> tuple[list[CycleRun], RecordingMind, Any]:
    """Part 1: the real cycles, recorded."""
    from batos_lab.llm import core_for
    from batos_lab.psm import ModelMind

    image = fresh_image(model=True)
    core_for(image).model()
    recorder = RecordingMind(ModelMind(image))
    runs = []
    for item in items:
        compiled = recorder.code_ms
        run = run_cycle(image, recorder, item["q"], ASKED[item["workflow"]])
        run.compile_ms = recorder.code_ms - compiled
        runs.append(run)
        print(
            f"real   {run.status:8} {run.total_ms / 1e3:6.1f}s  "
            + "  ".join(f"{s[:5]} {run.ms.get(s, 0) / 1e3:5.1f}s" for s in WORKING)
            + f"  | {item['q'][:50]}",
            flush=True,
        )
    return runs, recorder, image


def scripted_cycles(items: list[dict[str, str]], recorder: RecordingMind) -> list[CycleRun]:
    """Part 2: the same cycles replayed from the recorded texts, on a fresh image."""
    from batos_lab.psm import ScriptedMind

    image = fresh_image(model=False)
    texts = recorder.texts
    mind = ScriptedMind(
        plan=list(texts["plan"]),
        facet=list(texts["facet"]),
        weave=list(texts["weave"]),
        check=list(texts["check"]),
        code=list(texts["code"]),
    )
    runs = [run_cycle(image, mind, item["q"], ASKED[item["workflow"]]) for item in items]
    image.close()
    return runs


def batch_vs_sequential(mind: Any, batches: list[list[Any]]) -> list[tuple[int, float, float]]:
    """Part 3: each cycle's facet requests, in one batch and one by one."""
    results = []
    for number, requests in enumerate(batches):

        def batched(requests: list[Any] = requests) -> float:
            began = time.perf_counter()
            mind.answer_batch(requests)
            return time.perf_counter() - began

        def one_by_one(requests: list[Any] = requests) -> float:
            began = time.perf_counter()
            for request in requests:
                mind.answer(request)
            return time.perf_counter() - began

        if number % 2:
            seq, batch = one_by_one(), batched()
        else:
            batch, seq = batched(), one_by_one()
        results.append((len(requests), batch, seq))
        print(f"facets {len(requests)}: batch {batch:5.1f}s  one by one {seq:5.1f}s", flush=True)
    return results


def by_size(mind: Any, batches: list[list[Any]]) -> list[tuple[int, float, float]]:
    """The run's facet requests pooled, answered 1 to 4 at a time, in one batch and one by one."""
    pool = [r for batch in batches for r in batch]
    sizes = [k for k in (1, 2, 3, 4) if k <= len(pool)]
    return batch_vs_sequential(mind, [pool[:k] for k in sizes])


def threads_compare(image: Any, request: Any) -> tuple[float, float]:
    """Decode one request with one thread and with two (alternating, best of two each)."""
    from batos_lab.psm import ModelMind

    times: dict[int, list[float]] = {1: [], 2: []}
    for order in ((1, 2), (2, 1)):
        for threads in order:
            mind = ModelMind(image, threads=threads)
            began = time.perf_counter()
            mind.answer(request)
            times[threads].append(time.perf_counter() - began)
    return min(times[1]), min(times[2])


def state_rows(real: list[CycleRun], scripted: list[CycleRun]) -> list[list[str]]:
    """Per state: median real ms, tokens, and the machinery's ms for the same state."""
    rows = []
    for state in ("IDLE", *WORKING, "COMPLETE", "FAILED"):
        spent = [r.ms[state] for r in real if state in r.ms]
        if not spent:
            continue
        machine = [r.ms[state] for r in scripted if state in r.ms]
        tokens = [r.tokens.get(state, 0) for r in real if state in r.ms]
        rows.append(
            [
                state,
                f"{statistics.median(spent) / 1e3:.2f}",
                f"{max(spent) / 1e3:.2f}",
                f"{statistics.median(tokens):.0f}",
                f"{statistics.median(machine):.1f}" if machine else "-",
            ]
        )
    totals = [r.total_ms for r in real]
    machine_totals = [r.total_ms for r in scripted]
    rows.append(
        [
            "**whole cycle**",
            f"**{statistics.median(totals) / 1e3:.2f}**",
            f"{max(totals) / 1e3:.2f}",
            f"{statistics.median([sum(r.tokens.values()) for r in real]):.0f}",
            f"{statistics.median(machine_totals):.1f}",
        ]
    )
    return rows


def notes(
    real: list[CycleRun],
    scripted: list[CycleRun],
    timed: tuple[list[tuple[int, float, float]], list[tuple[int, float, float]]],
    threads: tuple[float, float],
    settings: Any,
    loads: tuple[float, float],
) -> str:
    """Everything below the per-state table."""
    real_total = sum(r.total_ms for r in real)
    machine_total = sum(r.total_ms for r in scripted)
    same = all(a.status == b.status for a, b in zip(real, scripted, strict=True))
    batches, sizes = timed
    batch_s = sum(b for _, b, _ in batches)
    seq_s = sum(s for _, _, s in batches)
    warm = [r for r in real if r.compile_ms == 0]
    lines = [
        f"Per state: median and slowest seconds over {len(real)} real cycles, median tokens, "
        "and the median milliseconds of the same state replayed with the real texts (the "
        "machinery alone). The model is SmolLM2-135M-Instruct in bf16 on the CPU, one thread.",
        f"Load average of the shared 2-core machine: {loads[0]:.1f} at the start, "
        f"{loads[1]:.1f} at the end; every figure is inflated by the other work on it.",
        "",
        "## Machinery overhead",
        "",
        "| measure | value |",
        "|---|---|",
        f"| real cycles, total | {real_total / 1e3:.1f} s |",
        f"| same cycles with the real texts replayed, total | {machine_total / 1e3:.2f} s |",
        f"| machinery share of a real cycle | **{machine_total / real_total:.2%}** |",
        f"| replay ended every cycle as the real run did | {'yes' if same else 'no'} |",
        "",
        "## DELEGATING: one mixed-adapter batch vs one facet after another",
        "",
        "| facets | batch (s) | one by one (s) | ratio |",
        "|---|---|---|---|",
        *(f"| {n} | {b:.2f} | {s:.2f} | {s / b:.2f}x |" for n, b, s in batches),
        f"| **all** | {batch_s:.2f} | {seq_s:.2f} | **{seq_s / batch_s:.2f}x** |",
        "",
        "The same requests pooled over the run and answered k at a time (the first k of the "
        "pool, adapters as they came):",
        "",
        "| facets in the batch | batch (s) | one by one (s) | ratio |",
        "|---|---|---|---|",
        *(f"| {n} | {b:.2f} | {s:.2f} | {s / b:.2f}x |" for n, b, s in sizes),
        "",
        "## Threads",
        "",
        f"One woven answer ({settings.weave_tokens} tokens at most), best of two: one thread "
        f"{threads[0]:.2f} s, two threads {threads[1]:.2f} s "
        f"({threads[1] / threads[0]:.2f}x the time of one).",
        "",
        "## Cycles",
        "",
        "| question | asked | status | total s | facet methods compiled (s) | reason |",
        "|---|---|---|---|---|---|",
        *(
            f"| {r.question[:55]} | {r.persona} | {r.status} | {r.total_ms / 1e3:.1f} | "
            f"{r.compile_ms / 1e3:.1f} | {r.reason[:80]} |"
            for r in real
        ),
        "",
        f"Cycles that compiled no facet method: {len(warm)}, median "
        f"{statistics.median([r.total_ms for r in warm]) / 1e3 if warm else 0:.1f} s.",
        "",
        "## Settings",
        "",
        f"plan_tokens {settings.plan_tokens}, facet_tokens {settings.facet_tokens}, "
        f"weave_tokens {settings.weave_tokens}, check_tokens {settings.check_tokens}, "
        f"weave_adapter {settings.weave_adapter}; ModelMind: one thread, repetition penalty "
        "1.2 on prose, plans of three facets.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=len(PICKS), help="how many cycles")
    args = parser.parse_args()
    import torch

    from batos_lab.psm import CycleSettings

    torch.set_num_threads(1)
    everything = json.loads(QUESTIONS.read_text())["questions"]
    items = [everything[i] for i in PICKS[: args.questions]]
    load_start = os.getloadavg()[0]
    real, recorder, image = real_cycles(items)
    scripted = scripted_cycles(items, recorder)
    batches = batch_vs_sequential(recorder.mind, recorder.batches)
    sizes = by_size(recorder.mind, recorder.batches)
    weave = _weave_request(image, recorder, items[0]["q"])
    threads = threads_compare(image, weave)
    image.close()
    write_results(
        "psm_cycle",
        "Cognitive cycles on the embedded model",
        ["state", "median s", "slowest s", "median tokens", "machinery ms"],
        state_rows(real, scripted),
        notes=notes(
            real,
            scripted,
            (batches, sizes),
            threads,
            CycleSettings(),
            (load_start, os.getloadavg()[0]),
        ),
    )


def _weave_request(image: Any, recorder: RecordingMind, question: str) -> Any:
    """ROBIN's weave of the first two facet answers of the run, as SYNTHESIZING asks it."""
    from batos_lab.psm import CycleSettings
    from batos_lab.psm.stages import weave_request

    robin = image.root["personas"]["ROBIN"]
    return weave_request(question, recorder.texts["facet"][:2], robin, CycleSettings())


if __name__ == "__main__":
    main()
