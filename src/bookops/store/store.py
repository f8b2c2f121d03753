"""The domain repository: the only code above the backends that touches stored documents."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from ..schema import (
    Book,
    CallRecord,
    HistoryEvent,
    JobRecord,
    Lease,
    OcrResult,
    Page,
    Toc,
    page_id,
)
from ._backend import Backend, Collection, Filter, Update


class Store:
    """Async repository over one backend. Everything above it speaks pydantic models."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.books: Collection = backend.collection("books")
        self.pages: Collection = backend.collection("pages")
        self.ocr_results: Collection = backend.collection("ocr_results")
        self.tocs: Collection = backend.collection("tocs")
        self.jobs: Collection = backend.collection("jobs")
        self.leases: Collection = backend.collection("leases")
        self.history: Collection = backend.collection("history")
        self.calls: Collection = backend.collection("calls")

    @property
    def kind(self) -> str:
        """The backend's name: ``sqlite`` (embedded) or ``mongodb``."""
        return self.backend.kind

    async def connect(self) -> Store:
        """Connect the backend (and create indexes); returns the store itself."""
        await self.backend.connect()
        return self

    async def close(self) -> None:
        """Close the backend's connection."""
        await self.backend.close()

    async def __aenter__(self) -> Store:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ books
    async def add_book(self, book: Book, pages: list[Page]) -> bool:
        """Store a new book and its page documents; False when the id already exists.

        Pages go first: a crash between the two leaves orphan pages that the next add
        overwrites, never a book without its pages.
        """
        if await self.books.get(book.id) is not None:
            return False
        await self.pages.insert_many([p.to_doc() for p in pages])
        return await self.books.insert_many([book.to_doc()]) == 1

    async def get_book(self, book_id: str) -> Book | None:
        """The book with this id, or None."""
        doc = await self.books.get(book_id)
        return Book.from_doc(doc) if doc else None

    async def list_books(self) -> list[Book]:
        """Every book, by id."""
        return [Book.from_doc(d) for d in await self.books.find({}, sort=[("_id", 1)])]

    async def patch_book(self, book_id: str, update: Update) -> bool:
        """Apply a MongoDB-style update to the book (``updated_at`` is set); False when not found."""
        return await self.books.patch({"_id": book_id}, _touch(update))

    async def delete_book(self, book_id: str) -> None:
        """Remove the book and every document about it (page images are the caller's)."""
        for coll in (self.pages, self.ocr_results, self.tocs, self.history, self.calls):
            await coll.delete({"book": book_id})
        await self.jobs.delete({"book": book_id})
        await self.leases.delete({"_id": book_id})
        await self.books.delete({"_id": book_id})

    # ------------------------------------------------------------------ pages
    async def get_page(self, book_id: str, page_num: int) -> Page | None:
        """One page document, or None."""
        doc = await self.pages.get(page_id(book_id, page_num))
        return Page.from_doc(doc) if doc else None

    async def list_pages(self, book_id: str, *, pages: Iterable[int] | None = None,
                         where: Filter | None = None) -> list[Page]:
        """Page documents of a book in page order: all, the given scan pages, and/or matching ``where``."""
        flt: Filter = {"book": book_id}
        if pages is not None:
            flt["page_num"] = {"$in": sorted(set(pages))}
        if where:
            flt.update(where)
        return [Page.from_doc(d) for d in await self.pages.find(flt, sort=[("page_num", 1)])]

    async def count_pages(self, book_id: str, where: Filter | None = None) -> int:
        """How many pages of the book match ``where``."""
        return await self.pages.count({"book": book_id, **(where or {})})

    async def patch_page(self, book_id: str, page_num: int, update: Update) -> bool:
        """Apply a MongoDB-style update to one page; False when not found."""
        return await self.pages.patch({"_id": page_id(book_id, page_num)}, update)

    async def patch_pages(self, book_id: str, where: Filter, update: Update) -> int:
        """Apply a MongoDB-style update to every page of the book matching ``where``; returns the count."""
        return await self.pages.patch_many({"book": book_id, **where}, update)

    # ------------------------------------------------------------------ OCR results
    async def put_ocr_result(self, result: OcrResult) -> None:
        """Store (or replace) one provider's OCR result for one page."""
        await self.ocr_results.put(result.to_doc())

    async def get_ocr_results(self, book_id: str, page_num: int) -> list[OcrResult]:
        """Every provider's OCR result for one page, by provider."""
        docs = await self.ocr_results.find({"book": book_id, "page_num": page_num}, sort=[("provider", 1)])
        return [OcrResult.from_doc(d) for d in docs]

    async def list_ocr_results(self, book_id: str, *, provider: str | None = None,
                               pages: Iterable[int] | None = None) -> list[OcrResult]:
        """OCR results of a book, optionally of one provider and of some pages, in page order."""
        flt: Filter = {"book": book_id}
        if provider:
            flt["provider"] = provider
        if pages is not None:
            flt["page_num"] = {"$in": sorted(set(pages))}
        docs = await self.ocr_results.find(flt, sort=[("page_num", 1), ("provider", 1)])
        return [OcrResult.from_doc(d) for d in docs]

    # ------------------------------------------------------------------ ToC
    async def put_toc(self, toc: Toc) -> None:
        """Store the book's table of contents, replacing the previous one whole."""
        await self.tocs.put(toc.to_doc())

    async def get_toc(self, book_id: str) -> Toc | None:
        """The book's table of contents, or None."""
        doc = await self.tocs.get(book_id)
        return Toc.from_doc(doc) if doc else None

    async def delete_toc(self, book_id: str) -> None:
        """Forget the book's table of contents."""
        await self.tocs.delete({"_id": book_id})

    # ------------------------------------------------------------------ jobs and leases
    async def put_job(self, job: JobRecord) -> None:
        """Store (or replace) a job record."""
        await self.jobs.put(job.to_doc())

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job record with this id, or None."""
        doc = await self.jobs.get(job_id)
        return JobRecord.from_doc(doc) if doc else None

    async def list_jobs(self, book_id: str | None = None, *, status: str | None = None) -> list[JobRecord]:
        """Job records, of one book and/or with one status, oldest first."""
        flt: Filter = {}
        if book_id:
            flt["book"] = book_id
        if status:
            flt["status"] = status
        return [JobRecord.from_doc(d) for d in await self.jobs.find(flt, sort=[("created_at", 1)])]

    async def patch_job(self, job_id: str, update: Update) -> bool:
        """Apply a MongoDB-style update to a job record; False when not found."""
        return await self.jobs.patch({"_id": job_id}, update)

    async def claim_lease(self, book_id: str, job_id: str, *, ttl_s: float, host: str, pid: int,
                          now: float | None = None) -> Lease | None:
        """Take the book's lease for ``job_id`` if it is free, expired, or already ours."""
        now = time.time() if now is None else now
        doc = await self.leases.claim(
            {"_id": book_id, "$or": [{"expires_at": {"$lt": now}}, {"job": job_id}]},
            {"$set": {"job": job_id, "expires_at": now + ttl_s, "host": host, "pid": pid}},
            upsert=True,
        )
        return Lease.from_doc(doc) if doc else None

    async def renew_lease(self, book_id: str, job_id: str, *, ttl_s: float) -> bool:
        """Extend our lease on the book by ``ttl_s``; False when it is no longer ours."""
        return await self.leases.patch({"_id": book_id, "job": job_id},
                                       {"$set": {"expires_at": time.time() + ttl_s}})

    async def release_lease(self, book_id: str, job_id: str) -> None:
        """Give up our lease on the book (a lease held by another job is left alone)."""
        await self.leases.delete({"_id": book_id, "job": job_id})

    async def get_lease(self, book_id: str) -> Lease | None:
        """The book's current lease, or None."""
        doc = await self.leases.get(book_id)
        return Lease.from_doc(doc) if doc else None

    # ------------------------------------------------------------------ history and calls
    async def add_history(self, events: list[HistoryEvent]) -> None:
        """Append history events."""
        if events:
            await self.history.insert_many([e.to_doc() for e in events])

    async def list_history(self, book_id: str, *, event: str | None = None, op: str | None = None,
                           job: str | None = None, limit: int | None = None) -> list[HistoryEvent]:
        """History events of a book, oldest first, filtered by event, op or job."""
        flt: Filter = {"book": book_id}
        for key, val in (("event", event), ("op", op), ("job", job)):
            if val is not None:
                flt[key] = val
        docs = await self.history.find(flt, sort=[("at", 1), ("_id", 1)], limit=limit)
        return [HistoryEvent.from_doc(d) for d in docs]

    async def put_call(self, call: CallRecord) -> None:
        """Record one provider call (also the response cache)."""
        await self.calls.put(call.to_doc())

    async def find_cached_call(self, request_hash: str) -> CallRecord | None:
        """A successful earlier call with the same request hash and a stored response, or None."""
        docs = await self.calls.find({"request_hash": request_hash, "outcome": "ok",
                                      "response": {"$exists": True, "$ne": None}}, limit=1)
        return CallRecord.from_doc(docs[0]) if docs else None

    async def list_calls(self, book_id: str | None = None, *, job: str | None = None) -> list[CallRecord]:
        """Provider calls, of one book and/or one job, oldest first."""
        flt: Filter = {}
        if book_id:
            flt["book"] = book_id
        if job:
            flt["job"] = job
        return [CallRecord.from_doc(d) for d in await self.calls.find(flt, sort=[("at", 1)])]


def _touch(update: Update) -> Update:
    from ..schema import utcnow

    out: dict[str, Any] = {k: dict(v) for k, v in update.items()}
    out.setdefault("$set", {})["updated_at"] = utcnow().isoformat()
    return out
