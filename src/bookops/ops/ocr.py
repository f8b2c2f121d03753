"""Ocr(provider): one unit per extracted page; the text goes to ``ocr_results``, the flag to the page.

The result document is written first and the page's ``ocr.<provider>`` flag after it, so a crash
between the two only means the page is read again. Engines come from
:mod:`bookops.providers.ocr_engines` (tesseract locally, an OpenAI-compatible vision model, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..pools.units import WorkResult, WorkUnit
from ..providers.ocr_engines import OcrEngine, get_ocr_engine
from ..providers.tesseract import LOW_CONF
from ..schema import HistoryEvent, OcrResult, OcrState, OpError, OpMetrics, Page, ocr_result_id, utcnow
from ..store import Store
from .base import OpContext, Operation

__all__ = ["Ocr"]


class Ocr(Operation):
    """OCR of every page by one provider; ``Ocr("tesseract")`` and ``Ocr("openai")`` can run side by side."""

    name: ClassVar[str] = "ocr"
    collections: ClassVar[tuple[str, ...]] = ("ocr_results", "pages", "books")
    depends_on: ClassVar[tuple[str, ...]] = ("extract",)

    def __init__(self, provider: str = "tesseract") -> None:
        self.engine: OcrEngine = get_ocr_engine(provider)  # fails early on an unknown name
        self.provider = provider

    def __repr__(self) -> str:
        return f"Ocr(provider={self.provider!r})"

    # keys of this provider in page documents
    @property
    def _flag(self) -> str:
        return f"ocr.{self.provider}"

    @property
    def _key(self) -> str:
        return f"ocr_{self.provider}"

    # ------------------------------------------------------------------ units
    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        pages = await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range(), where={
            "extracted": True, f"{self._flag}.done": {"$ne": True}})
        return [self._unit(ctx, p) for p in pages]

    async def units_for_page(self, ctx: OpContext, page: Page) -> list[WorkUnit]:
        state = page.ocr.get(self.provider)
        if not page.extracted or page.image is None or (state is not None and state.done):
            return []
        return [self._unit(ctx, page)]

    def _unit(self, ctx: OpContext, page: Page) -> WorkUnit:
        image = page.image
        return WorkUnit(
            id=f"ocr:{self.provider}:{ctx.book.id}:{page.page_num:04d}", op=self.name,
            provider=self.engine.pool, book=ctx.book.id, page=page.page_num,
            payload={"ocr_provider": self.provider, "image": image.path if image else None,
                     "dpi": image.dpi if image else None,
                     "lang": str(ctx.params.get("ocr_lang") or ctx.settings.ocr_lang),
                     # opt-in: enlarging low-res pages gives slightly better text at ~1.5x the time;
                     # Label and the ToC ops re-read closely where it matters (bench/README.md)
                     "upscale": bool(ctx.params.get("ocr_upscale", False))})

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        return await self.engine(ctx, unit)

    done_event: ClassVar[str | None] = "ocr.done"

    def done_where(self) -> dict[str, Any]:
        return {f"{self._flag}.done": True}

    def event_matches(self, event: HistoryEvent) -> bool:
        return event.detail.get("provider") == self.provider

    def recovered_detail(self) -> dict[str, Any]:
        return {"provider": self.provider}

    # ------------------------------------------------------------------ results
    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        unit = result.unit
        assert unit.page is not None
        fields = {k: v for k, v in dict(result.value).items() if k in OcrResult.model_fields}
        fields.setdefault("model", result.usage.model)
        ocr = OcrResult(id=ocr_result_id(unit.book, unit.page, self.provider), book=unit.book,
                        page_num=unit.page, provider=self.provider, **fields)
        await ctx.store.put_ocr_result(ocr)  # data first: the flag below never runs ahead of it

        state = OcrState(done=True, confidence=ocr.confidence, chars=len(ocr.text), at=utcnow())
        low = sum(1 for w in ocr.words if w.conf < LOW_CONF)
        usage = result.usage
        metrics = OpMetrics(
            provider=self.provider, model=usage.model or ocr.model, seconds=result.run_s,
            queue_s=result.queued_s, attempts=result.attempts, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cost_usd=usage.cost_usd,
            quality={"confidence": ocr.confidence, "chars": len(ocr.text), "words": len(ocr.words),
                     "low_conf_share": round(low / len(ocr.words), 4) if ocr.words else None,
                     "cached": usage.cached})
        await ctx.store.patch_page(unit.book, unit.page, {
            "$set": {self._flag: state.model_dump(mode="json"),
                     f"metrics.{self._key}": metrics.model_dump(mode="json")},
            "$unset": {f"errors.{self._key}": ""}})
        if self.provider not in ctx.book.ocr_providers:
            # once per run at most: the book in memory learns it too
            providers = [*ctx.book.ocr_providers, self.provider]
            await ctx.store.patch_book(unit.book, {"$set": {"ocr_providers": providers}})
            ctx.book = ctx.book.model_copy(update={"ocr_providers": providers})
        ctx.event(self.name, "ocr.done", page=unit.page, provider=self.provider,
                  confidence=ocr.confidence, chars=len(ocr.text))
        return []

    async def record_failure(self, ctx: OpContext, result: WorkResult) -> None:
        # keyed by provider, so a failed vision read does not hide a good tesseract one
        assert result.error is not None and result.unit.page is not None
        err = OpError(kind=result.error.kind.value, message=result.error.message[:500],
                      attempts=result.attempts)
        await ctx.store.patch_page(result.unit.book, result.unit.page,
                                   {"$set": {f"errors.{self._key}": err.model_dump(mode="json")}})
        ctx.event(self.name, "ocr.failed", page=result.unit.page, provider=self.provider,
                  kind=err.kind, message=err.message)

    # ------------------------------------------------------------------ progress and reruns
    async def is_complete(self, ctx: OpContext) -> bool:
        return await self.done_count(ctx) == len(ctx.page_range())

    async def done_count(self, ctx: OpContext) -> int:
        return await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": ctx.page_range()},
                                                         f"{self._flag}.done": True})

    async def reset(self, store: Store, book_id: str) -> None:
        # flags go first: a crash in between leaves results without flags, which are redone
        await store.patch_pages(book_id, {}, {"$unset": {
            self._flag: "", f"metrics.{self._key}": "", f"errors.{self._key}": ""}})
        await store.ocr_results.delete({"book": book_id, "provider": self.provider})
        book = await store.get_book(book_id)
        if book is not None and self.provider in book.ocr_providers:
            await store.patch_book(book_id, {"$set": {
                "ocr_providers": [p for p in book.ocr_providers if p != self.provider]}})

    async def results(self, ctx: OpContext) -> list[OcrResult]:
        return await ctx.store.list_ocr_results(ctx.book.id, provider=self.provider,
                                                pages=ctx.page_range())
