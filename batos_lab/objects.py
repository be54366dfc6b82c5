"""Prototype objects of the living image: slots, parent slots, methods as source text.

A :class:`UvmObject` keeps its whole state in *slots*, a persistent mapping from names to values.
A slot whose name ends in ``*`` (``parent*``, ``synthesis_state*``) is a parent slot: a lookup that
misses the object's own slots continues depth-first through its parents, in slot order, visiting
each object once, as in Self. Behaviour is data too: a method is a :class:`Method`, persistent
source text compiled on first use into a volatile cache and bound to whichever object received the
message. Kernel behaviour is a :class:`NativeMethod`, an importable name, so nothing unpicklable is
ever stored.

A public selector that nobody answers is not an error at attribute access: it yields a
:class:`Message` that calls the receiver's ``doesNotUnderstand_`` hook only when it is called.
Names starting with ``_`` (pickling, copying, IPython display and widget probes) never reach it.

Example:
    >>> point = UvmObject(name="point", x=1)
    >>> point.define("moved", "def moved(self, dx):\\n    return self.x + dx")
    >>> point.moved(2)
    3
"""

from __future__ import annotations

import ast
import datetime as _dt
import importlib
import io
import keyword
import pickle
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from persistent import Persistent
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

from batos_lab.errors import DoesNotUnderstand, MethodSourceError, SlotError

__all__ = [
    "KERNEL_SELECTORS",
    "Message",
    "Method",
    "NativeMethod",
    "UvmObject",
    "flush_send_caches",
    "is_parent_slot",
    "persistify",
    "raise_does_not_understand",
    "set_method_compiler",
    "summarize",
]

#: Public names that libraries probe with ``hasattr`` and then call (IPython's ``getdoc``,
#: completion hooks, file- and array-likes). Unanswered, they are plain ``AttributeError``s;
#: ``obj.send("keys")`` still sends them as messages on purpose.
PROBE_NAMES = frozenset(
    {
        "getdoc",
        "trait_names",
        "keys",
        "items",
        "values",
        "read",
        "write",
        "fileno",
        "shape",
        "dtype",
        "ndim",
        "tolist",
        "compute",
        "size",
    }
)

_MISSING = object()

# The send cache. A successful lookup is remembered in the receiver's instance ``__dict__`` (the
# bound method, or the data value), so the next send is an ordinary C-level attribute hit instead
# of a walk through parents. The cache never persists (``__getstate__`` writes only ``_slots``),
# and it is flushed by name whenever a slot of that name changes anywhere, entirely when a parent
# slot changes, and entirely when ZODB invalidates an object (another transaction, or an abort).
_CACHED: dict[str, weakref.WeakSet[UvmObject]] = {}


def _remember(obj: UvmObject, name: str, value: Any) -> None:
    obj.__dict__[name] = value
    holders = _CACHED.get(name)
    if holders is None:
        holders = _CACHED[name] = weakref.WeakSet()
    holders.add(obj)


def flush_send_caches(name: str | None = None) -> None:
    """Forget remembered lookups of ``name`` (of every name when None) in every object."""
    names = list(_CACHED) if name is None else [name]
    for key in names:
        holders = _CACHED.pop(key, None)
        for obj in list(holders or ()):
            obj.__dict__.pop(key, None)


def is_parent_slot(name: str) -> bool:
    """Return True for a parent slot name (one that ends in ``*``)."""
    return name.endswith("*")


def summarize(value: Any, width: int = 60) -> str:
    """Return a one-line summary of ``value`` at most ``width`` characters long."""
    if isinstance(value, UvmObject):
        text = value.short_name()
    elif isinstance(value, Method | NativeMethod):
        text = repr(value)
    else:
        try:
            text = repr(value)
        except Exception as exc:  # a value whose repr raises must still be shown
            text = f"<{type(value).__name__}: repr failed with {type(exc).__name__}>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- methods

MethodCompiler = Callable[[str, str], Callable[..., Any]]


def _sandbox_compile(source: str, name: str) -> Callable[..., Any]:
    """The default compiler: audited by the guardian, run restricted and under limits."""
    from batos_lab.sandbox import compile_method

    return compile_method(source, name)


_compiler: MethodCompiler = _sandbox_compile


def set_method_compiler(compiler: MethodCompiler) -> MethodCompiler:
    """Choose how method source becomes a function; return the previous compiler.

    Volatile caches compiled by the previous compiler stay until the objects are reloaded.
    """
    global _compiler
    previous, _compiler = _compiler, compiler
    flush_send_caches()
    return previous


def parse_method_source(name: str, source: str) -> ast.FunctionDef:
    """Parse ``source`` and return its single top-level function definition.

    Raises:
        MethodSourceError: the source does not parse, or is not exactly one function taking
            the receiver as its first parameter.
    """
    if not isinstance(source, str):
        raise MethodSourceError(
            f"The source of method '{name}' must be a string, not {type(source).__name__}."
        )
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise MethodSourceError(
            f"The source of method '{name}' does not parse: {exc.msg} at line {exc.lineno}. "
            "Fix the source and define it again."
        ) from None
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    # imports may precede the function; the guardian decides which modules are allowed
    others = [
        node
        for node in tree.body
        if not isinstance(node, ast.FunctionDef | ast.Import | ast.ImportFrom)
    ]
    if len(functions) != 1 or others:
        raise MethodSourceError(
            f"The source of method '{name}' must be exactly one function definition; found "
            f"{len(functions)} function(s) and {len(others)} other statement(s)."
        )
    func = functions[0]
    if not func.args.args:
        raise MethodSourceError(
            f"Method '{name}' must take the receiver as its first parameter "
            f"(def {func.name}(self, ...)); it takes none."
        )
    return func


class Method(Persistent):
    """A method stored as source text, compiled lazily and bound to the receiver.

    Attributes:
        name: the selector it answers.
        source: the function definition, as text.
        provenance: who or what wrote it, when, and free metadata.
    """

    def __init__(self, name: str, source: str, provenance: dict[str, Any] | None = None) -> None:
        from batos_lab.guardian import audit

        parse_method_source(name, source)
        report = audit(source, name)  # raises GuardianRejection naming the rule and the line
        self.name = name
        self.source = report.source
        meta: dict[str, Any] = {"author": "hand", "created": _dt.datetime.now(_dt.UTC).isoformat()}
        if report.fixes:
            meta["autofix"] = list(report.fixes)
        meta.update(provenance or {})
        self.provenance = persistify(meta)

    def function(self) -> Callable[..., Any]:
        """Return the compiled function, compiling it on first use."""
        func = getattr(self, "_v_function", None)
        if func is None:
            func = _compiler(self.source, self.name)
            self._v_function = func
        return func

    def bind(self, receiver: UvmObject) -> Callable[..., Any]:
        """Return the function bound to ``receiver`` (its ``self``)."""
        return types.MethodType(self.function(), receiver)

    def __repr__(self) -> str:
        return f"<Method {self.name} by {self.provenance.get('author', '?')}>"


class NativeMethod(Persistent):
    """Kernel behaviour referenced by importable name (``"package.module:function"``)."""

    def __init__(self, ref: str, doc: str = "") -> None:
        module, _, attr = ref.partition(":")
        if not module or not attr:
            raise MethodSourceError(
                f"A native method reference looks like 'package.module:function'; got {ref!r}."
            )
        self.ref = ref
        self.doc = doc

    def function(self) -> Callable[..., Any]:
        """Import and return the referenced function (cached in a volatile attribute)."""
        func = getattr(self, "_v_function", None)
        if func is None:
            module, _, attr = self.ref.partition(":")
            func = getattr(importlib.import_module(module), attr)
            self._v_function = func
        return func

    def bind(self, receiver: UvmObject) -> Callable[..., Any]:
        """Return the function bound to ``receiver``."""
        return types.MethodType(self.function(), receiver)

    def __repr__(self) -> str:
        return f"<NativeMethod {self.ref}>"


def raise_does_not_understand(receiver: UvmObject, selector: str, *args: Any, **kwargs: Any) -> Any:
    """The kernel's default ``doesNotUnderstand_``: raise a clear error."""
    raise DoesNotUnderstand(
        f"{receiver.short_name()} does not understand '{selector}': no slot of it or of its "
        f"parents answers. Define it with obj.define({selector!r}, source), or configure the "
        "generative kernel to write it.",
        receiver=receiver,
        selector=selector,
    )


# --------------------------------------------------------------------------- values


def persistify(value: Any) -> Any:
    """Turn plain dicts and lists (recursively) into persistent containers."""
    if type(value) is dict:
        return PersistentMapping({k: persistify(v) for k, v in value.items()})
    if type(value) is list:
        return PersistentList(persistify(v) for v in value)
    return value


class _ProbePickler(pickle.Pickler):
    """Pickles a value the way ZODB would: persistent objects become references."""

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, Persistent):
            return id(obj)
        return None


def _check_picklable(name: str, value: Any) -> None:
    kind = type(value).__name__
    if isinstance(value, Persistent):
        # ZODB stores a persistent object's state, with other persistent objects as references.
        if not isinstance(value, PersistentMapping | PersistentList):
            return
        value = value.__getstate__()
    elif isinstance(value, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        raise SlotError(
            f"Slot '{name}' cannot hold a {type(value).__name__} ({summarize(value, 40)}): "
            "behaviour is stored as source. Use obj.define(name, source) instead."
        )
    try:
        _ProbePickler(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    except Exception as exc:
        raise SlotError(
            f"Slot '{name}' cannot hold a value of type {kind}: it cannot be "
            f"stored in the image ({type(exc).__name__}: {exc}). Store plain data instead."
        ) from None


def _check_slot_name(name: Any) -> None:
    if not isinstance(name, str):
        raise SlotError(f"A slot name must be a string, not {type(name).__name__}.")
    base = name[:-1] if is_parent_slot(name) else name
    if not base.isidentifier() or keyword.iskeyword(base):
        raise SlotError(
            f"Slot name {name!r} is not a Python identifier (a trailing '*' marks a parent slot)."
        )
    if base.startswith("_"):
        raise SlotError(
            f"Slot name {name!r} starts with '_': such names belong to the persistence "
            "machinery and are never slots."
        )
    if base in KERNEL_SELECTORS:
        raise SlotError(
            f"Slot name {name!r} is a selector of the kernel itself; choose another name."
        )


# --------------------------------------------------------------------------- messages


class Message:
    """An unanswered message: calling it sends ``doesNotUnderstand_`` to the receiver."""

    __slots__ = ("receiver", "selector")

    def __init__(self, receiver: UvmObject, selector: str) -> None:
        self.receiver = receiver
        self.selector = selector

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.receiver._does_not_understand(self.selector, args, kwargs)

    def __bool__(self) -> bool:
        return False  # an unanswered message is nothing yet

    def __repr__(self) -> str:
        return f"<unanswered message {self.selector!r} to {self.receiver.short_name()}>"


# --------------------------------------------------------------------------- objects


class UvmObject(Persistent):
    """A prototype object whose state lives in slots.

    Args:
        **slots: initial slots; names ending in ``*`` are parent slots.

    Example:
        >>> base = UvmObject(name="base", greeting="hello")
        >>> child = UvmObject(name="child")
        >>> child.set_slot("parent*", base)
        >>> child.greeting
        'hello'
    """

    def __init__(self, **slots: Any) -> None:
        super().__setattr__("_slots", PersistentMapping())
        for name, value in slots.items():
            self.set_slot(name, value)

    # -- slot protocol

    def set_slot(self, name: str, value: Any) -> None:
        """Assign a slot and mark the object changed.

        Raises:
            SlotError: the name is not an identifier (with an optional trailing ``*``), starts
                with ``_``, names a kernel selector, or the value cannot be stored.
        """
        _check_slot_name(name)
        if is_parent_slot(name) and not isinstance(value, UvmObject):
            raise SlotError(
                f"Parent slot {name!r} must hold a UvmObject, not {type(value).__name__}."
            )
        value = persistify(value)
        _check_picklable(name, value)
        self._slots[name] = value
        self._p_changed = True
        flush_send_caches(None if is_parent_slot(name) else name)

    def get_slot(self, name: str, default: Any = _MISSING) -> Any:
        """Return the value of an own or inherited slot, or ``default``.

        Raises:
            SlotError: no such slot and no default given.
        """
        owner, value = self.lookup(name)
        if owner is None:
            if default is _MISSING:
                raise SlotError(f"{self.short_name()} has no slot {name!r}, own or inherited.")
            return default
        return value

    def has_slot(self, name: str) -> bool:
        """Return True when the object itself (not a parent) holds ``name``."""
        return name in self._slots

    def del_slot(self, name: str) -> None:
        """Remove an own slot.

        Raises:
            SlotError: the object holds no such slot.
        """
        if name not in self._slots:
            raise SlotError(f"{self.short_name()} has no own slot {name!r} to delete.")
        del self._slots[name]
        self._p_changed = True
        flush_send_caches(None if is_parent_slot(name) else name)

    def slot_names(self) -> list[str]:
        """Return the own slot names in slot order."""
        return list(self._slots)

    def parents(self) -> list[tuple[str, UvmObject]]:
        """Return the parent slots as ``(name, parent)`` pairs in slot order."""
        return [(k, v) for k, v in self._slots.items() if is_parent_slot(k)]

    def lookup(self, name: str) -> tuple[UvmObject | None, Any]:
        """Find ``name`` in own slots, then parents depth-first; return ``(owner, value)``.

        The owner is None when no object on the parent graph holds the slot. Cycles are safe:
        each object is visited once.
        """
        seen: set[int] = set()
        stack: list[UvmObject] = [self]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            slots = obj._slots
            value = slots.get(name, _MISSING)
            if value is not _MISSING:
                return obj, value
            # push parents in reverse so the first parent slot is searched first
            stack.extend(reversed([v for k, v in slots.items() if is_parent_slot(k)]))
        return None, None

    def ancestors(self) -> Iterator[UvmObject]:
        """Yield the objects of the parent graph in lookup order, self first."""
        seen: set[int] = set()
        stack: list[UvmObject] = [self]
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            yield obj
            stack.extend(reversed([v for k, v in obj._slots.items() if is_parent_slot(k)]))

    def selectors(self) -> list[str]:
        """Return every public name the object answers, own and inherited, sorted."""
        names: set[str] = set()
        for obj in self.ancestors():
            names.update(k for k in obj._slots if not is_parent_slot(k))
        return sorted(names)

    # -- behaviour

    def define(self, name: str, source: str, provenance: dict[str, Any] | None = None) -> Method:
        """Install a method written as source text in slot ``name`` and return it.

        Raises:
            MethodSourceError: the source does not parse or is not one function definition.
            SlotError: ``name`` is not a valid slot name.
        """
        _check_slot_name(name)
        method = Method(name, source, provenance)
        self.set_slot(name, method)
        return method

    def send(self, selector: str, *args: Any, **kwargs: Any) -> Any:
        """Send a message explicitly, including names that libraries probe for.

        Raises:
            DoesNotUnderstand: the selector is private, or no one answers and none is learned.
        """
        if selector.startswith("_"):
            raise DoesNotUnderstand(
                f"'{selector}' is a private name; private names are never sent as messages.",
                receiver=self,
                selector=selector,
            )
        owner, value = self.lookup(selector)
        if owner is None:
            return self._does_not_understand(selector, args, kwargs)
        value = self._resolve(value)
        if callable(value):
            return value(*args, **kwargs)
        if args or kwargs:
            raise DoesNotUnderstand(
                f"Slot '{selector}' of {self.short_name()} holds data "
                f"({summarize(value, 40)}), not a method; it takes no arguments.",
                receiver=self,
                selector=selector,
            )
        return value

    def _resolve(self, value: Any) -> Any:
        if isinstance(value, Method | NativeMethod):
            return value.bind(self)
        return value

    def _does_not_understand(
        self, selector: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        owner, hook = self.lookup("doesNotUnderstand_")
        if owner is None:
            return raise_does_not_understand(self, selector, *args, **kwargs)
        return self._resolve(hook)(selector, *args, **kwargs)

    def clone(self, **overrides: Any) -> UvmObject:
        """Return a new object with copies of the slots, sharing the parents.

        Containers are copied one level deep so editing the clone leaves the original alone.
        """
        twin = type(self)()
        for name, value in self._slots.items():
            if isinstance(value, PersistentMapping) and not is_parent_slot(name):
                value = dict(value)
            elif isinstance(value, PersistentList):
                value = list(value)
            twin.set_slot(name, value)
        for name, value in overrides.items():
            twin.set_slot(name, value)
        return twin

    # -- persistence: only the slots are state; the send cache is not

    def __getstate__(self) -> dict[str, Any]:
        return {"_slots": self._slots}

    def _p_invalidate(self) -> None:
        # Another transaction changed this object (or ours was aborted): values remembered
        # from it anywhere may be stale.
        super()._p_invalidate()
        flush_send_caches()

    # -- Python protocol

    def __getattr__(self, name: str) -> Any:
        # Only reached when ordinary lookup failed: private names stop here, always.
        if name.startswith("_") or "_slots" not in self.__dict__:
            raise AttributeError(name)
        owner, value = self.lookup(name)
        if owner is not None:
            value = self._resolve(value)
            _remember(self, name, value)
            return value
        if name in PROBE_NAMES:
            raise AttributeError(name)
        return Message(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith(("_p_", "_v_")) or name == "_slots":
            super().__setattr__(name, value)
        elif name.startswith("_"):
            raise SlotError(
                f"Cannot set {name!r}: names starting with '_' are not slots, and only "
                "'_p_' and '_v_' attributes belong to the persistence machinery."
            )
        else:
            self.set_slot(name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith(("_p_", "_v_")):
            super().__delattr__(name)
        else:
            self.del_slot(name)

    def __dir__(self) -> list[str]:
        own = [n for n in dir(type(self)) if not n.startswith("_")]
        slots = [n for n in self.selectors() if n.isidentifier()]
        return sorted(set(own) | set(slots))

    def _loaded_slots(self) -> Any:
        try:
            return self._slots
        except Exception:  # repr must work on a half-built or unloadable object
            return None

    def oid_hex(self) -> str:
        """Return the object id as hex, or ``'unsaved'`` before it joins an image."""
        oid = self._p_oid
        return "0x" + oid.hex().lstrip("0").rjust(2, "0") if oid else "unsaved"

    def short_name(self) -> str:
        """Return ``'<name> (oid)'`` for messages and summaries."""
        slots = self._loaded_slots()
        name = slots.get("name") if slots is not None else None
        label = name if isinstance(name, str) else type(self).__name__
        return f"{label} ({self.oid_hex()})"

    def __repr__(self) -> str:
        slots = self._loaded_slots()
        if slots is None:  # a half-built or broken object: say so and go on
            return f"<UvmObject oid={self.oid_hex()} (not loaded)>"
        name = slots.get("name")
        shown = f" name={name!r}" if isinstance(name, str) else ""
        return f"<UvmObject oid={self.oid_hex()}{shown} slots=[{', '.join(slots)}]>"


#: Names of the kernel's own API: they can never be slots, or the slot would be unreachable.
KERNEL_SELECTORS = frozenset(n for n in vars(UvmObject) if not n.startswith("_")) | {
    "doesNotUnderstand"
}
