"""The guards a sandboxed method runs with: attribute, item, write, import and size checks.

RestrictedPython rewrites ``a.b`` into ``_getattr_(a, "b")``, ``a.b = v`` into
``_write_(a).b = v``, ``a[k]`` into ``_getitem_(a, k)`` and so on; this module supplies those
functions, the safe builtins, and proxies for the allowlisted modules. The rules:

* no attribute starting with ``_`` and none of the introspection attributes, ever;
* writes reach only slots of image objects (through ``set_slot``) and items of plain or
  persistent containers; modules, functions and everything else are read-only;
* modules are proxies that never hand out another module (``statistics.sys`` stops here), and
  ``random`` is a private generator so seeding it leaves the host's alone;
* ``str.format``/``format_map`` run through a formatter that applies the same attribute rule to
  ``"{0.attr}"`` fields;
* sizes are bounded before the allocation: sequence repetition, ``**``, ``<<``, padding,
  ``replace``, ``%`` widths, and every builtin that drains an iterable.
"""

from __future__ import annotations

import collections.abc
import importlib
import operator
import random
import re
import string
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from RestrictedPython.Guards import guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES

from batos_lab.errors import SandboxError
from batos_lab.guardian import ALLOWED_IMPORTS, INTROSPECTION_ATTRIBUTES

__all__ = ["MAX_INT_BITS", "MAX_ITEMS", "MAX_SEQUENCE", "guard_names", "safe_builtins"]

#: Longest string, bytes, list or tuple a method may build in one operation.
MAX_SEQUENCE = 10_000_000
#: Most items a builtin may draw from an iterable that has no length.
MAX_ITEMS = 1_000_000
#: Largest integer (in bits) ``**`` and ``<<`` may produce.
MAX_INT_BITS = 1_000_000

_DENIED_ATTRIBUTES = INTROSPECTION_ATTRIBUTES | INSPECT_ATTRIBUTES
_PLUMBING = frozenset({"function", "bind"})  # Method/NativeMethod internals
_MISSING = object()
_SEQUENCES = (str, bytes, bytearray, list, tuple)


def _deny(message: str) -> SandboxError:
    return SandboxError(message + " Methods may only use public data and allowlisted modules.")


# --- attributes --------------------------------------------------------------------------


def guarded_getattr(ob: Any, name: Any, default: Any = _MISSING) -> Any:
    """Read ``ob.name`` under the sandbox's attribute rules (also the ``getattr`` builtin)."""
    if not isinstance(name, str):
        raise _deny(f"An attribute name must be a str, found {type(name).__name__}.")
    if name.startswith("_") or name in _DENIED_ATTRIBUTES:
        raise _deny(f"The attribute {name!r} is not accessible from a method.")
    if name in _PLUMBING and type(ob).__name__ in {"Method", "NativeMethod"}:
        raise _deny(f"The attribute {name!r} of a stored method is kernel plumbing.")
    if isinstance(ob, (str, bytes)):
        special = _string_method(ob, name)
        if special is not None:
            return special
    if isinstance(ob, type) and issubclass(ob, (str, bytes)) and name in _STRING_GUARDED:
        raise _deny(f"Call {name!r} on a string value rather than on the type.")
    try:
        value = getattr(ob, name)
    except AttributeError:
        if default is _MISSING:
            raise
        return default
    if isinstance(value, (types.ModuleType, types.FrameType, types.CodeType, types.TracebackType)):
        raise _deny(f"The attribute {name!r} leads to a {type(value).__name__}.")
    return value


def guarded_hasattr(ob: Any, name: str) -> bool:
    """``hasattr`` with the same rules as :func:`guarded_getattr`."""
    try:
        guarded_getattr(ob, name)
    except (AttributeError, SandboxError):
        return False
    return True


def guarded_getitem(ob: Any, index: Any) -> Any:
    """Read ``ob[index]``."""
    return ob[index]


def _is_slot_owner(ob: Any) -> bool:
    from batos_lab.objects import UvmObject

    return isinstance(ob, UvmObject)


class _SlotWriter:
    """What ``_write_(obj)`` returns for an image object: attribute writes become slot writes."""

    __slots__ = ("_target",)

    def __init__(self, target: Any) -> None:
        object.__setattr__(self, "_target", target)

    def __setattr__(self, name: str, value: Any) -> None:
        target = object.__getattribute__(self, "_target")
        if name == "_p_changed":
            target._p_changed = True
        elif name.startswith("_"):
            raise _deny(f"A method may not set {name!r}.")
        else:
            target.set_slot(name, value)

    def __delattr__(self, name: str) -> None:
        if name.startswith("_"):
            raise _deny(f"A method may not delete {name!r}.")
        object.__getattribute__(self, "_target").del_slot(name)

    def __setitem__(self, key: Any, value: Any) -> None:
        raise _deny("Image objects take slot assignment (obj.name = value), not obj[key] = value.")

    __delitem__ = __setitem__


def _is_writable_container(ob: Any) -> bool:
    if type(ob) in (dict, list, set, bytearray):
        return True
    module = type(ob).__module__
    return module.startswith(("persistent.", "BTrees.")) or isinstance(
        ob,
        (collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque),
    )


def guarded_write(ob: Any) -> Any:
    """Return what a method may write through for ``ob.x = v``, ``ob[k] = v`` and ``del``."""
    if _is_slot_owner(ob):
        return _SlotWriter(ob)
    if _is_writable_container(ob):
        return ob
    raise _deny(
        f"A method may change slots of image objects and items of lists and dicts, "
        f"not a {type(ob).__name__}."
    )


def guarded_setattr(ob: Any, name: str, value: Any) -> None:
    """``setattr`` through :func:`guarded_write`."""
    if not isinstance(name, str) or name.startswith("_"):
        raise _deny(f"A method may not set the attribute {name!r}.")
    setattr(guarded_write(ob), name, value)


def guarded_delattr(ob: Any, name: str) -> None:
    """``delattr`` through :func:`guarded_write`."""
    if not isinstance(name, str) or name.startswith("_"):
        raise _deny(f"A method may not delete the attribute {name!r}.")
    delattr(guarded_write(ob), name)


# --- sizes ----------------------------------------------------------------------------------


def _check_size(size: int, what: str) -> None:
    if size > MAX_SEQUENCE:
        raise _deny(f"{what} would build {size:,} elements; the limit is {MAX_SEQUENCE:,}.")


def guarded_mul(a: Any, b: Any) -> Any:
    """``a * b`` with sequence repetition bounded."""
    if isinstance(a, _SEQUENCES) and isinstance(b, int):
        _check_size(len(a) * b, "Repeating a sequence")
    elif isinstance(b, _SEQUENCES) and isinstance(a, int):
        _check_size(len(b) * a, "Repeating a sequence")
    return a * b


def guarded_pow(a: Any, b: Any, mod: Any = None) -> Any:
    """``a ** b`` (and ``pow``) with huge integer results refused."""
    if mod is None and isinstance(a, int) and isinstance(b, int) and b > 0 and abs(a) > 1:
        if b * abs(a).bit_length() > MAX_INT_BITS:
            raise _deny(f"{a} ** {b} would exceed {MAX_INT_BITS:,} bits.")
    return pow(a, b) if mod is None else pow(a, b, mod)


def guarded_lshift(a: Any, b: Any) -> Any:
    """``a << b`` with huge shifts refused."""
    if isinstance(a, int) and isinstance(b, int) and b > MAX_INT_BITS:
        raise _deny(f"Shifting by {b:,} bits exceeds {MAX_INT_BITS:,} bits.")
    return a << b


_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def guarded_mod(a: Any, b: Any) -> Any:
    """``a % b`` with ``%``-format widths bounded."""
    if isinstance(a, (str, bytes)):
        text = a.decode("latin-1") if isinstance(a, bytes) else a
        star = False
        for match in _PERCENT_WIDTH.finditer(text):
            for group in match.groups():
                if group == "*":
                    star = True
                elif group and int(group) > MAX_SEQUENCE:
                    raise _deny(f"The %-format width {group} is too large.")
        if star:
            values = b if isinstance(b, tuple) else (b,)
            for value in values:
                if isinstance(value, int) and value > MAX_SEQUENCE:
                    raise _deny(f"The %-format width {value:,} is too large.")
    return a % b


_INPLACE: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": lambda a, b: guarded_mul(a, b) if isinstance(a, _SEQUENCES) else operator.imul(a, b),
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": guarded_mod,
    "**=": guarded_pow,
    "<<=": guarded_lshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, x: Any, y: Any) -> Any:
    """``x op= y`` for names."""
    try:
        return _INPLACE[op](x, y)
    except KeyError:
        raise _deny(f"The operator {op!r} is not supported.") from None


def bounded(iterable: Iterable[Any]) -> Iterable[Any]:
    """Return ``iterable`` itself when it has a length in bounds, else a counting iterator."""
    if isinstance(iterable, collections.abc.Sized) and not isinstance(iterable, Iterator):
        if len(iterable) > MAX_ITEMS and not isinstance(iterable, (str, bytes)):
            raise _deny(f"An iterable of {len(iterable):,} items exceeds {MAX_ITEMS:,}.")
        return iterable
    return _count(iter(iterable))


def _count(iterator: Iterator[Any]) -> Iterator[Any]:
    for n, item in enumerate(iterator):
        if n >= MAX_ITEMS:
            raise _deny(f"An iterator produced more than {MAX_ITEMS:,} items.")
        yield item


def guarded_range(*args: int) -> range:
    """``range`` with at most :data:`MAX_ITEMS` elements."""
    result = range(*args)
    if len(result) > MAX_ITEMS:
        raise _deny(f"range() of {len(result):,} elements exceeds {MAX_ITEMS:,}.")
    return result


def _drain(func: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(iterable: Any = _MISSING, *args: Any, **kwargs: Any) -> Any:
        if iterable is _MISSING:
            return func(*args, **kwargs)
        return func(bounded(iterable), *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = func.__name__
    return guarded


def _minmax(func: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1:
            return func(bounded(args[0]), **kwargs)
        return func(*args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = func.__name__
    return guarded


def guarded_format(value: Any, spec: str = "") -> str:
    """The ``format`` builtin with widths bounded."""
    _check_spec(spec)
    return format(value, spec)


def _check_spec(spec: str) -> None:
    for run in re.findall(r"\d+", spec):
        if int(run) > MAX_SEQUENCE:
            raise _deny(f"The format width {run} is too large.")


# --- strings ------------------------------------------------------------------------------

_STRING_GUARDED = frozenset(
    {"format", "format_map", "ljust", "rjust", "center", "zfill", "expandtabs", "join", "replace"}
)


class _SafeFormatter(string.Formatter):
    """``str.format`` whose ``{0.attr}`` and ``{0[key]}`` fields obey the sandbox rules."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        import _string  # the parser str.format itself uses

        first, rest = _string.formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else guarded_getitem(obj, key)
        return obj, first

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        return super().format_field(value, format_spec)


_FORMATTER = _SafeFormatter()


def _string_method(text: str | bytes, name: str) -> Callable[..., Any] | None:
    if name not in _STRING_GUARDED:
        return None
    method = getattr(text, name)
    if name == "format" and isinstance(text, str):
        return lambda *args, **kwargs: _FORMATTER.vformat(text, args, kwargs)
    if name == "format_map" and isinstance(text, str):
        return lambda mapping: _FORMATTER.vformat(text, (), mapping)
    if name in {"ljust", "rjust", "center", "zfill"}:

        def padded(width: int, *rest: Any) -> Any:
            _check_size(width, f"str.{name}()")
            return method(width, *rest)

        return padded
    if name == "expandtabs":

        def expanded(tabsize: int = 8) -> Any:
            _check_size(len(text) * max(tabsize, 1), "str.expandtabs()")
            return method(tabsize)

        return expanded
    if name == "join":
        return lambda iterable: method(bounded(iterable))
    if name == "replace":

        def replaced(old: Any, new: Any, count: int = -1) -> Any:
            hits = text.count(old) if old else len(text) + 1
            hits = hits if count < 0 else min(hits, count)
            _check_size(len(text) + hits * max(len(new) - len(old), 0), "str.replace()")
            return method(old, new, count)

        return replaced
    return None  # format on bytes: plain method


# --- modules --------------------------------------------------------------------------------


class ModuleProxy:
    """A read-only view of an allowlisted module that never hands out another module."""

    __slots__ = ("_module", "_overrides")

    def __init__(self, module: types.ModuleType, overrides: dict[str, Any]) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_overrides", overrides)

    def __getattr__(self, name: str) -> Any:
        module = object.__getattribute__(self, "_module")
        if name.startswith("_"):
            raise _deny(f"{module.__name__}.{name} is private.")
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        value = getattr(module, name)
        if isinstance(value, types.ModuleType):
            raise _deny(f"{module.__name__}.{name} is a module, and modules stay out of reach.")
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise _deny("Modules are read-only inside methods.")

    def __delattr__(self, name: str) -> None:
        raise _deny("Modules are read-only inside methods.")

    def __repr__(self) -> str:
        return f"<module {object.__getattribute__(self, '_module').__name__!r} (sandboxed)>"


def _bounded_factory(func: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
    def make(*args: Any, **kwargs: Any) -> Iterator[Any]:
        return _count(func(*args, **kwargs))

    make.__name__ = make.__qualname__ = func.__name__
    return make


def _capped(func: Callable[..., Any], limit: int) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if any(isinstance(a, int) and a > limit for a in args):
            raise _deny(f"{func.__name__}() of arguments above {limit:,} is too expensive.")
        return func(*args)

    call.__name__ = call.__qualname__ = func.__name__
    return call


def _overrides(name: str, module: types.ModuleType) -> dict[str, Any]:
    if name == "itertools":
        infinite = ("count", "cycle", "repeat", "accumulate", "chain", "product", "permutations")
        return {n: _bounded_factory(getattr(module, n)) for n in infinite}
    if name == "math":
        return {n: _capped(getattr(module, n), 100_000) for n in ("factorial", "comb", "perm")}
    if name == "random":
        rng = random.Random()
        public = [n for n in dir(rng) if not n.startswith("_") and callable(getattr(rng, n))]
        return {n: getattr(rng, n) for n in public}
    if name == "operator":
        return {"attrgetter": None, "methodcaller": None, "mul": guarded_mul, "pow": guarded_pow}
    if name == "functools":
        return {"reduce": lambda f, it, *init: module.reduce(f, bounded(it), *init)}
    if name == "decimal":
        return {"setcontext": None}
    if name == "collections":
        return {"deque": _drain(collections.deque), "Counter": _drain(collections.Counter)}
    return {}


_PROXIES: dict[str, ModuleProxy] = {}


def module_proxy(name: str) -> ModuleProxy:
    """Return the sandbox's proxy for an allowlisted module."""
    proxy = _PROXIES.get(name)
    if proxy is None:
        module = importlib.import_module(name)
        overrides = {
            key: value if value is not None else _hidden(name, key)
            for key, value in _overrides(name, module).items()
        }
        proxy = _PROXIES[name] = ModuleProxy(module, overrides)
    return proxy


def _hidden(module: str, name: str) -> Callable[..., Any]:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise _deny(f"{module}.{name} reaches past the sandbox's rules and is not available.")

    return refused


def guarded_import(
    name: str,
    globals: Any = None,
    locals: Any = None,
    fromlist: Any = (),
    level: int = 0,
) -> ModuleProxy:
    """The ``import`` statement inside methods: allowlisted modules only, as proxies."""
    if level != 0 or name not in ALLOWED_IMPORTS:
        allowed = ", ".join(sorted(ALLOWED_IMPORTS))
        raise _deny(f"Importing {name!r} is not allowed (allowed: {allowed}).")
    return module_proxy(name)


# --- the namespace --------------------------------------------------------------------------

_EXCEPTIONS = [
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "Exception",
    "IndexError",
    "KeyError",
    "LookupError",
    "NameError",
    "NotImplementedError",
    "OverflowError",
    "RecursionError",
    "RuntimeError",
    "StopIteration",
    "TypeError",
    "UnicodeError",
    "ValueError",
    "ZeroDivisionError",
]

_PLAIN = [
    "abs",
    "bool",
    "callable",
    "chr",
    "complex",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "hash",
    "hex",
    "id",
    "int",
    "isinstance",
    "issubclass",
    "len",
    "map",
    "next",
    "oct",
    "ord",
    "repr",
    "reversed",
    "round",
    "slice",
    "str",
    "zip",
]


def _build_builtins() -> dict[str, Any]:
    import builtins

    table: dict[str, Any] = {n: getattr(builtins, n) for n in _PLAIN + _EXCEPTIONS}
    table.update({"None": None, "True": True, "False": False})
    for name in ("list", "tuple", "set", "frozenset", "sorted", "sum", "any", "all"):
        table[name] = _drain(getattr(builtins, name))
    table["dict"] = _guarded_dict
    table["max"] = _minmax(max)
    table["min"] = _minmax(min)
    table["iter"] = lambda ob: _count(iter(ob))
    table["range"] = guarded_range
    table["pow"] = guarded_pow
    table["format"] = guarded_format
    table["getattr"] = guarded_getattr
    table["hasattr"] = guarded_hasattr
    table["setattr"] = guarded_setattr
    table["delattr"] = guarded_delattr
    table["__import__"] = guarded_import
    return table


def _guarded_dict(*args: Any, **kwargs: Any) -> dict[Any, Any]:
    if args and not isinstance(args[0], collections.abc.Mapping):
        return dict(bounded(args[0]), **kwargs)
    return dict(*args, **kwargs)


#: The builtins every method sees (shared, never handed to method code as an object).
safe_builtins: dict[str, Any] = _build_builtins()


def guard_names() -> dict[str, Any]:
    """Return the ``_name_`` hooks RestrictedPython-compiled code calls, plus module proxies."""
    names: dict[str, Any] = {
        "__builtins__": safe_builtins,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_write_": guarded_write,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_inplacevar_": guarded_inplacevar,
        "_apply_": lambda f, *a, **k: f(*a, **k),
        "_print_": PrintCollector,
        "_mul_": guarded_mul,
        "_pow_": guarded_pow,
        "_lshift_": guarded_lshift,
        "_mod_": guarded_mod,
    }
    names.update({name: module_proxy(name) for name in ALLOWED_IMPORTS})
    return names
