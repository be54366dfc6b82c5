"""The panel language (audit) and the live Panel it assembles: reading, writing back, buttons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batos_lab.errors import PanelError
from batos_lab.image import Image, open_image
from batos_lab.objects import UvmObject
from batos_lab.widgets.panel import Panel, display_yourself
from batos_lab.widgets.panel_spec import (
    KINDS,
    PANEL_SLOT,
    audit_panel,
    check_layout,
    panel_slots,
    parse_json_object,
    value_type,
)

BOOST = "def boost(self):\n    self.target += 2\n    self._p_changed = True\n    return self.target"
SPLIT = "def split(self, parts):\n    return self.target // parts"
BREAK = "def wreck(self):\n    self.target = -100\n    self._p_changed = True\n    return 1 // 0"


def thermostat(image: Image) -> UvmObject:
    """A stored object with a slot of every kind of value, and three methods."""
    with image.transaction("a thermostat"):
        obj = image.new(
            "thermostat",
            target=21,
            room="kitchen",
            ratio=0.5,
            heating=True,
            rooms=["kitchen", "hall"],
            limits={"low": 5},
        )
        obj.define("boost", BOOST)
        obj.define("split", SPLIT)
        obj.define("wreck", BREAK)
    return obj


def widgets(*specs: tuple[str, str, str]) -> list[dict[str, str]]:
    return [
        {"id": wid, "slot": slot, "kind": kind, "description": slot.title()}
        for wid, slot, kind in specs
    ]


FULL = widgets(
    ("w1", "target", "IntSlider"),
    ("w2", "room", "Text"),
    ("w3", "ratio", "FloatSlider"),
    ("w4", "heating", "Checkbox"),
    ("w5", "rooms", "Dropdown"),
    ("w6", "limits", "HTML"),
    ("w7", "boost", "Button"),
    ("w8", "room", "Label"),
)


def test_panel_slots_name_each_slot_type_and_the_kinds_that_suit_it(image: Image) -> None:
    obj = thermostat(image)
    slots = panel_slots(obj)
    assert list(slots) == [
        "target",
        "room",
        "ratio",
        "heating",
        "rooms",
        "limits",
        "boost",
        "wreck",
    ]
    assert "split" not in slots  # a method that needs an argument cannot be a button
    assert "name" not in slots and PANEL_SLOT not in slots
    assert slots["target"].kinds == ("Label", "HTML", "IntSlider", "IntText")
    assert slots["heating"].kinds == ("Label", "HTML", "Checkbox")
    assert slots["boost"].kinds == ("Button",)
    assert slots["rooms"].type == "list" and "Dropdown" in slots["rooms"].kinds
    assert value_type(True) == "bool" and value_type(3) == "int" and value_type(None) == "none"
    assert set(KINDS) >= {"Label", "HTML", "Text", "Textarea", "IntSlider", "Dropdown", "Button"}


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"widgets": []}, "widget list is empty"),
        ({"widgets": "w1"}, "list of widgets under 'widgets'"),
        ({"widgets": widgets(("w1", "target", "Slider"))}, "unknown kind 'Slider'"),
        ({"widgets": widgets(("w1", "colour", "Text"))}, "unknown slot 'colour'.*target, room"),
        (
            {"widgets": widgets(("w1", "room", "IntSlider"))},
            "IntSlider cannot show the slot 'room'",
        ),
        ({"widgets": widgets(("w1", "split", "Button"))}, "unknown slot 'split'"),
        (
            {"widgets": widgets(("w1", "target", "Label"), ("w1", "room", "Label"))},
            "id 'w1' is used twice",
        ),
        ({"widgets": widgets(("1 bad", "target", "Label"))}, "id '1 bad'"),
        ({"widgets": [{"id": "w1", "slot": "target", "kind": "Label", "x": 1}]}, "unknown key"),
        (
            {"widgets": widgets(("w1", "target", "Label")), "layout": {"arrangement": "rows"}},
            "layout is empty",
        ),
        (
            {
                "widgets": widgets(("w1", "target", "Label")),
                "layout": {"arrangement": "rows", "groups": []},
            },
            "layout is empty",
        ),
        (
            {
                "widgets": widgets(("w1", "target", "Label"), ("w2", "room", "Label")),
                "layout": {"arrangement": "grid", "groups": [{"title": "", "widgets": ["w1"]}]},
            },
            "arrangement 'grid' is unknown.*leaves out w2",
        ),
        (
            {
                "widgets": widgets(("w1", "target", "Label")),
                "layout": {
                    "arrangement": "rows",
                    "groups": [
                        {"title": "a", "widgets": ["w1", "w9"]},
                        {"title": "b", "widgets": []},
                    ],
                },
            },
            "unknown widget 'w9'.*Group 2 \\('b'\\) is empty",
        ),
        (
            {
                "widgets": widgets(("w1", "target", "Label")),
                "layout": {
                    "arrangement": "tabs",
                    "groups": [
                        {"title": "a", "widgets": ["w1"]},
                        {"title": "b", "widgets": ["w1"]},
                    ],
                },
            },
            "'w1' is placed twice",
        ),
    ],
)
def test_audit_names_what_is_wrong(image: Image, spec: dict[str, Any], match: str) -> None:
    obj = thermostat(image)
    with pytest.raises(PanelError, match=match) as info:
        audit_panel(spec, obj)
    assert info.value.problems and "Nothing was stored" in str(info.value)


def test_audit_collects_every_problem_of_a_list(image: Image) -> None:
    obj = thermostat(image)
    bad = widgets(("w1", "target", "Slider"), ("w1", "colour", "Text"))
    with pytest.raises(PanelError) as info:
        audit_panel({"widgets": bad}, obj)
    assert len(info.value.problems) == 3  # the kind, the slot, the duplicate id


def test_parse_json_object_finds_the_object_or_says_why_not() -> None:
    assert parse_json_object('Sure! {"a": 1} done', "x") == {"a": 1}
    with pytest.raises(PanelError, match="held none"):
        parse_json_object("no braces", "BRICK's widget list")
    with pytest.raises(PanelError, match="not valid JSON"):
        parse_json_object('{"a": }', "BRICK's widget list")
    with pytest.raises(PanelError, match="unknown widget"):
        check_layout({"arrangement": "rows", "groups": [{"widgets": ["zz"]}]}, ["w1"])


def test_panel_reads_slots_writes_back_in_a_transaction_and_presses_buttons(
    file_image: Image,
) -> None:
    obj = thermostat(file_image)
    layout = {
        "arrangement": "tabs",
        "groups": [{"title": "All", "widgets": [w["id"] for w in FULL]}],
    }
    panel = Panel(obj, audit_panel({"widgets": FULL, "layout": layout}, obj))
    assert panel.value_of("w1") == 21 and panel.value_of("w2") == "kitchen"
    assert panel.value_of("w4") is True and panel.controls["w5"].options[1][0] == "'hall'"
    panel.controls["w1"].value = 30  # the user moves the slider
    assert obj.target == 30
    assert file_image.history(1)[0]["note"].startswith("panel: target of thermostat")
    file_image.abort()
    assert obj.target == 30  # committed, not pending
    assert panel.press("w7") == 32 and obj.target == 32
    assert "boost() → 32; committed" in panel.status.value
    with file_image.transaction("changed elsewhere"):
        obj.room = "hall"
    panel.refresh()
    assert panel.value_of("w2") == "hall" and panel.value_of("w8") == "hall"
    with file_image.transaction("a slot changes its type"):
        obj.target = "warm"
    panel.refresh()
    assert panel.value_of("w1") == 32 and "No longer shown as built: target" in panel.status.value
    with pytest.raises(PanelError, match="is a Label; it cannot write"):
        panel.write("w8", "x")
    with pytest.raises(PanelError, match="not a Button"):
        panel.press("w1")


def test_a_failing_button_rolls_back_and_says_why(file_image: Image) -> None:
    obj = thermostat(file_image)
    spec = audit_panel(
        {"widgets": widgets(("w1", "target", "IntText"), ("w2", "wreck", "Button"))}, obj
    )
    panel = Panel(obj, spec)
    before = len(file_image.history(50))
    result = panel.press("w2")
    assert isinstance(result, ZeroDivisionError)
    assert obj.target == 21 and panel.value_of("w1") == 21  # rolled back, shown again
    assert "ZeroDivisionError" in panel.status.value and "rolled back" in panel.status.value
    assert len(file_image.history(50)) == before
    panel.dispose()


def test_display_yourself_after_reopen_uses_the_stored_spec(image_path: Path) -> None:
    with open_image(image_path) as img:
        obj = thermostat(img)
        with pytest.raises(PanelError, match="keeps no panel yet"):
            display_yourself(obj)
        with img.transaction("a stored panel"):
            obj.set_slot(PANEL_SLOT, {"widgets": widgets(("w1", "target", "IntSlider"))})
    with open_image(image_path) as img:
        obj = img["thermostat"]
        panel = display_yourself(obj)
        assert list(panel.controls) == ["w1"] and panel.value_of("w1") == 21
        with img.transaction("a slot goes away"):
            obj.del_slot("target")
        with pytest.raises(PanelError, match="no longer fits its slots.*unknown slot 'target'"):
            display_yourself(obj)
    with pytest.raises(PanelError, match="Only UvmObjects"):
        display_yourself("thermostat")  # type: ignore[arg-type]
