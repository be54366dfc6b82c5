"""Cycles at work: cycle-mode doesNotUnderstand_, a killed process, the queue, the stepper."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from batos_lab.errors import CycleError, DoesNotUnderstand
from batos_lab.image import Image, open_image
from batos_lab.objects import NativeMethod
from batos_lab.psm import MissionQueue, ScriptedMind, cycle_dnu, ensure_psm, install_mind

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cycle_image(image: Image) -> Image:
    ensure_psm(image)
    with image.transaction("cycle mode"):
        image.root["genesis"].dnu_mode = "cycle"
        image.root["traits"].doesNotUnderstand_ = NativeMethod(
            "batos_lab.psm.method_cycle:cycle_dnu"
        )
        image.new("tally", count=5)
    return image


def test_cycle_mode_learns_a_method_and_returns_its_result(cycle_image: Image) -> None:
    mind = ScriptedMind(code="    return self.count * n\n", doc="Multiply the count by n.")
    install_mind(cycle_image, mind)
    tally = cycle_image["tally"]
    assert tally.times(3) == 15
    method = tally.get_slot("times")
    assert '"""Multiply the count by n."""' in method.source
    assert method.provenance["author"] == "cycle"
    assert [r.persona for r in mind.calls] == ["BRICK", "ROBIN"]
    assert tally.times(4) == 20  # installed: no second cycle
    assert len(mind.calls) == 2
    cycle_image.sync()
    assert cycle_image["tally"].has_slot("times")
    assert len(cycle_image.root["psm"].cycles) == 1


def test_cycle_mode_failure_raises_and_leaves_the_object_alone(cycle_image: Image) -> None:
    install_mind(cycle_image, ScriptedMind(code="    return self.missing_slot + 1\n"))
    tally = cycle_image["tally"]
    with pytest.raises(DoesNotUnderstand, match="could not learn 'bump' in a cycle.*DECOMPOSING"):
        tally.bump()
    assert not tally.has_slot("bump")
    cycle_image.sync()
    assert not cycle_image["tally"].has_slot("bump")
    (record,) = cycle_image.root["failures"].values()
    assert record["cycle_kind"] == "method" and record["state"] == "DECOMPOSING"
    with pytest.raises(DoesNotUnderstand, match="private name"):
        tally.send("_secret")
    with pytest.raises(DoesNotUnderstand, match="not a public selector"):
        cycle_dnu(tally, "_secret")


def test_cycle_mode_audit_refuses_what_the_guardian_refuses(cycle_image: Image) -> None:
    install_mind(cycle_image, ScriptedMind(code="    return self.count\n"))
    from batos_lab.psm import method_cycle

    source = method_cycle.add_docstring("def f(self):\n    return 1\n", "One.")
    assert source.splitlines()[1] == '    """One."""'
    assert method_cycle.add_docstring(source, "Two.") == source
    assert cycle_image["tally"].total() == 5


KILLED = """
import sys, time
from batos_lab.image import open_image
from batos_lab.psm import ScriptedMind, ensure_psm, install_mind
image = open_image(sys.argv[1])
install_mind(image, ScriptedMind())
cycle = image.root["personas"]["BRICK"].ask("Will this survive a crash?")
for _ in range(3):
    cycle.step()  # IDLE, DECOMPOSING, DELEGATING: facets compiled, cycle created
image.conn.transaction_manager.get()  # the main connection is idle
print("READY", flush=True)
time.sleep(60)
"""


def test_a_process_killed_mid_cycle_leaves_no_trace(image_path: Path) -> None:
    with open_image(image_path) as img:
        ensure_psm(img)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(image_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.strip() == "READY", proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with open_image(image_path) as img:
        assert len(img.root["psm"].cycles) == 0
        assert len(img.root["failures"]) == 0
        assert not img.root["personas"]["BRICK"].has_slot("tamland_facet_")
        assert not any("cycle" in entry["note"] for entry in img.history(5))


def test_queue_runs_three_missions_concurrently(file_image: Image) -> None:
    ensure_psm(file_image)
    mind = ScriptedMind(delay_s=0.05)
    questions = ["How do bridges stand?", "Why do we procrastinate?", "What is a heap?"]

    async def main() -> list:
        queue = MissionQueue(file_image, workers=3, mind=mind)
        with pytest.raises(CycleError, match="not running"):
            queue.submit("too early")
        await queue.start()
        with pytest.raises(CycleError, match="already running"):
            await queue.start()
        with pytest.raises(CycleError, match="needs a question"):
            queue.submit(" ")
        futures = [queue.submit(q) for q in questions]
        outcomes = await asyncio.gather(*futures)
        await queue.stop()
        return outcomes

    outcomes = asyncio.run(main())
    assert [o.status for o in outcomes] == ["complete"] * 3, [o.reason for o in outcomes]
    assert len({o.key for o in outcomes}) == 3
    file_image.sync()
    assert len(file_image.root["psm"].cycles) == 3
    missions = sorted(c.mission for c in file_image.root["psm"].cycles.values())
    assert missions == sorted(questions)


def test_cycle_stepper_steps_and_draws(image: Image) -> None:
    from batos_lab.widgets.cycle_stepper import CycleStepper, state_graph_svg

    ensure_psm(image)
    install_mind(image, ScriptedMind())
    stepper = CycleStepper(image.root["personas"]["BRICK"].ask("Why is the sky blue?"))
    assert "IDLE" in stepper.status.value
    stepper.step_button.click()
    assert "DECOMPOSING" in stepper.status.value
    assert stepper.frame().shape[0] == 1
    stepper.abort_button.click()
    assert "failed" in stepper.status.value and stepper.step_button.disabled
    stepper.step()  # after the end: the error is shown, not raised
    assert "has ended" in stepper.status.value
    svg = state_graph_svg("DELEGATING", ["IDLE"])
    assert svg.count("<rect") == 6 and "#ffd54f" in svg


def test_the_mode_setting_alone_routes_messages_to_cycles(image: Image) -> None:
    from batos_lab.dnu import install_generator

    ensure_psm(image)
    install_generator(image, lambda p, t, a: "def never(self):\n    return 0\n")
    with image.transaction("cycle mode"):
        image.root["genesis"].dnu_mode = "cycle"
        image.new("tally", count=5)
    install_mind(image, ScriptedMind(code="    return self.count + n\n", doc="Add n."))
    assert image["tally"].plus(2) == 7  # written by the cycle's mind, not the JIT generator
    assert "Add n." in image["tally"].get_slot("plus").source
