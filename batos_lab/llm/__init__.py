"""The cognitive core: the base model as blobs, LoRA experts, and the Synaptic Memory Manager.

Everything heavy (torch, transformers, peft) is imported when first needed, so importing this
package is cheap.
"""

from __future__ import annotations

from batos_lab.llm.adapters import AdapterFamily, AdapterProxy, ImportReport
from batos_lab.llm.blobs import ModelRecord
from batos_lab.llm.core import CognitiveCore, InstallReport, core_for, install_model
from batos_lab.llm.infer import InferResult
from batos_lab.llm.manifest import Budgets, Manifest
from batos_lab.llm.memory import ActivationRecord, SynapticMemoryManager

__all__ = [
    "ActivationRecord",
    "AdapterFamily",
    "AdapterProxy",
    "Budgets",
    "CognitiveCore",
    "ImportReport",
    "InferResult",
    "InstallReport",
    "Manifest",
    "ModelRecord",
    "SynapticMemoryManager",
    "core_for",
    "install_model",
]
