"""Workbench widgets for notebooks."""

from __future__ import annotations

from batos_lab.widgets.cycle_stepper import CycleStepper
from batos_lab.widgets.manifest_view import ManifestView
from batos_lab.widgets.memory_inspector import MemoryInspector
from batos_lab.widgets.object_inspector import ObjectInspector
from batos_lab.widgets.panel import Panel, display_yourself

__all__ = [
    "CycleStepper",
    "ManifestView",
    "MemoryInspector",
    "ObjectInspector",
    "Panel",
    "display_yourself",
]
