"""Guided decoding of the panel language: the grammars, and decoding with a (tiny) real model."""

from __future__ import annotations

import json
import random
import string

import pytest

from batos_lab.image import Image
from batos_lab.objects import UvmObject
from batos_lab.psm.guided_panel import (
    GrammarCursor,
    LayoutGrammar,
    Unit,
    WidgetGrammar,
    generate_guided,
    label,
)
from batos_lab.widgets.panel_spec import audit_panel, check_layout, check_widgets, panel_slots

SLOTS = (
    ("target", ("IntSlider", "IntText", "Label")),
    ("room", ("Text", "Label")),
    ("heating", ("Checkbox", "Label")),
    ("boost", ("Button",)),
)


def widget_text(*items: tuple[str, str, str]) -> str:
    """The widget list JSON; each description is the slot's label followed by the third item."""
    body = ", ".join(
        f'{{"id": "w{n}", "slot": "{slot}", "kind": "{kind}", '
        f'"description": "{label(slot)}{more}"}}'
        for n, (slot, kind, more) in enumerate(items, start=1)
    )
    return f'{{"widgets": [{body}]}}'


def test_widget_grammar_accepts_a_list_that_follows_the_rules() -> None:
    cursor = GrammarCursor.start(WidgetGrammar(SLOTS))
    text = widget_text(("room", "Text", " name"), ("boost", "Button", ""))
    end = cursor.feed(text)
    assert end is not None and end.done
    assert json.loads(text)["widgets"][0]["description"] == "Room name"
    assert label("room_name") == "Room name"


@pytest.mark.parametrize(
    "text",
    [
        widget_text(("colour", "Text", "x")),  # not a slot of the object
        widget_text(("room", "IntSlider", "x")),  # a kind that does not suit the slot
        widget_text(("room", "Text", "x"), ("room", "Label", "y")),  # a slot used twice
        widget_text(("room", "Text", "")).replace('"Room"', '"Place"'),  # not the slot's label
        widget_text(("room", "Text", ' say "hi"')),  # a quote inside a string
        '{"widgets": [{"id": "w7", "slot": "room"',  # ids are numbered by the grammar
        '{"widgets": []}',
    ],
)
def test_widget_grammar_refuses_what_the_rules_forbid(text: str) -> None:
    assert GrammarCursor.start(WidgetGrammar(SLOTS)).feed(text) is None


def test_widget_grammar_bounds_the_number_of_widgets() -> None:
    one = widget_text(("room", "Text", ""))
    assert GrammarCursor.start(WidgetGrammar(SLOTS, min_widgets=2)).feed(one) is None
    three = widget_text(("room", "Text", ""), ("boost", "Button", ""), ("heating", "Label", ""))
    assert GrammarCursor.start(WidgetGrammar(SLOTS, max_widgets=2)).feed(three) is None
    assert (
        GrammarCursor.start(WidgetGrammar(SLOTS, max_chars=4)).feed(
            widget_text(("room", "Text", " Hello"))
        )
        is None
    )
    with pytest.raises(ValueError, match="at least one slot"):
        WidgetGrammar(())
    with pytest.raises(ValueError, match="could never close"):
        WidgetGrammar(SLOTS, max_widgets=1, min_widgets=2)
    with pytest.raises(ValueError, match="prefix-free"):
        Unit("choice", options=('Text"', 'Text"area'))


def test_forced_text_is_what_the_grammar_leaves_no_choice_about() -> None:
    cursor = GrammarCursor.start(WidgetGrammar((("count", ("IntSlider", "Label")),)))
    assert cursor.forced() == '{"widgets": [{"id": "w1", "slot": "count", "kind": "'
    cursor = GrammarCursor.start(WidgetGrammar(SLOTS))
    assert cursor.forced() == '{"widgets": [{"id": "w1", "slot": "'
    after_b = cursor.feed(cursor.forced() + "b")
    assert after_b.forced() == 'oost", "kind": "Button", "description": "Boost'  # type: ignore[union-attr]


def test_layout_grammar_places_every_widget_exactly_once() -> None:
    start = GrammarCursor.start(LayoutGrammar(("w1", "w2", "w3")))
    good = (
        '{"arrangement": "tabs", "groups": [{"title": "A", "widgets": ["w2", "w1"]}, '
        '{"title": "B", "widgets": ["w3"]}]}'
    )
    end = start.feed(good)
    assert end is not None and end.done
    assert check_layout(json.loads(good), ["w1", "w2", "w3"]).arrangement == "tabs"
    early = '{"arrangement": "rows", "groups": [{"title": "A", "widgets": ["w1"]}]}'
    assert start.feed(early) is None  # w2 and w3 are not placed yet
    twice = '{"arrangement": "rows", "groups": [{"title": "A", "widgets": ["w1", "w1"'
    assert start.feed(twice) is None
    assert start.feed('{"arrangement": "grid"') is None
    last = start.feed(
        '{"arrangement": "rows", "groups": [{"title": "A", "widgets": ["w1", "w2", "w3"'
    )
    assert last is not None and last.forced() == "]}]}"


def _random_walk(cursor: GrammarCursor, rng: random.Random) -> str:
    """Write a text by picking, at every step, a random character the cursor allows."""
    text: list[str] = []
    alphabet = string.ascii_letters + string.digits + " .,:;!?-()[]{}'"
    while not cursor.done:
        heads = cursor.first_chars()
        if heads is None:  # a free string: a random character, or the closing quote
            options = list(alphabet) + (['"'] * 3 if cursor.count else [])
            ch = rng.choice(options)
        else:
            ch = rng.choice(sorted(heads))
        nxt = cursor.step(ch)
        if nxt is None:
            continue
        text.append(ch)
        cursor = nxt
        assert len(text) < 5000
    return "".join(text)


@pytest.mark.parametrize("seed", range(8))
def test_every_text_the_grammars_allow_passes_the_audit(image: Image, seed: int) -> None:
    rng = random.Random(seed)
    obj = UvmObject(name="thermostat", target=21, room="kitchen", heating=True, rooms=["a"])
    slots = panel_slots(obj)
    grammar = WidgetGrammar(tuple((s.name, s.kinds) for s in slots.values()), max_chars=12)
    widgets = json.loads(_random_walk(GrammarCursor.start(grammar), rng))
    checked = check_widgets(widgets, slots)
    ids = tuple(w.id for w in checked)
    layout = json.loads(_random_walk(GrammarCursor.start(LayoutGrammar(ids, max_chars=10)), rng))
    spec = audit_panel({"widgets": widgets["widgets"], "layout": layout}, obj)
    assert sorted(i for g in spec.layout.groups for i in g.widgets) == sorted(ids)


def test_a_tiny_model_decodes_valid_specs_with_and_without_jumping(tiny_image: Image) -> None:
    from batos_lab.llm import core_for

    core = core_for(tiny_image)
    obj = UvmObject(name="thermostat", target=21, room="kitchen", heating=True)
    slots = panel_slots(obj)
    grammar = WidgetGrammar(tuple((s.name, s.kinds) for s in slots.values()), max_chars=16)
    replies = {
        jump: generate_guided(
            core,
            "Choose the widgets of a panel for a thermostat.",
            system=None,
            start=GrammarCursor.start(grammar),
            adapter=None,
            max_new_tokens=200,
            jump=jump,
        )
        for jump in (True, False)
    }
    for jump, reply in replies.items():
        widgets = check_widgets(json.loads(reply.text), slots)  # random weights, valid spec
        assert widgets and reply.adapter is None
        assert not any("not closed" in n for n in reply.notices)
        forced = int(reply.notices[-1].split(", ")[1].split()[0])
        assert (forced > 0) == jump
    ids = tuple(w["id"] for w in json.loads(replies[True].text)["widgets"])
    layout = generate_guided(
        core,
        "Arrange the widgets.",
        system="You arrange widgets.",
        start=GrammarCursor.start(LayoutGrammar(ids)),
        adapter="ONE",
        max_new_tokens=160,
    )
    assert layout.adapter == "ONE@v1"
    assert check_layout(json.loads(layout.text), list(ids)).groups


def test_an_unknown_adapter_decodes_with_the_base_model_and_says_so(tiny_image: Image) -> None:
    from batos_lab.llm import core_for

    reply = generate_guided(
        core_for(tiny_image),
        "Arrange.",
        system=None,
        start=GrammarCursor.start(LayoutGrammar(("w1",))),
        adapter="NOPE",
        max_new_tokens=64,
    )
    assert reply.adapter is None
    assert any("NOPE could not be used" in n for n in reply.notices)
    assert json.loads(reply.text)["groups"][0]["widgets"] == ["w1"]
