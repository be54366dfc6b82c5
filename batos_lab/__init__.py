"""batos_lab: a research workbench for a living image of prototype objects that extends itself."""

from __future__ import annotations

__version__ = "0.1.0"

from batos_lab.errors import BatosError, DoesNotUnderstand
from batos_lab.image import Image, open_image
from batos_lab.objects import Method, NativeMethod, UvmObject

__all__ = [
    "BatosError",
    "DoesNotUnderstand",
    "Image",
    "Method",
    "NativeMethod",
    "UvmObject",
    "__version__",
    "open_image",
]
