"""TocExtract: the entries of the printed ToC, tied to scan pages through the page labels."""

from __future__ import annotations

from typing import Any, ClassVar

from ..pools.units import Done, Usage, WorkUnit
from ..schema import OpMetrics, PageLabel, Toc, TocEntry
from ..store import Store
from ..understand.toc_parse import parse_toc, resolve_scan_pages
from ._book_op import BookOperation
from ._common import careful_texts, load_page_texts
from .base import OpContext


class TocExtract(BookOperation):
    """Parses every entry of the ToC pages; waits for the ToC range and the book's page labels."""

    name: ClassVar[str] = "toc_extract"
    collections: ClassVar[tuple[str, ...]] = ("books", "tocs")
    depends_on: ClassVar[tuple[str, ...]] = ("toc_find", "label")

    async def ready(self, ctx: OpContext) -> bool:
        book = await ctx.refresh_book()
        if book.flag("toc_find").state.value != "done":
            return False
        toc = await ctx.store.get_toc(ctx.book.id)
        if toc is None or not toc.pages:
            return False
        blended = await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": toc.pages}, "blended": True})
        if blended < len(toc.pages):
            return False
        # scan pages resolve through the labels: wait for the book-wide label pass when it is running
        return book.flag("label").state.value == "done" or not ctx.params.get("wait_for_labels", True)

    async def is_complete(self, ctx: OpContext) -> bool:
        book = await ctx.refresh_book()
        if book.flag("toc_find").state.value == "done":
            toc = await ctx.store.get_toc(ctx.book.id)
            if toc is not None and not toc.found:
                return True
        return book.flag(self.name).state.value == "done"

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        toc = await ctx.store.get_toc(ctx.book.id)
        assert toc is not None
        plain = await load_page_texts(ctx.store, ctx.book.id, toc.pages)
        # the ToC pages read carefully (cached by TocFind): entries need the page-number column
        docs = await ctx.store.list_pages(ctx.book.id, pages=toc.pages)
        careful = await careful_texts(ctx, docs, {p.page_num: p for p in plain})
        pages = [careful.get(p.page_num, p) for p in plain]
        entries = parse_toc(pages)
        method = "offline"
        usage: Usage | None = None
        if unit.provider == "openai":
            from .toc_llm import llm_toc_extract

            done = await llm_toc_extract(ctx, unit, pages, entries)
            entries, usage, method = done.value, done.usage, "llm"
        labels = await self._labels(ctx)
        value = (resolve_scan_pages(entries, labels), method)
        # Done carries the LLM's tokens and cost into the result and the op's metrics
        return Done(value, usage) if usage is not None else value

    async def _labels(self, ctx: OpContext) -> list[PageLabel]:
        """Labels for scan pages 1..n in order (an empty label where a page has none yet)."""
        by_num = {p.page_num: p.label for p in await ctx.store.list_pages(ctx.book.id)}
        return [by_num.get(i) or PageLabel() for i in range(1, ctx.book.page_count + 1)]

    async def store_value(self, ctx: OpContext, value: tuple[list[TocEntry], str],
                          metrics: OpMetrics) -> dict[str, Any]:
        entries, method = value
        toc = await ctx.store.get_toc(ctx.book.id)
        assert toc is not None
        toc.entries = entries
        toc.extracted_by = method
        await ctx.store.put_toc(toc)
        unresolved = sum(1 for e in entries if e.printed_page and e.scan_page is None)
        metrics.quality.update({"entries": len(entries),
                                "without_page": sum(1 for e in entries if not e.printed_page),
                                "unresolved": unresolved, "method": method})
        return {"entries": len(entries), "unresolved": unresolved, "method": method}

    async def reset(self, store: Store, book_id: str) -> None:
        toc = await store.get_toc(book_id)
        if toc is not None:
            toc.entries = []
            toc.extracted_by = None
            await store.put_toc(toc)
        await store.patch_book(book_id, {"$unset": {"flags.toc_extract": "", "metrics.toc_extract": ""}})

    async def results(self, ctx: OpContext) -> Toc | None:
        return await ctx.store.get_toc(ctx.book.id)
