"""Workflows as data: compiling, invalid edits, re-ordering at run time."""

from __future__ import annotations

import pytest

from batos_lab.errors import WorkflowError
from batos_lab.image import Image
from batos_lab.psm import ScriptedMind, compile_workflow, ensure_psm, install_mind, install_workflow
from batos_lab.psm.workflow import DEFAULT_GRAPH, make_workflow

PLAN = (
    '{"strategy": "two views", "relevant_pillars": ["tamland_facet_", "sage_facet_"], '
    '"sub_queries": {"tamland_facet_": "the parts?", "sage_facet_": "the meaning?"}}'
)


@pytest.fixture
def home(image: Image):
    return ensure_psm(image)


def graph_with(**changes: list[str]) -> dict[str, list[str]]:
    graph = {k: list(v) for k, v in DEFAULT_GRAPH.items()}
    for state, targets in changes.items():
        if targets == ["-"]:
            del graph[state]
        else:
            graph[state] = targets
    return graph


def test_matrix_rows_compile(image: Image, home) -> None:
    for name, flow in home.workflows.items():
        compiled = flow.compile()
        assert compiled.name == name
        assert compiled.sequence == tuple(image.root["matrix"].rows[name]["sequence"])
        assert compiled.next_state("IDLE", True) == "DECOMPOSING"
        assert compiled.next_state("DELEGATING", False) == "FAILED"


@pytest.mark.parametrize(
    ("graph", "match"),
    [
        (graph_with(IDLE=["PONDERING"]), "unknown state"),
        (graph_with(IDLE=["DELEGATING"]), "unreachable state.*DECOMPOSING"),
        (graph_with(SYNTHESIZING=["FAILED"], COMPLETE=["-"]), "dead end: SYNTHESIZING"),
        (graph_with(SYNTHESIZING=["COMPLETE", "IDLE"]), "ambiguous: SYNTHESIZING"),
        (graph_with(COMPLETE=["IDLE"]), "terminal state COMPLETE"),
        (graph_with(COMPLETE=["-"], SYNTHESIZING=["DECOMPOSING"]), "COMPLETE is never reached"),
        (graph_with(IDLE=["-"]), "starts at IDLE"),
    ],
)
def test_invalid_graphs_are_rejected_with_their_names(
    image: Image, home, graph: dict[str, list[str]], match: str
) -> None:
    flow = make_workflow("broken", ["BRICK"], "BRICK", graph=graph)
    with pytest.raises(WorkflowError, match=match):
        compile_workflow(flow, home.states, image.root["personas"])


def test_invalid_personas_are_rejected(image: Image, home) -> None:
    for sequence, lead, match in [
        (["BRICK", "JOKER"], "BRICK", "unknown persona"),
        (["BRICK"], "ROBIN", "led by ROBIN"),
        ([], "BRICK", "empty persona sequence"),
    ]:
        flow = make_workflow("odd", sequence, lead)
        with pytest.raises(WorkflowError, match=match):
            compile_workflow(flow, home.states, image.root["personas"])


def test_a_workflow_edited_into_an_invalid_graph_stops_the_next_cycle(image: Image, home) -> None:
    install_mind(image, ScriptedMind())
    flow = home.workflows["technical_deconstruction"]
    flow.graph["DELEGATING"] = ["COMPLETE"]  # SYNTHESIZING becomes unreachable
    image.commit("an edit that breaks the workflow")
    with pytest.raises(WorkflowError, match="unreachable state.*SYNTHESIZING"):
        image.root["personas"]["BRICK"].ask("Anything?")
    with pytest.raises(WorkflowError, match="No workflow named 'nope'"):
        image.root["personas"]["BRICK"].ask("Anything?", workflow="nope")
    with pytest.raises(WorkflowError, match="unreachable"):
        install_workflow(image, flow)
    assert len(home.cycles) == 0


def test_a_reordered_clone_is_used_by_the_next_cycle(image: Image, home) -> None:
    install_mind(image, ScriptedMind(plan=PLAN))
    brick = image.root["personas"]["BRICK"]
    before = brick.ask("How do I plan a garden?").run()
    assert before.trace[2]["facet"] == "tamland_facet_,sage_facet_"
    original = home.workflows["technical_deconstruction"]
    twin = original.reordered(["ROBIN", "BRICK", "BABS", "ALFRED"])
    assert original.sequence[0] == "BRICK"  # the original is untouched
    install_workflow(image, twin)
    after = brick.ask("How do I plan a garden?").run()
    assert after.trace[2]["facet"] == "sage_facet_,tamland_facet_"
    assert after.trace[2]["persona"] == "ROBIN,BRICK"


def test_a_workflow_without_decomposing_uses_the_matrix_plan(image: Image, home) -> None:
    install_mind(image, ScriptedMind())
    graph = graph_with(IDLE=["DELEGATING"], DECOMPOSING=["-"])
    install_workflow(image, make_workflow("quick", ["ROBIN", "ALFRED"], "ROBIN", graph=graph))
    outcome = image.root["personas"]["ROBIN"].ask("Is it ok to rest?", workflow="quick").run()
    assert outcome.ok
    assert [e["state"] for e in outcome.trace] == ["IDLE", "DELEGATING", "SYNTHESIZING", "COMPLETE"]
    assert outcome.trace[1]["facet"] == "sage_facet_,doubt_protocol_facet_"
    assert any("matrix's plan" in n for n in outcome.trace[1]["notices"])
