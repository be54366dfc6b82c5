"""The main job on the embedded default: what the README's first command runs.

Genesis (with the embedded model unless told otherwise), the codex ingested into the knowledge
catalog, a search, a method learned through doesNotUnderstand_ with the real model, and a first
cognitive cycle: a question put to ROBIN, answered by the composite mind, timed state by state.
"""

from __future__ import annotations

import textwrap
import time

from batos_lab.errors import BatosError
from batos_lab.genesis import ensure_genesis, tour
from batos_lab.image import Image, open_image

__all__ = ["run_main_job"]


def _say(stage: str, text: str) -> None:
    print(f"[{stage}] {text}", flush=True)


def _memory(image: Image) -> None:
    from batos_lab.catalog import catalog_for, ingest_codex

    catalog = catalog_for(image)
    reports = ingest_codex(catalog, progress=True)
    changed = [r for r in reports if not r.unchanged]
    _say("memory", f"codex: {len(reports)} documents ({len(changed)} ingested or replaced)")
    question = "Who asks naive questions to test assumptions?"
    results = catalog.search(question, top_k=3)
    _say("memory", f"search {question!r}:")
    for hit in results:
        print(f"    {hit.score:.3f}  {hit.doc_id}  {hit.text[:90]!r}")


def _learn(image: Image) -> None:
    from batos_lab.dnu import generator_for, install_generator

    entry = generator_for(image)  # the embedded model, adapters off
    if entry is None:
        _say("jit", "no generative kernel is available; skipping the learned method")
        return
    install_generator(image, *entry)  # traits.doesNotUnderstand_ -> the JIT pipeline
    if "main_counter" not in image:
        with image.transaction("main job: a counter to teach"):
            image.new("main_counter", count=0)
    counter = image["main_counter"]
    selector = "increment_by"
    if counter.has_slot(selector):
        _say("jit", f"{selector} was learned on an earlier run; calling it again")
    else:
        _say("jit", f"main_counter does not understand {selector!r}: the model writes it now")
    started = time.perf_counter()
    try:
        result = counter.send(selector, 5)
    except BatosError as exc:
        _say("jit", f"not learned this time ({type(exc).__name__}): {str(exc).splitlines()[0]}")
        return
    image.commit(f"main job: {selector}(5)")
    method = counter.get_slot(selector)
    _say(
        "jit", f"main_counter.{selector}(5) -> {result!r} in {time.perf_counter() - started:.1f} s"
    )
    print("    " + method.source.replace("\n", "\n    ").rstrip())
    attempts = method.provenance.get("attempts", [])
    rounds = 1 + max((a.get("round", 0) for a in attempts), default=0)
    passed = sum(a.get("stage") == "ok" for a in attempts)
    _say(
        "jit",
        f"provenance: {method.provenance.get('author')}, {len(attempts)} candidate(s) in "
        f"{rounds} round(s), {passed} passed their trial",
    )


def _think(image: Image) -> None:
    from batos_lab.psm import ModelMind, ensure_psm, install_mind, start_cycle

    ensure_psm(image)
    install_mind(image, ModelMind(image))
    question = "How can I stay calm before an important meeting?"
    _say("mind", f"ROBIN is asked {question!r}; the cycle runs state by state")
    try:
        outcome = start_cycle(image, question, persona="ROBIN").run()
    except BatosError as exc:
        _say("mind", f"the cycle could not run ({type(exc).__name__}): {exc}")
        return
    for entry in outcome.trace:
        who = entry["persona"] or "-"
        print(
            f"    {entry['state']:13} {entry['ms'] / 1e3:6.1f} s  {entry['tokens']:4} tokens  {who}"
        )
    if outcome.ok:
        _say("mind", "answer: " + textwrap.shorten(str(outcome.answer), 700))
    else:
        _say(
            "mind",
            f"the cycle FAILED in {outcome.failed_state}: {outcome.reason} "
            "(rolled back; a failure record was kept)",
        )


def run_main_job(where: str, model: str | None = "embedded") -> None:
    """Open (or create) the image at ``where`` and run the main job, printing what happens.

    Args:
        where: the image path (or ``zeo://host:port``).
        model: ``"embedded"``, a local HF model folder, or None to skip everything that needs
            a model.
    """
    started = time.perf_counter()
    with open_image(where, genesis=False) as image:
        created = ensure_genesis(image, model=model)
        _say("genesis", ("created " if created else "resumed ") + image.location)
        print(tour(image))
        _memory(image)
        if model is None:
            _say("main", "no base model: skipping the learned method")
        else:
            _learn(image)
            _think(image)
    _say("main", f"done in {time.perf_counter() - started:.1f} s")
