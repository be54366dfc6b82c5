"""Compile and run method source restricted: RestrictedPython plus the image's own guards.

:func:`compile_method` is the one entry point the kernel needs: it audits the source with the
Persistence Guardian, compiles it with RestrictedPython under :class:`MethodPolicy`, executes the
definition in a fresh namespace that holds only the guards of :mod:`batos_lab.sandbox_guards`, and
returns a function that runs every call under the limits of :mod:`batos_lab.limits`.

:class:`MethodPolicy` extends RestrictedPython's transformer in three ways:

* ``self._p_changed = True`` is let through (it becomes ``_write_(self)._p_changed = True``);
* augmented assignment to an attribute or item (``self.count += 1``), which RestrictedPython
  refuses outright, becomes a guarded read and a guarded write when its target has no side
  effects (names, attribute chains, constant or name subscripts);
* ``*``, ``**``, ``<<`` and ``%`` call size guards, so ``"x" * 10**10`` fails before allocating.

Example:
    >>> double = compile_method("def double(self, x):\\n    return x * 2\\n", "double")
    >>> double(None, 21)
    42
"""

from __future__ import annotations

import ast
import copy
import functools
import re
from collections.abc import Callable, Iterator
from typing import Any

from RestrictedPython import compile_restricted_exec
from RestrictedPython.transformer import RestrictingNodeTransformer, copy_locations

from batos_lab.errors import GuardianRejection
from batos_lab.guardian import audit
from batos_lab.limits import DEFAULT_LIMITS, SANDBOX_FILENAME_PREFIX, Limits, call_limited
from batos_lab.sandbox_guards import bounded, guard_names

__all__ = ["MethodPolicy", "compile_method", "restricted_errors", "run_source"]

_GUARDED_OPS: dict[type[ast.operator], str] = {
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
}


def _is_pure(node: ast.AST) -> bool:
    """True for expressions that can be evaluated twice without side effects."""
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, ast.Attribute):
        return _is_pure(node.value)
    if isinstance(node, ast.Subscript):
        return _is_pure(node.value) and _is_pure(node.slice)
    return False


class MethodPolicy(RestrictingNodeTransformer):
    """RestrictedPython's policy, with the covenant mark, attribute ``+=`` and size guards."""

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        """Let ``self._p_changed = True`` through; everything else as RestrictedPython does."""
        if (
            node.attr == "_p_changed"
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            node = self.node_contents_visit(node)
            writer = ast.Call(func=ast.Name("_write_", ast.Load()), args=[node.value], keywords=[])
            copy_locations(writer, node.value)
            node.value = writer
            return node
        return super().visit_Attribute(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        """Rewrite ``t.a op= v`` and ``t[k] op= v`` with pure targets into ``t.a = t.a op v``."""
        target = node.target
        if isinstance(target, (ast.Attribute, ast.Subscript)) and _is_pure(target):
            read = copy.deepcopy(target)
            read.ctx = ast.Load()
            value = ast.BinOp(left=read, op=node.op, right=node.value)
            assign = ast.Assign(targets=[target], value=value)
            copy_locations(value, node)
            copy_locations(assign, node)
            ast.fix_missing_locations(assign)
            return self.visit(assign)
        return super().visit_AugAssign(node)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        """Route size-sensitive operators through their guards."""
        node = self.node_contents_visit(node)
        guard = _GUARDED_OPS.get(type(node.op))
        if guard is None:
            return node
        call = ast.Call(func=ast.Name(guard, ast.Load()), args=[node.left, node.right], keywords=[])
        copy_locations(call, node)
        copy_locations(call.func, node)
        return call


_LINE = re.compile(r"^Line (\d+): (.*)$", re.DOTALL)


def restricted_errors(source: str) -> list[tuple[int, str]]:
    """Return RestrictedPython's refusals of ``source`` as ``(line, message)`` pairs."""
    result = compile_restricted_exec(source, filename="<audit>", policy=MethodPolicy)
    out: list[tuple[int, str]] = []
    for error in result.errors:
        match = _LINE.match(error)
        out.append((int(match.group(1)), match.group(2)) if match else (0, error))
    return out


def compile_method(
    source: str, name: str, *, limits: Limits = DEFAULT_LIMITS
) -> Callable[..., Any]:
    """Audit and compile method source into a function that always runs restricted.

    The result takes the receiver as its first argument, so ``types.MethodType(func, obj)``
    binds it. Every call runs under ``limits``; an iterator it returns is drained (bounded)
    while the limits still hold.

    Args:
        source: one function definition named ``name`` (allowlisted imports may precede it).
        name: the selector.
        limits: CPU-time and depth limits for each outermost call.

    Returns:
        The restricted function.

    Raises:
        GuardianRejection: the source breaks a Guardian rule (the covenant included: no
            automatic fix is applied here; install fixed source instead).

    Example:
        >>> f = compile_method("def hello(self, who):\\n    return 'hi ' + who\\n", "hello")
        >>> f(None, "Ada")
        'hi Ada'
    """
    report = audit(source, name, autofix=False)
    filename = f"{SANDBOX_FILENAME_PREFIX} {name}>"
    result = compile_restricted_exec(report.source, filename=filename, policy=MethodPolicy)
    if result.errors or result.code is None:  # audit already ran these checks; stay safe
        raise GuardianRejection(
            [("restricted-python", line, text) for line, text in restricted_errors(source)]
            or [("restricted-python", 0, "RestrictedPython refused the source")]
        )
    namespace = guard_names()
    namespace["__name__"] = f"batos_method_{name}"
    exec(result.code, namespace)  # defines the function; defaults are literals (audited)
    raw = namespace[report.name]

    @functools.wraps(raw)
    def method(*args: Any, **kwargs: Any) -> Any:
        return call_limited(raw, args, kwargs, name=name, limits=limits, finish=_materialize)

    method.__batos_source__ = report.source  # type: ignore[attr-defined]
    return method


def _materialize(result: Any) -> Any:
    """Drain an iterator a method returned, so no sandboxed code runs after the limits end."""
    if isinstance(result, Iterator):
        return list(bounded(result))
    return result


def run_source(
    source: str,
    name: str,
    receiver: Any,
    *args: Any,
    limits: Limits = DEFAULT_LIMITS,
    **kwargs: Any,
) -> Any:
    """Compile ``source`` and call it once on ``receiver`` (for trials and tests).

    Raises:
        GuardianRejection: the source breaks a Guardian rule.
        SandboxError: the call broke a sandbox rule or limit.
    """
    return compile_method(source, name, limits=limits)(receiver, *args, **kwargs)
