"""Write the kernel's workbench notebooks from their cell lists (outputs stripped).

Run it after editing a notebook's cells here; the notebooks themselves are the documentation.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook(cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for kind, text in cells:
        text = text.strip("\n")
        cell = (
            nbformat.v4.new_markdown_cell(text) if kind == "md" else nbformat.v4.new_code_cell(text)
        )
        nb.cells.append(cell)
    return nb


GENESIS = [
    (
        "md",
        """
# 01 · Genesis: create, reopen, clone, teach, undo

A living image is a ZODB database of prototype objects. This notebook creates one in a scratch
folder, looks around, closes it, reopens it, clones an object, teaches it a method by hand, and
reads and undoes history. The embedded default image lives at `image/live_image.fs`; here we use a
temporary one so the notebook can run any number of times.
""",
    ),
    (
        "code",
        """
import tempfile
from pathlib import Path

from batos_lab import open_image
from batos_lab.genesis import tour

scratch = Path(tempfile.mkdtemp(prefix="batos-nb-"))
path = scratch / "live_image.fs"
image = open_image(path)   # genesis runs on the first open, in one transaction
image
""",
    ),
    (
        "md",
        "The tour lists what genesis made: the personas from the codex, the matrix and the homes of later subsystems.",
    ),
    ("code", "# NBVAL_IGNORE_OUTPUT\nprint(tour(image))"),
    (
        "md",
        """
## Objects and slots

`image.new(name, **slots)` makes a `UvmObject` whose `parent*` slot points at `traits`, and keeps
it in the image under its name. Nothing is durable until the transaction commits.
""",
    ),
    (
        "code",
        """
with image.transaction("a counter is born"):
    counter = image.new("counter", count=0, log=[])
counter.slot_names()
""",
    ),
    (
        "code",
        """
with image.transaction("teach the counter to bump"):
    counter.define(
        "bump",
        "def bump(self, by=1):\\n"
        "    self.count = self.count + by\\n"
        "    self.log.append(by)\\n"
        "    self._p_changed = True\\n"
        "    return self.count\\n",
    )
with image.transaction("bump twice"):
    counter.bump()
    counter.bump(4)
counter.count, list(counter.log)
""",
    ),
    (
        "md",
        """
## Clone: copied slots, shared parents

A clone gets its own copies of the slots (so editing its list leaves the original alone) and the
same parents, so it inherits whatever the prototype's parents learn later.
""",
    ),
    (
        "code",
        """
with image.transaction("clone the counter"):
    twin = counter.clone(name="twin", count=100)
    image["twin"] = twin
    twin.bump()
(twin.count, counter.count, twin.get_slot("parent*") is counter.get_slot("parent*"))
""",
    ),
    (
        "md",
        "An unknown message is not an error until it is *called*; without a generative kernel the default hook says so clearly.",
    ),
    (
        "code",
        """
from batos_lab import DoesNotUnderstand

try:
    counter.reset_to_zero()
except DoesNotUnderstand as exc:
    print(exc)
""",
    ),
    ("md", "## Close, reopen, and everything is still there"),
    (
        "code",
        """
image.close()
image = open_image(path)
counter = image["counter"]
counter.count, counter.bump(), image["twin"].count
""",
    ),
    ("code", "image.commit('bump after reopening')"),
    (
        "md",
        "## History and undo\n\nA FileStorage image keeps every transaction; the newest can be undone.",
    ),
    (
        "code",
        """
import pandas as pd

pd.DataFrame(image.history(6))[["note"]]
""",
    ),
    (
        "code",
        """
undone = image.undo_last()
print("undid:", undone["note"], "-> count is", image["counter"].count)
""",
    ),
    (
        "code",
        """
image.close()
import shutil; shutil.rmtree(scratch)
""",
    ),
]

INSPECTOR = [
    (
        "md",
        """
# 04 · Object inspector

`ObjectInspector` shows an object's OID, its slots with summarised values, its parent slots as
buttons you can click through, its methods (own and inherited) with source and provenance, and a
small editor that assigns a slot and commits with a note.
""",
    ),
    (
        "code",
        """
import tempfile
from pathlib import Path

from batos_lab import open_image
from batos_lab.widgets import ObjectInspector

scratch = Path(tempfile.mkdtemp(prefix="batos-nb-"))
image = open_image(scratch / "live_image.fs")
with image.transaction("a lamp to look at"):
    lamp = image.new("lamp", watts=40, colour="amber", tags=["desk", "warm"])
    lamp.define("brighter", "def brighter(self, by=10):\\n    return self.watts + by",
                {"author": "notebook", "why": "a first method to inspect"})
""",
    ),
    (
        "code",
        """
# NBVAL_IGNORE_OUTPUT
inspector = ObjectInspector(lamp)
inspector
""",
    ),
    ("md", "Clicking a parent button is the same as calling `open_parent`; Back returns."),
    (
        "code",
        """
inspector.open_parent("parent*")
print(inspector.obj.short_name().split()[0], "| methods:", inspector.method_names())
inspector.back()
print(inspector.obj.short_name().split()[0])
""",
    ),
    ("md", "Editing a slot commits a transaction whose note says what changed."),
    (
        "code",
        """
inspector.slot_picker.value = "watts"
inspector.value_text.value = "60"
inspector.apply_edit()
print(lamp.watts, "|", image.history(1)[0]["note"])
""",
    ),
    ("md", "A bad edit is refused with the reason, and nothing changes."),
    (
        "code",
        """
inspector.slot_picker.value = "not a slot name"
inspector.value_text.value = "1"
print(inspector.apply_edit(), "|", lamp.slot_names())
""",
    ),
    (
        "code",
        """
image.close()
import shutil; shutil.rmtree(scratch)
""",
    ),
]

if __name__ == "__main__":
    targets = {"01_genesis.ipynb": GENESIS, "04_object_inspector.ipynb": INSPECTOR}
    for name, cells in targets.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        nbformat.write(notebook(cells), NOTEBOOKS / name)
        print("wrote", NOTEBOOKS / name)
