"""The embedded model as a JIT generator: the function header is forced, the model writes the body.

:func:`model_generator` wraps an image's cognitive core. The JIT prompt is a Python file (rules
and worked examples as comments) ending with the ``def`` header; the model completes it as raw
text, after the header's newline and first indentation, so it cannot chat, rename the function
or change its parameters: it only continues the body. One prefill serves every candidate of a
round: the greedy row and the sampled rows are decoded in one batch (:class:`GreedyRows`), the
samples from a seed taken from the prompt (:func:`sample_seed`), so the same message gets the
same candidates. A row stops as soon as a line starts left of the body's indentation, a fence
appears, the row runs away (:func:`runaway`) or the token budget is spent.

Two logits processors steer the body without choosing it. While the pipeline guides names
(:data:`~batos_lab.dnu_prompt.GUIDE_NAMES`), :class:`NameGuide` keeps every ``self.<name>`` to
the receiver's own slots and selectors: a small model otherwise copies the slot names of the
worked examples (``self.books`` on an object that has ``words``); whichever valid name the
model ranks highest is kept. :class:`ReturnGuide` leads a body that would end without a
``return`` to write one.

The base model is used with every adapter disabled, unless the generator is given an adapter
(the JIT adapter ``scripts/train_jit_adapter.py`` trains from the example banks): then that
expert is made hot and active for the generator's calls. :class:`SharedPool` lets several
writers (the base model and an adapter) fill one pool between them, each its own share.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any

from batos_lab.dnu_prompt import GUIDE_NAMES

__all__ = [
    "BODY_INDENT",
    "GreedyRows",
    "ModelGenerator",
    "NameGuide",
    "ReturnGuide",
    "SharedPool",
    "body_finished",
    "cut_body",
    "leaving_line",
    "model_generator",
    "names_ok",
    "pieces",
    "runaway",
    "sample_seed",
    "writes_code",
    "writing_model",
]

#: the body opens with a newline and three spaces: one token of the tokenizer, after which
#: the model writes " name..." (the fourth space and the first word) as it saw in training
BODY_INDENT = "   "


#: the longest body line worth decoding further (characters)
LONGEST_LINE = 160
#: how many times one line may be written before the body counts as a loop
REPEATS = 3


def runaway(body: str) -> bool:
    """Tell whether a body has run away: a line past :data:`LONGEST_LINE` characters (an
    unclosed string, a chain of repeats) or one line written :data:`REPEATS` times.

    Such a row would fail its trial anyway, and a batch decodes until its last row is done,
    so stopping it early saves the whole batch's time.

    Example:
        >>> runaway(" x = 1\\n    self.items.append(1)\\n    self.items.append(1)\\n")
        False
        >>> runaway(" x = 1" + "\\n    self.items.append(1)" * 3 + "\\n")
        True
    """
    lines = body.split("\n")
    if max(map(len, lines)) > LONGEST_LINE:
        return True
    finished = [line.strip() for line in lines[:-1] if line.strip()]
    return any(finished.count(line) >= REPEATS for line in set(finished))


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _depth(lines: list[str]) -> int:
    """The body's indentation: the forced one plus what its first line added."""
    return len(BODY_INDENT) + _indent(lines[0])


def leaving_line(body: str) -> int | None:
    """Return the index of the first line of ``body`` that leaves the function, or None.

    ``body`` is what was generated after the forced header and indentation. A line leaves
    once it holds something at less indentation than the body's first line: its first
    character is enough, so decoding can stop there instead of writing that line out.
    """
    lines = body.split("\n")
    depth = _depth(lines)
    for number, line in enumerate(lines[1:], start=1):
        if line.strip() and _indent(line) < depth:
            return number
    return None


def body_finished(body: str) -> bool:
    """Tell whether a generated body has left the function (a fence or a dedented line).

    Args:
        body: the text generated after the forced header and indentation.

    Returns:
        True once a fence appears or a later line starts left of the body's indentation.
    """
    return "```" in body or leaving_line(body) is not None


def cut_body(body: str) -> str:
    """Return the lines of ``body`` up to the first line that leaves the function."""
    body = body.split("```", 1)[0]
    end = leaving_line(body)
    lines = body.split("\n")
    return "\n".join(lines if end is None else lines[:end]).rstrip()


_SELF_ATTR = re.compile(r"(?<![\w.])self\.(\w*)")
_OPEN_SELF = re.compile(r"(?<![\w.])(?:s|se|sel|self|self\.\w*)$")


def names_ok(tail: str, piece: str, names: Sequence[str]) -> bool:
    """Tell whether writing ``piece`` after ``tail`` keeps every ``self.<name>`` valid.

    Args:
        tail: the current line as written so far.
        piece: the text a token would add.
        names: the attribute names allowed after ``self.``.

    Returns:
        False when ``piece`` completes a ``self.<name>`` whose name is not allowed, or leaves
        an unfinished one that no allowed name starts with.

    Example:
        >>> names_ok("    return self.wo", "rds", ["words"])
        True
        >>> names_ok("x = self.", "books", ["words"])
        False
    """
    text = tail + piece
    for match in _SELF_ATTR.finditer(text):
        if match.end() < len(tail):
            continue  # finished before this piece
        name = match.group(1)
        if match.end() == len(text):
            if not any(n.startswith(name) for n in names):
                return False
        elif name not in names:
            return False
    return True


class NameGuide:
    """A logits processor keeping ``self.<name>`` to allowed names (see :func:`names_ok`).

    At each step it looks at the ``width`` likeliest tokens of each row. When the row is in
    the middle of a ``self.`` reference, or one of those tokens would start or finish a wrong
    one, only the allowed tokens among them keep their scores (all tokens are searched when
    none of the likeliest is allowed). Other steps are left alone.

    Args:
        tokenizer: the model's tokenizer.
        start: the prompt length (generated text begins there).
        names: allowed attribute names.
        width: how many of the likeliest tokens are checked per step.
    """

    def __init__(self, tokenizer: Any, start: int, names: Sequence[str], width: int = 64) -> None:
        self.tokenizer = tokenizer
        self.start = start
        self.names = tuple(names)
        self.width = width

    def _piece(self, token_id: int) -> str:
        return str(self.tokenizer.decode([token_id], skip_special_tokens=True))

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for row in range(input_ids.shape[0]):
            if finished(self.tokenizer, input_ids, row, self.start):
                continue
            text = self.tokenizer.decode(
                input_ids[row, self.start :].tolist(), skip_special_tokens=True
            )
            tail = text.rsplit("\n", 1)[-1]
            top = torch.topk(scores[row], min(self.width, scores.shape[-1])).indices.tolist()
            allowed = [t for t in top if names_ok(tail, self._piece(t), self.names)]
            if len(allowed) == len(top) and not _OPEN_SELF.search(tail):
                continue
            if not allowed:
                allowed = self._search_all(tail)
            if not allowed:
                continue  # nothing fits: leave the row to the checks after generation
            keep_only(scores, row, allowed)
        return scores

    def _search_all(self, tail: str) -> list[int]:
        return [
            i for i, piece in enumerate(pieces(self.tokenizer))
            if piece and names_ok(tail, piece, self.names)
        ]  # fmt: skip


def keep_only(scores: Any, row: int, tokens: Sequence[int]) -> None:
    """Leave row ``row`` of ``scores`` only the scores of ``tokens`` (the rest: -inf).

    When every one of ``tokens`` had already lost its score (an earlier guide ruled it out),
    the first is kept with score 0: a row must keep one finite score, or sampling the batch
    fails for every row (``probability tensor contains inf``).
    """
    import torch

    keep = torch.full_like(scores[row], float("-inf"))
    index = torch.tensor(list(tokens), device=scores.device)
    keep[index] = scores[row, index]
    if not torch.isfinite(keep).any():
        keep[index[0]] = 0.0
    scores[row] = keep


def finished(tokenizer: Any, input_ids: Any, row: int, start: int) -> bool:
    """Tell whether row ``row`` has ended: its last token, after the prompt, ends the text.

    ``generate`` pads an ended row until the batch is done; its next token is thrown away,
    so the guides leave it alone.
    """
    if input_ids.shape[1] <= start:
        return False
    last = int(input_ids[row, -1])
    pad = getattr(tokenizer, "pad_token_id", None)
    return last == tokenizer.eos_token_id or (pad is not None and last == pad)


class GreedyRows:
    """A logits processor that makes the first ``rows`` rows of a sampled batch greedy.

    Every token but the likeliest loses its score on those rows, so sampling can only pick
    the greedy choice: one ``generate`` call then writes the greedy reply and the samples.
    """

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        if self.rows:
            head = scores[: self.rows]
            best = head.argmax(dim=-1, keepdim=True)
            keep = torch.full_like(head, float("-inf"))
            scores[: self.rows] = keep.scatter(1, best, head.gather(1, best))
        return scores


#: decoded text of every token, per tokenizer (tokenizers live as long as the process)
_PIECES: dict[int, list[str]] = {}


def pieces(tokenizer: Any) -> list[str]:
    """Return the decoded text of every token of ``tokenizer`` (computed once per tokenizer)."""
    key = id(tokenizer)
    if key not in _PIECES:
        _PIECES[key] = [
            str(tokenizer.decode([i], skip_special_tokens=True)) for i in range(len(tokenizer))
        ]
    return _PIECES[key]


_RETURN = re.compile(r"^\s*return\b", re.MULTILINE)


def _code_line(line: str, depth: int, growing: bool) -> bool:
    """Tell whether ``line`` is (or, ``growing``, may become) a line of code in the body."""
    stripped = line.lstrip(" ")
    if not stripped:
        return growing  # a line still in its indentation
    return len(line) - len(stripped) >= depth and stripped[0] not in "#'\"\t\r"


def writes_code(body: str) -> bool:
    """Tell whether every line of ``body`` after the first is code inside the function.

    Blank lines, comments, bare strings and lines left of the body's indentation are not;
    the line still being written may be indentation alone.

    Example:
        >>> writes_code(" self.count += 1\\n    return")
        True
        >>> writes_code(" self.count += 1\\n\\n # Example 5")
        False
    """
    if "```" in body:
        return False
    lines = body.split("\n")
    depth = _depth(lines)
    later = lines[1:]
    return all(_code_line(line, depth, n == len(later) - 1) for n, line in enumerate(later))


class ReturnGuide:
    """A logits processor that steers a body without a ``return`` to write one.

    The pipeline refuses a method that answers None, and the embedded model often writes the
    change of a slot and then ends, or drifts through blank and comment lines into the
    prompt's own format (``# Example 5...``). While a row has no ``return`` line, the tokens
    that keep writing code inside the function (:func:`writes_code`) keep their scores when
    the likeliest token is one of them; when it is not (the model would stop, leave the
    function or write a blank or comment line) the next token of a ``return`` line at the
    body's indentation is forced. Rows that have their ``return``, and rows that have
    ended, are left alone.

    Args:
        tokenizer: the model's tokenizer.
        start: the prompt length (generated text begins there).
        width: how many of the likeliest tokens are checked per step.
    """

    def __init__(self, tokenizer: Any, start: int, width: int = 64) -> None:
        self.tokenizer = tokenizer
        self.start = start
        self.width = width
        self.eos = tokenizer.eos_token_id

        def first(text: str) -> int:
            return int(tokenizer.encode(text, add_special_tokens=False)[0])

        self.new_line = first("\n" + BODY_INDENT)  # one token where the tokenizer has it
        self.indent = first(BODY_INDENT)
        self.keyword = first(" return")

    def _forced(self, text: str) -> int:
        tail = text.rsplit("\n", 1)[-1]
        if tail.strip() or "\n" not in text:
            return self.new_line
        return self.indent if not tail else self.keyword

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        texts = pieces(self.tokenizer)
        for row in range(input_ids.shape[0]):
            if finished(self.tokenizer, input_ids, row, self.start):
                continue
            text = self.tokenizer.decode(
                input_ids[row, self.start :].tolist(), skip_special_tokens=True
            )
            if _RETURN.search(text):
                continue
            top = torch.topk(scores[row], min(self.width, scores.shape[-1])).indices.tolist()
            allowed = [
                t for t in top
                if t != self.eos and t < len(texts) and writes_code(text + texts[t])
            ]  # fmt: skip
            if top and allowed[:1] == top[:1]:
                if len(allowed) == len(top):
                    continue
                keep_only(scores, row, allowed)
            else:
                keep_only(scores, row, [self._forced(text)])
        return scores


def sample_seed(prompt: str, round_: int, seed: int = 0) -> int:
    """The seed of a round's samples: from the prompt's text, the round and a base ``seed``."""
    digest = hashlib.sha256(f"{seed}:{round_}:{prompt}".encode()).hexdigest()
    return int(digest[:15], 16)


class ModelGenerator:
    """A :class:`~batos_lab.dnu.Generator` backed by a cognitive core, header forced.

    Args:
        core: the image's CognitiveCore (``core_for(image)``).
        max_new_tokens: the most body tokens per attempt.
        threads: CPU threads while generating (0 keeps torch's setting). One thread is the
            default: a 135M model gains little from a second core, and on a shared machine
            two threads contending with other work measured up to ten times slower.
        seed: the base of the sampling seeds (:func:`sample_seed`): the same prompt, round and
            seed always give the same candidates; another seed draws other samples.
        adapter: the expert that writes the bodies (None: the base model, every adapter off).

    Raises:
        UnknownAdapter: ``adapter`` names no expert of the image (the known ones are listed).
    """

    def __init__(
        self,
        core: Any,
        max_new_tokens: int = 160,
        threads: int = 1,
        seed: int = 0,
        adapter: str | None = None,
    ) -> None:
        self.core = core
        self.max_new_tokens = max_new_tokens
        self.threads = threads
        self.seed = seed
        self.adapter = adapter
        #: ``NAME@vN`` of the adapter version that last wrote (None: the base model, or not yet)
        self.version_key: str | None = None
        if adapter is not None:
            core.adapter(adapter)  # an unknown name fails here, not at the first message
        self.model_id = str(getattr(core, "model_id", None) or _record_id(core))

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        """Write the body of the function the prompt ends with; return header and body."""
        if temperature > 0:
            return self.propose(prompt, 1, temperature, attempt + 1)[0]
        return self.propose(prompt, 1, temperature, 0)[0]

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        """Write ``n`` bodies for the header the prompt ends with: greedy first on round 0.

        The prompt is run through the model once and its key/value cache repeated for every
        row; the greedy row and the samples are decoded in one batch (:class:`GreedyRows`),
        so ``n`` candidates cost one prefill and one ``generate`` call.

        Args:
            prompt: the JIT prompt (a Python file ending with the ``def`` header).
            n: how many candidates.
            temperature: sampling temperature of the sampled rows (0: every row greedy).
            round_: 0 for the first round (its first row is greedy), later rounds sample all.

        Returns:
            ``n`` texts, each the header and one body.
        """
        import torch

        tokenizer = self.core.tokenizer()
        header = prompt.rstrip().rsplit("\n", 1)[-1]
        # the prompt is a Python file ending with the header; the body starts on the next line
        ids = tokenizer.encode(prompt.rstrip() + "\n" + BODY_INDENT, add_special_tokens=False)
        greedy = 1 if round_ == 0 or temperature <= 0 else 0
        rows = greedy if temperature <= 0 else max(n, 1)
        with (
            self._threads(),
            _attention(self.core),
            writing_model(self.core, self.adapter) as model,
            torch.inference_mode(),
        ):
            self.version_key = _active_key(self.core, self.adapter)
            input_ids = torch.tensor([ids], device=self.core.input_device())
            cache = model(input_ids=input_ids[:, :-1], use_cache=True).past_key_values
            # samples are drawn from a generator seeded by the prompt and round: the same
            # message on the same image gets the same candidates, and a benchmark run is
            # repeatable; the process's own random state is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sample_seed(prompt, round_, self.seed))
                out = self._generate(model, tokenizer, input_ids, cache, rows, greedy, temperature)
        bodies = [
            tokenizer.decode(row[len(ids) :].tolist(), skip_special_tokens=True) for row in out
        ]
        return [header + "\n" + BODY_INDENT + cut_body(body) + "\n" for body in bodies]

    def _generate(
        self, model: Any, tokenizer: Any, input_ids: Any, cache: Any, rows: int, greedy: int,
        temperature: float,
    ) -> list[Any]:  # fmt: skip
        """Decode ``rows`` continuations in one batch: the first ``greedy`` rows greedy."""
        import torch
        from transformers import LogitsProcessorList

        start = input_ids.shape[1]
        processors: list[Any] = []
        names = GUIDE_NAMES.get()
        if names:
            processors.append(NameGuide(tokenizer, start, names))
        processors.append(ReturnGuide(tokenizer, start))
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "pad_token_id": tokenizer.pad_token_id or tokenizer.eos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "stopping_criteria": _stopping(tokenizer, start),
        }
        if temperature > 0 and rows > greedy:
            # greedy rows ride in the sampled batch: only their likeliest token survives, so
            # sampling must pick it (this runs after the name guide, before temperature)
            processors.append(GreedyRows(greedy))
            kwargs.update(do_sample=True, temperature=temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if rows > 1:
            cache.batch_repeat_interleave(rows)
        batch = input_ids.repeat(rows, 1)
        out = model.generate(
            input_ids=batch, attention_mask=torch.ones_like(batch), past_key_values=cache,
            logits_processor=LogitsProcessorList(processors), **kwargs,
        )  # fmt: skip
        return list(out)

    def judge(self, context: str, endings: list[str]) -> list[float]:
        """Score each ending by its total log-probability after ``context`` (the writer's model).

        Args:
            context: the text every ending follows.
            endings: the candidate continuations.

        Returns:
            One summed log-probability per ending (higher: the model finds it likelier).
        """
        import torch

        tokenizer = self.core.tokenizer()
        head = tokenizer.encode(context, add_special_tokens=False)
        scores: list[float] = []
        with (
            self._threads(),
            _attention(self.core),
            writing_model(self.core, self.adapter) as model,
            torch.inference_mode(),
        ):
            for ending in endings:
                ids = tokenizer.encode(context + ending, add_special_tokens=False)
                tokens = torch.tensor([ids], device=self.core.input_device())
                logits = model(input_ids=tokens).logits[0, :-1].float()
                chosen = torch.log_softmax(logits, -1).gather(1, tokens[0, 1:, None])[:, 0]
                scores.append(float(chosen[max(len(head) - 1, 0) :].sum()))
        return scores

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        import torch

        threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


class SharedPool:
    """Several writers fill every pool between them; the pipeline ranks their candidates together.

    The base model and the JIT adapter pass different tasks (each gains some the other loses),
    so a pool shared between them holds right candidates for more messages than either alone.
    A pool of ``n`` is cut into consecutive shares, one per writer, as even as ``n`` allows
    (the first writers take the remainder; a writer whose share is empty writes nothing). On
    round 0 every share starts with its writer's greedy reply. :meth:`rows` says who writes
    which row, so each attempt and the provenance can name the writer of a candidate.

    Args:
        writers: the generators, in order (at least one); each keeps its own adapter and seed.

    Raises:
        ValueError: no writer, or two writers with the same adapter.
    """

    def __init__(self, writers: Sequence[ModelGenerator]) -> None:
        self.writers = list(writers)
        if not self.writers:
            raise ValueError("A shared pool needs at least one writer.")
        names = [w.adapter for w in self.writers]
        if len(set(names)) != len(names):
            raise ValueError(f"A shared pool's writers must differ; got adapters {names!r}.")
        self.model_id = self.writers[0].model_id

    @property
    def adapter(self) -> str | None:
        """The first writer's adapter (its single replies and its judge are this pool's)."""
        return self.writers[0].adapter

    def shares(self, n: int) -> list[int]:
        """How many of ``n`` rows each writer writes, in writer order."""
        base, extra = divmod(n, len(self.writers))
        return [base + (1 if i < extra else 0) for i in range(len(self.writers))]

    def rows(self, n: int, round_: int) -> list[tuple[str | None, bool]]:
        """Who writes each of ``n`` rows of a round, and whether that row is greedy."""
        layout: list[tuple[str | None, bool]] = []
        for writer, share in zip(self.writers, self.shares(n), strict=True):
            layout += [(writer.adapter, round_ == 0 and i == 0) for i in range(share)]
        return layout

    def __call__(self, prompt: str, temperature: float, attempt: int) -> str:
        """One reply, by the first writer."""
        return self.writers[0](prompt, temperature, attempt)

    def propose(self, prompt: str, n: int, temperature: float, round_: int) -> list[str]:
        """Each writer's share of ``n`` bodies, in writer order (round 0: greedy first in each)."""
        replies: list[str] = []
        for writer, share in zip(self.writers, self.shares(n), strict=True):
            if share:
                replies += writer.propose(prompt, share, temperature, round_)
        return replies

    def judge(self, context: str, endings: list[str]) -> list[float]:
        """Score endings with the first writer's model, so ties are judged by one model."""
        return self.writers[0].judge(context, endings)

    def version_of(self, adapter: str | None) -> str | None:
        """``NAME@vN`` of the version that wrote for ``adapter`` (None: base, or not yet)."""
        for writer in self.writers:
            if writer.adapter == adapter:
                return getattr(writer, "version_key", None)
        return None


def _active_key(core: Any, adapter: str | None) -> str | None:
    """``NAME@vN`` of the version of ``adapter`` the core activates now (None for the base)."""
    if adapter is None:
        return None
    return str(core.adapter(adapter).key)


def _record_id(core: Any) -> str:
    try:
        return str(core.record.model_id)
    except Exception:
        return "embedded"


#: The attention kernel while the JIT decodes on CPU. One token for four rows against a
#: 600-token cache took 74-77 ms with the plain ("eager") attention against 114-140 ms with
#: torch's SDPA on a 2-core CPU in bf16 (prefill about equal), and the JIT pools decode exactly
#: such batches. It is switched for the JIT's calls only: the two kernels round differently,
#: and the cycles' measured behaviour (greedy prose through a quality gate) is kept as it was.
JIT_CPU_ATTENTION = "eager"


@contextlib.contextmanager
def _attention(core: Any) -> Iterator[None]:
    """Run the base model with :data:`JIT_CPU_ATTENTION` on CPU, then restore its kernel."""
    model = core.model() if hasattr(core, "model") else None
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    switch = (
        before is not None
        and before != JIT_CPU_ATTENTION
        and hasattr(model, "set_attn_implementation")
        and str(core.input_device()).startswith("cpu")
    )
    if switch:
        model.set_attn_implementation(JIT_CPU_ATTENTION)  # type: ignore[union-attr]
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)  # type: ignore[union-attr]


@contextlib.contextmanager
def writing_model(core: Any, adapter: str | None) -> Iterator[Any]:
    """Yield the module to generate with: ``adapter`` hot and active, or every adapter off.

    Raises:
        AdapterError: the adapter's weights cannot be read (it would degrade to the base model,
            and the provenance would then name an adapter that did not write the method).
    """
    if adapter is not None:
        from batos_lab.errors import AdapterError

        record = core.activate_expert(adapter)
        if record.tier == "degraded":
            raise AdapterError(record.warning or f"The adapter {adapter} could not be loaded.")
        yield core.peft_model()
        return
    peft = core.peft_model()
    if peft is None:
        yield core.generator()
        return
    with peft.disable_adapter():
        yield peft


def _stopping(tokenizer: Any, start: int) -> Any:
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _LeftTheFunction(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            import torch

            texts = [
                tokenizer.decode(row[start:].tolist(), skip_special_tokens=True)
                for row in input_ids
            ]
            done = [body_finished(t) or runaway(t) for t in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_LeftTheFunction()])


def model_generator(
    image: Any, max_new_tokens: int = 160, adapter: str | None = None
) -> ModelGenerator:
    """Return a header-forcing generator over the embedded model of ``image``.

    Args:
        image: an open image with the model installed (``install_model``).
        max_new_tokens: the most body tokens per attempt.
        adapter: the expert that writes (None: the base model, every adapter off).

    Returns:
        The generator; the model loads on its first call.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from batos_lab.llm import core_for

    return ModelGenerator(core_for(image), max_new_tokens=max_new_tokens, adapter=adapter)
