"""Extract: each scan page to one image file under ``BOOKOPS_HOME/books/<book>/pages/``.

PDF pages are copied out (a page that is one embedded image) or rendered; images of an image
folder are normalised. The work runs in the CPU pool; the page document gets the image info and
``extracted: True`` in one update, so a flag never exists without its image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..errors import PermanentError
from ..pools.units import WorkResult, WorkUnit
from ..providers.images import normalise_image
from ..providers.pdf import extract_page
from ..schema import ImageInfo, OpMetrics, Page
from ..store import Store
from .base import OpContext, Operation

__all__ = ["Extract", "page_stem"]


def page_stem(ctx: OpContext, page_num: int) -> Path:
    """Where page ``page_num``'s image goes, without its extension (``.png`` or ``.jpg``)."""
    return ctx.settings.books_dir / ctx.book.id / "pages" / f"{page_num:04d}"


class Extract(Operation):
    """Page images from the book's source files; sets ``image`` and ``extracted``."""

    name: ClassVar[str] = "extract"
    collections: ClassVar[tuple[str, ...]] = ("pages",)
    provider: ClassVar[str] = "cpu"

    done_event: ClassVar[str | None] = "extract.done"

    def done_where(self) -> dict[str, Any]:
        return {"extracted": True}

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        # a page that failed in an earlier run is tried again: the runner runs a unit once per run
        pages = await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range(),
                                           where={"extracted": {"$ne": True}})
        return [self._unit(ctx, p) for p in pages]

    def _unit(self, ctx: OpContext, page: Page) -> WorkUnit:
        try:
            src = ctx.book.sources[page.source.file]
        except IndexError:
            src_path, kind = "", "missing"
        else:
            src_path, kind = src.path, src.kind
        return WorkUnit(
            id=f"extract:{ctx.book.id}:{page.page_num:04d}", op=self.name, provider=self.provider,
            book=ctx.book.id, page=page.page_num,
            payload={"source": src_path, "index": page.source.index, "kind": kind,
                     "out_stem": str(page_stem(ctx, page.page_num)),
                     "dpi": int(ctx.params.get("dpi") or ctx.settings.dpi),
                     "renderer": str(ctx.params.get("renderer") or ctx.settings.renderer)})

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> dict[str, Any]:
        p = unit.payload
        source = Path(p["source"]) if p["source"] else None
        if source is not None and not source.is_absolute():
            source = ctx.settings.home / source
        if source is None or p["kind"] not in ("pdf", "image"):
            raise PermanentError(f"page {unit.page} has no source file in book {unit.book}")
        if p["kind"] == "pdf":
            info: dict[str, Any] = await ctx.dispatcher.cpu.run(
                extract_page, str(source), int(p["index"]), p["out_stem"], int(p["dpi"]), p["renderer"])
        else:
            info = await ctx.dispatcher.cpu.run(normalise_image, str(source), p["out_stem"])
        return info

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        unit = result.unit
        assert unit.page is not None
        info = dict(result.value)
        info["path"] = _relative_to_home(Path(info["path"]), ctx.settings.home)
        image = ImageInfo.model_validate(info)
        metrics = OpMetrics(provider=unit.provider, seconds=result.run_s, queue_s=result.queued_s,
                            attempts=result.attempts,
                            quality={"method": image.method, "dpi": image.dpi,
                                     "width": image.width, "height": image.height})
        await ctx.store.patch_page(unit.book, unit.page, {
            "$set": {"image": image.model_dump(mode="json"), "extracted": True,
                     "metrics.extract": metrics.model_dump(mode="json")},
            "$unset": {"errors.extract": ""}})
        ctx.event(self.name, "extract.done", page=unit.page, method=image.method, dpi=image.dpi,
                  path=image.path)
        return []

    async def is_complete(self, ctx: OpContext) -> bool:
        return await self._count(ctx, extracted=False) == 0

    async def done_count(self, ctx: OpContext) -> int:
        return await self._count(ctx, extracted=True)

    async def _count(self, ctx: OpContext, *, extracted: bool) -> int:
        flag: Any = True if extracted else {"$ne": True}
        return await ctx.store.count_pages(ctx.book.id, {"page_num": {"$in": ctx.page_range()},
                                                         "extracted": flag})

    async def reset(self, store: Store, book_id: str) -> None:
        # the files stay: a rerun overwrites each one atomically
        await store.patch_pages(book_id, {}, {
            "$set": {"extracted": False},
            "$unset": {"image": "", "errors.extract": "", "metrics.extract": ""}})

    async def results(self, ctx: OpContext) -> list[ImageInfo | None]:
        return [p.image for p in await ctx.store.list_pages(ctx.book.id, pages=ctx.page_range())]


def _relative_to_home(path: Path, home: Path) -> str:
    try:
        return str(path.resolve().relative_to(home.resolve()))
    except ValueError:
        return str(path)  # outside the home (a custom books dir): keep it absolute
