"""TocFind: which scan pages print the table of contents, or none."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel

from ..pools.units import WorkUnit
from ..schema import OpMetrics, Toc
from ..store import Store
from ..understand.pagetext import PageText
from ..understand.toc_find import find_toc, looks_like_prose, toc_candidates
from ._book_op import BookOperation
from ._common import careful_texts, front_pages_blended, load_page_texts
from .base import OpContext

FRONT_PAGES = 30
# A ToC longer than the candidates is followed page by page, up to this many extra careful reads.
MAX_EXTRA_PAGES = 24


class TocLocation(BaseModel):
    pages: list[int]
    confidence: float
    method: str


class TocFind(BookOperation):
    """Finds the ToC among pages 1..min(30, n); ``toc_pages`` in the job params forces a range."""

    name: ClassVar[str] = "toc_find"
    collections: ClassVar[tuple[str, ...]] = ("books", "tocs")
    depends_on: ClassVar[tuple[str, ...]] = ("blend",)

    async def ready(self, ctx: OpContext) -> bool:
        if ctx.params.get("toc_pages"):
            return True
        return await front_pages_blended(ctx, FRONT_PAGES)

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        forced = ctx.params.get("toc_pages")
        if forced:
            return TocLocation(pages=sorted(int(p) for p in forced), confidence=1.0, method="forced")
        n = min(FRONT_PAGES, ctx.book.page_count)
        pages = await load_page_texts(ctx.store, ctx.book.id, range(1, n + 1))
        pages, found, confidence = await self._find_carefully(ctx, pages)
        loc = TocLocation(pages=list(found), confidence=confidence, method="offline")
        if unit.provider == "openai":
            from .toc_llm import llm_toc_find

            return await llm_toc_find(ctx, unit, pages, loc)
        return loc

    async def _find_carefully(self, ctx: OpContext, pages: list[PageText]
                              ) -> tuple[list[PageText], list[int], float]:
        """find_toc on the candidate pages re-read carefully, extended page by page past the last
        page found while the next one still belongs to the ToC. Returns the pages as read."""
        nums = [q.page_num for q in pages]
        docs = {p.page_num: p for p in await ctx.store.list_pages(ctx.book.id, pages=nums)}
        plain = {p.page_num: p for p in pages}
        careful: dict[int, PageText] = {}
        todo = [k for k in toc_candidates(pages) if not looks_like_prose(plain[k])]
        found: list[int] = []
        confidence = 0.9
        for _ in range(MAX_EXTRA_PAGES + 1):
            careful.update(await careful_texts(ctx, [docs[k] for k in todo if k in docs], plain))
            merged = [careful.get(p.page_num, p) for p in pages]
            found, confidence = find_toc(merged)
            nxt = found[-1] + 1 if found else None
            if nxt is None or nxt not in plain or nxt in careful:
                return merged, found, confidence
            if looks_like_prose(plain[nxt]):
                return merged, found, confidence
            todo = [nxt]
        return [careful.get(p.page_num, p) for p in pages], found, confidence

    async def store_value(self, ctx: OpContext, value: TocLocation, metrics: OpMetrics) -> dict[str, Any]:
        await ctx.store.put_toc(Toc(id=ctx.book.id, book=ctx.book.id, found=bool(value.pages),
                                    pages=value.pages, confidence=value.confidence, found_by=value.method))
        metrics.quality.update({"found": bool(value.pages), "toc_pages": len(value.pages),
                                "confidence": value.confidence, "method": value.method})
        return {"pages": value.pages, "confidence": value.confidence, "method": value.method}

    async def reset(self, store: Store, book_id: str) -> None:
        await store.delete_toc(book_id)
        await store.patch_book(book_id, {"$unset": {"flags.toc_find": "", "metrics.toc_find": ""}})

    async def results(self, ctx: OpContext) -> Toc | None:
        return await ctx.store.get_toc(ctx.book.id)
