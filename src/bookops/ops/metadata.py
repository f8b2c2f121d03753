"""Metadata: title, authors, publisher, year, ISBN... from the front matter, once it is blended."""

from __future__ import annotations

from typing import Any, ClassVar

from ..pools.units import WorkUnit
from ..schema import BookMetadata, OpMetrics
from ..store import Store
from ..understand.metadata import extract_metadata
from ._book_op import BookOperation
from ._common import front_pages_blended, load_page_texts
from .base import OpContext

FRONT_PAGES = 20


class Metadata(BookOperation):
    """Bibliographic metadata from pages 1..min(20, n), as printed."""

    name: ClassVar[str] = "metadata"
    depends_on: ClassVar[tuple[str, ...]] = ("blend",)

    async def ready(self, ctx: OpContext) -> bool:
        return await front_pages_blended(ctx, FRONT_PAGES)

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        n = min(FRONT_PAGES, ctx.book.page_count)
        pages = await load_page_texts(ctx.store, ctx.book.id, range(1, n + 1))
        meta = extract_metadata(pages)
        meta.method = "offline"
        if unit.provider == "openai":
            from .metadata_llm import llm_metadata

            return await llm_metadata(ctx, unit, pages, meta)
        return meta

    async def store_value(self, ctx: OpContext, value: BookMetadata, metrics: OpMetrics) -> dict[str, Any]:
        await ctx.store.patch_book(ctx.book.id, {"$set": {"metadata": value.model_dump(mode="json")}})
        wanted = ("title", "authors", "publisher", "year", "isbn")
        metrics.quality.update({"fields_found": sum(1 for f in wanted if getattr(value, f)),
                                "title_found": bool(value.title), "isbn_found": bool(value.isbn),
                                "source_pages": len(value.source_pages), "method": value.method})
        return {"title": value.title, "authors": value.authors, "year": value.year}

    async def reset(self, store: Store, book_id: str) -> None:
        await store.patch_book(book_id, {"$unset": {"metadata": "", "flags.metadata": "",
                                                    "metrics.metadata": ""}})

    async def results(self, ctx: OpContext) -> BookMetadata | None:
        return (await ctx.refresh_book()).metadata
