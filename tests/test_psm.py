"""The Prototypal State Machine with a scripted mind: stepping, transactions, bad input."""

from __future__ import annotations

import pytest
import transaction

from batos_lab.errors import CycleError, MindUnavailable
from batos_lab.image import Image
from batos_lab.objects import Method
from batos_lab.psm import (
    STATES,
    TRACE_FIELDS,
    CycleSettings,
    Request,
    ScriptedMind,
    ensure_psm,
    install_mind,
    start_cycle,
)
from batos_lab.psm.facets import TRIAL_REPLY
from batos_lab.psm.mind import mind_for

QUESTION = "How should I cache the results of a slow function?"


@pytest.fixture
def psm(image: Image) -> Image:
    ensure_psm(image)
    return image


def fresh_root(image: Image):  # a separate connection sees only what was committed
    manager = transaction.TransactionManager()
    conn = image.db.open(transaction_manager=manager)
    return conn, conn.root()


def ask(image: Image, mind: ScriptedMind, question: str = QUESTION, **kw):
    install_mind(image, mind)
    return image.root["personas"][kw.pop("persona", "BRICK")].ask(question, **kw)


def test_ensure_psm_builds_state_prototypes_once(psm: Image) -> None:
    home = psm.root["psm"]
    assert sorted(home.states) == sorted(STATES)
    for name, state in home.states.items():
        assert state.state_name == name
        assert state.get_slot("process").ref.endswith(f"process_{name.lower()}")
        assert state.terminal == (name in ("COMPLETE", "FAILED"))
    assert set(home.workflows) == set(psm.root["matrix"].rows)
    assert ensure_psm(psm) is home


def test_step_runs_one_state_at_a_time_and_complete_commits(psm: Image) -> None:
    mind = ScriptedMind()
    cycle = ask(psm, mind)
    assert cycle.current_state() == "IDLE"
    assert cycle.get_slot("synthesis_state*").state_name == "IDLE"
    first = cycle.step()
    assert set(TRACE_FIELDS) <= set(first)
    assert (first["state"], first["next"]) == ("IDLE", "DECOMPOSING")
    assert cycle.get_slot("synthesis_state*").state_name == "DECOMPOSING"
    # nothing is visible outside the cycle's transaction while it runs
    conn, root = fresh_root(psm)
    assert len(root["psm"].cycles) == 0
    conn.close()
    states = [first["state"]] + [cycle.step()["state"] for _ in range(4)]
    assert states == ["IDLE", "DECOMPOSING", "DELEGATING", "SYNTHESIZING", "COMPLETE"]
    outcome = cycle.outcome()
    assert outcome.ok and outcome.answer.startswith("Taken together")
    with pytest.raises(CycleError, match="has ended"):
        cycle.step()
    conn, root = fresh_root(psm)
    (kept,) = root["psm"].cycles.values()
    assert kept.status == "complete"
    assert [e["state"] for e in kept.trace] == states
    assert isinstance(root["personas"]["BRICK"].get_slot("tamland_facet_"), Method)
    conn.close()


def test_delegating_answers_all_facets_in_one_batch(psm: Image) -> None:
    mind = ScriptedMind()
    outcome = ask(psm, mind).run()
    assert outcome.ok
    delegating = next(e for e in outcome.trace if e["state"] == "DELEGATING")
    facets = delegating["facet"].split(",")
    assert len(facets) == 3 and mind.batches == [len(facets)]
    facet_calls = [r for r in mind.calls if r.role == "facet"]
    assert {r.adapter for r in facet_calls} == {"BRICK", "ROBIN", "BABS"}


def test_facets_compile_once_then_are_reused(psm: Image) -> None:
    mind = ScriptedMind()
    assert ask(psm, mind).run().ok
    codes = sum(r.role == "code" for r in mind.calls)
    assert codes == 3
    psm.sync()
    assert ask(psm, mind).run().ok
    assert sum(r.role == "code" for r in mind.calls) == codes


def test_facet_outside_a_cycle_compiles_through_does_not_understand(psm: Image) -> None:
    install_mind(psm, ScriptedMind(facet="Be here now."))
    robin = psm.root["personas"]["ROBIN"]
    assert not robin.has_slot("sage_facet_")
    assert robin.sage_facet_("I feel lost") == "Be here now."
    assert robin.get_slot("sage_facet_").provenance["author"] == "jit-facet"
    conn, root = fresh_root(psm)
    assert root["personas"]["ROBIN"].has_slot("sage_facet_")
    conn.close()


def test_failed_cycle_aborts_everything_and_keeps_a_failure_record(psm: Image) -> None:
    mind = ScriptedMind(check="FAIL: it never says how to cache.")
    outcome = ask(psm, mind).run()
    assert outcome.status == "failed" and outcome.failed_state == "SYNTHESIZING"
    assert "ALFRED's check did not pass" in outcome.reason
    assert [e["state"] for e in outcome.trace][-2:] == ["SYNTHESIZING", "FAILED"]
    conn, root = fresh_root(psm)
    assert len(root["psm"].cycles) == 0
    assert not root["personas"]["BRICK"].has_slot("tamland_facet_")  # compiled, rolled back
    (record,) = root["failures"].values()
    assert record["mission"] == QUESTION and record["state"] == "SYNTHESIZING"
    assert "ALFRED" in record["reason"]
    assert record["trace"][0]["state"] == "IDLE"
    conn.close()


def test_abort_mid_cycle_rolls_back(psm: Image) -> None:
    cycle = ask(psm, ScriptedMind())
    cycle.step()
    cycle.step()
    entry = cycle.abort()
    assert entry["state"] == "FAILED"
    assert cycle.outcome().reason == "aborted by the researcher"
    with pytest.raises(CycleError, match="already ended"):
        cycle.abort()
    conn, root = fresh_root(psm)
    assert len(root["psm"].cycles) == 0 and len(root["failures"]) == 1
    conn.close()


@pytest.mark.parametrize(
    "reply",
    [
        "lorem ipsum",
        '{"strategy": 1}',
        '{"strategy": "x", "relevant_pillars": ["no_such_facet_"]}',
        "[1, 2]",
    ],
)
def test_garbage_plan_falls_back_to_the_matrix(psm: Image, reply: str) -> None:
    outcome = ask(psm, ScriptedMind(plan=reply)).run()
    assert outcome.ok
    decomposing = outcome.trace[1]
    assert any("matrix's plan is used" in n for n in decomposing["notices"])
    delegating = outcome.trace[2]
    # technical_deconstruction: BRICK, ROBIN, BABS, ALFRED, each with its first facet
    assert delegating["facet"].split(",") == [
        "tamland_facet_",
        "sage_facet_",
        "digital_cartography_facet_",
        "doubt_protocol_facet_",
    ]


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ({"facet": ""}, "no facet gave an answer"),
        ({"weave": "   "}, "synthesis is empty"),
        ({"weave": "ok"}, "under 8"),
        ({"weave": "word " * 2000}, "over 4000"),
        ({"facet": "The one and only view.", "weave": "The one and only view."}, "copy"),
        ({"facet": "A view of the matter.", "weave": "A view of the matter!"}, "alike"),
        ({"code": "    self.infer(query)\n    return 42\n"}, "returned int, not text"),
    ],
)
def test_bad_model_output_fails_the_cycle_with_its_reason(
    psm: Image, script: dict[str, str], reason: str
) -> None:
    outcome = ask(psm, ScriptedMind(**script)).run()
    assert outcome.status == "failed"
    assert reason in outcome.reason
    conn, root = fresh_root(psm)
    assert len(root["psm"].cycles) == 0 and len(root["failures"]) == 1
    assert not root["personas"]["BRICK"].has_slot("tamland_facet_")
    conn.close()


def test_a_facet_whose_method_fails_at_run_time_fails_the_cycle(psm: Image) -> None:
    code = (
        "    reply = self.infer(query)\n"
        f"    if reply == {TRIAL_REPLY!r}:\n"
        "        return reply\n"
        "    return reply[100000]\n"
    )
    outcome = ask(psm, ScriptedMind(code=code)).run()
    assert outcome.failed_state == "DELEGATING"
    assert "failed: IndexError" in outcome.reason


def test_empty_and_huge_missions(psm: Image) -> None:
    install_mind(psm, ScriptedMind())
    brick = psm.root["personas"]["BRICK"]
    with pytest.raises(CycleError, match="mission is empty"):
        brick.ask("   ")
    with pytest.raises(CycleError, match="mission is text"):
        start_cycle(psm, None)  # type: ignore[arg-type]
    huge = "why " * 5000
    cycle = start_cycle(psm, huge, settings=CycleSettings(max_mission_chars=500))
    first = cycle.step()
    assert any("cut to its first 500" in n for n in first["notices"])
    assert len(first["prompt"]) == 500
    assert cycle.run().ok


def test_unknown_persona_or_missing_machine(image: Image) -> None:
    install_mind(image, ScriptedMind())
    with pytest.raises(CycleError, match="call batos_lab.psm.ensure_psm"):
        start_cycle(image, QUESTION)
    ensure_psm(image)
    with pytest.raises(CycleError, match="No persona named 'JOKER'"):
        start_cycle(image, QUESTION, persona="JOKER")


def test_state_raising_is_a_failed_cycle(psm: Image) -> None:
    def boom(request):
        raise RuntimeError("the model fell over")

    outcome = ask(psm, ScriptedMind(plan=boom)).run()
    assert outcome.failed_state == "DECOMPOSING"
    assert "RuntimeError: the model fell over" in outcome.reason


def test_trace_frame_and_mind_errors(psm: Image) -> None:
    cycle = ask(psm, ScriptedMind())
    cycle.run()
    frame = cycle.trace_frame()
    assert list(frame.columns) == list(TRACE_FIELDS)
    assert list(frame["state"]) == ["IDLE", "DECOMPOSING", "DELEGATING", "SYNTHESIZING", "COMPLETE"]
    with pytest.raises(RuntimeError, match="used up"):
        ScriptedMind(facet=[]).answer(Request(role="facet", prompt="x"))
    with pytest.raises(ValueError, match="role must be one of"):
        Request(role="gossip", prompt="x")
    with pytest.raises(MindUnavailable, match="install_mind"):
        mind_for(object())


def test_a_failed_cycle_stays_readable_in_memory(psm: Image) -> None:
    cycle = ask(psm, ScriptedMind(weave=""))
    outcome = cycle.run()
    assert outcome.status == "failed"
    assert cycle.status == "failed" and cycle.reason == outcome.reason
    assert cycle.current_state() == "FAILED"
    assert [e["state"] for e in cycle.trace][:2] == ["IDLE", "DECOMPOSING"]
    assert cycle.trace_frame().shape[0] == 5


class FakeHit:
    def __init__(self, text: str) -> None:
        self.text = text


def fake_search(self, query: str, top_k: int = 5) -> list[FakeHit]:
    return [FakeHit(f"The codex says something about {query[:20]}")][:top_k]


def test_decomposing_gives_brick_context_from_the_catalog(psm: Image) -> None:
    from batos_lab.objects import NativeMethod, UvmObject

    with psm.transaction("a stand-in catalog"):
        psm.root["knowledge_catalog"] = UvmObject(
            name="catalog", search=NativeMethod("tests.test_psm:fake_search")
        )
    mind = ScriptedMind()
    assert ask(psm, mind).run().ok
    (plan_request,) = [r for r in mind.calls if r.role == "plan"]
    assert "Background from the knowledge catalog:" in plan_request.prompt
    assert "The codex says something about How should I" in plan_request.prompt
    no_context = ask(psm, ScriptedMind())
    no_context._p_jar.root()["knowledge_catalog"].search = "not callable"  # a broken catalog
    outcome = no_context.run()
    assert outcome.ok
    assert any("could not be searched" in n for n in outcome.trace[1]["notices"])


def test_a_facet_the_model_cannot_write(psm: Image) -> None:
    mind = ScriptedMind(code="this is not python")
    install_mind(psm, mind)
    strict = start_cycle(psm, QUESTION, settings=CycleSettings(facet_fallback=False)).run()
    assert strict.failed_state == "DELEGATING" and "could not be compiled" in strict.reason
    assert "no function definition" in strict.reason
    outcome = start_cycle(psm, QUESTION).run()
    assert outcome.ok
    assert any("template was installed" in n for n in outcome.trace[2]["notices"])
    psm.sync()
    method = psm.root["personas"]["BRICK"].get_slot("tamland_facet_")
    assert method.provenance["author"] == "facet-template"
    assert method.provenance["attempts"][0]["stage"] == "extract"


def test_cycle_persona_shows_what_the_cycle_did_before_it_commits(psm: Image) -> None:
    cycle = ask(psm, ScriptedMind())
    for _ in range(3):  # IDLE, DECOMPOSING, DELEGATING: facet methods compiled, not committed
        cycle.step()
    facet = cycle.scratch["partials"][0]
    seen = cycle.persona_seen(facet["persona"]).get_slot(facet["facet"])
    assert isinstance(seen, Method)
    outside = psm.root["personas"][facet["persona"]]
    assert not isinstance(outside.get_slot(facet["facet"], None), Method)
    with pytest.raises(CycleError, match="no persona 'NOBODY'; the personas are ALFRED"):
        cycle.persona_seen("NOBODY")
    cycle.abort()


def test_an_older_image_gets_new_cycle_methods_on_ensure_psm(psm: Image) -> None:
    prototype = psm.root["psm"].cycle_prototype
    with psm.transaction("an image from before cycle.persona_seen"):
        prototype.del_slot("persona_seen")
    ensure_psm(psm)
    conn, root = fresh_root(psm)  # committed, not only set
    assert root["psm"].cycle_prototype.has_slot("persona_seen")
    conn.close()
