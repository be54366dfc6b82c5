"""In a real IPython kernel: display, copying, pickling, probes and completion never send a message.

The object gets a ``doesNotUnderstand_`` that counts its calls, then the kernel does everything a
notebook does to an object; the counter must still be zero, and a real unknown call must count.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

SETUP = """
import copy, pickle
import pandas as pd
import ipywidgets as w
from IPython.display import display
from batos_lab.image import open_image
image = open_image(None)
with image.transaction("probe"):
    obj = image.new("probe", x=1)
    obj.define(
        "doesNotUnderstand_",
        "def doesNotUnderstand_(self, selector, *args, **kwargs):\\n"
        "    self.dnu_calls = list(self.get_slot('dnu_calls', [])) + [selector]\\n"
        "    return selector\\n",
    )
"""

PROBES = [
    "obj",
    "display(obj)",
    "print(repr(obj), str(obj))",
    "copy.copy(obj); copy.deepcopy(obj)",
    "pickle.loads(pickle.dumps(obj))",
    "[hasattr(obj, n) for n in ('_repr_html_', '_ipython_display_', '__array__', 'keys', "
    "'getdoc', 'shape', '_repr_mimebundle_')]",
    "pd.Series([obj, obj]); pd.DataFrame({'o': [obj]})",
    "out = w.Output()\nwith out:\n    display(obj)\nw.Dropdown(options=[('o', obj)])",
    "w.HTML(value=repr(obj))",
    "sorted(dir(obj))",
]


@pytest.fixture(scope="module")
def kernel() -> Iterator[Any]:
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def run(client: Any, code: str, expression: str | None = None) -> Any:
    expressions = {"value": expression} if expression else {}
    reply = client.execute_interactive(code, user_expressions=expressions, timeout=120)
    content = reply["content"]
    assert content["status"] == "ok", content
    if expression:
        result = content["user_expressions"]["value"]
        assert result["status"] == "ok", result
        return result["data"]["text/plain"]
    return None


def test_notebook_probes_never_reach_does_not_understand(kernel: Any) -> None:
    run(kernel, SETUP)
    for probe in PROBES:
        run(kernel, probe)
        assert run(kernel, "", "obj.get_slot('dnu_calls', [])") == "[]", probe
    # IPython's obj? and tab completion
    kernel.inspect("obj", cursor_pos=3, detail_level=1, reply=True, timeout=60)
    reply = kernel.complete("obj.", cursor_pos=4, reply=True, timeout=60)
    matches = reply["content"]["matches"]
    assert {"x", "describe", "define"} <= {m.split(".")[-1] for m in matches}
    assert run(kernel, "", "obj.get_slot('dnu_calls', [])") == "[]"
    # a real call of an unknown public selector does reach it
    assert run(kernel, "", "obj.frobnicate(1)") == "'frobnicate'"
    assert run(kernel, "", "list(obj.get_slot('dnu_calls', []))") == "['frobnicate']"
