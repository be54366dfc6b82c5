"""A reproducible prose corpus for catalog benchmarks, built from installed docstrings.

The texts are the docstrings of a fixed list of standard-library modules and of numpy (the
classes, functions and methods they define), keeping prose paragraphs only (no doctest or
code lines). Each module becomes a few documents of at most ``DOC_WORDS`` words, so a
benchmark can ingest real, varied English through the ordinary ``index_document`` path.
Nothing is written to disk; the same installation gives the same corpus.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterator

MODULES = (
    "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections",
    "concurrent.futures",
    "configparser", "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib",
    "email.message", "enum", "fractions", "ftplib", "functools", "gettext", "gzip", "hashlib",
    "heapq", "hmac", "html.parser", "http.client", "http.cookiejar", "imaplib", "inspect", "io",
    "ipaddress", "itertools", "json", "logging", "logging.handlers", "lzma", "mailbox",
    "mimetypes", "multiprocessing.pool", "numbers", "optparse", "os", "pathlib", "pickle",
    "pickletools", "pdb", "platform", "plistlib", "poplib", "pprint", "queue", "random", "re",
    "sched", "secrets", "selectors", "shelve", "shlex", "shutil", "smtplib", "socket",
    "socketserver", "sqlite3", "ssl", "statistics", "string", "subprocess", "sysconfig",
    "tarfile", "tempfile", "textwrap", "threading", "timeit", "tokenize", "trace", "traceback",
    "turtle", "typing", "unittest", "unittest.mock", "urllib.parse", "urllib.request", "uuid",
    "warnings", "wave", "weakref", "xml.dom.minidom", "xml.etree.ElementTree", "zipfile",
    "zoneinfo", "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.polynomial",
    "numpy.ma", "numpy.lib", "numpy.strings", "pandas", "matplotlib.pyplot", "matplotlib.axes",
    "torch", "torch.nn", "sympy", "networkx", "scipy.stats", "sklearn.linear_model",
)  # fmt: skip
DOC_WORDS = 600
_CODE = re.compile(r"^\s*(>>>|\.\.\.|\$|[-=~^]{3,}|[A-Za-z_][\w.]*\(.*\)\s*$|[{}\[\]])")


def _prose(doc: str) -> list[str]:
    """The prose paragraphs of a docstring: no code, no section underlines, >= 8 words."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", doc):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines or any(_CODE.match(ln) for ln in lines):
            continue
        text = " ".join(ln.strip() for ln in lines)
        if len(text.split()) >= 8 and sum(c.isalpha() for c in text) > 0.7 * len(text):
            out.append(text)
    return out


def _docstrings(module_name: str) -> Iterator[str]:
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return
    seen: set[int] = set()
    stack: list[object] = [module]
    while stack:
        obj = stack.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        doc = inspect.getdoc(obj)
        if doc:
            yield doc
        if inspect.ismodule(obj) or inspect.isclass(obj):
            for name, member in sorted(vars(obj).items()):
                if name.startswith("_"):
                    continue
                owner = getattr(member, "__module__", None) or ""
                if (inspect.isclass(member) or inspect.isroutine(member)) and owner.startswith(
                    module_name.split(".")[0]
                ):
                    stack.append(member)


def corpus_documents(max_words: int | None = None) -> list[tuple[str, str]]:
    """(doc_id, text) pairs: each module's prose cut into documents of about DOC_WORDS words.

    Args:
        max_words: stop once the corpus holds this many words (None: every module).
    """
    docs: list[tuple[str, str]] = []
    total = 0
    for module_name in MODULES:
        if max_words is not None and total >= max_words:
            break
        seen: set[str] = set()
        paras = [
            p for d in _docstrings(module_name) for p in _prose(d) if not (p in seen or seen.add(p))
        ]
        part, words, index = [], 0, 0
        for para in paras:
            part.append(para)
            words += len(para.split())
            if words >= DOC_WORDS:
                docs.append((f"{module_name}/{index}", "\n\n".join(part)))
                total += words
                part, words, index = [], 0, index + 1
        if part:
            docs.append((f"{module_name}/{index}", "\n\n".join(part)))
            total += words
    return docs


if __name__ == "__main__":
    documents = corpus_documents()
    total = sum(len(t.split()) for _, t in documents)
    print(f"{len(documents)} documents, {total:,} words")
