"""The UI-generation workflow: BABS, BRICK, ROBIN and ALFRED build an object's panel.

Orchestration runs on a ScriptedMind (and on a tiny random model for the guided path); the
capability itself is tested once with the embedded model (marked ``llm``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from batos_lab.errors import CycleError, PanelError, WorkflowError
from batos_lab.image import Image, open_image
from batos_lab.objects import UvmObject
from batos_lab.psm import (
    UI_WORKFLOW,
    ModelMind,
    PanelSettings,
    ScriptedMind,
    build_panel,
    compile_ui_workflow,
    ensure_ui_workflow,
    install_mind,
    install_ui_workflow,
    panel_script,
    start_panel_cycle,
    uninstall_mind,
)
from batos_lab.widgets.panel import Panel
from batos_lab.widgets.panel_spec import PANEL_SLOT

BOOST = "def boost(self):\n    self.target += 2\n    self._p_changed = True\n    return self.target"
STATES = ["IDLE", "GATHERING", "DRAFTING", "ARRANGING", "ASSEMBLING", "COMPLETE"]
WIDGETS = {
    "widgets": [
        {"id": "w1", "slot": "target", "kind": "IntSlider", "description": "Target"},
        {"id": "w2", "slot": "heating", "kind": "Checkbox", "description": "Heating"},
        {"id": "w3", "slot": "boost", "kind": "Button", "description": "Boost"},
    ]
}
LAYOUT = {
    "arrangement": "tabs",
    "groups": [
        {"title": "Settings", "widgets": ["w1", "w2"]},
        {"title": "Actions", "widgets": ["w3"]},
    ],
}
NEEDS = "- Let the user set the target.\n- Offer a boost button."


def thermostat(image: Image, name: str = "thermostat") -> UvmObject:
    with image.transaction(f"a {name}"):
        obj = image.new(name, target=21, room="kitchen", heating=True)
        obj.define("boost", BOOST)
    return obj


def scripted(widgets: Any = WIDGETS, layout: Any = LAYOUT) -> ScriptedMind:
    return ScriptedMind(plan=panel_script(widgets, layout), facet=NEEDS)


@pytest.fixture
def ui(image: Image) -> Image:
    ensure_ui_workflow(image)
    return image


def test_the_workflow_is_data_in_the_image_added_once(image: Image) -> None:
    flow = ensure_ui_workflow(image)
    home = image.root["psm"]
    assert list(flow.sequence) == ["BABS", "BRICK", "ROBIN", "ALFRED"]
    assert flow.graph["IDLE"] == ["GATHERING"] and flow.graph["ASSEMBLING"] == ["COMPLETE"]
    assert home.states["ARRANGING"].persona == "ROBIN"
    assert list(home.states["ARRANGING"].needs) == ["widgets"]
    assert flow.compile().forward["ARRANGING"] == "ASSEMBLING"
    assert image.root["traits"].get_slot("display_yourself").ref.endswith(":display_yourself")
    count = len(home.workflows)
    assert ensure_ui_workflow(image) is flow and len(home.workflows) == count


def test_a_cycle_steps_through_the_personas_and_commits_the_panel(file_image: Image) -> None:
    ensure_ui_workflow(file_image)
    obj = thermostat(file_image)
    mind = scripted()
    cycle = start_panel_cycle(obj, mind=mind)
    states = [cycle.step()["state"] for _ in STATES]
    assert states == STATES
    outcome = cycle.outcome()
    assert outcome.ok and "3 widget(s) in tabs" in outcome.answer
    assert [r.persona for r in mind.calls] == ["BABS", "BRICK", "ROBIN"]
    brick_prompt = mind.calls[1].prompt
    assert "- target (int, now 21): IntSlider, IntText, Label, HTML" in brick_prompt
    assert NEEDS.splitlines()[0] in brick_prompt  # BABS's requirements feed BRICK
    assert "w3: Button for boost" in mind.calls[2].prompt
    file_image.abort()  # the cycle committed: nothing is pending, the panel stays
    spec = obj.panel_spec
    assert [w["slot"] for w in spec["widgets"]] == ["target", "heating", "boost"]
    assert spec["layout"]["arrangement"] == "tabs"
    assert spec["requirements"].startswith("- Let the user set")
    prov = spec["provenance"]
    assert prov["model"] == "scripted" and prov["workflow"] == UI_WORKFLOW
    assert set(prov["prompts"]) == {"GATHERING", "DRAFTING", "ARRANGING"}
    assert prov["adapters"]["DRAFTING"] == "BRICK"
    assert outcome.key in file_image.root["psm"].cycles
    assert file_image.history(1)[0]["note"].startswith("psm: cycle")


def test_display_yourself_builds_once_then_answers_from_the_image(image_path: Path) -> None:
    with open_image(image_path) as img:
        ensure_ui_workflow(img)
        obj = thermostat(img)
        install_mind(img, scripted())
        panel = obj.display_yourself()
        assert isinstance(panel, Panel) and list(panel.controls) == ["w1", "w2", "w3"]
        uninstall_mind(img)
    with open_image(image_path) as img:  # no mind now: the stored spec is enough
        obj = img["thermostat"]
        panel = obj.display_yourself()
        assert panel.value_of("w1") == 21
        assert panel.press("w3") == 23
        panel.controls["w2"].value = False
        assert obj.heating is False and obj.target == 23
    with open_image(image_path) as img:
        assert img["thermostat"].heating is False  # written back and committed


BAD_SPECS = [
    pytest.param(
        {"widgets": [{"id": "w1", "slot": "target", "kind": "Slider"}]},
        None,
        "ASSEMBLING",
        "unknown kind 'Slider'",
        id="unknown-kind",
    ),
    pytest.param(
        {"widgets": [{"id": "w1", "slot": "colour", "kind": "Text"}]},
        None,
        "ASSEMBLING",
        "unknown slot 'colour'",
        id="unknown-slot",
    ),
    pytest.param(
        {"widgets": [{"id": "w1", "slot": "room", "kind": "Checkbox"}]},
        None,
        "ASSEMBLING",
        "Checkbox cannot show the slot 'room'",
        id="unsuitable-kind",
    ),
    pytest.param(
        {
            "widgets": [
                {"id": "w1", "slot": "target", "kind": "Label"},
                {"id": "w1", "slot": "room", "kind": "Label"},
            ]
        },
        None,
        "ASSEMBLING",
        "id 'w1' is used twice",
        id="duplicate-id",
    ),
    pytest.param(
        WIDGETS,
        {"arrangement": "rows", "groups": []},
        "ASSEMBLING",
        "layout is empty",
        id="empty-layout",
    ),
    pytest.param(
        WIDGETS,
        {"arrangement": "rows", "groups": [{"title": "a", "widgets": ["w1"]}]},
        "ASSEMBLING",
        "leaves out w2, w3",
        id="widget-left-out",
    ),
    pytest.param("I would use a slider.", None, "DRAFTING", "held none", id="not-json-from-brick"),
    pytest.param(WIDGETS, "rows, please", "ARRANGING", "held none", id="not-json-from-robin"),
]


@pytest.mark.parametrize(("widgets", "layout", "state", "match"), BAD_SPECS)
def test_a_bad_spec_fails_the_cycle_and_leaves_the_image_unchanged(
    file_image: Image, widgets: Any, layout: Any, state: str, match: str
) -> None:
    ensure_ui_workflow(file_image)
    obj = thermostat(file_image)
    assert build_panel(obj, mind=scripted()).ok
    kept = json.dumps(obj.panel_spec["widgets"], default=list)
    history = len(file_image.history(100))
    cycles = len(file_image.root["psm"].cycles)
    outcome = build_panel(obj, mind=scripted(widgets, layout))  # a rebuild that goes wrong
    assert not outcome.ok and outcome.failed_state == state
    assert re.search(match, outcome.reason), outcome.reason
    assert json.dumps(obj.panel_spec["widgets"], default=list) == kept  # the old panel stays
    assert len(file_image.history(100)) == history + 1  # only the failure record
    assert file_image.history(1)[0]["note"].endswith(f"failed in {state}")
    file_image.sync()
    assert len(file_image.root["psm"].cycles) == cycles
    record = list(file_image.root["failures"].values())[-1]
    assert record["state"] == state and record["workflow"] == UI_WORKFLOW


def test_a_failed_first_build_stores_nothing_and_display_yourself_says_why(ui: Image) -> None:
    obj = thermostat(ui)
    install_mind(ui, scripted({"widgets": [{"id": "w1", "slot": "target", "kind": "Dial"}]}))
    with pytest.raises(PanelError, match="could not build its panel.*unknown kind 'Dial'"):
        obj.display_yourself()
    assert not obj.has_slot(PANEL_SLOT)
    uninstall_mind(ui)


def test_a_reordered_clone_is_data_too_and_the_next_cycle_follows_it(ui: Image) -> None:
    flow = ui.root["psm"].workflows[UI_WORKFLOW]
    quick = flow.reordered(["BRICK", "ALFRED"], "ui_quick")
    assert quick.graph["IDLE"] == ["DRAFTING"] and quick.graph["DRAFTING"] == ["ASSEMBLING"]
    install_ui_workflow(ui, quick)
    assert list(flow.sequence) == ["BABS", "BRICK", "ROBIN", "ALFRED"]  # the original stays
    obj = thermostat(ui)
    mind = scripted()
    outcome = build_panel(obj, workflow="ui_quick", mind=mind)
    assert outcome.ok
    assert [e["state"] for e in outcome.trace] == ["IDLE", "DRAFTING", "ASSEMBLING", "COMPLETE"]
    assert [r.persona for r in mind.calls] == ["BRICK"]
    assert any("one column" in n for n in outcome.trace[2]["notices"])
    assert obj.panel_spec["layout"]["arrangement"] == "columns"
    assert obj.panel_spec["provenance"]["sequence"] == ["BRICK", "ALFRED"]


@pytest.mark.parametrize(
    ("sequence", "match"),
    [
        (["ROBIN", "BRICK", "ALFRED"], "runs ARRANGING before anything gives its widgets"),
        (["BRICK", "BABS", "ROBIN", "ALFRED"], "gives the requirements, but no state after it"),
        (["BABS", "BRICK", "ROBIN"], "never assembles the panel"),
        (["BRICK", "ALFRED", "ROBIN"], "gives the layout, but no state after it"),
        (["BRICK", "BRICK", "ALFRED"], "names BRICK twice"),
        (["ZED", "ALFRED"], "no stage for 'ZED'"),
    ],
)
def test_a_reordering_that_breaks_the_data_flow_is_refused(
    ui: Image, sequence: list[str], match: str
) -> None:
    flow = ui.root["psm"].workflows[UI_WORKFLOW]
    before = sorted(ui.root["psm"].workflows)
    with pytest.raises(WorkflowError, match=match):
        twin = flow.reordered(sequence, "ui_broken")
        install_ui_workflow(ui, twin)
    assert sorted(ui.root["psm"].workflows) == before


def test_compile_checks_the_graph_and_the_flow(ui: Image) -> None:
    home = ui.root["psm"]
    flow = home.workflows[UI_WORKFLOW]
    twin = flow.clone(graph={**dict(flow.graph), "IDLE": ["ARRANGING"]})
    with pytest.raises(WorkflowError, match="unreachable state"):
        compile_ui_workflow(twin, home.states)
    with pytest.raises(WorkflowError, match="is not in an image"):
        flow.clone().compile()


def test_starting_a_panel_cycle_explains_what_is_missing(image: Image) -> None:
    obj = thermostat(image)
    with pytest.raises(CycleError, match="ensure_ui_workflow"):
        start_panel_cycle(obj, mind=scripted())
    ensure_ui_workflow(image)
    with pytest.raises(CycleError, match="kept in an image"):
        start_panel_cycle(UvmObject(name="loose", n=1), mind=scripted())
    with pytest.raises(WorkflowError, match="No workflow named 'nope'"):
        start_panel_cycle(obj, workflow="nope", mind=scripted())
    with image.transaction("an empty object"):
        image["empty"] = UvmObject(name="empty")
    with pytest.raises(PanelError, match="no slot a panel could show"):
        start_panel_cycle(image["empty"], mind=scripted())
    with pytest.raises(ValueError, match="min_widgets"):
        PanelSettings(min_widgets=7)


def test_the_guided_path_builds_a_valid_panel_with_a_tiny_random_model(tiny_image: Image) -> None:
    """Random weights, valid panel: the grammars, not the model, guarantee the shape."""
    flow = ensure_ui_workflow(tiny_image)
    install_ui_workflow(tiny_image, flow.reordered(["BRICK", "ROBIN", "ALFRED"], "ui_tiny"))
    obj = thermostat(tiny_image)
    settings = PanelSettings(max_widgets=3, description_chars=8, title_chars=8)
    outcome = build_panel(obj, workflow="ui_tiny", mind=ModelMind(tiny_image), settings=settings)
    assert outcome.ok, outcome.reason
    drafting = outcome.trace[1]
    assert any("forced by the grammar" in n for n in drafting["notices"])
    assert len(obj.panel_spec["widgets"]) >= 2  # min_widgets, bounded by the slots
    assert obj.panel_spec["provenance"]["model"] == "tiny-test-llama"


# --------------------------------------------------------------------------- the real model


@pytest.mark.llm
def test_the_embedded_model_builds_a_panel_that_survives_a_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import batos_lab.llm

    path = tmp_path / "live_image.fs"
    with open_image(path) as img:
        with img.transaction("install the embedded model"):
            batos_lab.llm.install_model(img)
        ensure_ui_workflow(img)
        obj = thermostat(img)
        outcome = build_panel(obj, mind=ModelMind(img))
        assert outcome.ok, outcome.reason
        assert [e["state"] for e in outcome.trace] == STATES
        spec = obj.panel_spec
        slots = {"target", "room", "heating", "boost"}
        assert {w["slot"] for w in spec["widgets"]} <= slots and len(spec["widgets"]) >= 3
        assert spec["provenance"]["model"].startswith("HuggingFaceTB/SmolLM2-135M")
        assert spec["provenance"]["adapters"]["DRAFTING"] == "BRICK@v1"
        assert 0 < outcome.trace[1]["tokens"] <= PanelSettings().requirement_tokens
        assert any("forced by the grammar" in n for n in outcome.trace[2]["notices"])
        shown = [w["slot"] for w in spec["widgets"]]

    def no_model(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("display_yourself must not load the model")

    monkeypatch.setattr(batos_lab.llm, "core_for", no_model)
    with open_image(path) as again:
        panel = again["thermostat"].display_yourself()
        assert [w.slot for w in panel.spec.widgets] == shown


def test_the_cycle_stepper_draws_the_ui_workflow(ui: Image) -> None:
    from batos_lab.widgets import CycleStepper

    cycle = start_panel_cycle(thermostat(ui), mind=scripted())
    stepper = CycleStepper(cycle)
    stepper.step()
    stepper.step()
    svg = stepper.graph.value
    for state in STATES:
        assert f">{state}</text>" in svg
    assert "state <b>DRAFTING</b>" in stepper.status.value
    stepper.run()
    assert cycle.outcome().ok and stepper.run_button.disabled
