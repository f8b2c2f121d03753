"""Label: per page, the printed page number, running header and kind of content.

Each page is read on its own (offline from the first and last lines and the word boxes, or by an
LLM given the offline reading as a hint); once every wanted page is read, one book-wide pass makes
the printed numbers consistent from the per-page readings (``read_as``), so a rerun starts over
from what was read rather than from an earlier repair.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..pools.units import PRIORITY_BOOK, WorkResult, WorkUnit
from ..schema import OpMetrics, Page, PageLabel
from ..store import Store
from ..understand.folio import folio_tokens
from ..understand.labels import fix_label_sequence, read_page_label, wants_margin_pass
from ._common import cached_margin_text, flag_update, load_page_texts, margin_text, page_pass, page_text
from .base import OpContext, Operation

SEQUENCE_UNIT = "label:sequence"
_SEQUENCE_CHUNK = 50  # pages whose OCR words the sequence pass holds at once


class Label(Operation):
    """Reads page labels; then a book-wide pass repairs the number sequence."""

    name: ClassVar[str] = "label"
    level: ClassVar[str] = "page"  # type: ignore[assignment]
    collections: ClassVar[tuple[str, ...]] = ("pages", "books")
    depends_on: ClassVar[tuple[str, ...]] = ("blend",)

    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider

    done_event: ClassVar[str | None] = "label.done"

    def done_where(self) -> dict[str, Any]:
        return {"labeled": True}

    def _provider(self, ctx: OpContext) -> str:
        return self.provider or ctx.settings.provider_for("label")

    def _page_unit(self, ctx: OpContext, page_num: int) -> WorkUnit:
        return WorkUnit(id=f"label:{ctx.book.id}:{page_num:04d}", op=self.name, provider=self._provider(ctx),
                        book=ctx.book.id, page=page_num)

    def _sequence_unit(self, ctx: OpContext) -> WorkUnit:
        return WorkUnit(id=f"{SEQUENCE_UNIT}:{ctx.book.id}", op=self.name, provider="offline",
                        book=ctx.book.id, priority=PRIORITY_BOOK, payload={"sequence": True})

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        pages = await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range(),
                                           where={"blended": True, "labeled": False})
        # a page whose label failed in an earlier run is tried again (the runner never repeats a
        # unit within one run)
        units = [self._page_unit(ctx, p.page_num) for p in pages]
        if not units and await self._sequence_due(ctx):
            units.append(self._sequence_unit(ctx))
        return units

    async def units_for_page(self, ctx: OpContext, page: Page) -> list[WorkUnit]:
        if page.blended and not page.labeled:
            return [self._page_unit(ctx, page.page_num)]
        return []

    async def _sequence_due(self, ctx: OpContext) -> bool:
        book = await ctx.refresh_book()
        if book.flag(self.name).state.value == "done":
            return False
        wanted = ctx.page_range()
        labeled = await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": wanted}, "labeled": True})
        return labeled > 0 and labeled == len(wanted)

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        if unit.payload.get("sequence"):
            return await self._sequence(ctx)
        assert unit.page is not None
        page = await ctx.store.get_page(ctx.book.id, unit.page)
        assert page is not None
        text = page_text(page, await ctx.store.get_ocr_results(ctx.book.id, unit.page))
        label = read_page_label(text)
        margins = text
        if wants_margin_pass(text):
            # a closer read of the head and foot lines only: cheap next to the page's OCR, and
            # only for pages where the folio is missing or unsure
            margins = margin_text(text, await page_pass(ctx, "margin", page))
            again = read_page_label(margins)
            if again.printed_page is not None:
                label = again
        label.read_as = label.printed_page
        label.method = "offline"
        tokens = folio_tokens(margins)  # kept whichever reader labels the page
        if unit.provider == "openai":
            from .label_llm import llm_label

            done = await llm_label(ctx, unit, text, label)
            done.value.folio_tokens = tokens
            return done
        label.folio_tokens = tokens
        return label

    async def _sequence(self, ctx: OpContext) -> list[tuple[int, PageLabel]]:
        pages = await ctx.store.list_pages(ctx.book.id, where={"labeled": True})
        labels = [p.label or PageLabel() for p in pages]
        for lab in labels:
            lab.printed_page = lab.read_as
            lab.sequence_fixed = False
        # the repair looks for folio-like tokens (those of the margin re-reads too): each label
        # keeps its page's; a label stored before they were kept has its page read again
        cands = {p.page_num: lab.folio_tokens for p, lab in zip(pages, labels, strict=True)
                 if lab.folio_tokens is not None}
        older = [p for p in pages if p.page_num not in cands]
        # in chunks: every page's word boxes at once held 230 MB for a 400-page book
        for i in range(0, len(older), _SEQUENCE_CHUNK):
            chunk = older[i:i + _SEQUENCE_CHUNK]
            texts = await load_page_texts(ctx.store, ctx.book.id, [p.page_num for p in chunk])
            for p, t in zip(chunk, texts, strict=True):
                cands[p.page_num] = folio_tokens(cached_margin_text(ctx, p, t))
        fixed = fix_label_sequence(labels, [], candidates=cands)
        return [(p.page_num, lab) for p, lab in zip(pages, fixed, strict=True)]

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        unit = result.unit
        if unit.payload.get("sequence"):
            changed = 0
            for page_num, lab in result.value:
                # the page's label metrics learn what the pass decided (printed number, repaired or not)
                await ctx.store.patch_page(ctx.book.id, page_num, {"$set": {
                    "label": lab.model_dump(mode="json"),
                    "metrics.label.quality.printed_page": lab.printed_page,
                    "metrics.label.quality.printed_page_found": lab.printed_page is not None,
                    "metrics.label.quality.sequence_fixed": lab.sequence_fixed}})
                changed += int(lab.sequence_fixed)
            metrics = OpMetrics(provider=unit.provider, seconds=result.run_s, queue_s=result.queued_s,
                                attempts=result.attempts,
                                quality={"pages": len(result.value), "repaired": changed,
                                         "with_number": sum(1 for _, lab in result.value
                                                            if lab.printed_page is not None)})
            await ctx.store.patch_book(ctx.book.id, flag_update(
                self.name, "done", provider="offline",
                extra={f"metrics.{self.name}": metrics.model_dump(mode="json")}))
            ctx.event(self.name, "label.sequence", pages=len(result.value), repaired=changed)
            return []
        assert unit.page is not None
        label: PageLabel = result.value
        metrics = OpMetrics(provider=unit.provider, model=result.usage.model, seconds=result.run_s,
                            queue_s=result.queued_s, attempts=result.attempts,
                            prompt_tokens=result.usage.prompt_tokens,
                            completion_tokens=result.usage.completion_tokens, cost_usd=result.usage.cost_usd,
                            quality={"printed_page": label.printed_page,
                                     "printed_page_found": label.printed_page is not None,
                                     "read_as": label.read_as, "sequence_fixed": False,
                                     "content_type": label.content_type.value,
                                     "cached": result.usage.cached})
        await ctx.store.patch_page(ctx.book.id, unit.page, {
            "$set": {"label": label.model_dump(mode="json"), "labeled": True,
                     "metrics.label": metrics.model_dump(mode="json")},
            "$unset": {"errors.label": ""}})
        ctx.event(self.name, "label.done", page=unit.page, printed_page=label.printed_page)
        # A page labeled after the pass (a rerun of some pages) makes the pass due again.
        await ctx.store.patch_book(ctx.book.id, flag_update(self.name, "running"))
        return [self._sequence_unit(ctx)] if await self._sequence_due(ctx) else []

    async def is_complete(self, ctx: OpContext) -> bool:
        wanted = ctx.page_range()
        labeled = await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": wanted}, "labeled": True})
        book = await ctx.refresh_book()
        return labeled == len(wanted) and book.flag(self.name).state.value == "done"

    async def total(self, ctx: OpContext) -> int:
        return len(ctx.page_range()) + 1  # every page, then the book-wide sequence pass

    async def done_count(self, ctx: OpContext) -> int:
        labeled = await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": ctx.page_range()},
                                                            "labeled": True})
        book = await ctx.refresh_book()
        return labeled + int(book.flag(self.name).state.value == "done")

    async def reset(self, store: Store, book_id: str) -> None:
        await store.patch_pages(book_id, {}, {"$set": {"labeled": False}, "$unset": {
            "label": "", "errors.label": "", "metrics.label": ""}})
        await store.patch_book(book_id, {"$unset": {"flags.label": "", "metrics.label": ""}})

    async def results(self, ctx: OpContext) -> list[PageLabel | None]:
        return [p.label for p in await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range())]

