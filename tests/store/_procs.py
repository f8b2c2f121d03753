"""Child-process bodies for the multi-process store tests (importable, so ``spawn`` can find them)."""

from __future__ import annotations

import asyncio
import sqlite3
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path

from bookops.schema import Book, Page, PageSource, SourceFile
from bookops.store import Store
from bookops.store._sqlite import SqliteBackend


def make_book(book_id: str, pages: int) -> tuple[Book, list[Page]]:
    book = Book(id=book_id, name=book_id,
                sources=[SourceFile(path=f"{book_id}.pdf", sha256="0" * 64, kind="pdf", page_count=pages)],
                page_count=pages)
    return book, [Page.new(book_id, n, PageSource(file=0, index=n - 1)) for n in range(1, pages + 1)]


def add_book(path: Path, book_id: str, pages: int, barrier: Barrier) -> None:
    async def run() -> None:
        barrier.wait(timeout=30)
        async with Store(SqliteBackend(path, timeout_s=10)) as store:
            assert await store.add_book(*make_book(book_id, pages))

    asyncio.run(run())


def increment(path: Path, times: int, barrier: Barrier) -> None:
    async def run() -> None:
        async with Store(SqliteBackend(path, timeout_s=10)) as store:
            barrier.wait(timeout=30)
            for _ in range(times):
                assert await store.books.patch({"_id": "counter"}, {"$inc": {"n": 1}}, upsert=True)

    asyncio.run(run())


def write_forever(path: Path, reports: Connection) -> None:
    """Write documents without end, reporting each id only after its write committed."""

    async def run() -> None:
        async with Store(SqliteBackend(path, timeout_s=10)) as store:
            i = 0
            while True:
                if i % 2:
                    batch = [{"_id": f"d{i}", "n": i, "pad": "x" * 200}, {"_id": f"d{i}b", "n": i}]
                    await store.books.insert_many(batch)
                    reports.send([d["_id"] for d in batch])
                else:
                    await store.books.put({"_id": f"d{i}", "n": i, "pad": "x" * 200})
                    reports.send([f"d{i}"])
                i += 1

    asyncio.run(run())


def hold_write_lock(path: Path, locked: Event, release: Event) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("""INSERT INTO "books" (id, doc) VALUES ('holder', '{"_id":"holder"}')""")
    locked.set()
    release.wait(timeout=30)
    conn.execute("COMMIT")
    conn.close()
