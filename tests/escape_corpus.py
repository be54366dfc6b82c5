"""Hostile method sources: each must be refused by the Guardian or fail inside the sandbox.

Every entry is a method named ``probe`` taking only ``self``. ``expect`` says where it must be
stopped: ``"static"`` (a GuardianRejection, with the rule named in ``rule``) or ``"runtime"``
(compiles, but calling it raises one of the exception types named in ``errors``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Escape:
    """One hostile snippet and where it must be stopped."""

    name: str
    source: str
    expect: str  # "static" or "runtime"
    rule: str = ""  # the Guardian rule for static refusals
    errors: tuple[str, ...] = ("SandboxError",)  # acceptable runtime exception names


def _m(body: str) -> str:
    lines = body.strip("\n").splitlines()
    return "def probe(self):\n" + "\n".join("    " + line for line in lines) + "\n"


CORPUS: list[Escape] = [
    # --- the class hierarchy walk, in its many spellings
    Escape(
        "subclasses",
        _m("return ().__class__.__bases__[0].__subclasses__()"),
        "static",
        "underscore",
    ),
    Escape("mro-walk", _m("return int.mro()[1]"), "static", "introspection"),
    Escape("mro-getattr", _m("return getattr(int, 'mro')()"), "runtime"),
    Escape("getattr-dunder", _m("return getattr(self, '__class__')"), "static", "underscore"),
    Escape(
        "getattr-computed",
        _m("name = '__cl' + 'ass__'\nreturn getattr(self, name)"),
        "static",
        "computed-attribute",
    ),
    Escape(
        "hasattr-computed", _m("n = 'x'\nreturn hasattr(self, n)"), "static", "computed-attribute"
    ),
    Escape("type-call", _m("return type(self)"), "static", "forbidden-name"),
    Escape(
        "type-three-args",
        _m("return type('X', (), {'__getattr__': None})"),
        "static",
        "forbidden-name",
    ),
    Escape("object-base", _m("return object.__subclasses__()"), "static", "forbidden-name"),
    Escape("class-def", _m("class X:\n    pass\nreturn X"), "static", "class-definition"),
    Escape("super-call", _m("return super()"), "static", "forbidden-name"),
    # --- frames, generators, tracebacks
    Escape(
        "generator-frame",
        _m("g = (x for x in [1])\nreturn g.gi_frame.f_globals"),
        "static",
        "introspection",
    ),
    Escape(
        "traceback-frame",
        _m("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    return e.__traceback__.tb_frame"),
        "static",
        "underscore",
    ),
    Escape(
        "with-traceback",
        _m("try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    return e.with_traceback(None)"),
        "static",
        "introspection",
    ),
    Escape(
        "getattr-frame",
        _m("g = (x for x in [1])\nreturn getattr(g, 'gi_frame')"),
        "runtime",
    ),
    Escape("yield-generator", _m("yield 1"), "static", "generator"),
    Escape("lambda-globals", _m("f = lambda: 1\nreturn f.__globals__"), "static", "underscore"),
    # --- format-string attribute access
    Escape("format-class", _m("return '{0.__class__}'.format(self)"), "runtime"),
    Escape(
        "format-globals",
        _m("f = lambda: 1\nreturn '{0.__globals__}'.format(f)"),
        "runtime",
    ),
    Escape("format-map", _m("return '{x.__class__}'.format_map({'x': self})"), "runtime"),
    Escape(
        "format-on-type",
        _m("return str.format('{0.__class__}', self)"),
        "runtime",
    ),
    Escape("fstring-dunder", _m("return f'{self.__class__}'"), "static", "underscore"),
    Escape(
        "format-item-walk",
        _m("f = lambda: 1\nreturn '{0.__globals__[os]}'.format(f)"),
        "runtime",
    ),
    # --- definition-time evaluation
    Escape(
        "decorator-real",
        "@print\ndef probe(self):\n    return 1\n",
        "static",
        "decorator",
    ),
    Escape(
        "default-arg-call",
        "def probe(self, x=open('/etc/passwd')):\n    return x\n",
        "static",
        "default-argument",
    ),
    Escape(
        "default-arg-walk",
        "def probe(self, x=().__class__):\n    return x\n",
        "static",
        "default-argument",
    ),
    Escape(
        "annotation-eval",
        "def probe(self) -> print('pwned'):\n    return 1\n",
        "static",
        "annotation",
    ),
    Escape(
        "nested-decorator",
        _m("@print\ndef inner():\n    return 1\nreturn inner()"),
        "static",
        "decorator",
    ),
    # --- imports and module walks
    Escape("import-os", _m("import os\nreturn os.system('true')"), "static", "import"),
    Escape("import-sys", _m("from sys import modules\nreturn modules"), "static", "import"),
    Escape("import-submodule", _m("import json.decoder\nreturn json"), "static", "import"),
    Escape("import-relative", _m("from . import objects\nreturn objects"), "static", "import"),
    Escape("json-decoder-walk", _m("return json.decoder.re"), "runtime"),
    Escape("statistics-sys", _m("import statistics\nreturn statistics.sys.modules"), "runtime"),
    Escape("datetime-sys", _m("return datetime.sys"), "runtime"),
    Escape("re-copyreg", _m("import re\nreturn re.copyreg"), "runtime"),
    Escape("from-import-module", _m("from json import decoder\nreturn decoder"), "runtime"),
    Escape("module-private", _m("import random\nreturn random._os"), "static", "underscore"),
    Escape("module-write", _m("import math\nmath.pi = 3\nreturn math.pi"), "runtime"),
    Escape(
        "operator-attrgetter",
        _m("import operator\nreturn operator.attrgetter('__class__')(self)"),
        "runtime",
    ),
    Escape("dunder-import", _m("return __import__('os')"), "static", "underscore"),
    Escape("builtins-name", _m("return __builtins__"), "static", "underscore"),
    # --- forbidden builtins and statements
    Escape("exec", _m("exec('import os')"), "static", "forbidden-name"),
    Escape("eval", _m("return eval('1')"), "static", "forbidden-name"),
    Escape("compile", _m("return compile('1', 'x', 'eval')"), "static", "forbidden-name"),
    Escape("open-file", _m("return open('/etc/passwd').read()"), "static", "forbidden-name"),
    Escape("globals", _m("return globals()"), "static", "forbidden-name"),
    Escape("locals-vars", _m("return vars(self)"), "static", "forbidden-name"),
    Escape("breakpoint", _m("breakpoint()"), "static", "forbidden-name"),
    Escape("input", _m("return input()"), "static", "forbidden-name"),
    Escape("global-stmt", _m("global math\nmath = None"), "static", "global"),
    Escape(
        "nonlocal-stmt", _m("x = 1\ndef f():\n    nonlocal x\n    x = 2\nf()"), "static", "global"
    ),
    Escape("async-def", "async def probe(self):\n    return 1\n", "static", "async"),
    # --- the persistence machinery
    Escape("reach-slots", _m("return self._slots"), "static", "underscore"),
    Escape("reach-jar", _m("return self._p_jar.root()"), "static", "underscore"),
    Escape("reach-v", _m("return self._v_function"), "static", "underscore"),
    Escape("set-p-changed-false", _m("self._p_changed = False"), "static", "underscore"),
    Escape("setattr-private", _m("setattr(self, '_slots', {})"), "static", "underscore"),
    Escape("method-plumbing", _m("return self.lookup('describe')[1].function()"), "runtime"),
    Escape("write-non-slot", _m("f = lambda: 1\nf.name = 'x'\nreturn f"), "runtime"),
    # --- resources
    Escape("infinite-loop", _m("while True:\n    pass"), "runtime", errors=("SandboxTimeout",)),
    Escape(
        "loop-swallowing-errors",
        _m("while True:\n    try:\n        pass\n    except Exception:\n        pass"),
        "runtime",
        errors=("SandboxTimeout",),
    ),
    Escape(
        "loop-in-finally",
        _m("try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass"),
        "runtime",
        errors=("SandboxTimeout",),
    ),
    Escape("bare-except", _m("try:\n    pass\nexcept:\n    pass"), "static", "bare-except"),
    Escape(
        "catch-base",
        _m("try:\n    pass\nexcept BaseException:\n    pass"),
        "static",
        "forbidden-name",
    ),
    Escape(
        "recursion",
        _m("def f(n):\n    return f(n + 1)\nreturn f(0)"),
        "runtime",
        errors=("SandboxRecursion",),
    ),
    Escape("huge-string", _m("return 'x' * (10 ** 10)"), "runtime"),
    Escape("huge-list", _m("return [0] * (10 ** 10)"), "runtime"),
    Escape("huge-pow", _m("return 10 ** (10 ** 9)"), "runtime"),
    Escape("huge-shift", _m("return 1 << (10 ** 10)"), "runtime"),
    Escape("huge-range-list", _m("return list(range(10 ** 10))"), "runtime"),
    Escape("huge-ljust", _m("return 'x'.ljust(10 ** 10)"), "runtime"),
    Escape("huge-percent", _m("return '%99999999999d' % 1"), "runtime"),
    Escape("huge-inplace", _m("s = 'x'\ns *= 10 ** 10\nreturn s"), "runtime"),
    Escape("infinite-count-sum", _m("import itertools\nreturn sum(itertools.count())"), "runtime"),
    Escape(
        "infinite-repeat-list", _m("import itertools\nreturn list(itertools.repeat(1))"), "runtime"
    ),
    Escape("huge-fstring-width", _m("return f'{1:>99999999999}'"), "static", "allocation"),
    Escape("huge-factorial", _m("import math\nreturn math.factorial(10 ** 8)"), "runtime"),
]
