"""Export a book: JSON in the corpus ground-truth shape, or Markdown as one document."""

from __future__ import annotations

from typing import Any

from .errors import UserError
from .schema import Book, Page, Toc
from .store import Store

FORMATS = ("json", "markdown")


async def _load(store: Store, book_id: str) -> tuple[Book, list[Page], Toc | None]:
    book = await store.get_book(book_id)
    if book is None:
        raise UserError(f"no book '{book_id}'; see `bookops book list`")
    return book, await store.list_pages(book_id), await store.get_toc(book_id)


def _printed(page: Page | None) -> str | None:
    return page.label.printed_page if page is not None and page.label is not None else None


def _best_text(page: Page) -> str:
    return page.blend.text if page.blend else ""


async def export_json(store: Store, book_id: str) -> dict[str, Any]:
    """Keys of ``shared/corpus`` ground truth, so its ``score.py`` scores the export as it is."""
    book, pages, toc = await _load(store, book_id)
    by_num = {p.page_num: p for p in pages}
    meta = book.metadata
    return {
        "id": book.id,
        "page_count": book.page_count,
        "toc_pages": toc.pages if toc else [],
        "toc_entries": [
            {"title": e.title, "level": e.level, "printed_page": e.printed_page, "number": e.number,
             "scan_page": e.scan_page}
            for e in (toc.entries if toc else [])
        ],
        "page_labels": [_printed(by_num.get(i)) for i in range(1, book.page_count + 1)],
        "metadata": {
            "title": meta.title if meta else None,
            "subtitle": meta.subtitle if meta else None,
            "authors": meta.authors if meta else [],
            "editors": meta.editors if meta else [],
            "publisher": meta.publisher if meta else None,
            "year": meta.year if meta else None,
            "isbn": meta.isbn if meta else None,
        },
        "pages": [_best_text(by_num[i]) if i in by_num else "" for i in range(1, book.page_count + 1)],
    }


async def export_markdown(store: Store, book_id: str) -> str:
    """The book as one document: ToC entries become headings at their scan pages."""
    book, pages, toc = await _load(store, book_id)
    headings: dict[int, list[tuple[int, str]]] = {}
    for e in toc.entries if toc else []:
        if e.scan_page is not None:
            headings.setdefault(e.scan_page, []).append((e.level, e.title))
    title = book.metadata.title if book.metadata and book.metadata.title else book.name
    out = [f"# {title}", ""]
    if book.metadata and book.metadata.authors:
        out += [f"*{', '.join(book.metadata.authors)}*", ""]
    for page in pages:
        printed = page.label.printed_page if page.label else None
        marker = f"page {printed}" if printed else "unnumbered page"
        out.append(f"<!-- scan page {page.page_num}: {marker} -->")
        for level, heading in headings.get(page.page_num, []):
            out += ["", f"{'#' * min(level + 1, 6)} {heading}", ""]
        text = _best_text(page).strip()
        if text:
            out += ["", text, ""]
        out.append("---")
    return "\n".join(out) + "\n"
