"""Replaying a dumped pool under several judges: loading, cutting, ranking, and the scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batos_lab.dnu_rank import Outcome
from batos_lab.image import open_image
from batos_lab.objects import set_method_compiler
from batos_lab.sandbox import compile_method
from benchmarks.jit_judges import (
    DumpError,
    Pooled,
    Row,
    Scorer,
    cut,
    keep,
    load,
    replay,
    table,
)
from tests.jit_suite import TASKS

AREA = next(t for t in TASKS if t.name == "area")  # width 3, height 4: the area is 12
TAG = next(t for t in TASKS if t.name == "tag_add")  # one argument
RIGHT = "def area(self):\n    return self.width * self.height\n"
WRONG = "def area(self):\n    return self.width * self.height / 2\n"


def _candidate(attempt: int, prompt: int, source: str, right: bool) -> dict[str, object]:
    return {"attempt": attempt, "round": 0, "prompt": prompt, "right": right, "source": source}


def _dump(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "pools.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_names_the_line_and_what_is_wrong(tmp_path: Path) -> None:
    good = {"set": "suite", "seed": 0, "task": "area", "candidates": [_candidate(0, 0, RIGHT, 1)]}
    assert load(_dump(tmp_path, [json.dumps(good)]))[0]["task"] == "area"
    with pytest.raises(DumpError, match=r"pools.jsonl:2: not JSON"):
        load(_dump(tmp_path, [json.dumps(good), "{not json"]))
    with pytest.raises(DumpError, match=r":1: missing attempt, prompt, right, source"):
        load(_dump(tmp_path, [json.dumps({**good, "candidates": [{"round": 0}]})]))
    with pytest.raises(DumpError, match=r":1: no list of candidates"):
        load(_dump(tmp_path, [json.dumps({**good, "candidates": "all"})]))
    with pytest.raises(DumpError, match=r"unknown task 'flying'"):
        load(_dump(tmp_path, [json.dumps({**good, "task": "flying"})]))
    with pytest.raises(DumpError, match="no pools in it"):
        load(_dump(tmp_path, [""]))


def _row(candidates: list[Pooled], idle: set[str] = frozenset()) -> Row:  # type: ignore[assignment]
    row = Row("suite", 0, AREA, candidates)
    for c in candidates:
        row.outcomes[c.outcome] = {
            "transcript": float(len(c.outcome.result)),
            "transcript_neutral": 0.0,
            "idle": float(c.outcome.result in idle),
        }
    return row


def _pooled(attempt: int, prompt: int, result: str, right: bool, unused: int = 0) -> Pooled:
    return Pooled(attempt, prompt, right, RIGHT if right else WRONG, Outcome(result, ()), unused)


def test_cut_keeps_each_prompts_first_rows() -> None:
    row = _row([_pooled(a, a // 4, str(a), False) for a in range(8)])
    assert [c.attempt for c in cut(row, 4, prompts=2, per_prompt=4)] == [0, 1, 4, 5]
    assert len(cut(row, 8, prompts=2, per_prompt=4)) == 8


def test_keep_applies_the_shipped_facts_before_the_judge() -> None:
    """A judge decides only among the outcomes that read every argument and did something."""
    ignores = _pooled(0, 0, "999999", False, unused=1)
    idle = _pooled(1, 0, "88888", False)
    right = _pooled(2, 0, "12", True)
    row = _row([ignores, idle, right], idle={"88888"})
    assert keep(row, row.candidates, lambda r, g: (r.outcomes[g.outcome]["transcript"],)) is right
    assert keep(row, [], lambda r, g: (0.0,)) is None


def test_keep_breaks_ties_by_the_earliest_group() -> None:
    first, second = _pooled(0, 0, "6.0", False), _pooled(1, 1, "12", True)
    row = _row([first, second, _pooled(2, 1, "12", True)])
    assert keep(row, row.candidates, lambda r, g: (0.0,)) is first
    assert keep(row, row.candidates, lambda r, g: (g.votes,)) is second


def test_table_counts_reach_the_shipped_pick_and_each_judge() -> None:
    row = _row(
        [_pooled(0, 0, "6.0", False), _pooled(4, 1, "12", True), _pooled(5, 1, "6.0", False)]
    )
    row.shipped = {2: 0, 4: 0}
    judges = {"votes": lambda r, g: (g.votes,), "twelve": lambda r, g: (g.outcome.result == "12",)}
    rows = table([row], judges, [2, 4], prompts=2, per_prompt=4)
    assert rows == [
        ["some candidate right", "1 / 1", "0 / 0"],
        ["shipped (dnu_rank.choose)", "0 / 0", "0 / 0"],
        ["votes", "0 / 0", "0 / 0"],  # a tie at 2 goes to the earliest; 6.0 has two votes at 4
        ["twelve", "1 / 1", "0 / 0"],
    ]


class ScriptedJudge:
    """Stands in for the model where ``dnu_rank.choose`` asks its judge on a tie."""

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        return RIGHT

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        return [RIGHT] * n

    def judge(self, context: str, endings: list[str]) -> list[float]:
        return [-len(ending) for ending in endings]


def test_replay_reruns_each_candidate_and_scores_every_judge() -> None:
    """A failing candidate drops out, retries are left aside, and every score is filled in."""
    raw = {
        "set": "suite", "seed": 0, "task": "area",
        "candidates": [
            _candidate(0, 0, RIGHT, True), _candidate(1, 0, WRONG, False),
            _candidate(2, 1, "def area(self):\n    return 1 / 0\n", False),
            _candidate(3, 1, WRONG, False), {**_candidate(9, 0, RIGHT, True), "round": 1},
        ],
    }  # fmt: skip
    asked: list[tuple[str, str]] = []

    def scorer(context: str, ending: str) -> float:
        asked.append((context, ending))
        return -float(".method(" in context or "def method(" in ending)

    previous = set_method_compiler(compile_method)
    try:
        with open_image(None) as image:
            row = replay(
                image, raw, ScriptedJudge(), {"base": scorer, "JIT": scorer},
                ("core", "broad"), [2, 4], per_prompt=2,
            )  # fmt: skip
            assert "jit_judges" not in image.root and "jit_judges_probe" not in image.root
    finally:
        set_method_compiler(previous)
    assert [c.attempt for c in row.candidates] == [0, 1, 3]
    assert [c.outcome.result for c in row.candidates] == ["12", "6.0", "6.0"]
    assert all(set(c.scores) == {"source", "source PMI", "adapter"} for c in row.candidates)
    assert row.candidates[0].scores["source PMI"] == 1.0  # the neutral reading scored 1 lower
    assert set(row.outcomes) == {c.outcome for c in row.candidates}
    assert any(".method()" in context for context, _ending in asked)
    assert row.shipped == {2: 0, 4: 1}  # the pool of 4 holds two votes for 6.0


@pytest.mark.llm
def test_the_scorer_agrees_with_the_models_judge(llm_core: object) -> None:
    """On the embedded model: the cached-context scorer gives the judge's log-probabilities,
    and a likelier ending scores higher."""
    from batos_lab.dnu_model import ModelGenerator

    context = ">>> box = Object(width=3, height=4)\n>>> box.width\n"
    endings = ["3\n", "elephant\n"]
    judged = ModelGenerator(llm_core).judge(context, endings)
    scorer = Scorer(llm_core)
    scored = [scorer(context, e) for e in endings]
    # the same log-probabilities up to bf16 rounding (another attention kernel, a cached context)
    assert scored == pytest.approx(judged, rel=0.02, abs=0.1)
    assert scored[0] > scored[1]
    assert scorer(context, endings[0]) == pytest.approx(scored[0], abs=1e-6)
