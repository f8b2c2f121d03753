from __future__ import annotations

import asyncio
import os

import pytest

from bookops.errors import BookBusy
from bookops.jobs import Runner, run_job
from bookops.jobs import kinds as job_kinds
from bookops.jobs.kinds import JobPlan
from bookops.ops.base import OpContext
from bookops.pools import Dispatcher
from bookops.schema import JobStatus
from bookops.settings import Settings
from bookops.store import Store
from bookops.store.history import HistoryBuffer

from ._fakes import FrontMatterOp, PageOp, make_book


def _ctx(store: Store, settings: Settings, book, disp: Dispatcher) -> OpContext:
    return OpContext(store=store, settings=settings, dispatcher=disp, book=book, history=HistoryBuffer(store))


async def test_runs_every_op_and_follows_dependencies(store: Store, settings: Settings) -> None:
    book = await make_book(store, 6)
    a, b = PageOp("a"), PageOp("b", depends_on=("a",))
    disp = Dispatcher(settings)
    ctx = _ctx(store, settings, book, disp)
    summary = await Runner([a, b], ctx).run()
    await ctx.history.aclose()
    assert sorted(a.executed) == list(range(1, 7))
    assert sorted(b.executed) == list(range(1, 7))
    assert summary.progress["a"].done == 6 and summary.progress["b"].done == 6
    assert await a.is_complete(ctx) and await b.is_complete(ctx)
    done = await store.list_history(book.id, event="b.done")
    assert sorted(e.page for e in done) == list(range(1, 7))


async def test_book_level_op_waits_for_consecutive_front_pages(store: Store, settings: Settings) -> None:
    book = await make_book(store, 8)
    gate1 = asyncio.Event()
    a = PageOp("a", gates={1: gate1})
    front = FrontMatterOp("a", 3)
    ctx = _ctx(store, settings, book, Dispatcher(settings))

    async def release_page_one_late() -> None:
        # page 1 finishes only after the other seven: a count of ready pages would fire early
        while len(a.executed) < 7:
            await asyncio.sleep(0.01)
        gate1.set()

    releaser = asyncio.ensure_future(release_page_one_late())
    await Runner([a, front], ctx).run()
    await releaser
    assert len(front.seen_ready) == 1
    assert front.seen_ready[0][:3] == [1, 2, 3]
    assert await front.is_complete(ctx)


async def test_failed_unit_is_recorded_and_the_rest_completes(store: Store, settings: Settings) -> None:
    book = await make_book(store, 5)
    a = PageOp("a", fail_pages={3})
    b = PageOp("b", depends_on=("a",))
    ctx = _ctx(store, settings, book, Dispatcher(settings))
    summary = await Runner([a, b], ctx).run()
    assert summary.progress["a"].failed == 1 and summary.progress["a"].done == 4
    assert sorted(b.executed) == [1, 2, 4, 5]
    page3 = await store.get_page(book.id, 3)
    assert page3 is not None and page3.errors["a"].kind == "permanent"
    assert "unreadable" in page3.errors["a"].message


async def test_second_run_redoes_nothing(store: Store, settings: Settings) -> None:
    book = await make_book(store, 4)
    ctx = _ctx(store, settings, book, Dispatcher(settings))
    await Runner([PageOp("a")], ctx).run()
    again = PageOp("a")
    summary = await Runner([again], ctx).run()
    assert again.executed == []
    assert summary.progress["a"].done == 4  # counted from the store, not redone


@pytest.fixture
def fake_kind(monkeypatch: pytest.MonkeyPatch):
    holder: dict[str, list] = {}

    def factory(params):
        return JobPlan(holder["ops"])

    monkeypatch.setitem(job_kinds.KINDS, "fake", factory)
    return holder


async def test_job_record_and_history(store: Store, settings: Settings, fake_kind) -> None:
    book = await make_book(store, 3)
    fake_kind["ops"] = [PageOp("a", fail_pages={2})]
    job, summary = await run_job("fake", store, settings, book.id)
    assert job.status == JobStatus.succeeded
    stored = await store.get_job(job.id)
    assert stored is not None and stored.status == JobStatus.succeeded
    assert stored.progress["a"].failed == 1 and stored.progress["a"].done == 2
    assert stored.host and stored.pid == os.getpid() and stored.finished_at is not None
    events = [e.event for e in await store.list_history(book.id, job=job.id)]
    assert events[0] == "job.started" and events[-1] == "job.finished"
    assert await store.get_lease(book.id) is None  # released


async def test_second_job_on_same_book_is_refused(store: Store, settings: Settings, fake_kind) -> None:
    book = await make_book(store, 2)
    gate = asyncio.Event()
    fake_kind["ops"] = [PageOp("a", gates={1: gate, 2: gate})]
    first = asyncio.ensure_future(run_job("fake", store, settings, book.id))
    while (await store.get_lease(book.id)) is None:
        await asyncio.sleep(0.01)
    with pytest.raises(BookBusy) as info:
        await run_job("fake", store, settings, book.id)
    lease = await store.get_lease(book.id)
    assert lease is not None and lease.job in info.value.message
    gate.set()
    job, _ = await first
    assert job.status == JobStatus.succeeded


async def test_lease_of_dead_process_is_taken_over(store: Store, settings: Settings, fake_kind) -> None:
    import socket
    import subprocess
    import sys

    book = await make_book(store, 2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    await store.claim_lease(book.id, "old-job", ttl_s=3600, host=socket.gethostname(), pid=dead_pid)
    from bookops.schema import JobRecord

    await store.put_job(JobRecord(id="old-job", kind="fake", book=book.id, status=JobStatus.running,
                                  host=socket.gethostname(), pid=dead_pid))
    fake_kind["ops"] = [PageOp("a")]
    job, _ = await run_job("fake", store, settings, book.id)
    assert job.status == JobStatus.succeeded
    old = await store.get_job("old-job")
    assert old is not None and old.status == JobStatus.failed
    assert [e.job for e in await store.list_history(book.id, event="job.taken_over")] == ["old-job"]


async def test_cancel_keeps_in_flight_results(store: Store, settings: Settings, fake_kind) -> None:
    book = await make_book(store, 4)
    gates = {p: asyncio.Event() for p in range(1, 5)}
    op = PageOp("a", gates=gates)
    fake_kind["ops"] = [op]
    task = asyncio.ensure_future(run_job("fake", store, settings, book.id))
    while (await store.get_lease(book.id)) is None:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.sleep(0)
    gates[1].set()  # in flight when cancelled: must still be stored
    for g in gates.values():
        g.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    jobs = await store.list_jobs(book.id)
    assert jobs[-1].status == JobStatus.cancelled
    assert await store.get_lease(book.id) is None
    page1 = await store.pages.get(f"{book.id}:0001")
    assert page1 is not None and page1.get("x_a") == 10
