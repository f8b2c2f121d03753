"""The notebook and script facade: ``lib = bookops.open()``, then ``lib.add``, ``lib.run``...

Async is the one implementation (``aadd``, ``arun``, ...); the plain names are thin blocking
wrappers that also work inside Jupyter's running event loop (no ``nest_asyncio``: the coroutine runs
on its own loop in a worker thread). A library holds settings, not a connection: each call opens the
store for the loop it runs on, so two libraries on different homes in one process never share anything.

``lib.show_book``, ``lib.show_page``, ``lib.show_toc``, ``lib.show_history``, ``lib.show_job`` and
``lib.cost`` return the views of :mod:`bookops.display`: HTML in Jupyter, tables in a terminal.

Operations can also run alone (:mod:`bookops.ops`): ``Ocr(provider="tesseract").run_sync(lib, book)``
does only what is runnable now, so on a fresh book it does nothing; ``lib.run_ops([...], book)`` runs
several in order and says which operation has to run first when an input is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._sync import run_sync
from .display import BookView, CostView, HistoryView, JobView, PageView, TocView
from .errors import UserError
from .schema import Book, CallRecord, HistoryEvent, JobRecord, OcrResult, Page, Toc
from .settings import Settings
from .store import Store, open_store

if TYPE_CHECKING:
    from .ops import Operation

__all__ = ["Library", "open"]


class Library:
    """A bookops library: one store (embedded home or MongoDB) and its settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stores: dict[int, Store] = {}
        # loop id -> [the dispatcher every concurrent arun on that loop shares, its users]
        self._dispatchers: dict[int, list[Any]] = {}

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

    @asynccontextmanager
    async def _dispatcher(self) -> AsyncIterator[Any]:
        """The loop's one Dispatcher: concurrent jobs share its pools, so limits stay global.
        Closed (CPU workers, LLM client) when its last user is done."""
        from .pools import Dispatcher

        loop_id = id(asyncio.get_running_loop())
        entry = self._dispatchers.setdefault(loop_id, [None, 0])
        if entry[0] is None:
            entry[0] = Dispatcher(self.settings)
        entry[1] += 1
        try:
            yield entry[0]
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._dispatchers[loop_id]
                await entry[0].aclose()

    async def aclose(self) -> None:
        """Close the store :meth:`astore` opened for the running loop (nothing else is kept open)."""
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
        """The stored book; ``UserError`` when there is none with this id."""
        async with self.session() as store:
            book = await store.get_book(book_id)
        if book is None:
            raise UserError(f"no book '{book_id}'; see lib.books()")
        return book

    def book(self, book_id: str) -> Book:
        """The stored book (metadata, flags, sources)."""
        return run_sync(self.abook(book_id))

    async def abooks(self) -> list[Book]:
        """Every book in the library."""
        async with self.session() as store:
            return await store.list_books()

    def books(self) -> list[Book]:
        """Every book in the library."""
        return run_sync(self.abooks())

    async def apages(self, book_id: str, pages: Iterable[int] | None = None) -> list[Page]:
        """Page documents of a book, all or the given scan pages, in page order."""
        async with self.session() as store:
            return await store.list_pages(book_id, pages=pages)

    def pages(self, book_id: str, pages: Iterable[int] | None = None) -> list[Page]:
        """Page documents: image info, flags, blended text, label."""
        return run_sync(self.apages(book_id, pages))

    async def apage(self, book_id: str, page_num: int) -> Page:
        """One page document; ``UserError`` when the book has no such page."""
        found = await self.apages(book_id, [page_num])
        if not found:
            await self.abook(book_id)  # an unknown book says so
            raise UserError(f"book '{book_id}' has no page {page_num}")
        return found[0]

    def page(self, book_id: str, page_num: int) -> Page:
        """One page document."""
        return run_sync(self.apage(book_id, page_num))

    async def aocr(self, book_id: str, page_num: int) -> list[OcrResult]:
        """Every OCR provider's result for one page."""
        async with self.session() as store:
            return await store.get_ocr_results(book_id, page_num)

    def ocr(self, book_id: str, page_num: int) -> list[OcrResult]:
        """Every OCR provider's result for one page."""
        return run_sync(self.aocr(book_id, page_num))

    async def atoc(self, book_id: str) -> Toc | None:
        """The book's table of contents, or None before TocFind ran."""
        async with self.session() as store:
            return await store.get_toc(book_id)

    def toc(self, book_id: str) -> Toc | None:
        """The book's table of contents, or None before TocFind ran."""
        return run_sync(self.atoc(book_id))

    async def ahistory(self, book_id: str, **filters: Any) -> list[HistoryEvent]:
        """History events of a book, oldest first (filters: event, op, job, limit)."""
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

        async with self.session() as store, self._dispatcher() as dispatcher:
            if isinstance(book, str | Path) and await store.get_book(str(book)) is None \
                    and Path(book).exists():
                from .ingest import add_book

                book, _ = await add_book(store, self.settings, [Path(book)])
            params.setdefault("ocr_providers", self.settings.ocr_providers)
            job, _summary = await run_job(kind, store, self.settings, book, params=params,
                                          pages=list(pages) if pages is not None else None,
                                          use_cache=use_cache, dispatcher=dispatcher)
            return job

    def run(self, kind: str, book: str | Book, *, pages: Iterable[int] | None = None,
            use_cache: bool = True, **params: Any) -> JobRecord:
        """Blocking :meth:`arun`."""
        return run_sync(self.arun(kind, book, pages=pages, use_cache=use_cache, **params))

    async def ajobs(self, book_id: str | None = None) -> list[JobRecord]:
        """Job records, of one book or of all books."""
        async with self.session() as store:
            return await store.list_jobs(book_id)

    def jobs(self, book_id: str | None = None) -> list[JobRecord]:
        """Blocking :meth:`ajobs`."""
        return run_sync(self.ajobs(book_id))

    async def acalls(self, book_id: str) -> list[CallRecord]:
        """Provider calls (LLM, vision) made for a book: tokens, cost, latency, outcome."""
        async with self.session() as store:
            return await store.list_calls(book_id)

    def calls(self, book_id: str) -> list[CallRecord]:
        """Blocking :meth:`acalls`."""
        return run_sync(self.acalls(book_id))

    async def arun_ops(self, ops: Operation | Iterable[Operation], book: str | Book, *,
                       pages: Iterable[int] | None = None, **params: Any) -> Any:
        """Run operations alone (no job record, no lease), in the order given; the last one's results.

        Unlike ``op.run(lib, book)``, which quietly does only what is runnable now, this first checks
        that every input an operation depends on is either produced by an earlier operation in the
        list or already in the store, and raises ``UserError`` naming what has to run first.
        """
        from .jobs import run_operations
        from .ops import Operation

        op_list = [ops] if isinstance(ops, Operation) else list(ops)
        if not op_list:
            raise UserError("run_ops needs at least one operation")
        page_list = list(pages) if pages is not None else None
        async with self.session() as store:
            the_book = book if isinstance(book, Book) else await self.abook(book)
            return await run_operations(op_list, store, the_book, pages=page_list, settings=self.settings,
                                        **params)

    def run_ops(self, ops: Operation | Iterable[Operation], book: str | Book, *,
                pages: Iterable[int] | None = None, **params: Any) -> Any:
        """Blocking :meth:`arun_ops`."""
        return run_sync(self.arun_ops(ops, book, pages=pages, **params))

    # ------------------------------------------------------------------ displays
    async def ashow_book(self, book_id: str) -> BookView:
        """A display of the book: metadata, pages done by operation, book-level flags, ToC summary."""
        async with self.session() as store:
            book = await store.get_book(book_id)
            if book is None:
                raise UserError(f"no book '{book_id}'; see lib.books()")
            providers = book.ocr_providers or self.settings.ocr_providers
            done: dict[str, int] = {"extracted": await store.count_pages(book.id, {"extracted": True})}
            for provider in providers:
                done[f"ocr {provider}"] = await store.count_pages(book.id, {f"ocr.{provider}.done": True})
            done["blended"] = await store.count_pages(book.id, {"blended": True})
            done["labeled"] = await store.count_pages(book.id, {"labeled": True})
            error_keys = ["extract", *(f"ocr_{p}" for p in providers), "blend", "label"]
            done["failed"] = await store.count_pages(
                book.id, {"$or": [{f"errors.{k}": {"$exists": True}} for k in error_keys]})
            return BookView(book=book, pages_done=done, toc=await store.get_toc(book.id))

    def show_book(self, book_id: str) -> BookView:
        """Blocking :meth:`ashow_book`; the last expression of a cell to display it."""
        return run_sync(self.ashow_book(book_id))

    async def ashow_page(self, book_id: str, page_num: int, *, thumb_width: int = 400) -> PageView:
        """A display of one page: image thumbnail beside its blended text, label and OCR results."""
        page = await self.apage(book_id, page_num)
        return PageView(page=page, image_path=self.page_image(page),
                        ocr=await self.aocr(book_id, page_num), thumb_width=thumb_width)

    def show_page(self, book_id: str, page_num: int, *, thumb_width: int = 400) -> PageView:
        """Blocking :meth:`ashow_page`."""
        return run_sync(self.ashow_page(book_id, page_num, thumb_width=thumb_width))

    async def ashow_toc(self, book_id: str) -> TocView:
        """A display of the table of contents: entries indented by level, printed and scan pages."""
        await self.abook(book_id)
        return TocView(book_id=book_id, toc=await self.atoc(book_id))

    def show_toc(self, book_id: str) -> TocView:
        """Blocking :meth:`ashow_toc`."""
        return run_sync(self.ashow_toc(book_id))

    async def ashow_history(self, book_id: str, **filters: Any) -> HistoryView:
        """A display of the book's history (filters: event, op, job, limit)."""
        await self.abook(book_id)
        return HistoryView(book_id=book_id, events=await self.ahistory(book_id, **filters))

    def show_history(self, book_id: str, **filters: Any) -> HistoryView:
        """Blocking :meth:`ashow_history`."""
        return run_sync(self.ashow_history(book_id, **filters))

    async def ashow_job(self, job: str | JobRecord) -> JobView:
        """A display of a job record (as returned by :meth:`run`, or by its id)."""
        if isinstance(job, JobRecord):
            return JobView(job=job)
        async with self.session() as store:
            found = await store.get_job(job)
        if found is None:
            raise UserError(f"no job '{job}'; see lib.jobs()")
        return JobView(job=found)

    def show_job(self, job: str | JobRecord) -> JobView:
        """Blocking :meth:`ashow_job`."""
        return run_sync(self.ashow_job(job))

    async def acost(self, book_id: str) -> CostView:
        """What a book cost: its jobs and provider calls (``.total_usd``, ``.by_op``)."""
        await self.abook(book_id)
        async with self.session() as store:
            jobs = await store.list_jobs(book_id)
            calls = await store.list_calls(book_id)
        return CostView(book_id=book_id, jobs=jobs, calls=calls)

    def cost(self, book_id: str) -> CostView:
        """Blocking :meth:`acost`."""
        return run_sync(self.acost(book_id))


# What an operation's ``depends_on`` names means in the store: a page filter, or a book-level flag.
def open(home: str | Path | None = None, *, mongo_uri: str | None = None, **settings: Any) -> Library:  # noqa: A001
    """Open a library: the embedded store under ``home`` (default ``~/.bookops``) or MongoDB.

    Other keyword arguments override settings fields (e.g. ``ocr_lang="deu"``).
    """
    if home is not None:
        settings["home"] = Path(home)
    if mongo_uri is not None:
        settings["mongo_uri"] = mongo_uri
    return Library(Settings(**settings))
