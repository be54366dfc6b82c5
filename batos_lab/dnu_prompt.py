"""The JIT prompt for a message nobody answers, and the extraction of a function from a reply.

:func:`build_prompt` tells the model what it needs and nothing more, written as a Python file
whose comments carry the text: the rules a method must follow, the worked examples that fit the
message best (:mod:`batos_lab.dnu_examples`), then the receiver's slots with short value
summaries, the selectors it inherits and the message with the reprs of its arguments. It ends
with the function's header, so a small model completing the file
only has to write the body (:mod:`batos_lab.dnu_model` forces that header). The persistence mark
is left to the Guardian's autofix: examples without it measured better on the embedded model.

:func:`extract_function` turns whatever came back (a continuation of the header, a fenced block,
chatter around code, a function with the wrong name, several functions) into the source of one
function named after the selector, or raises :class:`ExtractionError` saying what was wrong.
"""

from __future__ import annotations

import ast
import contextvars
import hashlib
import keyword
import re
from dataclasses import dataclass
from typing import Any

from batos_lab.dnu_examples import BANKS, choose_examples, render_example
from batos_lab.guardian import ALLOWED_IMPORTS

__all__ = [
    "GUIDE_NAMES",
    "ExtractionError",
    "JITPrompt",
    "build_prompt",
    "extract_function",
    "feedback_prompt",
    "parameter_names",
    "safe_repr",
]

_RULES = f"""\
# Methods of prototype objects, in plain Python. Each method:
# - is one function whose first parameter is self, the object;
# - reads a slot as self.<slot> and changes it by assigning self.<slot> = value;
# - returns the answer to the message (it never prints);
# - imports nothing but {", ".join(sorted(ALLOWED_IMPORTS))};
# - uses no name that starts with an underscore.
# (The kernel itself appends the persistence mark self._p_changed = True to a method that
# changes slots.)
"""


#: the names a generator may let the method read on ``self``, set by the pipeline around each
#: generator call (None: no restriction, e.g. on the last attempt)
GUIDE_NAMES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "jit_guide_names", default=None
)


class ExtractionError(ValueError):
    """A model reply from which no usable function could be taken."""


@dataclass(frozen=True)
class JITPrompt:
    """A prompt and what extraction needs to know about it.

    Attributes:
        text: the full prompt.
        header: the ``def`` line the prompt ends with.
        params: the parameter names after ``self`` suggested in the header.
        sha256: hex digest of ``text``.
        names: the attributes the method may read on ``self``: the receiver's slots and the
            selectors it answers (its own methods and inherited ones), never the selector
            being learned. A generator may restrict ``self.<name>`` to these.
    """

    text: str
    header: str
    params: tuple[str, ...]
    sha256: str
    names: tuple[str, ...] = ()


def safe_repr(value: Any, width: int = 80) -> str:
    """Return a one-line repr of ``value``, never raising, at most ``width`` characters."""
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception as exc:  # an argument whose repr raises must not stop the prompt
        text = f"<{type(value).__name__} object (its repr raised {type(exc).__name__})>"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


_TYPE_NAMES = {
    str: "text",
    int: "n",
    float: "x",
    bool: "flag",
    list: "items",
    tuple: "items",
    dict: "mapping",
    set: "items",
}


def parameter_names(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
    """Suggest parameter names for a call: by argument type, then the keyword names."""
    names: list[str] = []
    for value in args:
        base = next((n for t, n in _TYPE_NAMES.items() if type(value) is t), "value")
        name, k = base, 2
        while name in names or name in kwargs:
            name, k = f"{base}{k}", k + 1
        names.append(name)
    names.extend(k for k in kwargs if k.isidentifier() and not keyword.iskeyword(k))
    return tuple(names)


def _describe_receiver(receiver: Any) -> list[str]:
    from batos_lab.objects import Method, NativeMethod, is_parent_slot

    slots: list[str] = []
    parents: list[str] = []
    methods: list[str] = []
    for name in receiver.slot_names():
        value = receiver.get_slot(name)
        if is_parent_slot(name):
            parents.append(f"{name} -> '{_label(value)}'")
        elif isinstance(value, (Method, NativeMethod)):
            methods.append(name)
        elif not (name == "name" and value == _label(receiver)):  # the label already says it
            slots.append(f"{name} = {safe_repr(value, 70)}")
    lines = [f"# Object '{_label(receiver)}' has slots: {', '.join(slots) or '(none)'}"]
    if methods:
        lines.append(f"# It has methods: {', '.join(methods)}")
    inherited = [s for s in receiver.selectors() if not receiver.has_slot(s) and s != "name"]
    inherited = [s for s in inherited if not s.endswith("_")]
    if inherited:
        lines.append(f"# It inherits: {', '.join(inherited[:12])}")
    return lines


def _readable_names(receiver: Any, selector: str) -> tuple[str, ...]:
    names = [n for n in receiver.slot_names() if not n.endswith("*")]
    names += [s for s in receiver.selectors() if s not in names and not s.startswith("_")]
    return (*(n for n in names if n != selector and n.isidentifier()), "_p_changed")


def _summary(value: Any) -> str:
    return safe_repr(value, 70)


def _data_slots(receiver: Any) -> dict[str, Any]:
    """The receiver's own slots that hold data (no parents, no methods, no label)."""
    from batos_lab.objects import Method, NativeMethod, is_parent_slot

    found: dict[str, Any] = {}
    for name in receiver.slot_names():
        value = receiver.get_slot(name)
        if is_parent_slot(name) or isinstance(value, (Method, NativeMethod)) or name == "name":
            continue
        found[name] = value
    return found


def _label(obj: Any) -> str:
    try:
        name = obj.get_slot("name", None)
    except Exception:
        name = None
    return name if isinstance(name, str) else type(obj).__name__


def build_prompt(
    receiver: Any,
    selector: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    examples: int = 4,
    variant: int = 0,
    bank: str = "all",
    leave_out: str | None = None,
) -> JITPrompt:
    """Build the JIT prompt for ``receiver.selector(*args, **kwargs)``.

    Args:
        receiver: the UvmObject that received the message.
        selector: the message name.
        args: positional arguments of the call.
        kwargs: keyword arguments of the call.
        examples: how many worked examples to show (the best fitting ones, from
            :mod:`batos_lab.dnu_examples`).
        variant: 0 shows the best fitting examples, 1 the next ``examples`` ones, and so on.
        bank: which example bank to draw from (:data:`batos_lab.dnu_examples.BANKS`).
        leave_out: a selector whose worked example is not shown (training prompts).

    Returns:
        The prompt, the header it ends with, and its hash.
    """
    params = parameter_names(args, kwargs)
    if bank not in BANKS:
        raise ValueError(f"Unknown example bank {bank!r}; the banks are {', '.join(BANKS)}.")
    chosen = choose_examples(
        selector, _data_slots(receiver), [*args, *kwargs.values()], k=examples,
        skip=variant * examples, bank=BANKS[bank], leave_out=leave_out,
    )  # fmt: skip
    header = f"def {selector}({', '.join(('self', *params))}):"
    call_args = [safe_repr(a) for a in args] + [f"{k}={safe_repr(v)}" for k, v in kwargs.items()]
    label = _label(receiver)
    text = "\n".join(
        [
            _RULES,
            *(render_example(i, e, _summary) + "\n" for i, e in enumerate(chosen, start=1)),
            "# Now the real task.",
            *_describe_receiver(receiver),
            f"# Message: {label}.{selector}({', '.join(call_args)})",
            header,
        ]
    )
    return JITPrompt(
        text=text,
        header=header,
        params=params,
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
        names=_readable_names(receiver, selector),
    )


def feedback_prompt(prompt: JITPrompt, source: str, error: str) -> str:
    """Return the prompt for a retry: the original task and why the previous attempt failed.

    The failed source itself is not shown: the embedded model copied it back nearly unchanged,
    while the one-line reason alone lets a sampled attempt go another way.
    """
    base = prompt.text[: -len(prompt.header)].rstrip()
    reason = " ".join(str(error).split())[:300]
    return "\n".join([base, f"# A previous attempt failed. It failed: {reason}", prompt.header])


_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_function(text: str, selector: str, header: str | None = None) -> str:
    """Take the source of one function named ``selector`` out of a model reply.

    Args:
        text: the reply (it may continue ``header``, or hold fences and chatter).
        selector: the function name to produce.
        header: the ``def`` line the prompt ended with, prepended when the reply is a body.

    Returns:
        Source of exactly one function named ``selector`` (allowlisted imports may precede it).

    Raises:
        ExtractionError: no code, code that does not parse, or several functions none of which
            is named ``selector``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ExtractionError("The reply was empty: it held no code at all.")
    candidates = [m.group(1) for m in _FENCE.finditer(text)]
    body = text.split("```", 1)[0]
    first = next((line for line in body.splitlines() if line.strip()), "")
    if header is not None and first[:1] in (" ", "\t"):
        # a continuation: the reply is the indented body of the header the prompt ended with
        candidates.insert(0, header + "\n" + body)
    candidates.append(text)
    errors: list[str] = []
    for candidate in candidates:
        try:
            return _one_function(_trim_to_code(candidate), selector)
        except ExtractionError as exc:
            errors.append(str(exc))
    raise ExtractionError(errors[0])


def _trim_to_code(text: str) -> str:
    """Drop chatter before the first import/def line and after the last line that parses."""
    lines = text.expandtabs(4).splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith(("def ", "import ", "from "))),
        None,
    )
    if start is None:
        raise ExtractionError("The reply held no function definition ('def ...').")
    lines = lines[start:]
    for end in range(len(lines), 0, -1):
        chunk = "\n".join(lines[:end]).rstrip() + "\n"
        try:
            ast.parse(chunk)
        except SyntaxError:
            continue
        if any(line.startswith("def ") for line in lines[:end]):
            return chunk
    try:
        ast.parse("\n".join(lines))
    except SyntaxError as exc:
        raise ExtractionError(f"The code does not parse: {exc.msg} at line {exc.lineno}.") from None
    raise ExtractionError("The reply held no complete function definition.")


def _one_function(source: str, selector: str) -> str:
    tree = ast.parse(source)
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if not funcs:
        raise ExtractionError("The reply held no function definition ('def ...').")
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    named = [f for f in funcs if f.name == selector]
    if len(funcs) > 1 and not named:
        found = ", ".join(f.name for f in funcs)
        raise ExtractionError(
            f"The reply held several functions ({found}) and none is named {selector!r}."
        )
    func = named[0] if named else funcs[0]
    others = {f.name for f in funcs if f is not func}
    called = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    if others & called:
        raise ExtractionError(
            f"{selector!r} calls the separate function(s) {', '.join(sorted(others & called))}; "
            "write a single function (define helpers inside it)."
        )
    lines = source.splitlines()
    parts = [ast.get_source_segment(source, node) or "" for node in imports]
    func_text = "\n".join(lines[func.lineno - 1 : func.end_lineno])
    if func.name != selector:
        func_text = re.sub(
            rf"^def\s+{re.escape(func.name)}\s*\(", f"def {selector}(", func_text, count=1
        )
    return "\n".join([*parts, func_text]).rstrip() + "\n"
