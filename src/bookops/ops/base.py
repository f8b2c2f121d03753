"""The Operation contract and the context operations run in.

An operation knows which collections it mutates, creates work units for what still needs
doing (read from the store, never from memory of an earlier run), executes one unit through
its provider, persists each result with its flag, and says when it is complete.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..pools.units import WorkResult, WorkUnit
from ..schema import Book, HistoryEvent, OpError, Page, utcnow
from ..settings import Settings
from ..store import Store

if TYPE_CHECKING:
    from ..pools import Dispatcher
    from ..store.history import HistoryBuffer

log = logging.getLogger(__name__)


@dataclass
class OpContext:
    """Everything an operation needs for one book in one run."""

    store: Store
    settings: Settings
    dispatcher: Dispatcher
    book: Book
    history: HistoryBuffer
    job_id: str | None = None
    pages: frozenset[int] | None = None  # restrict page-level work to these scan pages
    params: dict[str, Any] = field(default_factory=dict)
    use_cache: bool = True

    def wants(self, page_num: int) -> bool:
        return self.pages is None or page_num in self.pages

    def page_range(self) -> list[int]:
        allp = range(1, self.book.page_count + 1)
        return [p for p in allp if self.wants(p)]

    def event(self, op: str, event: str, *, page: int | None = None, **detail: Any) -> None:
        """Queue a history event; written in the background in batches."""
        self.history.add(HistoryEvent(
            id=_event_id(), book=self.book.id, job=self.job_id, op=op, page=page,
            event=event, detail=detail,
        ))

    async def refresh_book(self) -> Book:
        book = await self.store.get_book(self.book.id)
        if book is not None:
            self.book = book
        return self.book


def _event_id() -> str:
    import uuid

    return uuid.uuid4().hex


class Operation(ABC):
    """One reusable step of book processing."""

    name: ClassVar[str]
    level: ClassVar[Literal["page", "book"]] = "page"
    collections: ClassVar[tuple[str, ...]] = ()
    depends_on: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        """Every unit this operation can run now, judged from the store."""

    async def units_for_page(self, ctx: OpContext, page: Page) -> list[WorkUnit]:
        """Units now runnable for one page (page-level ops); called after upstream results."""
        return []

    @abstractmethod
    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        """Do the work of one attempt. Raise ``ProviderError`` kinds; may return ``Done``."""

    @abstractmethod
    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        """Persist a successful result (data before flag) and return follow-up units."""

    @abstractmethod
    async def is_complete(self, ctx: OpContext) -> bool:
        """True when nothing is left to do, derived from the stored flags."""

    async def total(self, ctx: OpContext) -> int:
        """How many units this op has in all, for progress bars."""
        return len(ctx.page_range()) if self.level == "page" else 1

    async def done_count(self, ctx: OpContext) -> int:
        """How many of ``total`` are already done according to the store."""
        return 0

    # Page-level ops: the history event a page gets when done, and the filter of done pages.
    done_event: ClassVar[str | None] = None

    def done_where(self) -> dict[str, Any] | None:
        """Page filter of the pages this op has done (page-level ops), or None."""
        return None

    def event_matches(self, event: HistoryEvent) -> bool:
        """Whether a done-event in history belongs to this op instance (e.g. its OCR provider)."""
        return True

    async def recover_history(self, ctx: OpContext) -> int:
        """Give back the done-events a crash lost; returns how many.

        History is written in background batches, so a kill can drop the last few events while the
        results and flags they describe are stored. The flags are durable: each done page without its
        event gets one, marked ``recovered``, so history holds every page's done-event once.
        """
        where = self.done_where()
        if self.done_event is None or where is None:
            return 0
        # page numbers only: validating every done page as a Page model made a no-op rerun slow
        done = await ctx.store.pages.find({"book": ctx.book.id, **where}, sort=[("page_num", 1)])
        if not done:
            return 0
        events = await ctx.store.list_history(ctx.book.id, event=self.done_event)
        have = {e.page for e in events if self.event_matches(e)}
        missing = [d["page_num"] for d in done if d["page_num"] not in have]
        for page_num in missing:
            ctx.event(self.name, self.done_event, page=page_num, recovered=True,
                      **self.recovered_detail())
        return len(missing)

    def recovered_detail(self) -> dict[str, Any]:
        """Detail added to a done-event recovered from the flags after a crash."""
        return {}

    async def reset(self, store: Store, book_id: str) -> None:
        """Forget this operation's results so a rerun starts over."""
        raise NotImplementedError(f"{self.name} cannot be reset")

    async def record_failure(self, ctx: OpContext, result: WorkResult) -> None:
        """A unit failed for good: keep its error on the page (or book) so the job goes on."""
        assert result.error is not None
        err = OpError(kind=result.error.kind.value, message=result.error.message[:500],
                      attempts=result.attempts)
        unit = result.unit
        if unit.page is not None:
            await ctx.store.patch_page(unit.book, unit.page,
                                       {"$set": {f"errors.{self.name}": err.model_dump(mode="json")}})
        else:
            await ctx.store.patch_book(unit.book, {"$set": {
                f"flags.{self.name}.state": "failed",
                f"flags.{self.name}.error": f"{err.kind}: {err.message}",
                f"flags.{self.name}.updated_at": utcnow().isoformat(),
            }, "$inc": {f"flags.{self.name}.attempts": result.attempts}})
        ctx.event(self.name, f"{self.name}.failed", page=unit.page, kind=err.kind, message=err.message)

    # ------------------------------------------------------------------ standalone use
    async def run(self, target: Any, book: str | Book, *, pages: Iterable[int] | None = None,
                  settings: Settings | None = None, **params: Any) -> Any:
        """Run this operation alone on a book, without a job (notebooks, scripts).

        ``target`` is a ``Store`` or anything with ``.store`` and ``.settings`` (a library).
        Returns what :meth:`results` returns.
        """
        from ..jobs.runner import run_operations

        return await run_operations([self], target, book, pages=pages, settings=settings, **params)

    def run_sync(self, target: Any, book: str | Book, **kwargs: Any) -> Any:
        """Blocking form of :meth:`run`; safe inside a running event loop (Jupyter)."""
        from .._sync import run_sync

        return run_sync(self.run(target, book, **kwargs))

    async def results(self, ctx: OpContext) -> Any:
        """What a standalone run returns: this op's stored results for the book."""
        return None
