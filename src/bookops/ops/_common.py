"""Helpers shared by the book-understanding operations: page texts, readiness, book flags."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..schema import OcrResult, Page, utcnow
from ..store import Store
from ..understand.pagetext import PageText
from .base import OpContext


def page_text(page: Page, results: list[OcrResult]) -> PageText:
    """The page as the heuristics see it: blended text, and word boxes from the richest OCR result."""
    with_words = [r for r in results if r.words]
    best = max(with_words, key=lambda r: len(r.words)) if with_words else (results[0] if results else None)
    text = page.blend.text if page.blend else (best.text if best else "")
    return PageText(page_num=page.page_num, text=text,
                    words=list(best.words) if best else [],
                    width=(best.image_width or 0) if best else (page.image.width if page.image else 0),
                    height=(best.image_height or 0) if best else (page.image.height if page.image else 0))


async def load_page_texts(store: Store, book_id: str, pages: Iterable[int] | None = None) -> list[PageText]:
    page_list = await store.list_pages(book_id, pages=pages)
    results = await store.list_ocr_results(book_id, pages=[p.page_num for p in page_list])
    by_page: dict[int, list[OcrResult]] = {}
    for r in results:
        by_page.setdefault(r.page_num, []).append(r)
    return [page_text(p, by_page.get(p.page_num, [])) for p in page_list]


async def front_pages_blended(ctx: OpContext, k: int) -> bool:
    """Pages 1..min(k, n) are all blended: consecutive front pages, never a count of any pages."""
    n = min(k, ctx.book.page_count)
    if n == 0:
        return False
    ready = await ctx.store.count_pages(ctx.book.id, {"page_num": {"$lte": n}, "blended": True})
    return ready == n


def flag_update(op: str, state: str, *, provider: str | None = None, error: str | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    upd: dict[str, Any] = {f"flags.{op}.state": state, f"flags.{op}.updated_at": utcnow().isoformat(),
                           f"flags.{op}.error": error}
    if provider is not None:
        upd[f"flags.{op}.provider"] = provider
    upd.update(extra or {})
    return {"$set": upd}


async def clear_stale(ctx: OpContext, op: str) -> None:
    book = await ctx.refresh_book()
    if op in book.stale:
        await ctx.store.patch_book(book.id, {"$set": {"stale": [s for s in book.stale if s != op]}})


async def flag_state(store: Store, book_id: str, op: str) -> str:
    book = await store.get_book(book_id)
    return book.flag(op).state.value if book else "not_started"
