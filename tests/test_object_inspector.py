"""Driving the ObjectInspector widget from Python, as a person would with clicks."""

from __future__ import annotations

import ipywidgets as w
import pytest

from batos_lab.errors import BatosError
from batos_lab.image import Image, open_image
from batos_lab.objects import UvmObject
from batos_lab.widgets import ObjectInspector
from batos_lab.widgets.object_inspector import parse_slot_value


def _buttons(inspector: ObjectInspector) -> list[w.Button]:
    return list(inspector.parents_box.children)  # type: ignore[arg-type]


def test_shows_oid_slots_parents_and_methods(image: Image) -> None:
    with image.transaction("obj"):
        obj = image.new("shown", colour="red", tags=["a"])
        obj.define("paint", "def paint(self):\n    return self.colour", {"author": "test"})
    inspector = ObjectInspector(obj)
    assert obj.oid_hex() in inspector.header.value
    assert (
        "colour" in inspector.slots_html.value and "&#x27;red&#x27;" in inspector.slots_html.value
    )
    assert [b.description for b in _buttons(inspector)] == [
        f"parent* → traits ({image.root['traits'].oid_hex()})"
    ]
    titles = [inspector.methods.get_title(i) for i in range(len(inspector.methods.children))]
    assert "paint (own)" in titles
    assert any(t.startswith("describe (from traits") for t in titles)
    paint = inspector.methods.children[titles.index("paint (own)")]
    assert "return self.colour" in paint.value and "author: &#x27;test&#x27;" in paint.value


def test_click_through_parents_and_back(image: Image) -> None:
    with image.transaction("obj"):
        obj = image.new("child")
    inspector = ObjectInspector(obj)
    assert inspector.back_button.disabled
    _buttons(inspector)[0].click()
    assert inspector.obj is image.root["traits"]
    assert "traits" in inspector.header.value and not inspector.back_button.disabled
    inspector.back_button.click()
    assert inspector.obj is obj


def test_edit_a_slot_commits_with_a_note(tmp_path) -> None:
    path = tmp_path / "i.fs"
    with open_image(path) as image:
        with image.transaction("obj"):
            obj = image.new("editable", count=1)
        inspector = ObjectInspector(obj)
        inspector.slot_picker.value = "count"
        inspector.value_text.value = "42"
        inspector.set_button.click()
        assert "committed" in inspector.status.value
        assert image.history(1)[0]["note"].startswith("inspector: set count of editable")
        assert "42" in inspector.slots_html.value
    with open_image(path) as image:
        assert image["editable"].count == 42


def test_bad_edit_is_reported_and_changes_nothing(image: Image) -> None:
    with image.transaction("obj"):
        obj = image.new("editable", count=1)
    inspector = ObjectInspector(obj)
    inspector.slot_picker.value = "not a name"
    inspector.value_text.value = "3"
    assert inspector.apply_edit() is False
    assert "not a Python identifier" in inspector.status.value
    assert obj.slot_names() == ["name", "count", "parent*"]
    assert obj._p_changed is False


def test_edit_of_an_object_outside_an_image_is_refused() -> None:
    inspector = ObjectInspector(UvmObject(name="loose", x=1))
    inspector.slot_picker.value = "x"
    inspector.value_text.value = "2"
    assert inspector.apply_edit() is False
    assert "not stored in an image" in inspector.status.value


def test_only_uvm_objects_can_be_shown() -> None:
    with pytest.raises(BatosError, match="shows UvmObjects, not int"):
        ObjectInspector(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, value", [("42", 42), ("[1, 2]", [1, 2]), ("'hi'", "hi"), ("hi there", "hi there")]
)
def test_values_typed_into_the_editor(text: str, value: object) -> None:
    assert parse_slot_value(text) == value
