"""Workbench widgets for notebooks."""

from __future__ import annotations

from batos_lab.widgets.object_inspector import ObjectInspector

__all__ = ["ObjectInspector"]
