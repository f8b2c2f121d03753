"""What the LLM paths of the book-understanding ops share: the call, page excerpts, hints.

Each op keeps its own prompt and output model beside it (``label_llm``, ``metadata_llm``,
``toc_llm``); this module only holds the plumbing, so the prompts stay easy to read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel

from ..pools.units import Done, WorkUnit
from ..understand.folio import clean_token, lookalike_digits
from .base import OpContext

M = TypeVar("M", bound=BaseModel)

# "12/57", "Introduction.....7": a folio or page reference glued to its neighbours
_SPLIT = re.compile(r"[\s/]+|[.·…_]{2,}")
# a row of leader dots, spaced or not: tokens that say nothing but "a page number follows"
_LEADERS = re.compile(r"(?:\s*[.·…_]){4,}\s*")
# A line longer than this is body text, not a heading or a folio line; its tail adds nothing.
MAX_LINE_CHARS = 160


async def ask(ctx: OpContext, unit: WorkUnit, system: str, user: str, schema: type[M], *,
              check: Callable[[M], None] | None = None) -> Done:
    """One structured request through the process's shared client: ``Done(schema instance, Usage)``.

    The call is recorded in ``calls`` under the unit's op, book and page, and answered from the
    cache when the same request was answered before (unless the run disabled the cache).
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                      {"role": "user", "content": user}]
    return await ctx.dispatcher.llm().structured(
        messages, schema, op=unit.op, book=unit.book, page=unit.page, job=ctx.job_id,
        store=ctx.store, use_cache=ctx.use_cache, check=check)


def text_lines(text: str) -> list[str]:
    """The non-empty lines of a page, leaders shortened, each cut to a readable length."""
    out = []
    for raw in text.splitlines():
        line = " ".join(_LEADERS.sub(" ... ", raw).split())
        if line:
            out.append(line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]")
    return out


def head_tail(text: str, head: int, tail: int) -> str:
    """The first ``head`` and last ``tail`` lines, with a marker where lines were left out."""
    lines = text_lines(text)
    if len(lines) <= head + tail:
        return "\n".join(lines)
    return "\n".join(lines[:head] + [f"[... {len(lines) - head - tail} lines left out ...]"] + lines[-tail:])


def trim(text: str, max_chars: int) -> str:
    """At most ``max_chars`` characters of a page, cut at a line end."""
    lines = text_lines(text)
    out: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        if size + len(line) + 1 > max_chars:
            out.append(f"[... {len(lines) - i} more lines ...]")
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def hint(model: BaseModel, *, exclude: set[str] | None = None) -> str:
    """The offline reading as compact JSON, to show the model what the heuristics saw."""
    return json.dumps(model.model_dump(mode="json", exclude=exclude), ensure_ascii=False)


def tokens(text: str) -> list[str]:
    """Every token of the text (split at spaces, slashes and leaders), decoration stripped."""
    return [t for raw in _SPLIT.split(text) if (t := clean_token(raw))]


def as_printed(value: str | None, text: str) -> str | None:
    """``value`` as the text prints it (its case), or None when the text does not print it.

    Guards numbers the model could have inferred instead of read: a page number counted on from
    the neighbours, a ToC page reference that is not on the page. A digit OCR misread ("l7")
    still counts as printed, in its corrected form: reading it right is what the model is for.
    """
    if value is None:
        return None
    want = clean_token(value.strip())
    if not want:
        return None
    for tok in tokens(text):
        if tok.lower() == want.lower():
            return tok
    for tok in tokens(text):
        if want.isdigit() and lookalike_digits(tok) == want:
            return want
    return None
