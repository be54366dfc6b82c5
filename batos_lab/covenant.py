"""The persistence covenant: a method that changes ``self`` ends with ``self._p_changed = True``.

ZODB only saves an object it knows has changed. Slot assignment marks the receiver already, but the
covenant makes the intent explicit in every method's source, and it is what the Guardian checks:
every path out of a function that has changed an attribute of ``self`` (assignment, augmented
assignment, deletion, ``setattr``/``set_slot``, or a mutating call such as ``self.items.append``,
in any nested block) must pass through the mark after the last change. :func:`fix_covenant`
inserts the mark where it is missing, as text, so comments and layout survive.
"""

from __future__ import annotations

import ast

__all__ = [
    "COVENANT_MARK",
    "check_covenant",
    "fix_covenant",
    "is_mark",
    "is_self_attr",
    "mutates_self",
]

#: A broken covenant: ``(rule, line, message)``.
Problem = tuple[str, int, str]

_MUTATING_CALLS = frozenset({"set_slot", "del_slot", "setattr", "delattr"})
_CONTAINER_MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "pop",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "sort",
        "reverse",
    }
)

#: The statement that keeps the persistence covenant.
COVENANT_MARK = "self._p_changed = True"


def is_self_attr(node: ast.AST, attr: str | None = None) -> bool:
    """Tell whether ``node`` is ``self.<attr>`` (any attribute when ``attr`` is None)."""
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
        and (attr is None or node.attr == attr)
    )


def is_mark(node: ast.AST) -> bool:
    """Tell whether ``node`` is the statement ``self._p_changed = True``."""
    return (
        isinstance(node, ast.Assign)
        and len(node.targets) == 1
        and is_self_attr(node.targets[0], "_p_changed")
        and isinstance(node.value, ast.Constant)
        and node.value.value is True
    )


def mutates_self(func: ast.FunctionDef) -> bool:
    """Tell whether a function body changes ``self`` anywhere, nested blocks included.

    Args:
        func: the parsed function definition.

    Returns:
        True when an assignment, augmented assignment, deletion, slot call or container
        mutation reaches an attribute of ``self``.
    """
    return any(_is_mutation(node) for stmt in func.body for node in ast.walk(stmt))


def _root_is_self(node: ast.AST) -> bool:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        if is_self_attr(node):
            return True
        node = node.value
    return False


def _is_mutation(node: ast.AST) -> bool:
    if isinstance(node, ast.Assign):
        if is_mark(node):
            return False
        return any(_target_mutates(t) for t in node.targets)
    if isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        return _target_mutates(node.target)
    if isinstance(node, ast.Delete):
        return any(_target_mutates(t) for t in node.targets)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id in {"setattr", "delattr"} and node.args:
            return isinstance(node.args[0], ast.Name) and node.args[0].id == "self"
        if isinstance(func, ast.Attribute):
            if func.attr in _MUTATING_CALLS and isinstance(func.value, ast.Name):
                return func.value.id == "self"
            if func.attr in _CONTAINER_MUTATORS:
                return _root_is_self(func.value)
    return False


def _target_mutates(target: ast.AST) -> bool:
    if isinstance(target, (ast.Tuple, ast.List)):
        return any(_target_mutates(t) for t in target.elts)
    return _root_is_self(target)


def check_covenant(func: ast.FunctionDef) -> list[Problem]:
    """Find every exit reached after a change of ``self`` without the covenant mark.

    Args:
        func: the parsed method.

    Returns:
        One ``("covenant", line, message)`` per offending ``return`` and, when the end of the
        function is reached with a change pending, one for the line after its body.
    """
    problems: list[Problem] = []
    dirty = _flow(func.body, False, problems)
    if dirty:
        last = func.body[-1]
        problems.append(
            (
                "covenant",
                (last.end_lineno or last.lineno) + 1,
                f"{func.name!r} changes self and must end with {COVENANT_MARK!r}",
            )
        )
    return problems


def _flow(body: list[ast.stmt], dirty: bool, problems: list[Problem]) -> bool:
    """Walk one block; return whether a change of self is pending at its end."""
    for stmt in body:
        if is_mark(stmt):
            dirty = False
        elif isinstance(stmt, ast.Return):
            if dirty or (stmt.value is not None and _contains_mutation(stmt.value)):
                problems.append(
                    (
                        "covenant",
                        stmt.lineno,
                        f"this return follows a change of self; put {COVENANT_MARK!r} before it",
                    )
                )
            dirty = False
        elif isinstance(stmt, ast.If):
            dirty = _flow(stmt.body, dirty, problems) | _flow(stmt.orelse, dirty, problems)
        elif isinstance(stmt, (ast.For, ast.While)):
            looped = _flow(stmt.body, dirty, problems)
            dirty = _flow(stmt.orelse, dirty | looped, problems) | dirty | looped
        elif isinstance(stmt, ast.With):
            entered = any(_contains_mutation(item.context_expr) for item in stmt.items)
            dirty = _flow(stmt.body, dirty | entered, problems)
        elif isinstance(stmt, ast.Try):
            out = _flow(stmt.body, dirty, problems)
            for handler in stmt.handlers:
                out |= _flow(handler.body, dirty | out, problems)
            out |= _flow(stmt.orelse, dirty | out, problems)
            dirty = _flow(stmt.finalbody, dirty | out, problems) if stmt.finalbody else out
        elif isinstance(stmt, ast.Match):
            outs = [_flow(case.body, dirty, problems) for case in stmt.cases]
            dirty = dirty | any(outs)
        elif _contains_mutation(stmt):
            dirty = True
    return dirty


def _contains_mutation(node: ast.AST) -> bool:
    return any(_is_mutation(n) for n in ast.walk(node))


def fix_covenant(
    source: str, func: ast.FunctionDef, broken: list[Problem]
) -> tuple[str, list[str]]:
    """Insert the covenant mark before each offending return and at the end of the function.

    Args:
        source: the method source ``func`` was parsed from.
        func: the parsed method.
        broken: what :func:`check_covenant` found.

    Returns:
        The fixed source and one sentence per fix.
    """
    lines = source.splitlines()
    returns = {
        node.lineno: node
        for node in ast.walk(func)
        if isinstance(node, ast.Return) and any(v[1] == node.lineno for v in broken)
    }
    fixes: list[str] = []
    end = func.end_lineno or len(lines)
    indent = _indent_of(lines[func.body[0].lineno - 1]) if func.body else "    "
    inserts: list[tuple[int, str]] = []
    for violation in broken:
        ret = returns.get(violation[1])
        if ret is not None:
            text = lines[ret.lineno - 1]
            if text[: ret.col_offset].strip():
                return _fix_by_rewrite(source, func, broken)
            inserts.append((ret.lineno - 1, text[: ret.col_offset] + COVENANT_MARK))
            fixes.append(f"inserted {COVENANT_MARK} before the return at line {ret.lineno}")
        else:
            inserts.append((end, indent + COVENANT_MARK))
            fixes.append(f"appended {COVENANT_MARK} at line {end + 1} (end of {func.name})")
    for index, text in sorted(inserts, key=lambda item: item[0], reverse=True):
        lines.insert(index, text)
    return "\n".join(lines) + "\n", fixes


def _fix_by_rewrite(
    source: str, func: ast.FunctionDef, broken: list[Problem]
) -> tuple[str, list[str]]:
    """Fallback for one-line blocks: insert the marks in the tree and unparse it."""
    tree = ast.parse(source)
    target = next(n for n in tree.body if isinstance(n, ast.FunctionDef))
    lines = {v[1] for v in broken}
    fixes: list[str] = []

    class Marker(ast.NodeTransformer):
        def generic_visit(self, node: ast.AST) -> ast.AST:
            super().generic_visit(node)
            for name in ("body", "orelse", "finalbody"):
                block = getattr(node, name, None)
                if not isinstance(block, list):
                    continue
                fixed: list[ast.stmt] = []
                for stmt in block:
                    if isinstance(stmt, ast.Return) and stmt.lineno in lines:
                        fixed.append(ast.parse(COVENANT_MARK).body[0])
                        fixes.append(
                            f"inserted {COVENANT_MARK} before the return at line {stmt.lineno}"
                        )
                    fixed.append(stmt)
                setattr(node, name, fixed)
            return node

    Marker().visit(target)
    if any(v[1] > (func.end_lineno or 0) for v in broken):
        target.body.append(ast.parse(COVENANT_MARK).body[0])
        fixes.append(f"appended {COVENANT_MARK} at the end of {func.name}")
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n", fixes


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]
