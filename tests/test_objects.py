"""The prototype-object kernel: slots, parents, methods, messages, persistence covenant."""

from __future__ import annotations

import copy
import pickle
import socket
import threading

import pytest
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

from batos_lab.errors import DoesNotUnderstand, MethodSourceError, SlotError
from batos_lab.image import Image, open_image
from batos_lab.objects import Message, Method, NativeMethod, UvmObject, set_method_compiler


def test_slots_assign_read_and_mark_changed(image: Image) -> None:
    with image.transaction("obj"):
        obj = image.new("thing", count=1)
    assert obj._p_changed is False
    obj.count = 2
    assert obj._p_changed is True
    assert obj.count == 2 and obj.get_slot("count") == 2
    obj.set_slot("label", "x")
    assert obj.slot_names() == ["name", "count", "parent*", "label"]


def test_plain_containers_become_persistent_and_inplace_edits_survive(tmp_path) -> None:
    path = tmp_path / "i.fs"
    with open_image(path) as image:
        with image.transaction("c"):
            obj = image.new("c", items=[1, 2], table={"a": {"b": [1]}})
        assert isinstance(obj.items, PersistentList)
        assert isinstance(obj.table["a"], PersistentMapping)
        assert isinstance(obj.table["a"]["b"], PersistentList)
        with image.transaction("edit in place"):
            obj.items.append(3)
            obj.table["a"]["b"].append(2)
    with open_image(path) as image:
        obj = image["c"]
        assert list(obj.items) == [1, 2, 3]
        assert list(obj.table["a"]["b"]) == [1, 2]


def test_parent_lookup_is_depth_first_in_slot_order() -> None:
    grand = UvmObject(name="grand", colour="grey", depth="grand")
    left = UvmObject(name="left", **{"parent*": grand})
    right = UvmObject(name="right", colour="red")
    child = UvmObject(name="child", **{"a*": left, "b*": right})
    # depth-first: left's parent grand answers before right
    assert child.colour == "grey"
    assert child.lookup("colour")[0] is grand
    child.set_slot("colour", "blue")
    assert child.colour == "blue"


def test_parent_cycles_are_safe() -> None:
    a = UvmObject(name="a")
    b = UvmObject(name="b", **{"parent*": a})
    a.set_slot("parent*", b)
    assert a.lookup("missing") == (None, None)
    assert isinstance(a.missing, Message)
    assert [o.name for o in a.ancestors()] == ["a", "b"]


@pytest.mark.parametrize("name", ["1abc", "with space", "a-b", "", "class", "x**", "_hidden"])
def test_bad_slot_names_are_refused(name: str) -> None:
    obj = UvmObject(name="o")
    with pytest.raises(SlotError, match="identifier|starts with '_'"):
        obj.set_slot(name, 1)
    assert obj.slot_names() == ["name"]


def test_kernel_selectors_cannot_be_slots() -> None:
    with pytest.raises(SlotError, match="selector of the kernel"):
        UvmObject().set_slot("clone", 1)


def test_parent_slot_must_hold_an_object() -> None:
    with pytest.raises(SlotError, match="must hold a UvmObject"):
        UvmObject().set_slot("parent*", 3)


@pytest.mark.parametrize(
    "factory, kind",
    [
        (lambda: lambda x: x, "function"),
        (lambda: open(__file__), "TextIOWrapper"),
        (lambda: socket.socket(), "socket"),
        (lambda: threading.Lock(), "lock"),
        (lambda: [1, threading.Lock()], "PersistentList"),
    ],
)
def test_unpicklable_values_are_refused_at_assignment(image: Image, factory, kind: str) -> None:
    value = factory()
    with image.transaction("o"):
        obj = image.new("o", keep=1)
    with pytest.raises(SlotError, match=rf"Slot 'bad' cannot hold a.*{kind}"):
        obj.bad = value
    assert not obj.has_slot("bad")
    image.commit("nothing changed")  # the commit itself must not fail later
    if hasattr(value, "close"):
        value.close()


def test_bound_runtime_method_is_refused() -> None:
    class Runtime:
        def act(self) -> None: ...

    with pytest.raises(SlotError, match="behaviour is stored as source"):
        UvmObject().set_slot("hook", Runtime().act)


def test_define_binds_to_the_receiver_through_parents(image: Image) -> None:
    with image.transaction("define"):
        proto = image.new("proto", greeting="hello")
        proto.define("greet", "def greet(self, who):\n    return f'{self.greeting}, {who}'")
        child = proto.clone(greeting="hi")
        child.del_slot("greet")
        child.set_slot("parent*", proto)
    assert proto.greet("Ada") == "hello, Ada"
    assert child.greet("Ada") == "hi, Ada"  # self is the receiver, as in Self


def test_method_compiles_lazily_into_a_volatile_cache(tmp_path) -> None:
    path = tmp_path / "m.fs"
    with open_image(path) as image:
        with image.transaction("m"):
            obj = image.new("m", n=1)
            obj.define("plus", "def plus(self, k):\n    return self.n + k")
        assert obj.plus(1) == 2
        method = obj.get_slot("plus")
        assert method._v_function is not None
        assert "_v_function" not in method.__getstate__()
    with open_image(path) as image:
        method = image["m"].get_slot("plus")
        assert getattr(method, "_v_function", None) is None
        assert image["m"].plus(4) == 5


@pytest.mark.parametrize(
    "source, match",
    [
        ("def broken(self:\n    pass", "does not parse"),
        ("x = 1", "exactly one function"),
        ("def a(self):\n    pass\ndef b(self):\n    pass", "exactly one function"),
        ("def f():\n    return 1", "receiver as its first parameter"),
    ],
)
def test_bad_method_source_is_refused_and_nothing_changes(source: str, match: str) -> None:
    obj = UvmObject(name="o")
    with pytest.raises(MethodSourceError, match=match):
        obj.define("f", source)
    assert obj.slot_names() == ["name"]


def test_native_method_reference_must_be_importable_name() -> None:
    with pytest.raises(MethodSourceError, match="package.module:function"):
        NativeMethod("no_colon_here")


def test_unknown_selector_calls_the_hook_only_when_called(image: Image) -> None:
    with image.transaction("o"):
        obj = image.new("o")
    message = obj.frobnicate
    assert isinstance(message, Message) and not message
    with pytest.raises(DoesNotUnderstand, match=r"o \(0x[0-9a-f]+\) does not understand 'frob"):
        message(1, 2)


def test_custom_dnu_hook_receives_selector_and_arguments() -> None:
    obj = UvmObject(name="echo")
    obj.define(
        "doesNotUnderstand_",
        "def doesNotUnderstand_(self, selector, *args, **kwargs):\n"
        "    return (selector, args, kwargs)",
    )
    assert obj.anything(1, k=2) == ("anything", (1,), {"k": 2})
    assert obj.send("keys") == ("keys", (), {})


def test_private_names_and_probes_never_reach_the_hook() -> None:
    calls = []
    obj = UvmObject(name="quiet")
    obj.define("doesNotUnderstand_", "def doesNotUnderstand_(self, s, *a, **k):\n    raise X")
    for name in [
        "_repr_html_",
        "_ipython_display_",
        "__array__",
        "_p_jar_thing",
        "getdoc",
        "keys",
        "shape",
        "read",
        "trait_names",
    ]:
        assert not hasattr(obj, name), name
    copy.copy(obj)
    copy.deepcopy(obj)
    pickle.loads(pickle.dumps(obj))
    dir(obj)
    repr(obj)
    assert calls == []
    with pytest.raises(DoesNotUnderstand, match="private name"):
        obj.send("_secret")


def test_data_slot_sent_with_arguments_is_a_clear_error() -> None:
    obj = UvmObject(name="o", size=3)
    assert obj.send("size") == 3
    with pytest.raises(DoesNotUnderstand, match="holds data"):
        obj.send("size", 1)


def test_clone_copies_slots_and_shares_parents(image: Image) -> None:
    with image.transaction("c"):
        proto = image.new("proto", tags=["a"], meta={"k": 1})
        twin = proto.clone(name="twin")
    assert twin.get_slot("parent*") is proto.get_slot("parent*")
    twin.tags.append("b")
    twin.meta["k"] = 2
    assert list(proto.tags) == ["a"] and proto.meta["k"] == 1
    assert twin.name == "twin" and proto.name == "proto"


def test_repr_and_dir_show_oid_name_slots_and_inherited_selectors(image: Image) -> None:
    with image.transaction("r"):
        obj = image.new("shown", colour="red")
        obj.define("paint", "def paint(self):\n    return self.colour")
    text = repr(obj)
    assert text.startswith("<UvmObject oid=0x") and "name='shown'" in text and "colour" in text
    names = dir(obj)
    assert {"colour", "paint", "describe", "clone"} <= set(names)
    assert "parent*" not in names
    assert "unsaved" in repr(UvmObject())


def test_method_compiler_is_pluggable() -> None:
    seen = []

    def tracing(source: str, name: str):
        seen.append(name)
        namespace: dict = {}
        exec(source, namespace)
        return namespace[name]

    previous = set_method_compiler(tracing)
    try:
        obj = UvmObject()
        obj.define("one", "def one(self):\n    return 1")
        assert obj.one() == 1 and seen == ["one"]
    finally:
        set_method_compiler(previous)


def test_method_provenance_is_kept() -> None:
    method = Method("m", "def m(self):\n    return 0", {"author": "test", "note": "x"})
    assert method.provenance["author"] == "test" and "created" in method.provenance


def test_send_cache_sees_parent_changes_redefinitions_and_repointing() -> None:
    top = UvmObject(name="top", value=1)
    top.define("get", "def get(self):\n    return self.value")
    child = UvmObject(name="child", **{"parent*": top})
    assert child.get() == 1 and child.value == 1  # now remembered in child
    top.value = 2
    assert child.get() == 2 and child.value == 2
    top.define("get", "def get(self):\n    return self.value * 10")
    assert child.get() == 20
    other = UvmObject(name="other", value=7)
    other.define("get", "def get(self):\n    return -self.value")
    child.set_slot("parent*", other)
    assert child.get() == -7
    child.value = 3  # an own slot shadows the parent's
    assert child.get() == -3
    child.del_slot("value")
    assert child.value == 7
    assert "value" not in child.__getstate__()["_slots"]
    assert set(child.__getstate__()) == {"_slots"}  # the cache is never state


def test_send_cache_follows_other_transactions_and_aborts(image: Image) -> None:
    import transaction as txn

    with image.transaction("pair"):
        top = image.new("top", value=1)
        child = image.new("child", **{"parent*": top})
    assert child.value == 1
    other_tm = txn.TransactionManager()
    other = image.db.open(transaction_manager=other_tm)
    other.root()["objects"]["top"].value = 5
    other_tm.commit()
    image.sync()
    assert child.value == 5  # the invalidation flushed what child remembered
    top.value = 9
    assert child.value == 9
    image.abort()
    assert child.value == 5
    other.close()


def test_every_defined_method_passes_the_guardian() -> None:
    from batos_lab.errors import GuardianRejection

    obj = UvmObject(name="o", count=0)
    with pytest.raises(GuardianRejection, match="import"):
        obj.define("f", "import os\ndef f(self):\n    return os.getcwd()")
    with pytest.raises(GuardianRejection, match="underscore"):
        obj.define("g", "def g(self):\n    return self._slots")
    assert obj.slot_names() == ["name", "count"]
    method = obj.define("bump", "def bump(self):\n    self.count = self.count + 1")
    assert method.source.rstrip().endswith("self._p_changed = True")
    assert method.provenance["autofix"]
    obj.bump()
    assert obj.count == 1
