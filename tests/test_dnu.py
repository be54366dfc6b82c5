"""The doesNotUnderstand_ pipeline, driven by a scripted generator."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from batos_lab import dnu
from batos_lab.dnu import JITSettings, install_generator, jit, jit_async
from batos_lab.dnu_prompt import ExtractionError, build_prompt, extract_function
from batos_lab.errors import DoesNotUnderstand
from batos_lab.image import Image, open_image
from batos_lab.limits import Limits
from batos_lab.objects import UvmObject, set_method_compiler
from batos_lab.sandbox import compile_method


class Scripted:
    """A generator that returns prepared replies in order and remembers the prompts."""

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.temperatures: list[float] = []

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        self.prompts.append(prompt)
        self.temperatures.append(temperature)
        if not self.replies:
            raise AssertionError("the scripted generator ran out of replies")
        return self.replies.pop(0)


FAST = JITSettings(max_attempts=3, trial_limits=Limits(cpu_seconds=0.3), model_id="scripted")


@pytest.fixture
def jit_image() -> Iterator[Image]:
    """An in-memory image with a committed ``tally`` object and the sandboxed compiler."""
    previous = set_method_compiler(compile_method)
    with open_image(None) as img:
        img.new("tally", count=2, items=[3, 8, 1])
        img.commit("a tally")
        yield img
    set_method_compiler(previous)
    dnu.uninstall_generator(img)


def learn(img: Image, gen: Scripted, selector: str, *args: Any, **kwargs: Any) -> Any:
    install_generator(img, gen, FAST)
    return getattr(img["tally"], selector)(*args, **kwargs)


def _committed_selectors(img: Image) -> list[str]:
    img.abort()  # drop anything uncommitted, then look
    return img["tally"].slot_names()


def test_fenced_reply_with_chatter_is_learned_committed_and_answered(jit_image: Image) -> None:
    gen = Scripted(
        "Sure! Here is the method:\n```python\ndef double(self, n):\n    return n * 2\n```\n"
        "It doubles."
    )
    assert learn(jit_image, gen, "double", 21) == 42
    assert "double" in _committed_selectors(jit_image)
    method = jit_image["tally"].get_slot("double")
    prov = dict(method.provenance)
    assert prov["author"] == "jit" and prov["model"] == "scripted" and prov["adapter"] is None
    assert prov["adapter_version"] is None
    assert len(prov["prompt_sha256"]) == 64
    assert [a["stage"] for a in prov["attempts"]] == ["ok"]
    assert gen.temperatures == [0.0]
    assert jit_image["tally"].double(5) == 10  # installed: no second generation
    assert len(gen.prompts) == 1


def test_continuation_of_the_header_is_accepted(jit_image: Image) -> None:
    gen = Scripted("    return self.count + n\n```\nDone.")
    assert learn(jit_image, gen, "plus", 3) == 5
    assert gen.prompts[0].endswith("def plus(self, n):")


def test_wrong_function_name_is_renamed(jit_image: Image) -> None:
    gen = Scripted("def something_else(self):\n    return len(self.items)\n")
    assert learn(jit_image, gen, "how_many") == 3
    assert jit_image["tally"].get_slot("how_many").source.startswith("def how_many(self):")


def test_several_functions_pick_the_named_one_or_retry(jit_image: Image) -> None:
    gen = Scripted(
        "def a(self):\n    return 1\n\ndef b(self):\n    return 2\n",
        "def helper(self):\n    return 0\n\ndef largest(self):\n    return max(self.items)\n",
    )
    assert learn(jit_image, gen, "largest") == 8
    attempts = jit_image["tally"].get_slot("largest").provenance["attempts"]
    assert attempts[0]["stage"] == "extract"
    assert "several functions" in attempts[0]["error"]


def test_syntax_error_is_fed_back_then_fixed(jit_image: Image) -> None:
    gen = Scripted(
        "def total(self):\n    return sum(self.items\n",
        "def total(self):\n    return sum(self.items)\n",
    )
    assert learn(jit_image, gen, "total") == 12
    assert "It failed:" in gen.prompts[1]
    assert "does not parse" in gen.prompts[1]
    assert gen.temperatures == [0.0, 0.7]


def test_covenant_autofix_is_recorded(jit_image: Image) -> None:
    gen = Scripted("def bump(self, n):\n    self.count += n\n    return self.count\n")
    assert learn(jit_image, gen, "bump", 5) == 7
    method = jit_image["tally"].get_slot("bump")
    assert "self._p_changed = True" in method.source
    assert method.provenance["autofix"] == [
        "inserted self._p_changed = True before the return at line 3"
    ]
    assert jit_image["tally"].count == 7  # ran once for real: the trial was rolled back


def test_hostile_code_is_refused_then_a_good_one_installed(jit_image: Image) -> None:
    gen = Scripted(
        "def peek(self):\n    import os\n    return os.listdir('/')\n",
        "def peek(self):\n    return self._slots\n",
        "def peek(self):\n    return self.count\n",
    )
    assert learn(jit_image, gen, "peek") == 2
    attempts = jit_image["tally"].get_slot("peek").provenance["attempts"]
    assert [a["stage"] for a in attempts] == ["audit", "audit", "ok"]
    assert "[import]" in attempts[0]["error"] and "[underscore]" in attempts[1]["error"]


def test_infinite_loop_is_refused_at_trial(jit_image: Image) -> None:
    gen = Scripted(
        "def wait(self):\n    while True:\n        pass\n",
        "def wait(self):\n    return 'done'\n",
    )
    assert learn(jit_image, gen, "wait") == "done"
    first = jit_image["tally"].get_slot("wait").provenance["attempts"][0]
    assert first["stage"] == "trial" and "SandboxTimeout" in first["error"]


def test_generator_errors_become_attempt_diagnostics(jit_image: Image) -> None:
    calls: list[int] = []

    def flaky(prompt: str, temperature: float, attempt: int) -> str:
        calls.append(attempt)
        if attempt == 0:
            raise RuntimeError("model crashed")
        return "def ping(self):\n    return 'pong'\n"

    install_generator(jit_image, flaky, FAST)
    assert jit_image["tally"].ping() == "pong"
    assert calls == [0, 1]


def test_final_failure_raises_with_diagnostics_and_leaves_the_image_unchanged(
    jit_image: Image,
) -> None:
    breaking = "def smash(self):\n    self.count = 99\n    self.items.append(0)\n    return 1 / 0\n"
    gen = Scripted("no code at all", breaking, "def smash(self):\n    return (\n")
    install_generator(jit_image, gen, FAST)
    tally = jit_image["tally"]
    with pytest.raises(DoesNotUnderstand, match="could not learn 'smash'") as info:
        tally.smash()
    attempts = info.value.attempts
    assert [a["stage"] for a in attempts] == ["extract", "trial", "extract"]
    assert "ZeroDivisionError" in attempts[1]["error"]
    assert tally.count == 2 and list(tally.items) == [3, 8, 1]  # trial rolled back
    assert not tally.has_slot("smash")
    jit_image.abort()
    failures = jit_image.root["failures"]
    assert len(failures) == 1
    record = next(iter(failures.values()))
    assert record["selector"] == "smash"
    assert record["receiver_oid"] == tally.oid_hex()
    assert len(record["attempts"]) == 3 and "no attempt passed" in record["reason"]


class Unprintable:
    """An argument whose repr raises."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_argument_whose_repr_raises(jit_image: Image) -> None:
    gen = Scripted("def accept(self, value):\n    return 'ok'\n")
    assert learn(jit_image, gen, "accept", Unprintable()) == "ok"
    assert "(its repr raised RuntimeError)" in gen.prompts[0]


def test_selector_clashing_with_a_parent_slot_of_another_kind(jit_image: Image) -> None:
    tally = jit_image["tally"]
    gen = Scripted("def doc(self):\n    return 1\n")
    install_generator(jit_image, gen, FAST)
    with pytest.raises(DoesNotUnderstand, match=r"its parent traits .* already holds a slot"):
        jit(tally, "doc", (), {}, generator=gen, settings=FAST)
    assert gen.prompts == []
    assert not tally.has_slot("doc")


@pytest.mark.parametrize(
    ("selector", "message"),
    [("_secret", "not a public selector"), ("define", "selector of the kernel itself")],
)
def test_private_and_kernel_selectors_are_never_learned(
    jit_image: Image, selector: str, message: str
) -> None:
    gen = Scripted()
    with pytest.raises(DoesNotUnderstand, match=message):
        jit(jit_image["tally"], selector, (), {}, generator=gen, settings=FAST)


def test_cycle_mode_defers_to_cycles(jit_image: Image) -> None:
    jit_image.root["genesis"].dnu_mode = "cycle"
    with pytest.raises(DoesNotUnderstand, match="dnu_mode='cycle'"):
        jit(jit_image["tally"], "anything", (), {}, generator=Scripted(), settings=FAST)


def test_trial_runs_on_copies_of_the_arguments(jit_image: Image) -> None:
    gen = Scripted("def stash(self, items):\n    items.append('seen')\n    return len(items)\n")
    bag: list[str] = []
    assert learn(jit_image, gen, "stash", bag) == 1
    assert bag == ["seen"]


def test_unattached_receiver_learns_without_an_image() -> None:
    previous = set_method_compiler(compile_method)
    try:
        obj = UvmObject(name="loose", n=4)
        gen = Scripted("def square(self):\n    return self.n ** 2\n")
        assert jit(obj, "square", (), {}, generator=gen, settings=FAST) == 16
    finally:
        set_method_compiler(previous)


def test_async_variant(jit_image: Image) -> None:
    gen = Scripted("def triple(self, n):\n    return 3 * n\n")
    result = asyncio.run(jit_async(jit_image["tally"], "triple", 4, generator=gen, settings=FAST))
    assert result == 12


def test_handle_without_a_generator_raises_the_kernel_error(
    jit_image: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_generator(jit_image, Scripted(), FAST)
    dnu.uninstall_generator(jit_image)
    monkeypatch.setattr(dnu, "generator_for", lambda image: None)
    with pytest.raises(DoesNotUnderstand, match="does not understand 'nothing'"):
        jit_image["tally"].nothing()


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1"):
        JITSettings(max_attempts=0)
    with pytest.raises(ValueError, match="temperatures must be non-negative"):
        JITSettings(temperatures=(-1.0,))


def test_prompt_holds_slots_inherited_selectors_rules_and_examples(jit_image: Image) -> None:
    prompt = build_prompt(jit_image["tally"], "mean_of", ("x",), {"scale": 2})
    assert "count = 2" in prompt.text and "items = [3, 8, 1]" in prompt.text
    assert "It inherits: describe" in prompt.text
    assert "self._p_changed = True" in prompt.text and "Example 3" in prompt.text
    assert "Message: tally.mean_of('x', scale=2)" in prompt.text
    assert prompt.header == "def mean_of(self, text, scale):"


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("", "empty"),
        ("I cannot help with that.", "no function definition"),
        ("```python\ndef f(self):\n    return (\n```", "does not parse"),
        ("def a(self):\n    return b(self)\ndef b(self):\n    return 1\n", "calls the separate"),
    ],
)
def test_extraction_errors(reply: str, message: str) -> None:
    with pytest.raises(ExtractionError, match=message):
        extract_function(reply, "a" if "def a" in reply else "g")
