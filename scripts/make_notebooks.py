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

STEP_CYCLE = [
    (
        "md",
        """
# 03 · Stepping a cycle: the composite mind on the embedded model

A question put to a persona becomes a *cycle*: a persistent object whose `synthesis_state*`
parent slot points at one state prototype (IDLE, DECOMPOSING, DELEGATING, SYNTHESIZING, then
COMPLETE or FAILED). `cycle.step()` runs one state and re-points that slot, so a cycle can be
stepped here one cell at a time; the whole cycle is one transaction, committed by COMPLETE and
rolled back by FAILED. Every model call below is the embedded SmolLM2-135M on the CPU (one
thread), each persona speaking through its LoRA adapter. Expect a small model's prose: the point
is the machinery, which records every prompt, output, token count and millisecond.
""",
    ),
    (
        "code",
        """
from batos_lab import open_image
from batos_lab.llm import install_model
from batos_lab.psm import CycleSettings, ModelMind, ensure_psm, install_mind, parse_plan, start_cycle
from batos_lab.widgets import CycleStepper
from batos_lab.widgets.cycle_stepper import timings_figure

image = open_image(None)  # in memory: blobs go to a temporary folder
with image.transaction("install the embedded model and the persona adapters"):
    install_model(image)
ensure_psm(image)  # the state prototypes, the workflows, persona.ask
mind = ModelMind(image)  # one thread, a repetition penalty on prose
install_mind(image, mind)
print(sorted(image.root["psm"].states), "|", sorted(image.root["psm"].workflows))
""",
    ),
    (
        "md",
        """
## Ask BRICK

`ask` creates the cycle on a connection of its own and leaves it at IDLE. The `CycleStepper`
shows the state graph, the trace and the timings; its buttons do what the cells below do.
""",
    ),
    (
        "code",
        """
brick = image.root["personas"]["BRICK"]
question = "How do I back up a database without stopping the application that writes to it?"
cycle = brick.ask(question)
stepper = CycleStepper(cycle)
print(cycle.current_state(), "| workflow:", cycle.workflow, "| personas:", cycle.sequence)
stepper
""",
    ),
    (
        "md",
        """
**IDLE** accepts the mission (an over-long one would be cut here, with a notice).
""",
    ),
    (
        "code",
        """
entry = cycle.step()
print({k: entry[k] for k in ("state", "persona", "output", "ms", "next")})
""",
    ),
    (
        "md",
        """
**DECOMPOSING**: BRICK writes the plan `{strategy, relevant_pillars, sub_queries}`. Decoding is
guided by the plan's grammar, so the reply is valid JSON naming two or three of the workflow's
facets; pydantic validates it, and an invalid plan would fall back to the workflow matrix (with a
notice).
""",
    ),
    (
        "code",
        """
entry = cycle.step()
print(entry["adapter"], "|", entry["tokens"], "tokens |", round(entry["ms"] / 1e3, 1), "s")
print(entry["output"])
print(entry["notices"])
print("plan from:", cycle.scratch["plan_source"])
""",
    ),
    (
        "md",
        """
**DELEGATING**: each chosen facet is a method of its persona. The first time a facet is used the
model writes it (through the JIT pipeline: audited, trial-run, then installed); then all facets
answer together in one generate, each row with its persona's adapter. A facet is asked the
question itself with BRICK's sub-question as its focus.
""",
    ),
    (
        "code",
        """
entry = cycle.step()
for partial in cycle.scratch["partials"]:
    print(f"{partial['persona']}.{partial['facet']}:", partial["answer"][:300], "\\n")
print("one batch of", cycle.scratch["batch_size"], "| calls:", entry["calls"])
""",
    ),
    (
        "code",
        """
# NBVAL_IGNORE_OUTPUT
facet = cycle.scratch["partials"][0]
# the cycle's own view: nothing it did is committed before COMPLETE
method = cycle.persona_seen(facet["persona"]).get_slot(facet["facet"])
print(method.source)
print({k: method.provenance[k] for k in ("author", "model", "latency_s")})
""",
    ),
    (
        "md",
        """
**SYNTHESIZING**: ROBIN weaves the partial answers into one. The quality gate then checks the
answer (not empty, within length bounds, not a copy of one partial answer, not a loop, sharing
words with the question and the partial answers) and ALFRED gives a verdict. A refused answer
sends the cycle to FAILED with the gate's reason.
""",
    ),
    (
        "code",
        """
entry = cycle.step()
print(entry["output"])
print("next:", entry["next"], "| reason:", entry["reason"] or "-")
print("ALFRED:", entry.get("calls", [{}])[-1].get("output", "-"))
""",
    ),
    (
        "md",
        """
The terminal state runs last: COMPLETE commits everything the cycle did (the facets it
compiled, the cycle itself in `psm.cycles`); FAILED would roll it all back.
""",
    ),
    (
        "code",
        """
entry = cycle.step()
outcome = cycle.outcome()
stepper.refresh()
print(outcome.status, "|", outcome.reason or "no failure", "|", len(outcome.trace), "states")
frame = cycle.trace_frame()
frame[["state", "persona", "facet", "adapter", "tokens", "ms"]]
""",
    ),
    (
        "code",
        """
fig = timings_figure(outcome.trace)
print({e["state"]: round(e["ms"] / 1e3, 2) for e in outcome.trace}, "seconds")
""",
    ),
    (
        "md",
        """
## A cycle that fails rolls back

A stricter gate (answers of at most 120 characters) refuses ROBIN's weave, so this cycle ends in
FAILED. Its work is rolled back: any facet method it compiled and the cycle itself vanish, and
only a failure record remains, written in a transaction of its own. Compare the image before and
after, read on the image's own connection.
""",
    ),
    (
        "code",
        """
def image_facts():
    image.sync()  # see what cycles committed on their own connections
    root = image.root
    return {
        "persona slots": {n: len(p.slot_names()) for n, p in root["personas"].items()},
        "completed cycles": len(root["psm"].cycles),
        "failure records": len(root["failures"]),
    }

before = image_facts()
strict = CycleSettings(max_answer_chars=120)
failing = start_cycle(image, "How do bees make honey?", persona="BABS", settings=strict)
outcome = failing.run()
print(outcome.status, "in", outcome.failed_state, "|", outcome.reason)
""",
    ),
    (
        "code",
        """
after = image_facts()
for key in before:
    print(f"{key:17} before {before[key]!s:.70}\\n{'':17} after  {after[key]!s:.70}")
""",
    ),
    (
        "code",
        """
record = list(image.root["failures"].values())[-1]
print({k: record[k] for k in ("kind", "mission", "persona", "workflow", "state", "reason", "mind")})
print([e["state"] for e in record["trace"]])
""",
    ),
    (
        "code",
        """
image.close()
""",
    ),
]

if __name__ == "__main__":
    targets = {
        "01_genesis.ipynb": GENESIS,
        "03_step_cycle.ipynb": STEP_CYCLE,
        "04_object_inspector.ipynb": INSPECTOR,
    }
    for name, cells in targets.items():
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        nbformat.write(notebook(cells), NOTEBOOKS / name)
        print("wrote", NOTEBOOKS / name)
