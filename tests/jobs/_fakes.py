"""Scripted operations for runner tests: flags live in raw page/book fields the fakes own."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from bookops.errors import PermanentError
from bookops.ops.base import OpContext, Operation
from bookops.pools.units import PRIORITY_BOOK, WorkResult, WorkUnit
from bookops.schema import Book, Page, PageSource, SourceFile
from bookops.store import Store


async def make_book(store: Store, n: int, book_id: str = "fake-book") -> Book:
    book = Book(id=book_id, name=book_id, page_count=n,
                sources=[SourceFile(path="/dev/null", sha256="0" * 64, kind="pdf", page_count=n)])
    pages = [Page.new(book_id, i, PageSource(file=0, index=i - 1)) for i in range(1, n + 1)]
    await store.add_book(book, pages)
    return book


class PageOp(Operation):
    """Sets ``x_<name>`` on each page; optionally waits on a per-page gate and fails some pages."""

    level: ClassVar[str] = "page"  # type: ignore[misc]

    def __init__(self, name: str, *, depends_on: tuple[str, ...] = (), fail_pages: set[int] = frozenset(),
                 gates: dict[int, asyncio.Event] | None = None) -> None:
        self.name = name  # type: ignore[misc]
        self.depends_on = depends_on  # type: ignore[misc]
        self.fail_pages = set(fail_pages)
        self.gates = gates or {}
        self.executed: list[int] = []

    def flag(self) -> str:
        return f"x_{self.name}"

    def _unit(self, ctx: OpContext, page: int) -> WorkUnit:
        return WorkUnit(id=f"{self.name}:{ctx.book.id}:{page}", op=self.name, provider="fake",
                        book=ctx.book.id, page=page)

    async def _ready(self, ctx: OpContext, doc: dict[str, Any]) -> bool:
        if doc.get(self.flag()) or ctx.store is None:
            return False
        return all(doc.get(f"x_{dep}") for dep in self.depends_on)

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        docs = await ctx.store.pages.find({"book": ctx.book.id}, sort=[("page_num", 1)])
        return [self._unit(ctx, d["page_num"]) for d in docs
                if ctx.wants(d["page_num"]) and await self._ready(ctx, d)]

    async def units_for_page(self, ctx: OpContext, page: Page) -> list[WorkUnit]:
        doc = await ctx.store.pages.get(page.id)
        return [self._unit(ctx, page.page_num)] if doc and await self._ready(ctx, doc) else []

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        assert unit.page is not None
        gate = self.gates.get(unit.page)
        if gate is not None:
            await gate.wait()
        self.executed.append(unit.page)
        if unit.page in self.fail_pages:
            raise PermanentError(f"page {unit.page} is unreadable")
        return unit.page * 10

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        assert result.unit.page is not None
        await ctx.store.patch_page(ctx.book.id, result.unit.page, {"$set": {self.flag(): result.value}})
        ctx.event(self.name, f"{self.name}.done", page=result.unit.page)
        return []

    async def is_complete(self, ctx: OpContext) -> bool:
        return await ctx.store.pages.count({"book": ctx.book.id, self.flag(): {"$exists": False}}) == 0

    async def done_count(self, ctx: OpContext) -> int:
        return await ctx.store.pages.count({"book": ctx.book.id, self.flag(): {"$exists": True}})


class FrontMatterOp(Operation):
    """Book-level: runs once pages 1..k all carry ``x_<needs>`` (consecutive, not a count)."""

    name: ClassVar[str] = "front"  # type: ignore[misc]
    level: ClassVar[str] = "book"  # type: ignore[misc]

    def __init__(self, needs: str, k: int) -> None:
        self.needs = needs
        self.depends_on = (needs,)  # type: ignore[misc]
        self.k = k
        self.seen_ready: list[list[int]] = []

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        book = await ctx.store.books.get(ctx.book.id)
        if book and book.get("x_front"):
            return []
        k = min(self.k, ctx.book.page_count)
        ready = await ctx.store.pages.count({"book": ctx.book.id, "page_num": {"$lte": k},
                                              f"x_{self.needs}": {"$exists": True}})
        if ready < k:
            return []
        return [WorkUnit(id=f"front:{ctx.book.id}", op="front", provider="fake", book=ctx.book.id,
                         priority=PRIORITY_BOOK)]

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        docs = await ctx.store.pages.find({"book": ctx.book.id, f"x_{self.needs}": {"$exists": True}})
        ready = sorted(d["page_num"] for d in docs)
        self.seen_ready.append(ready)
        return ready

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        await ctx.store.books.patch({"_id": ctx.book.id}, {"$set": {"x_front": result.value}})
        return []

    async def is_complete(self, ctx: OpContext) -> bool:
        book = await ctx.store.books.get(ctx.book.id)
        return bool(book and book.get("x_front"))
