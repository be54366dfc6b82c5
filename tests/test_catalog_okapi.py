"""The numpy mirror of the Okapi index scores plain OR queries exactly as zope.index does."""

from __future__ import annotations

import random
import re
from typing import Any

import numpy as np
import pytest
from zope.index.text.setops import mass_weightedUnion

from batos_lab.catalog.okapi import OkapiArrays
from batos_lab.catalog.search import bucket_top, query_terms
from batos_lab.catalog.store import new_text_index
from benchmarks.catalog_corpus import corpus_documents


@pytest.fixture(scope="module")
def prose_index() -> tuple[Any, list[str]]:
    """A TextIndex over about 3,000 real prose paragraphs (installed docstrings)."""
    paragraphs = [p for _, text in corpus_documents(max_words=150_000) for p in text.split("\n\n")]
    index = new_text_index()
    for n, paragraph in enumerate(paragraphs):
        index.index_doc(7 + 3 * n, paragraph)  # sparse, shifted ids: positions are not ids
    return index, paragraphs


def zope_bucket(index: Any, terms: list[str]) -> Any:
    """OkapiIndex's scores of ``t1 OR t2 ...`` (before TextIndex divides by the query weight)."""
    okapi, lexicon = index.index, index.lexicon
    wids = okapi._remove_oov_wids([lexicon.get_wid(t) for t in terms])
    return mass_weightedUnion(okapi._search_wids(wids), okapi.family)


def test_scores_equal_okapi_index_on_real_prose(prose_index: tuple[Any, list[str]]) -> None:
    index, paragraphs = prose_index
    arrays = OkapiArrays.build(index, "s")
    rng = random.Random(11)
    compared = multi = 0
    for _ in range(300):
        words = re.findall(r"[A-Za-z]{3,}", rng.choice(paragraphs))
        terms = query_terms(" ".join(rng.sample(words, min(len(words), rng.randint(1, 8)))))
        if not terms:
            continue
        bucket = zope_bucket(index, terms)
        ours = arrays.scores(terms)
        hit = np.flatnonzero(ours)
        assert arrays.ids[hit].tolist() == list(bucket.keys())
        np.testing.assert_allclose(ours[hit], list(bucket.values()), rtol=1e-9, atol=0)
        assert arrays.top(terms, 10) == bucket_top(bucket, 10)
        compared += 1
        multi += len(terms) >= 3
    assert compared > 250 and multi > 100  # enough queries whose merge order matters


def test_unknown_words_and_filters(prose_index: tuple[Any, list[str]]) -> None:
    index, _ = prose_index
    arrays = OkapiArrays.build(index, "s")
    assert arrays.top(["qwxzzy"], 5) == []
    assert arrays.top(["qwxzzy", "module"], 5) == arrays.top(["module"], 5)
    allowed = arrays.ids % 2 == 0
    best = arrays.top(["module", "return"], 5, allowed)
    assert best and all(cid % 2 == 0 for cid, _ in best)
    everything = dict(arrays.top(["module", "return"], arrays.ids.size))
    assert all(everything[cid] == score for cid, score in best)
    assert arrays.nbytes == sum(
        a.nbytes for a in (arrays.ids, arrays.starts, arrays.positions, arrays.weights)
    )
    assert arrays.weights.size == arrays.positions.size > arrays.ids.size


def test_empty_index_scores_nothing() -> None:
    arrays = OkapiArrays.build(new_text_index(), "s")
    assert arrays.ids.size == 0 and arrays.nbytes > 0
    assert arrays.scores(["brick"]).size == 0
    assert arrays.top(["brick"], 5) == []
