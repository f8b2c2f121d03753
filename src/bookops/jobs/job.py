"""Running a job: a plan of operations, a JobRecord, the book's lease, and a clean end."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any

from ..errors import BookopsError
from ..ops.base import OpContext
from ..pools import Dispatcher
from ..schema import Book, HistoryEvent, JobRecord, JobStatus, OpState, utcnow
from ..settings import Settings
from ..store import Store
from ..store.history import HistoryBuffer
from .budget import Budget, Held
from .kinds import plan
from .lease import HEARTBEAT_S, LEASE_TTL_S, BookLease
from .runner import ProgressFn, Runner, RunSummary, load_book

log = logging.getLogger(__name__)

_PROGRESS_WRITE_S = 1.0
_DRAIN_S = 60.0


def new_job_id(kind: str) -> str:
    return f"{kind}-{utcnow().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


async def run_job(kind: str, store: Store, settings: Settings, book: str | Book, *,
                  params: dict[str, Any] | None = None, dispatcher: Dispatcher | None = None,
                  on_progress: ProgressFn | None = None, pages: list[int] | None = None,
                  use_cache: bool = True, lease_ttl_s: float = LEASE_TTL_S,
                  heartbeat_s: float = HEARTBEAT_S,
                  budget_usd: float | None = None) -> tuple[JobRecord, RunSummary]:
    """Run one job on one book to its end; returns the final record and the run summary.

    With ``budget_usd`` paid units are dispatched only while spent + in flight stays within it;
    the job then ends ``stopped_budget`` with the units it held back (see :mod:`.budget`).

    Raises ``BookBusy`` when another live job holds the book. Cancelling the calling task (Ctrl-C)
    keeps the results already in flight, marks the job cancelled and re-raises.
    """
    params = dict(params or {})
    job_plan = plan(kind, params)
    the_book = await load_book(store, book)
    job = JobRecord(id=new_job_id(kind), kind=kind, book=the_book.id, params=_public(params, pages),
                    status=JobStatus.running, started_at=utcnow(), host=socket.gethostname(),
                    pid=os.getpid())
    if budget_usd is not None:
        job.params["budget_usd"] = budget_usd
    lease = BookLease(store, the_book.id, job.id, ttl_s=lease_ttl_s, heartbeat_s=heartbeat_s)
    await lease.acquire()
    own_dispatcher = dispatcher is None
    disp = dispatcher or Dispatcher(settings)
    history = HistoryBuffer(store)
    runner: Runner | None = None
    writer: asyncio.Task[None] | None = None
    try:
        await _fail_orphans(store, the_book.id, lease, history)
        await store.put_job(job)
        ctx = OpContext(store=store, settings=settings, dispatcher=disp, book=the_book, history=history,
                        job_id=job.id, pages=frozenset(pages) if pages else None, params=params,
                        use_cache=use_cache)
        ctx.event("job", "job.started", kind=kind, params=job.params)
        if job_plan.prepare is not None:
            await job_plan.prepare(ctx)
        budget = None if budget_usd is None else Budget(budget_usd, settings, job_id=job.id)
        runner = Runner(job_plan.ops, ctx, on_progress=on_progress, budget=budget)
        writer = asyncio.get_running_loop().create_task(_write_progress(store, job, runner))
        run_task = asyncio.ensure_future(runner.run())
        lost = asyncio.ensure_future(lease.lost.wait())
        try:
            await asyncio.wait({run_task, lost}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            run_task.cancel()
            raise
        finally:
            lost.cancel()
        if not run_task.done():
            run_task.cancel()
            raise BookopsError(f"job {job.id} lost its lease on '{the_book.id}'; another job took over")
        summary = run_task.result()
        job.status = await _final_status(store, the_book.id, job_plan.ops)
        job.error = None if job.status == JobStatus.succeeded else _failure_text(summary)
        if summary.held and job.status == JobStatus.succeeded:
            job.status, job.error = JobStatus.stopped_budget, _budget_text(summary)
            ctx.event("job", "job.budget_stopped", reason=summary.budget_stop,
                      held=Held(summary.held).by_op(), units=[u.id for u in summary.held])
    except asyncio.CancelledError:
        if runner is not None:
            await runner.drain(_DRAIN_S)  # keep what is in flight: a rerun then has less to do
        job.status = JobStatus.cancelled
        job.error = "cancelled"
        raise
    except BaseException as exc:
        if runner is not None:
            runner.cancel_all()
            await runner.drain(0)
        job.status = JobStatus.failed
        job.error = exc.message if isinstance(exc, BookopsError) else f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if writer is not None:
            writer.cancel()
        await _finish(store, job, runner, history)
        await lease.release()
        if own_dispatcher:
            await disp.aclose()
    assert runner is not None
    return job, runner.summary


def _public(params: dict[str, Any], pages: list[int] | None) -> dict[str, Any]:
    out = {k: v for k, v in params.items() if "key" not in k.lower()}
    if pages:
        out["pages"] = f"{min(pages)}-{max(pages)}" if len(pages) == max(pages) - min(pages) + 1 else pages
    return out


async def _write_progress(store: Store, job: JobRecord, runner: Runner) -> None:
    while True:
        await asyncio.sleep(_PROGRESS_WRITE_S)
        try:
            await store.patch_job(job.id, {"$set": {
                "progress": {k: v.model_dump() for k, v in runner.summary.progress.items()},
                "cost_usd": runner.summary.cost_usd}})
        except Exception:
            log.warning("could not write job progress", exc_info=True)


async def _finish(store: Store, job: JobRecord, runner: Runner | None, history: HistoryBuffer) -> None:
    job.finished_at = utcnow()
    if runner is not None:
        job.progress = dict(runner.summary.progress)
        job.cost_usd = runner.summary.cost_usd
    history.add(HistoryEvent(id=uuid.uuid4().hex, book=job.book, job=job.id, op="job",
                             event="job.finished", detail={
                                 "status": job.status.value, "error": job.error,
                                 "failed": runner.summary.failed if runner else 0}))
    await history.aclose()
    await store.put_job(job)


async def _fail_orphans(store: Store, book_id: str, lease: BookLease, history: HistoryBuffer) -> None:
    """Jobs recorded as running on this book whose process is gone become failed (we hold the lease)."""
    # Holding the lease means no other job on this book is alive, whatever its record says.
    for rec in await store.list_jobs(book_id, status=JobStatus.running.value):
        if rec.id == lease.job_id:
            continue
        await store.patch_job(rec.id, {"$set": {"status": JobStatus.failed.value,
                                                "error": "its process ended without finishing; taken over",
                                                "finished_at": utcnow().isoformat()}})
        history.add(HistoryEvent(id=uuid.uuid4().hex, book=book_id, job=rec.id, op="job",
                                 event="job.taken_over", detail={"by": lease.job_id}))


async def _final_status(store: Store, book_id: str, ops: list[Any]) -> JobStatus:
    book = await store.get_book(book_id)
    if book is not None:
        for op in ops:
            if op.level == "book" and book.flag(op.name).state == OpState.failed:
                return JobStatus.failed
    return JobStatus.succeeded


def _budget_text(summary: RunSummary) -> str:
    return (f"stopped by the budget ({summary.budget_stop}); not run: {Held(summary.held).describe()}; "
            "rerun with a higher --budget-usd to go on")


def _failure_text(summary: RunSummary) -> str:
    names = sorted({r.unit.op for r in summary.failed_units if r.unit.page is None})
    return f"book-level operation failed: {', '.join(names) or 'unknown'}"


# ---------------------------------------------------------------------- library-wide runs
async def select_books(store: Store, kind: str, *, stale_only: bool = False) -> list[Book]:
    """The books ``--all`` covers: ``rerun-toc`` every book (``stale_only``: those whose ToC is stale
    or failed), ``process-pages`` the books not complete (a page not labeled, or a book-level op not done)."""
    out: list[Book] = []
    toc_ops = ("toc_find", "toc_extract")
    for book in await store.list_books():
        if kind == "rerun-toc":
            if not stale_only or any(op in book.stale for op in toc_ops) or any(
                    book.flag(op).state == OpState.failed for op in toc_ops):
                out.append(book)
        elif kind == "process-pages":
            labeled = await store.count_pages(book.id, {"labeled": True})
            ops_done = all(book.flag(op).state == OpState.done for op in ("label", "metadata", "toc_find"))
            toc_done = book.flag("toc_extract").state == OpState.done
            if not toc_done:
                toc = await store.get_toc(book.id)
                toc_done = toc is not None and not toc.found and book.flag("toc_find").state == OpState.done
            if labeled < book.page_count or not ops_done or not toc_done:
                out.append(book)
        else:
            out.append(book)
    return out


BookDone = Any  # Callable[[Book, JobRecord | None, RunSummary | None, BaseException | None], None]


async def run_many(kind: str, store: Store, settings: Settings, books: list[Book], *,
                   params: dict[str, Any] | None = None, parallel: int = 1, use_cache: bool = True,
                   budget_usd: float | None = None, dispatcher: Dispatcher | None = None,
                   on_book: BookDone | None = None,
                   ) -> list[tuple[Book, JobRecord | None, BaseException | None]]:
    """One job per book, ``parallel`` at a time, every job on one Dispatcher (shared provider pools).

    A book whose job raises (busy, a bad source) is reported and the others go on. ``budget_usd``
    is each job's own budget.
    """
    own = dispatcher is None
    disp = dispatcher or Dispatcher(settings)
    gate = asyncio.Semaphore(max(1, parallel))
    results: list[tuple[Book, JobRecord | None, BaseException | None]] = []

    async def one(book: Book) -> None:
        async with gate:
            try:
                job, summary = await run_job(kind, store, settings, book, params=dict(params or {}),
                                             dispatcher=disp, use_cache=use_cache, budget_usd=budget_usd)
            except BookopsError as exc:
                results.append((book, None, exc))
                if on_book is not None:
                    on_book(book, None, None, exc)
                return
            results.append((book, job, None))
            if on_book is not None:
                on_book(book, job, summary, None)

    try:
        await asyncio.gather(*(one(b) for b in books))
    finally:
        if own:
            await disp.aclose()
    order = {b.id: i for i, b in enumerate(books)}
    return sorted(results, key=lambda r: order[r[0].id])
