"""Every error batos_lab raises, under one base class.

The tree::

    BatosError
    ├── SlotError                 a slot name or value the kernel refuses
    ├── MethodSourceError         method source that does not parse or has the wrong shape
    ├── DoesNotUnderstand         a message no slot or parent answers (and no method was learned)
    ├── TransactionFailed         a commit that still conflicted after its retries
    ├── GuardianRejection         method source the Persistence Guardian refuses (rule + line)
    ├── SandboxError              sandboxed code reached for something it may not use
    │   ├── SandboxTimeout        sandboxed code ran past its CPU-time limit
    │   └── SandboxRecursion      sandboxed code recursed past its depth limit
    └── ImageError                opening, checking or serving an image
        ├── ImageLocked           the file is open in another process
        ├── ImageCorrupted        the file failed its integrity check
        ├── ImageNotFound         no image at the path given
        ├── UndoUnavailable       the storage keeps no history to undo
        └── ZEOUnreachable        no ZEO server answered in time
    CatalogError                  the knowledge catalog refused an input or a query
    ├── CatalogInputError         a document that cannot be ingested (empty, not UTF-8, bad id)
    │   └── DocumentTooLarge      a document over the catalog's size limit
    ├── DuplicateDocument         a doc id already present where replacing was not allowed
    ├── UnknownDocument           a doc id the catalog does not hold
    ├── CatalogQueryError         a search request that cannot be run
    └── EmbedderMissing           the sentence-embedding package is not installed
    CoreError                     the cognitive core refused a model, an adapter or a request
    ├── ModelNotInstalled         the image holds no base model yet
    ├── ModelSourceError          a model folder or GGUF file that cannot be used
    ├── RuntimeModeError          a runtime mode unknown or unavailable on this machine
    ├── AdapterError              a LoRA adapter folder or blob the core refuses
    │   └── UnknownAdapter        an adapter name the image does not hold
    ├── BudgetError               a memory budget too small for what it must hold
    └── PromptError               an empty prompt, or one too long for the context
    PSMError                      the Prototypal State Machine refused a cycle or a workflow
    ├── WorkflowError             a workflow graph that does not compile (unknown, unreachable)
    ├── PlanError                 a decomposition plan that is not valid JSON or names no facet
    ├── CycleError                a cycle used wrongly (empty mission, stepped after it ended)
    └── MindUnavailable           no model (Mind) serves the image's cycles
    PanelError                    a panel spec the image refuses (unknown kind or slot, bad layout)

Messages are full sentences: what was expected, what was found, and what to do.
"""

from __future__ import annotations

from typing import Any


class BatosError(Exception):
    """Base class of every error raised by batos_lab."""


class SlotError(BatosError):
    """A slot name or value the kernel refuses."""


class MethodSourceError(BatosError):
    """Method source text that does not parse or is not one function definition."""


class DoesNotUnderstand(BatosError):
    """A message that no slot or parent of the receiver answers.

    Attributes:
        receiver: the object that received the message.
        selector: the message name.
        attempts: diagnostics of every attempt to learn the method (empty when none was made).
    """

    def __init__(
        self,
        message: str,
        *,
        receiver: Any = None,
        selector: str = "",
        attempts: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.receiver = receiver
        self.selector = selector
        self.attempts = list(attempts or [])


class TransactionFailed(BatosError):
    """A transaction that could not be committed after its bounded retries."""


class ImageError(BatosError):
    """A problem opening, checking or serving an image."""


class ImageLocked(ImageError):
    """The image file is already open in another process."""


class ImageCorrupted(ImageError):
    """The image file failed its integrity check."""


class ImageNotFound(ImageError):
    """No image exists at the path given."""


class UndoUnavailable(ImageError):
    """The image's storage keeps no history that could be undone."""


class ZEOUnreachable(ImageError):
    """No ZEO server answered at the address given within the timeout."""


class CatalogError(BatosError):
    """The knowledge catalog refused an input or a query."""


class CatalogInputError(CatalogError):
    """A document the catalog cannot ingest: empty, not UTF-8, or with a bad id or metadata."""


class DocumentTooLarge(CatalogInputError):
    """A document larger than the catalog's per-document size limit."""


class DuplicateDocument(CatalogError):
    """A doc id that is already indexed, where replacing it was not allowed."""


class UnknownDocument(CatalogError, KeyError):
    """A doc id that the catalog does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CatalogQueryError(CatalogError):
    """A search request that cannot be run (unknown mode, bad top_k, malformed boolean query)."""


class EmbedderMissing(CatalogError):
    """The package carrying the sentence-embedding model is not installed."""


class GuardianRejection(BatosError):
    """Method source the Persistence Guardian refuses to install or run.

    Attributes:
        rule: the id of the first rule broken (e.g. ``"underscore"``, ``"import"``).
        line: the line of the first violation, counted from 1 in the source given.
        violations: every ``(rule, line, message)`` found, in source order.
    """

    def __init__(self, violations: list[tuple[str, int, str]]) -> None:
        self.violations = list(violations)
        self.rule, self.line, first = self.violations[0]
        lines = "; ".join(
            f"line {line}: [{rule}] {text.rstrip('.')}" for rule, line, text in self.violations
        )
        super().__init__(
            f"The Persistence Guardian refused this method source ({len(self.violations)} "
            f"violation(s)): {lines}. Rewrite the method so that it follows these rules."
        )
        self.first_message = first


class SandboxError(BatosError):
    """Sandboxed method code tried something its restricted namespace does not allow."""


class SandboxTimeout(SandboxError):
    """Sandboxed method code used more CPU time than its limit."""


class SandboxRecursion(SandboxError):
    """Sandboxed method code recursed deeper than its limit."""


class CoreError(BatosError):
    """The cognitive core refused a model, an adapter or a request."""


class ModelNotInstalled(CoreError):
    """The image holds no base model; genesis (or ``install_model``) puts one there."""


class ModelSourceError(CoreError):
    """A model folder or GGUF file that cannot be converted, stored or loaded."""


class RuntimeModeError(CoreError):
    """A runtime mode that is unknown or cannot run on this machine."""


class AdapterError(CoreError):
    """A LoRA adapter folder or blob the core refuses: missing config, wrong base, bad file."""


class UnknownAdapter(AdapterError, KeyError):
    """An adapter name the image does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class BudgetError(CoreError):
    """A memory budget too small for what it has to hold."""


class PromptError(CoreError):
    """A prompt that is empty, or longer than the context allows."""


class PSMError(BatosError):
    """The Prototypal State Machine refused a cycle, a plan or a workflow."""


class WorkflowError(PSMError):
    """A workflow graph that does not compile: unknown or unreachable states, no terminal."""


class PlanError(PSMError):
    """A decomposition plan that is not valid JSON, or names facets the image does not hold."""


class CycleError(PSMError):
    """A cycle used wrongly: an empty mission, a step after the end, a cycle without session."""


class MindUnavailable(PSMError):
    """No Mind (model interface) serves the cycles of this image."""


class PanelError(BatosError):
    """A panel spec the image refuses: an unknown kind or slot, a duplicate id, a bad layout.

    Attributes:
        problems: every problem found, one sentence each (the message joins them).
    """

    def __init__(self, message: str, *, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [message])
