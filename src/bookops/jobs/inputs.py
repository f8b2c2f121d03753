"""Before a standalone run: is each operation's input made earlier in the list, or stored?

A job runs the whole chain, so its ops always find their inputs; an op run alone in a notebook
on a fresh book would otherwise find nothing to do and return nothing, silently.
"""

from __future__ import annotations

from typing import Any

from ..errors import UserError
from ..ops.base import Operation
from ..schema import Book
from ..settings import Settings
from ..store import Store

_PAGE_INPUTS: dict[str, tuple[str, str]] = {
    "extract": ("extracted", "Extract"),
    "blend": ("blended", "Blend"),
    "label": ("labeled", "Label"),
}
_BOOK_INPUTS: dict[str, str] = {"toc_find": "TocFind", "metadata": "Metadata", "toc_extract": "TocExtract"}


async def check_inputs(store: Store, settings: Settings, ops: list[Operation], book: Book,
                        pages: list[int] | None, params: dict[str, Any]) -> None:
    """Raise ``UserError`` when an operation's input is neither made earlier in ``ops`` nor stored."""
    made: set[str] = set()
    for op in ops:
        for dep in op.depends_on:
            if dep in made:
                continue
            missing = await _missing(store, settings, op, dep, book, pages, params)
            if missing:
                first = _op_label(dep)
                raise UserError(
                    f"{type(op).__name__} needs {missing} first: run {first} before it, e.g. "
                    f"run_ops([{first}(), {type(op).__name__}()], '{book.id}'), "
                    f"or the whole job: process-pages")
        made.add(op.name)


def _op_label(dep: str) -> str:
    if dep == "ocr":
        return "Ocr"
    if dep in _PAGE_INPUTS:
        return _PAGE_INPUTS[dep][1]
    return _BOOK_INPUTS.get(dep, dep)


async def _missing(store: Store, settings: Settings, op: Operation, dep: str, book: Book,
                   pages: list[int] | None, params: dict[str, Any]) -> str | None:
    """A description of the missing input, or None when at least some of it is there."""
    where: dict[str, Any]
    if dep == "ocr":
        providers = params.get("ocr_providers") or book.ocr_providers or settings.ocr_providers
        where = {f"ocr.{p}.done": True for p in providers}
        what = f"OCR by {', '.join(providers)}"
    elif dep in _PAGE_INPUTS:
        where = {_PAGE_INPUTS[dep][0]: True}
        what = f"{_PAGE_INPUTS[dep][0]} pages"
    else:
        state = book.flag(dep).state.value
        return None if state == "done" else f"{_op_label(dep)} done (its state is {state})"
    if pages is not None and op.level == "page":
        where["page_num"] = {"$in": pages}
        scope = f"pages {_span(pages)} have none"
    else:
        scope = "the book has none"
    return None if await store.count_pages(book.id, where) else f"{what} ({scope})"


def _span(pages: list[int]) -> str:
    if pages and pages == list(range(pages[0], pages[-1] + 1)):
        return f"{pages[0]}-{pages[-1]}"
    return ", ".join(str(p) for p in pages[:10]) + ("..." if len(pages) > 10 else "")
