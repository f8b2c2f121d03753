"""Helpers shared by the book-understanding operations: page texts, readiness, book flags."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ProviderError
from ..providers.ocr_engines import tesseract_pass
from ..schema import OcrResult, Page, Word, utcnow
from ..store import Store
from ..understand.folio import with_margin_lines
from ..understand.pagetext import PageText
from .base import OpContext

log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------ targeted OCR passes

def _pass_file(ctx: OpContext, kind: str, page_num: int) -> Path:
    # beside the page images: removed with the book, never inside the store's documents
    return ctx.settings.books_dir / ctx.book.id / "ocr-passes" / f"{kind}-{page_num:04d}.json"


def _cached_pass(ctx: OpContext, kind: str, page: Page) -> dict[str, Any] | None:
    if page.image is None:
        return None
    try:
        doc = json.loads(_pass_file(ctx, kind, page.page_num).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # a page image replaced since (a re-extract) makes the reading stale
    if not isinstance(doc, dict) or doc.get("sha256") != page.image.sha256:
        return None
    fields = doc.get("fields")
    return fields if isinstance(fields, dict) else None


async def page_pass(ctx: OpContext, kind: str, page: Page) -> dict[str, Any] | None:
    """A targeted tesseract re-read of the page image (``margin`` or ``careful``), cached on disk.

    None when the page has no image or the pass failed: the callers then go on with the page's
    ordinary OCR, which is what they had before the pass existed.
    """
    cached = _cached_pass(ctx, kind, page)
    if cached is not None or page.image is None:
        return cached
    image = Path(page.image.path)
    image = image if image.is_absolute() else ctx.settings.home / image
    try:
        fields = await tesseract_pass(ctx, kind, image, page.image.dpi)
    except ProviderError as exc:
        log.warning("tesseract %s pass failed on page %s: %s", kind, page.page_num, exc)
        return None
    path = _pass_file(ctx, kind, page.page_num)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"sha256": page.image.sha256, "fields": fields}), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # a cache only: the reading itself is good
        log.warning("could not cache the %s pass of page %s: %s", kind, page.page_num, exc)
    return fields


def _words(fields: dict[str, Any]) -> list[Word]:
    return [Word.model_validate(w) for w in fields.get("words", [])]


def margin_text(page: PageText, fields: dict[str, Any] | None) -> PageText:
    """``page`` with a margin pass's head and foot lines in place of what the page OCR read there."""
    if not fields or not fields.get("bands"):
        return page
    bands = [(int(a), int(b)) for a, b in fields["bands"]]
    return with_margin_lines(page, _words(fields), bands)


def cached_margin_text(ctx: OpContext, page: Page, text: PageText) -> PageText:
    """``text`` with the margin pass made earlier for this page, if there was one (no new OCR)."""
    return margin_text(text, _cached_pass(ctx, "margin", page))


async def careful_texts(ctx: OpContext, pages: list[Page], plain: dict[int, PageText]) -> dict[int, PageText]:
    """The careful full-page reading of these pages (in parallel in the CPU pool); a page whose pass
    failed keeps its ordinary reading from ``plain``."""
    results = await asyncio.gather(*(page_pass(ctx, "careful", p) for p in pages))
    out: dict[int, PageText] = {}
    for p, fields in zip(pages, results, strict=True):
        if fields is None:
            if p.page_num in plain:
                out[p.page_num] = plain[p.page_num]
            continue
        out[p.page_num] = PageText(page_num=p.page_num, text=str(fields.get("text", "")),
                                   words=_words(fields), width=int(fields.get("image_width") or 0),
                                   height=int(fields.get("image_height") or 0))
    return out
