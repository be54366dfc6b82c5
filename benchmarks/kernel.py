"""Kernel benchmarks: message sends through parents, commit rates, ZEO with two writers.

Run: python -m benchmarks.kernel   (writes benchmarks/results/kernel.md)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import transaction
import ZODB
from persistent import Persistent
from ZODB.FileStorage import FileStorage

from batos_lab.image import open_image
from batos_lab.objects import UvmObject, set_method_compiler
from benchmarks.common import best_of, write_results

SENDS = 100_000
COMMITS = 300


class Plain:
    def __init__(self) -> None:
        self.value = 1

    def get(self) -> int:
        return self.value


class PlainPersistent(Persistent):
    def __init__(self) -> None:
        self.count = 0


def _trusted_compile(source: str, name: str) -> Callable[..., Any]:
    """Compile without the sandbox: isolates the kernel's own dispatch cost."""
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<bench {name}>", "exec"), namespace)
    return cast(Callable[..., Any], namespace[name])


def bench_sends(sandboxed: bool) -> tuple[float, float]:
    previous = None if sandboxed else set_method_compiler(_trusted_compile)
    try:
        top = UvmObject(name="top", value=1)
        top.define("get", "def get(self):\n    return self.value")
        middle = UvmObject(name="middle", **{"parent*": top})
        bottom = UvmObject(name="bottom", **{"parent*": middle})
        leaf = UvmObject(name="leaf", **{"parent*": bottom})
        plain = Plain()

        def uvm() -> None:
            for _ in range(SENDS):
                leaf.get()

        def python() -> None:
            for _ in range(SENDS):
                plain.get()

        return best_of(uvm) / SENDS, best_of(python) / SENDS
    finally:
        if previous is not None:
            set_method_compiler(previous)


def bench_commits(folder: Path) -> tuple[float, float]:
    with open_image(folder / "uvm.fs") as image:
        with image.transaction("obj"):
            obj = image.new("counter", count=0)
        started = time.perf_counter()
        for i in range(COMMITS):
            obj.count = i
            image.commit("update")
        uvm_rate = COMMITS / (time.perf_counter() - started)
    db = ZODB.DB(FileStorage(str(folder / "plain.fs")))
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    conn.root()["counter"] = plain = PlainPersistent()
    tm.commit()
    started = time.perf_counter()
    for i in range(COMMITS):
        plain.count = i
        tm.get().note("update")
        tm.commit()
    plain_rate = COMMITS / (time.perf_counter() - started)
    conn.close()
    db.close()
    return uvm_rate, plain_rate


WORKER = textwrap.dedent("""
    import sys, time
    from batos_lab.image import open_image
    url, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open_image(url, genesis=False) as image:
        with image.transaction(f"make {tag}"):
            image.new(tag, count=0)
        obj = image[tag]
        started = time.perf_counter()
        for i in range(count):
            obj.count = i
            image.commit("update")
        print(count / (time.perf_counter() - started))
""")


def bench_zeo(folder: Path) -> tuple[float, float, float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.zeo_helpers import ZEOServer

    path = folder / "zeo.fs"
    open_image(path).close()
    with ZEOServer(path) as server:
        one = subprocess.run(
            [sys.executable, "-c", WORKER, server.url, "solo", str(COMMITS)],
            capture_output=True,
            text=True,
            check=True,
        )
        solo = float(one.stdout.split()[-1])
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", WORKER, server.url, tag, str(COMMITS)],
                stdout=subprocess.PIPE,
                text=True,
            )
            for tag in ("a", "b")
        ]
        rates = [float(w.communicate()[0].split()[-1]) for w in workers]
    open_image(folder / "local.fs").close()
    local = subprocess.run(
        [sys.executable, "-c", WORKER, str(folder / "local.fs"), "solo", str(COMMITS)],
        capture_output=True,
        text=True,
        check=True,
    )
    return sum(rates), solo, float(local.stdout.split()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        uvm_send, py_send = bench_sends(sandboxed=False)
        box_send, box_py = bench_sends(sandboxed=True)
        uvm_rate, plain_rate = bench_commits(folder)
        two, one_zeo, one_file = bench_zeo(folder)
    rows = [
        [
            "send through 3 parents vs Python method call (kernel dispatch)",
            f"{uvm_send * 1e9:.0f} ns",
            f"{py_send * 1e9:.0f} ns",
            f"{uvm_send / py_send:.1f}x",
            "<= 10x",
        ],
        [
            "same, default sandbox on (guarded reads, CPU-time limit per call)",
            f"{box_send * 1e9:.0f} ns",
            f"{box_py * 1e9:.0f} ns",
            f"{box_send / box_py:.1f}x",
            "report",
        ],
        [
            "commits/s, UvmObject slot vs Persistent attribute (FileStorage)",
            f"{uvm_rate:.0f}/s",
            f"{plain_rate:.0f}/s",
            f"{uvm_rate / plain_rate:.2f}x",
            ">= 0.5x",
        ],
        [
            "commits/s over ZEO, two processes vs one process on FileStorage",
            f"{two:.0f}/s",
            f"{one_file:.0f}/s",
            f"{two / one_file:.2f}x",
            "report",
        ],
        [
            "commits/s over ZEO, one process vs one process on FileStorage",
            f"{one_zeo:.0f}/s",
            f"{one_file:.0f}/s",
            f"{one_zeo / one_file:.2f}x",
            "report",
        ],
    ]
    write_results(
        "kernel", "Kernel benchmarks", ["measure", "batos_lab", "baseline", "ratio", "target"], rows
    )


if __name__ == "__main__":
    main()
