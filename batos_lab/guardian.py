"""The Persistence Guardian: a static audit of method source before it is installed or run.

Every method of the image, written by hand or by the model, passes :func:`audit` first. The audit
checks three things on the parsed source:

1. **Shape.** Exactly one function definition (allowlisted imports may precede it), whose first
   parameter is ``self``, with no decorators, no non-literal default values, no ``async``.
2. **The persistence covenant.** A method that assigns, augments or deletes an attribute of
   ``self`` (anywhere, nested blocks included) must set ``self._p_changed = True`` after its last
   change on every path out of the function. :func:`audit` can append the mark where it is
   missing (``autofix=True``) and reports every fix it made.
3. **Security.** Imports only from :data:`ALLOWED_IMPORTS`; no name or attribute that starts with
   ``_`` except the covenant mark; none of :data:`FORBIDDEN_NAMES`; no ``global``/``nonlocal``;
   no class definitions; ``getattr``-like built-ins only with a literal public name; no bare
   ``except`` or handlers for ``BaseException``-level exceptions (they would swallow the limits);
   no generators (their code would run after the time limit has ended).

Whatever passes is then compiled by RestrictedPython (see :mod:`batos_lab.sandbox`), whose own
refusals are reported with the rule id ``restricted-python``. Every refusal is a
:class:`~batos_lab.errors.GuardianRejection` naming the rule and the line.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from batos_lab.covenant import (
    COVENANT_MARK,
    check_covenant,
    fix_covenant,
    is_mark,
    is_self_attr,
    mutates_self,
)
from batos_lab.errors import GuardianRejection

__all__ = [
    "ALLOWED_IMPORTS",
    "COVENANT_MARK",
    "FORBIDDEN_NAMES",
    "AuditReport",
    "Violation",
    "audit",
    "mutates_self",
]

#: Modules a method may import. Each is reached through a proxy that hides module-valued
#: attributes (``statistics.sys``, ``json.decoder``), so the list cannot be walked to ``os``.
ALLOWED_IMPORTS = frozenset(
    {
        "collections",
        "datetime",
        "decimal",
        "fractions",
        "functools",
        "itertools",
        "json",
        "math",
        "operator",
        "random",
        "re",
        "statistics",
    }
)

#: Built-in names no method may mention: code execution, I/O, namespace and class machinery.
FORBIDDEN_NAMES = frozenset(
    {
        "breakpoint",
        "classmethod",
        "compile",
        "copyright",
        "credits",
        "dir",
        "eval",
        "exec",
        "exit",
        "globals",
        "help",
        "input",
        "license",
        "locals",
        "memoryview",
        "object",
        "open",
        "property",
        "quit",
        "staticmethod",
        "super",
        "type",
        "vars",
        "BaseException",
        "GeneratorExit",
        "KeyboardInterrupt",
        "SystemExit",
    }
)

#: Attributes that lead from ordinary objects to frames, code and the class hierarchy.
INTROSPECTION_ATTRIBUTES = frozenset(
    {
        "ag_await",
        "ag_code",
        "ag_frame",
        "co_code",
        "cr_await",
        "cr_code",
        "cr_frame",
        "cr_origin",
        "f_back",
        "f_builtins",
        "f_code",
        "f_generator",
        "f_globals",
        "f_locals",
        "f_trace",
        "gi_code",
        "gi_frame",
        "gi_yieldfrom",
        "mro",
        "tb_frame",
        "tb_next",
        "with_traceback",
    }
)

_ATTRIBUTE_BUILTINS = frozenset({"getattr", "setattr", "delattr", "hasattr"})
_MAX_FORMAT_WIDTH_DIGITS = 7


@dataclass(frozen=True)
class Violation:
    """One broken rule: its id, the 1-based line, and a sentence saying what to change."""

    rule: str
    line: int
    message: str


@dataclass
class AuditReport:
    """What :func:`audit` found in a method source that passed.

    Attributes:
        source: the source to install (with covenant fixes applied when there were any).
        name: the function's name.
        params: the parameter names after ``self``.
        mutates_self: whether the method changes the receiver's state.
        fixes: sentences describing each automatic fix (empty when none was needed).
        imports: the allowlisted modules the source imports.
    """

    source: str
    name: str
    params: tuple[str, ...]
    mutates_self: bool
    fixes: list[str] = field(default_factory=list)
    imports: tuple[str, ...] = ()

    @property
    def autofixed(self) -> bool:
        """Whether the source was changed by an automatic fix."""
        return bool(self.fixes)


def audit(source: str, name: str | None = None, *, autofix: bool = True) -> AuditReport:
    """Check method source against the shape, covenant and security rules.

    Args:
        source: the text of one function definition (allowlisted imports may precede it).
        name: the selector the function must be named after; ``None`` accepts any name.
        autofix: append ``self._p_changed = True`` where the covenant needs it, instead of
            refusing the source.

    Returns:
        An :class:`AuditReport`; its ``source`` is what should be installed.

    Raises:
        GuardianRejection: naming every rule broken and its line.

    Example:
        >>> audit("def bump(self):\\n    self.n = self.n + 1\\n").fixes
        ['appended self._p_changed = True at line 3 (end of bump)']
    """
    tree = _parse(source)
    func = _shape(tree, name)
    problems = _security(tree) or _restricted_python(source)
    if problems:
        raise _rejection(problems)
    fixes: list[str] = []
    broken = check_covenant(func)
    if broken and autofix:
        source, fixes = fix_covenant(source, func, broken)
        tree = _parse(source)
        func = _shape(tree, name)
        broken = check_covenant(func)
    if broken:
        raise _rejection([Violation(*problem) for problem in broken])
    imports = sorted(
        {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        }
        | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    )
    params = tuple(a.arg for a in [*func.args.posonlyargs, *func.args.args][1:])
    return AuditReport(
        source=source,
        name=func.name,
        params=params,
        mutates_self=mutates_self(func),
        fixes=fixes,
        imports=tuple(imports),
    )


def _rejection(problems: list[Violation]) -> GuardianRejection:
    ordered = sorted(problems, key=lambda v: v.line)
    return GuardianRejection([(v.rule, v.line, v.message) for v in ordered])


def _parse(source: str) -> ast.Module:
    if not isinstance(source, str):
        raise GuardianRejection(
            [("syntax", 0, f"expected method source as a str, found {type(source).__name__}")]
        )
    try:
        return ast.parse(source)
    except SyntaxError as exc:
        raise GuardianRejection(
            [("syntax", exc.lineno or 0, f"the source does not parse: {exc.msg}")]
        ) from None


def _shape(tree: ast.Module, name: str | None) -> ast.FunctionDef:
    funcs: list[ast.FunctionDef] = []
    problems: list[Violation] = []
    for i, stmt in enumerate(tree.body):
        if isinstance(stmt, ast.FunctionDef):
            funcs.append(stmt)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            continue
        elif i == 0 and isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        elif isinstance(stmt, ast.AsyncFunctionDef):
            problems.append(Violation("async", stmt.lineno, "async functions cannot be methods"))
        else:
            kind = type(stmt).__name__
            problems.append(
                Violation(
                    "one-function",
                    stmt.lineno,
                    f"only one function definition may stand at the top level, found a {kind}",
                )
            )
    if len(funcs) != 1 and not problems:
        found = ", ".join(f.name for f in funcs) or "none"
        problems.append(
            Violation(
                "one-function",
                funcs[1].lineno if len(funcs) > 1 else 1,
                f"expected exactly one function definition, found {len(funcs)} ({found})",
            )
        )
    if problems:
        raise _rejection(problems)
    func = funcs[0]
    if name is not None and func.name != name:
        problems.append(
            Violation(
                "function-name",
                func.lineno,
                f"the function must be named {name!r} after its selector, found {func.name!r}",
            )
        )
    positional = [*func.args.posonlyargs, *func.args.args]
    if not positional or positional[0].arg != "self":
        problems.append(
            Violation(
                "self-parameter",
                func.lineno,
                f"the first parameter of {func.name!r} must be 'self' (the receiver)",
            )
        )
    if problems:
        raise _rejection(problems)
    return func


def _security(tree: ast.Module) -> list[Violation]:
    problems: list[Violation] = []
    for node in ast.walk(tree):
        problems += _check_node(node)
    return problems


def _check_node(node: ast.AST) -> list[Violation]:
    line = getattr(node, "lineno", 0)
    out: list[Violation] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in ALLOWED_IMPORTS:
                out.append(_import_violation(line, alias.name))
    elif isinstance(node, ast.ImportFrom):
        module = "." * node.level + (node.module or "")
        if node.level or module not in ALLOWED_IMPORTS:
            out.append(_import_violation(line, module))
        for alias in node.names:
            if alias.name == "*":
                out.append(Violation("import", line, f"'from {module} import *' is not allowed"))
    elif isinstance(node, ast.alias):
        for part in (node.asname or "", node.name.split(".")[-1]):
            if part.startswith("_"):
                out.append(_underscore(line, part))
    elif isinstance(node, ast.Name):
        if node.id.startswith("_") and node.id != "_":
            out.append(_underscore(line, node.id))
        elif node.id in FORBIDDEN_NAMES:
            out.append(
                Violation("forbidden-name", line, f"{node.id!r} is not available to methods")
            )
    elif isinstance(node, ast.Attribute):
        out += _check_attribute(node)
    elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        flat = [t for target in targets for t in ast.walk(target)]
        if any(is_self_attr(t, "_p_changed") for t in flat) and not is_mark(node):
            out.append(
                Violation("underscore", line, f"'_p_changed' may only be set as {COVENANT_MARK!r}")
            )
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        kind = "global" if isinstance(node, ast.Global) else "nonlocal"
        out.append(Violation("global", line, f"'{kind}' statements are not allowed"))
    elif isinstance(node, ast.ClassDef):
        out.append(Violation("class-definition", line, "methods may not define classes"))
    elif isinstance(node, (ast.AsyncFunctionDef, ast.Await, ast.AsyncFor, ast.AsyncWith)):
        out.append(Violation("async", line, "async code is not allowed in methods"))
    elif isinstance(node, (ast.Yield, ast.YieldFrom)):
        out.append(
            Violation("generator", line, "methods may not yield; build and return a list instead")
        )
    elif isinstance(node, (ast.FunctionDef, ast.Lambda)):
        out += _check_function(node)
    elif isinstance(node, ast.arg):
        if node.arg.startswith("_"):
            out.append(_underscore(line, node.arg))
    elif isinstance(node, ast.keyword):
        if node.arg is not None and node.arg.startswith("_"):
            out.append(_underscore(line, node.arg))
    elif isinstance(node, ast.Call):
        out += _check_call(node)
    elif isinstance(node, ast.ExceptHandler):
        out += _check_handler(node)
    elif isinstance(node, ast.TryStar):
        out.append(Violation("except-star", line, "'except*' is not allowed"))
    elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
        out += _check_format_spec(node)
    return out


def _import_violation(line: int, module: str) -> Violation:
    allowed = ", ".join(sorted(ALLOWED_IMPORTS))
    return Violation("import", line, f"importing {module!r} is not allowed (allowed: {allowed})")


def _underscore(line: int, name: str) -> Violation:
    return Violation(
        "underscore",
        line,
        f"names and attributes starting with '_' are private, found {name!r}; "
        "only 'self._p_changed = True' may use one",
    )


def _check_attribute(node: ast.Attribute) -> list[Violation]:
    line = node.lineno
    if node.attr == "_p_changed" and is_self_attr(node) and isinstance(node.ctx, ast.Store):
        return []
    if node.attr.startswith("_"):
        return [_underscore(line, node.attr)]
    if node.attr in INTROSPECTION_ATTRIBUTES:
        return [
            Violation(
                "introspection",
                line,
                f"the attribute {node.attr!r} reaches frames, code or classes and is not allowed",
            )
        ]
    return []


def _check_function(node: ast.FunctionDef | ast.Lambda) -> list[Violation]:
    out: list[Violation] = []
    line = node.lineno
    if isinstance(node, ast.FunctionDef):
        if node.decorator_list:
            out.append(Violation("decorator", line, "decorators are not allowed on methods"))
        if node.name.startswith("_"):
            out.append(_underscore(line, node.name))
        if node.returns is not None or any(
            a.annotation is not None for a in ast.walk(node.args) if isinstance(a, ast.arg)
        ):
            out.append(
                Violation("annotation", line, "annotations are evaluated early; leave them out")
            )
    defaults = [*node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    for default in defaults:
        try:
            ast.literal_eval(default)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            out.append(
                Violation(
                    "default-argument",
                    default.lineno,
                    "default values must be literals (numbers, strings, None, tuples of them)",
                )
            )
    return out


def _check_call(node: ast.Call) -> list[Violation]:
    func = node.func
    if not (isinstance(func, ast.Name) and func.id in _ATTRIBUTE_BUILTINS):
        return []
    if len(node.args) >= 2:
        name = node.args[1]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            if name.value.startswith("_"):
                return [_underscore(node.lineno, name.value)]
            return []
    return [
        Violation(
            "computed-attribute",
            node.lineno,
            f"{func.id}() needs a literal public attribute name as its second argument",
        )
    ]


def _check_handler(node: ast.ExceptHandler) -> list[Violation]:
    if node.type is None:
        return [
            Violation("bare-except", node.lineno, "name the exceptions to catch, e.g. ValueError")
        ]
    return []


def _check_format_spec(node: ast.FormattedValue) -> list[Violation]:
    spec = node.format_spec
    assert isinstance(spec, ast.JoinedStr)
    if any(isinstance(part, ast.FormattedValue) for part in spec.values):
        return [
            Violation(
                "format-spec",
                node.lineno,
                "f-string format specs must be literal; use format(value, spec) instead",
            )
        ]
    text = "".join(str(part.value) for part in spec.values if isinstance(part, ast.Constant))
    digits = max((len(run) for run in _digit_runs(text)), default=0)
    if digits > _MAX_FORMAT_WIDTH_DIGITS:
        return [Violation("allocation", node.lineno, f"the format width in {text!r} is too large")]
    return []


def _digit_runs(text: str) -> list[str]:
    runs, current = [], ""
    for ch in text:
        if ch.isdigit():
            current += ch
        elif current:
            runs.append(current)
            current = ""
    return [*runs, current] if current else runs


def _restricted_python(source: str) -> list[Violation]:
    from batos_lab.sandbox import restricted_errors

    return [Violation("restricted-python", line, text) for line, text in restricted_errors(source)]
