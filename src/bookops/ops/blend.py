"""Blend: one text per page from the readings of every configured OCR provider.

A page is ready once each provider has its ``ocr.<provider>.done`` flag, or has failed on the
page for good (its error is recorded there): the readings that exist are blended. One reading is
copied as it is; several go through the outlier check and then an LLM (when configured for
``blend``) or the offline weighted vote. A page blended before a new OCR source finished is blended again:
readiness compares the sources of the stored blend with the providers now done.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, Field

from ..errors import InvalidOutput, PermanentError
from ..pools.units import Done, Usage, WorkResult, WorkUnit
from ..providers.blend_vote import Reading, drop_outliers, vote
from ..schema import Blend as BlendResult
from ..schema import OcrResult, OpMetrics, Page
from ..store import Store
from .base import OpContext, Operation

__all__ = ["Blend", "BlendedText", "blend_messages"]


class BlendedText(BaseModel):
    """What the LLM answers."""

    text: str = Field(description="the full text of the page, once, line by line as printed")


# What each engine is good and bad at, so the model knows whom to trust for what.
_STRENGTHS = {
    "tesseract": ("Tesseract OCR. Trust it for exact characters, punctuation, digits, capitals and the "
                  "line layout. Its weakness: faint, smudged or broken words come out as wrong letters "
                  "or stray symbols."),
    "openai": ("A vision language model. Trust it for words that are faint, damaged or oddly printed. "
               "Its weakness: it may modernise spelling, fix the author's typos, skip or repeat lines, "
               "or write words that are not on the page."),
}
_OTHER = "Another OCR engine, of unknown strengths."

_SYSTEM = ("You reconcile independent OCR readings of one scanned page of a printed book into a "
           "single faithful transcription. You never add, summarise or comment.")

_INSTRUCTIONS = """\
Write the text of this page once, exactly as it is printed:
- Follow the line breaks and layout of {base}.
- Where the readings disagree on a word, pick what the printed letters most likely are, using each
  source's strengths above and the sense of the sentence.
- Keep a word or line that only one source has if it plausibly belongs on the page; drop repeats
  and anything that reads like commentary.
- Keep the original spelling, punctuation, hyphens at line ends, page numbers and running heads.
Answer with JSON: {{"text": "<the whole page>"}}."""

# The blended text may not outgrow its longest source by much: growth is invention.
_MAX_GROWTH = 1.25
_GROWTH_SLACK = 40


def blend_messages(readings: list[Reading]) -> list[dict[str, Any]]:
    parts = [f"Here are {len(readings)} OCR readings of the same page.\n"]
    for i, r in enumerate(readings, 1):
        parts.append(f"### Reading {i}: {r.source}\n{_STRENGTHS.get(r.source, _OTHER)}\n"
                     f"<<<\n{r.text}\n>>>\n")
    base = next((r.source for r in readings if r.source == "tesseract"), readings[0].source)
    parts.append(_INSTRUCTIONS.format(base=base))
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": "\n".join(parts)}]


def reading_of(result: OcrResult) -> Reading:
    # tesseract's text is its words joined in order, so word confidences line up with tokens
    confs = [w.conf for w in result.words] if result.words else None
    return Reading(source=result.provider, text=result.text, confidence=result.confidence, confs=confs)


class Blend(Operation):
    """Blends the OCR readings of each page into ``page.blend`` and sets ``blended``."""

    name: ClassVar[str] = "blend"
    level: ClassVar[str] = "page"  # type: ignore[assignment]
    collections: ClassVar[tuple[str, ...]] = ("pages",)
    depends_on: ClassVar[tuple[str, ...]] = ("ocr",)

    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider  # "openai" or "offline"; None: from the settings

    # ------------------------------------------------------------------ readiness
    @staticmethod
    def providers(ctx: OpContext) -> list[str]:
        """The OCR providers whose readings a page needs before it is blended (job params, else settings)."""
        return list(ctx.params.get("ocr_providers") or ctx.settings.ocr_providers)

    @staticmethod
    def _done(page: Page, providers: list[str]) -> list[str] | None:
        """The providers to blend, once no other provider is still to come for this page.

        A provider whose error is recorded on the page (``errors.ocr_<provider>``, written when
        its unit failed for good) is not coming: waiting for it would hold this page, and every
        book-level op that needs consecutive front pages blended, for ever (a vision guard that
        keeps rejecting a blank page is enough). A later run that reads the page clears the
        error and sets the flag, and the page is blended again with the new source.
        """
        done = [p for p in providers if (st := page.ocr.get(p)) is not None and st.done]
        pending = [p for p in providers if p not in done and f"ocr_{p}" not in page.errors]
        return done if done and not pending else None

    @staticmethod
    def _current(page: Page, done: list[str]) -> bool:
        if not page.blended or page.blend is None:
            return False
        return set(done) <= set(page.blend.sources) | set(page.blend.dropped)

    def _unit(self, ctx: OpContext, page: Page) -> WorkUnit | None:
        done = self._done(page, self.providers(ctx))
        if done is None or self._current(page, done):
            return None
        llm = self.provider or ctx.settings.provider_for(self.name)
        provider = "openai" if len(done) > 1 and llm == "openai" else "offline"
        # the source set is in the id, so a page that gains a source is a new unit within a run
        return WorkUnit(id=f"blend:{ctx.book.id}:{page.page_num:04d}:{'+'.join(sorted(done))}",
                        op=self.name, provider=provider, book=ctx.book.id, page=page.page_num,
                        payload={"sources": done})

    done_event: ClassVar[str | None] = "blend.done"

    def done_where(self) -> dict[str, Any]:
        return {"blended": True}

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        pages = await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range())
        return [u for p in pages if (u := self._unit(ctx, p)) is not None]

    async def units_for_page(self, ctx: OpContext, page: Page) -> list[WorkUnit]:
        unit = self._unit(ctx, page)
        return [unit] if unit is not None else []

    # ------------------------------------------------------------------ work
    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Done:
        assert unit.page is not None
        sources: list[str] = list(unit.payload["sources"])
        found = {r.provider: r for r in await ctx.store.get_ocr_results(unit.book, unit.page)}
        missing = [p for p in sources if p not in found]
        if missing:
            raise PermanentError(f"page {unit.page}: OCR flagged done but no result from "
                                 f"{', '.join(missing)}")
        readings = [reading_of(found[p]) for p in sources]
        kept, dropped = drop_outliers(readings)
        out = [r.source for r in dropped]
        if len(kept) == 1:
            return Done(BlendResult(text=kept[0].text, sources=[kept[0].source], dropped=out,
                                    method="single"), Usage())
        used = [r.source for r in kept]
        if len({" ".join(r.text.split()) for r in kept}) == 1:  # all agree: nothing to ask anyone
            return Done(BlendResult(text=kept[0].text, sources=used, dropped=out, method="vote",
                                    agreement=1.0), Usage())
        voted = vote(kept)
        if unit.provider != "openai":
            return Done(BlendResult(text=voted.text, sources=used, dropped=out, method="vote",
                                    agreement=voted.agreement), Usage())
        return await self._llm(ctx, unit, kept, used, out, voted.agreement)

    async def _llm(self, ctx: OpContext, unit: WorkUnit, kept: list[Reading], used: list[str],
                   dropped: list[str], agreement: float) -> Done:
        longest = max(r.size for r in kept)

        def check(answer: BlendedText) -> None:
            size = len(" ".join(answer.text.split()))
            if size > _MAX_GROWTH * longest + _GROWTH_SLACK:
                raise InvalidOutput(f"blended text has {size} characters, the longest reading {longest}; "
                                    "keep only text that a reading has")
            if longest > 0 and size == 0:
                raise InvalidOutput("blended text is empty although the readings are not")

        done = await ctx.dispatcher.llm().structured(
            blend_messages(kept), BlendedText, op=self.name, book=unit.book, page=unit.page,
            job=ctx.job_id, store=ctx.store, use_cache=ctx.use_cache, check=check)
        text = done.value.text
        return Done(BlendResult(text=text, sources=used, dropped=dropped, method="llm", agreement=agreement),
                    done.usage)

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        unit = result.unit
        assert unit.page is not None
        blend: BlendResult = result.value
        usage = result.usage
        metrics = OpMetrics(provider=unit.provider, model=usage.model, seconds=result.run_s,
                            queue_s=result.queued_s, attempts=result.attempts,
                            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                            cost_usd=usage.cost_usd,
                            quality={"method": blend.method, "agreement": blend.agreement,
                                     "sources": len(blend.sources), "dropped": ",".join(blend.dropped),
                                     "chars": len(blend.text), "cached": usage.cached})
        # text and flag in one update: never a blended page without its text
        await ctx.store.patch_page(unit.book, unit.page, {
            "$set": {"blend": blend.model_dump(mode="json"), "blended": True,
                     "metrics.blend": metrics.model_dump(mode="json")},
            "$unset": {"errors.blend": ""}})
        ctx.event(self.name, "blend.done", page=unit.page, method=blend.method, sources=blend.sources,
                  dropped=blend.dropped, agreement=blend.agreement)
        return []

    # ------------------------------------------------------------------ progress and reruns
    async def _current_pages(self, ctx: OpContext) -> tuple[int, int]:
        providers = self.providers(ctx)
        pages = await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range())
        current = 0
        for p in pages:
            done = self._done(p, providers)
            current += int(done is not None and self._current(p, done))
        return current, len(pages)

    async def is_complete(self, ctx: OpContext) -> bool:
        current, total = await self._current_pages(ctx)
        return current == total

    async def done_count(self, ctx: OpContext) -> int:
        return (await self._current_pages(ctx))[0]

    async def reset(self, store: Store, book_id: str) -> None:
        await store.patch_pages(book_id, {}, {
            "$set": {"blended": False},
            "$unset": {"blend": "", "errors.blend": "", "metrics.blend": ""}})

    async def results(self, ctx: OpContext) -> list[BlendResult | None]:
        return [p.blend for p in await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range())]
