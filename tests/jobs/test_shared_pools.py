"""Two jobs on different books in one process share the provider pools: a pool's concurrency
limit holds across both jobs, whether they are given one Dispatcher or run through a Library."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import bookops
from bookops.jobs import JobPlan, run_job
from bookops.jobs import kinds as job_kinds
from bookops.ops.base import OpContext
from bookops.pools import Dispatcher
from bookops.pools.units import WorkUnit
from bookops.schema import JobStatus
from bookops.settings import RateLimit, Settings
from bookops.store import Store

from ._fakes import PageOp, make_book

LIMIT = 2
PAGES = 8


class Meter:
    """Counts the units of the shared provider running at once, across every job."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.books_seen_together = False
        self._running_books: list[str] = []

    async def run(self, book: str) -> None:
        self.now += 1
        self.peak = max(self.peak, self.now)
        self._running_books.append(book)
        if len(set(self._running_books)) > 1:
            self.books_seen_together = True
        try:
            await asyncio.sleep(0.02)
        finally:
            self.now -= 1
            self._running_books.remove(book)


class MeteredOp(PageOp):
    """A page op of the provider ``shared`` that reports each execution to the meter."""

    def __init__(self, meter: Meter) -> None:
        super().__init__("m")
        self.meter = meter

    def _unit(self, ctx: OpContext, page: int) -> WorkUnit:
        return WorkUnit(id=f"m:{ctx.book.id}:{page}", op="m", provider="shared", book=ctx.book.id, page=page)

    async def execute(self, ctx: OpContext, unit: WorkUnit) -> Any:
        await self.meter.run(unit.book)
        return await super().execute(ctx, unit)


@pytest.fixture
def meter(monkeypatch: pytest.MonkeyPatch) -> Meter:
    m = Meter()
    # each job gets its own op instances, as real kinds do; only the meter is shared
    monkeypatch.setitem(job_kinds.KINDS, "metered", lambda params: JobPlan([MeteredOp(m)]))
    return m


@pytest.fixture
def shared_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"limits": {**settings.limits,
                                                  "shared": RateLimit(concurrency=LIMIT, max_attempts=1)}})


async def test_two_jobs_with_one_dispatcher_stay_within_the_pool_limit(
        store: Store, shared_settings: Settings, meter: Meter) -> None:
    a = await make_book(store, PAGES, "book-a")
    b = await make_book(store, PAGES, "book-b")
    disp = Dispatcher(shared_settings)
    try:
        (job_a, _), (job_b, _) = await asyncio.gather(
            run_job("metered", store, shared_settings, a.id, dispatcher=disp),
            run_job("metered", store, shared_settings, b.id, dispatcher=disp))
        status = disp.status()["shared"]
    finally:
        await disp.aclose()
    assert job_a.status == job_b.status == JobStatus.succeeded
    assert meter.books_seen_together  # the two jobs really overlapped
    assert meter.peak == LIMIT  # reached, never exceeded across both jobs
    assert status.done == 2 * PAGES and status.in_flight == 0


async def test_separate_dispatchers_would_double_the_limit(
        store: Store, shared_settings: Settings, meter: Meter) -> None:
    """The control: the meter does see it when each job brings its own pools."""
    a = await make_book(store, PAGES, "book-a")
    b = await make_book(store, PAGES, "book-b")
    await asyncio.gather(run_job("metered", store, shared_settings, a.id),
                         run_job("metered", store, shared_settings, b.id))
    assert meter.peak == 2 * LIMIT


async def test_library_runs_concurrent_jobs_on_one_dispatcher(
        store: Store, shared_settings: Settings, meter: Meter) -> None:
    await make_book(store, PAGES, "book-a")
    await make_book(store, PAGES, "book-b")
    lib = bookops.api.Library(shared_settings)
    try:
        await lib.astore()
        job_a, job_b = await asyncio.gather(lib.arun("metered", "book-a"), lib.arun("metered", "book-b"))
        assert lib._dispatchers == {}  # closed once both were done
    finally:
        await lib.aclose()
    assert job_a.status == job_b.status == JobStatus.succeeded
    assert meter.books_seen_together
    assert meter.peak == LIMIT
