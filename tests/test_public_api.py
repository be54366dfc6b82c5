"""The public API is exactly what each package's ``__all__`` says, sorted and importable."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = ["batos_lab", "batos_lab.widgets", "batos_lab.catalog", "batos_lab.llm", "batos_lab.psm"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    names = list(module.__all__)
    assert names == sorted(names, key=lambda n: (not n.isupper(), n)) or names == sorted(names)
    for attr in names:
        assert hasattr(module, attr), f"{name}.{attr}"
