"""The notebook and script facade: ``lib = bookops.open()``, then ``lib.add``, ``lib.run``...

Async is the one implementation (``aadd``, ``arun``, ...); the plain names are thin blocking
wrappers that also work inside Jupyter's running event loop. A library holds settings, not a
connection: each call opens the store for the loop it runs on, so two libraries on different homes
in one process never share anything.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ._sync import run_sync
from .errors import UserError
from .schema import Book, HistoryEvent, JobRecord, OcrResult, Page, Toc
from .settings import Settings
from .store import Store, open_store

__all__ = ["Library", "open"]


class Library:
    """A bookops library: one store (embedded home or MongoDB) and its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores: dict[int, Store] = {}

    def __repr__(self) -> str:
        where = "mongodb" if self.settings.mongo_uri else str(self.settings.home)
        return f"<bookops.Library {where}>"

    # ------------------------------------------------------------------ store per event loop
    async def astore(self) -> Store:
        """The store connected for the running event loop (one per loop; clients are loop-bound)."""
        loop_id = id(asyncio.get_running_loop())
        store = self._stores.get(loop_id)
        if store is None:
            store = self._stores[loop_id] = await open_store(self.settings)
        return store

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Store]:
        """A store for one call; closed after when the call made its own loop (sync wrappers)."""
        loop_id = id(asyncio.get_running_loop())
        if loop_id in self._stores:
            yield self._stores[loop_id]
            return
        store = await open_store(self.settings)
        try:
            yield store
        finally:
            await store.close()

    async def aclose(self) -> None:
        store = self._stores.pop(id(asyncio.get_running_loop()), None)
        if store is not None:
            await store.close()

    # ------------------------------------------------------------------ books
    async def aadd(self, *paths: str | Path, book_id: str | None = None) -> Book:
        """Add a book from PDFs or a folder of page images; the same content gives the same id."""
        from .ingest import add_book

        async with self.session() as store:
            book, _ = await add_book(store, self.settings, [Path(p) for p in paths], book_id=book_id)
            return book

    def add(self, *paths: str | Path, book_id: str | None = None) -> Book:
        """Blocking :meth:`aadd`."""
        return run_sync(self.aadd(*paths, book_id=book_id))

    async def abook(self, book_id: str) -> Book:
        async with self.session() as store:
            book = await store.get_book(book_id)
        if book is None:
            raise UserError(f"no book '{book_id}'; see lib.books()")
        return book

    def book(self, book_id: str) -> Book:
        """The stored book (metadata, flags, sources)."""
        return run_sync(self.abook(book_id))

    async def abooks(self) -> list[Book]:
        async with self.session() as store:
            return await store.list_books()

    def books(self) -> list[Book]:
        """Every book in the library."""
        return run_sync(self.abooks())

    async def apages(self, book_id: str, pages: Iterable[int] | None = None) -> list[Page]:
        async with self.session() as store:
            return await store.list_pages(book_id, pages=pages)

    def pages(self, book_id: str, pages: Iterable[int] | None = None) -> list[Page]:
        """Page documents: image info, flags, blended text, label."""
        return run_sync(self.apages(book_id, pages))

    def page(self, book_id: str, page_num: int) -> Page:
        """One page document."""
        found = self.pages(book_id, [page_num])
        if not found:
            raise UserError(f"book '{book_id}' has no page {page_num}")
        return found[0]

    async def aocr(self, book_id: str, page_num: int) -> list[OcrResult]:
        async with self.session() as store:
            return await store.get_ocr_results(book_id, page_num)

    def ocr(self, book_id: str, page_num: int) -> list[OcrResult]:
        """Every OCR provider's result for one page."""
        return run_sync(self.aocr(book_id, page_num))

    async def atoc(self, book_id: str) -> Toc | None:
        async with self.session() as store:
            return await store.get_toc(book_id)

    def toc(self, book_id: str) -> Toc | None:
        """The book's table of contents, or None before TocFind ran."""
        return run_sync(self.atoc(book_id))

    async def ahistory(self, book_id: str, **filters: Any) -> list[HistoryEvent]:
        async with self.session() as store:
            return await store.list_history(book_id, **filters)

    def history(self, book_id: str, **filters: Any) -> list[HistoryEvent]:
        """History events of a book (filters: event, op, job, limit)."""
        return run_sync(self.ahistory(book_id, **filters))

    def page_image(self, page: Page) -> Path | None:
        """Absolute path of a page's image, or None before Extract."""
        return self.settings.home / page.image.path if page.image else None

    # ------------------------------------------------------------------ jobs
    async def arun(self, kind: str, book: str | Book, *, pages: Iterable[int] | None = None,
                   use_cache: bool = True, **params: Any) -> JobRecord:
        """Run a job (``process-pages``, ``rerun-toc``, ``add-ocr-source``) to its end."""
        from .jobs import run_job

        async with self.session() as store:
            if isinstance(book, str | Path) and await store.get_book(str(book)) is None \
                    and Path(book).exists():
                from .ingest import add_book

                book, _ = await add_book(store, self.settings, [Path(book)])
            params.setdefault("ocr_providers", self.settings.ocr_providers)
            job, _summary = await run_job(kind, store, self.settings, book, params=params,
                                          pages=list(pages) if pages is not None else None,
                                          use_cache=use_cache)
            return job

    def run(self, kind: str, book: str | Book, *, pages: Iterable[int] | None = None,
            use_cache: bool = True, **params: Any) -> JobRecord:
        """Blocking :meth:`arun`."""
        return run_sync(self.arun(kind, book, pages=pages, use_cache=use_cache, **params))


def open(home: str | Path | None = None, *, mongo_uri: str | None = None, **settings: Any) -> Library:  # noqa: A001
    """Open a library: the embedded store under ``home`` (default ``~/.bookops``) or MongoDB.

    Other keyword arguments override settings fields (e.g. ``ocr_lang="deu"``).
    """
    if home is not None:
        settings["home"] = Path(home)
    if mongo_uri is not None:
        settings["mongo_uri"] = mongo_uri
    return Library(Settings(**settings))
