"""Training pairs for a JIT adapter: the prompts the pipeline builds, with the bank's answers.

Every worked example of the banks (:mod:`batos_lab.dnu_examples`) is a message with a correct
method. :func:`training_pairs` puts each one to the pipeline's own prompt builder, as if an
object with the example's slots had received the example's message, with that example left out
of the prompt's worked examples, and pairs the prompt with the example's body: exactly what the
embedded model is asked (:mod:`batos_lab.dnu_model` forces the header and the first
indentation) and what it should have written. The pairs train a LoRA adapter
(``scripts/train_jit_adapter.py``) that the pipeline can use in place of the bare base model.

No pair comes from the JIT suite or its held-out tasks: the banks share no selector with them
(``tests/test_jit_training.py`` checks the pairs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batos_lab.dnu_examples import BANKS, Example

__all__ = ["END", "TrainingPair", "body_of", "training_pairs"]

#: what follows a body in a prompt (a blank line, then the next comment): the adapter learns
#: to end a body as the decoder stops it, at the first character left of the body
END = "\n\n#"


@dataclass(frozen=True)
class TrainingPair:
    """One prompt (ending where the model starts writing) and the text it should write."""

    selector: str
    bank: str
    prompt: str
    completion: str


def body_of(example: Example, header: str) -> str:
    """Return what the model writes after ``header`` and the forced indentation.

    An example whose parameters are named otherwise than the pipeline names them (``word``
    where the pipeline writes ``text``) has them renamed throughout its body.

    Raises:
        ValueError: the example's method does not start with a header of this function and
            this many parameters, or has no indented body.
    """
    from batos_lab.dnu_model import BODY_INDENT

    first, _, rest = example.source.partition("\n")
    ours, theirs = _parameters(header), _parameters(first.strip())
    if theirs is None or ours is None or len(ours) != len(theirs) or ours[0] != theirs[0]:
        raise ValueError(
            f"example {example.selector!r} starts {first.strip()!r}, the pipeline writes {header!r}"
        )
    if not rest.startswith(BODY_INDENT + " "):
        raise ValueError(f"example {example.selector!r} has no indented body")
    body = _rename(rest, dict(zip(theirs[1:], ours[1:], strict=True)))
    return body[len(BODY_INDENT) :].rstrip() + END


def _parameters(header: str) -> tuple[str, ...] | None:
    """The function name and parameter names of a ``def`` line, or None if it is not one."""
    import ast

    try:
        tree = ast.parse(header + "\n    pass\n")
    except SyntaxError:
        return None
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, ast.FunctionDef) or node.args.vararg or node.args.kwarg:
        return None
    return (node.name, *(a.arg for a in node.args.args))


def _rename(body: str, names: dict[str, str]) -> str:
    """Rename the variables ``names`` maps in ``body`` (attributes and strings are kept)."""
    import io
    import tokenize

    names = {old: new for old, new in names.items() if old != new}
    if not names:
        return body
    tokens = list(tokenize.generate_tokens(io.StringIO(body).readline))
    out = []
    for i, tok in enumerate(tokens):
        after_dot = i > 0 and tokens[i - 1].string == "."
        if tok.type == tokenize.NAME and tok.string in names and not after_dot:
            tok = tok._replace(string=names[tok.string])
        out.append(tok)
    return tokenize.untokenize(out)


def training_pairs(
    examples: Sequence[Example] | None = None,
    prompt_banks: Sequence[str] = ("core", "broad"),
    shown: int = 4,
) -> tuple[list[TrainingPair], list[str]]:
    """Build one pair per example and prompt bank.

    Args:
        examples: the examples to learn (default: every bank).
        prompt_banks: the banks the prompts draw their worked examples from, as the
            pipeline's first round does (:attr:`batos_lab.dnu.JITSettings.banks`).
        shown: worked examples per prompt.

    Returns:
        The pairs, and one line per example that could not be used, saying why.
    """
    from batos_lab.dnu_model import BODY_INDENT
    from batos_lab.dnu_prompt import build_prompt
    from batos_lab.image import open_image
    from batos_lab.objects import UvmObject

    chosen = list(BANKS["all"] if examples is None else examples)
    pairs: list[TrainingPair] = []
    skipped: list[str] = []
    with open_image(None) as image:
        traits = image.root["traits"]
        for example in chosen:
            receiver = UvmObject(**{"name": example.label, **dict(example.slots)})
            receiver.set_slot("parent*", traits)
            for bank in prompt_banks:
                prompt = build_prompt(
                    receiver, example.selector, tuple(example.args), {}, examples=shown,
                    bank=bank, leave_out=example.selector,
                )  # fmt: skip
                try:
                    completion = body_of(example, prompt.header)
                except ValueError as exc:
                    skipped.append(str(exc))
                    break
                text = prompt.text.rstrip() + "\n" + BODY_INDENT
                pairs.append(TrainingPair(example.selector, bank, text, completion))
        image.abort()
    return pairs, skipped
