"""The Persistence Guardian, the covenant, and the sandbox that runs every method."""

from __future__ import annotations

import builtins
import math
import os
import random
import threading
from collections.abc import Iterator

import pytest

from batos_lab.errors import GuardianRejection, SandboxError, SandboxRecursion, SandboxTimeout
from batos_lab.guardian import audit
from batos_lab.image import Image, open_image
from batos_lab.limits import Limits, call_limited
from batos_lab.objects import UvmObject, set_method_compiler
from batos_lab.sandbox import compile_method, run_source
from batos_lab.sandbox_guards import safe_builtins
from tests.escape_corpus import CORPUS, Escape

FAST = Limits(cpu_seconds=0.3)


@pytest.fixture(scope="module")
def sandbox_image() -> Iterator[Image]:
    """One in-memory image whose ``target`` holds a few slots; tests abort after use."""
    previous = set_method_compiler(compile_method)
    with open_image(None) as img:
        img.new("target", count=1, items=[1, 2], note="keep")
        img.commit("escape corpus target")
        yield img
    set_method_compiler(previous)


# --- shape -----------------------------------------------------------------------------------


def test_audit_accepts_a_plain_method() -> None:
    report = audit("def add(self, a, b):\n    return a + b\n", "add")
    assert report.name == "add"
    assert report.params == ("a", "b")
    assert not report.mutates_self
    assert not report.autofixed


@pytest.mark.parametrize(
    ("source", "rule", "line"),
    [
        ("def f(self):\n    return (\n", "syntax", 2),
        ("x = 1\ndef f(self):\n    return x\n", "one-function", 1),
        ("def f(self):\n    return 1\ndef g(self):\n    return 2\n", "one-function", 3),
        ("", "one-function", 1),
        ("def g(self):\n    return 1\n", "function-name", 1),
        ("def f(x):\n    return x\n", "self-parameter", 1),
        ("def f():\n    return 1\n", "self-parameter", 1),
    ],
)
def test_audit_refuses_bad_shapes(source: str, rule: str, line: int) -> None:
    with pytest.raises(GuardianRejection, match=rf"line {line}: \[{rule}\]") as info:
        audit(source, "f")
    assert info.value.rule == rule
    assert info.value.line == line


def test_rejection_lists_every_violation_in_line_order() -> None:
    source = "def f(self):\n    import os\n    return eval(self._slots)\n"
    with pytest.raises(GuardianRejection) as info:
        audit(source, "f")
    rules = [(rule, line) for rule, line, _ in info.value.violations]
    assert ("import", 2) in rules
    assert ("forbidden-name", 3) in rules
    assert ("underscore", 3) in rules
    assert [line for _, line in rules] == sorted(line for _, line in rules)


def test_audit_refuses_non_string_source() -> None:
    with pytest.raises(GuardianRejection, match="expected method source as a str"):
        audit(b"def f(self): pass", "f")  # type: ignore[arg-type]


def test_allowlisted_imports_pass_at_top_and_inside() -> None:
    source = "import math\ndef f(self, x):\n    from statistics import mean\n    return mean([x])\n"
    assert audit(source, "f").imports == ("math", "statistics")


# --- the covenant ----------------------------------------------------------------------------


def test_covenant_autofix_appends_the_mark() -> None:
    report = audit("def bump(self):\n    self.n += 1\n", "bump")
    assert report.mutates_self
    assert report.source.endswith("    self.n += 1\n    self._p_changed = True\n")
    assert report.fixes == ["appended self._p_changed = True at line 3 (end of bump)"]


def test_covenant_without_autofix_is_a_rejection() -> None:
    with pytest.raises(GuardianRejection, match=r"line 3: \[covenant\]"):
        audit("def bump(self):\n    self.n += 1\n", "bump", autofix=False)


def test_covenant_checks_nested_blocks_and_every_return() -> None:
    source = (
        "def f(self, x):\n"
        "    for i in range(x):\n"
        "        if i % 2:\n"
        "            del self.tmp\n"
        "            return i\n"
        "        self.seen = i\n"
        "    return 0\n"
    )
    with pytest.raises(GuardianRejection) as info:
        audit(source, "f", autofix=False)
    assert [(r, line) for r, line, _ in info.value.violations] == [
        ("covenant", 5),
        ("covenant", 7),
    ]
    fixed = audit(source, "f").source
    assert fixed.count("self._p_changed = True") == 2
    assert "            self._p_changed = True\n            return i" in fixed


@pytest.mark.parametrize(
    "body",
    [
        "self.items.append(1)",
        "setattr(self, 'x', 1)",
        "self.set_slot('x', 1)",
        "self.table['k'] = 1",
        "self.a, other = 1, 2",
        "with ctx:\n        self.x = 1",
        "try:\n        self.x = 1\n    except ValueError:\n        pass",
    ],
)
def test_covenant_sees_every_kind_of_change(body: str) -> None:
    report = audit(f"def f(self, ctx=None, other=None):\n    {body}\n", "f")
    assert report.mutates_self
    assert report.autofixed


def test_covenant_kept_source_needs_no_fix() -> None:
    source = "def f(self):\n    self.x = 1\n    self._p_changed = True\n    return self.x\n"
    report = audit(source, "f", autofix=False)
    assert report.source == source and not report.fixes


def test_covenant_fix_of_one_line_blocks_rewrites_the_tree() -> None:
    report = audit("def f(self, x):\n    self.x = x\n    if x: return 1\n", "f")
    assert "self._p_changed = True\n        return 1" in report.source
    audit(report.source, "f", autofix=False)  # the fixed source passes on its own


def test_read_only_method_needs_no_mark() -> None:
    assert not audit("def f(self):\n    return len(self.items)\n", "f").mutates_self


# --- the sandbox ------------------------------------------------------------------------------


def test_methods_change_slots_through_the_slot_machinery() -> None:
    obj = UvmObject(name="t", count=1, items=[])
    source = audit("def bump(self, n):\n    self.count += n\n    self.items.append(n)\n").source
    assert run_source(source, "bump", obj, 2) is None
    assert obj.count == 3
    assert list(obj.items) == [2]


def test_allowlisted_modules_work_with_or_without_import() -> None:
    source = (
        "def stats(self, xs):\n"
        "    import statistics\n"
        "    return [statistics.mean(xs), math.sqrt(16), json.dumps({'a': 1})]\n"
    )
    assert run_source(source, "stats", None, [1, 2, 3]) == [2, 4.0, '{"a": 1}']


def test_safe_format_allows_plain_fields() -> None:
    obj = UvmObject(name="card", first="Ada")
    source = (
        "def f(self):\n"
        "    return '{0} {n}!'.format(self.first, n=3) + '{x[k]}'.format_map({'x': {'k': 1}})\n"
    )
    assert run_source(source, "f", obj) == "Ada 3!1"


def test_print_is_collected_not_written(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_source("def f(self):\n    print('hi')\n    return 1\n", "f", None) == 1
    assert capsys.readouterr().out == ""


def test_returned_iterators_are_drained_inside_the_limits() -> None:
    assert run_source("def f(self):\n    return (x * 2 for x in [1, 2])\n", "f", None) == [2, 4]


def test_timeout_off_the_main_thread() -> None:
    func = compile_method("def spin(self):\n    while True:\n        pass\n", "spin", limits=FAST)
    caught: list[BaseException] = []

    def worker() -> None:
        try:
            func(None)
        except SandboxTimeout as exc:
            caught.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=30)
    assert len(caught) == 1
    assert "CPU time" in str(caught[0])


def test_recursion_through_methods_is_bounded(sandbox_image: Image) -> None:
    target = sandbox_image["target"]
    target.define("down", "def down(self, n):\n    return self.down(n + 1)\n")
    try:
        with pytest.raises(SandboxRecursion, match="levels deep"):
            target.down(0)
    finally:
        sandbox_image.abort()


def test_call_limited_rejects_bad_limits() -> None:
    with pytest.raises(ValueError, match="cpu_seconds must be positive"):
        Limits(cpu_seconds=0)
    with pytest.raises(ValueError, match="max_depth must be at least 1"):
        Limits(max_depth=0)
    assert call_limited(lambda a: a + 1, (1,), {}, name="inc") == 2


def test_sandbox_errors_name_what_was_refused() -> None:
    with pytest.raises(SandboxError, match="statistics.sys is a module"):
        run_source("def f(self):\n    return statistics.sys\n", "f", None)
    with pytest.raises(SandboxError, match="Repeating a sequence"):
        run_source("def f(self):\n    return 'ab' * 10 ** 9\n", "f", None)


# --- the escape corpus -----------------------------------------------------------------------


def _host_snapshot() -> tuple[object, ...]:
    return (
        dict(builtins.__dict__).keys(),
        dict(safe_builtins),
        math.pi,
        random.getstate(),
        dict(os.environ),
        os.path.exists("/tmp/batos-escape-canary"),
    )


def test_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 40
    assert len({e.name for e in CORPUS}) == len(CORPUS)
    assert {e.expect for e in CORPUS} == {"static", "runtime"}


@pytest.mark.parametrize("escape", CORPUS, ids=[e.name for e in CORPUS])
def test_escape_is_stopped(escape: Escape, sandbox_image: Image) -> None:
    target = sandbox_image["target"]
    before_slots = dict(target._slots)
    host_before = _host_snapshot()
    try:
        if escape.expect == "static":
            with pytest.raises(GuardianRejection) as info:
                compile_method(escape.source, "probe", limits=FAST)
            assert escape.rule in {rule for rule, _, _ in info.value.violations}, str(info.value)
        else:
            func = compile_method(escape.source, "probe", limits=FAST)
            with pytest.raises(Exception) as info:
                func(target)
            assert type(info.value).__name__ in escape.errors, repr(info.value)
        assert not target._p_changed
        assert dict(target._slots) == before_slots
        assert _host_snapshot() == host_before
    finally:
        sandbox_image.abort()
