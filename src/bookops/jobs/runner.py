"""The runner: asks operations for units, dispatches them, routes results, ends when all is done.

State comes from the store, never from a previous run's memory: a restarted run asks every
operation what is left, so nothing done is redone. Within one run a unit id is dispatched at most
once; a unit that failed for good is recorded on its page and not retried until the next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..ops.base import OpContext, Operation
from ..pools.units import UnitError, WorkResult, WorkUnit
from ..schema import Book, OpProgress
from ..settings import Settings
from ..store import Store
from ..store.history import HistoryBuffer
from .budget import Admit, is_paid

if TYPE_CHECKING:
    from .budget import Budget

log = logging.getLogger(__name__)

ProgressFn = Callable[[str, OpProgress], None]


def op_key(op: Operation) -> str:
    """Progress key of an operation instance: ``ocr:tesseract`` for OCR, else the op name."""
    provider = getattr(op, "provider", None)
    return f"{op.name}:{provider}" if op.name == "ocr" and provider else op.name


@dataclass
class RunSummary:
    progress: dict[str, OpProgress] = field(default_factory=dict)
    cost_usd: float = 0.0
    seconds: float = 0.0
    failed_units: list[WorkResult] = field(default_factory=list)
    held: list[WorkUnit] = field(default_factory=list)  # paid units a budget kept back
    budget_stop: str | None = None  # why the budget stopped paid dispatching, when it did

    @property
    def failed(self) -> int:
        return sum(p.failed for p in self.progress.values())


class Runner:
    """Runs a list of operations on one book until every one is complete or stuck on failures."""

    def __init__(self, ops: list[Operation], ctx: OpContext, *,
                 on_progress: ProgressFn | None = None, budget: Budget | None = None) -> None:
        self.ops = ops
        self.ctx = ctx
        self.on_progress = on_progress
        self.budget = budget
        self._held: list[tuple[Operation, WorkUnit]] = []  # paid units waiting for the budget
        self.summary = RunSummary()
        self._seen: set[str] = set()
        self._started: set[str] = set()  # units whose execution began (past the pool's queue)
        self._tasks: dict[asyncio.Task[WorkResult], Operation] = {}
        self._unit_of: dict[asyncio.Task[WorkResult], str] = {}

    # ------------------------------------------------------------------ public
    async def run(self) -> RunSummary:
        t0 = time.monotonic()
        for op in self.ops:
            await op.recover_history(self.ctx)
            total = await op.total(self.ctx)
            done = await op.done_count(self.ctx)
            self.summary.progress[op_key(op)] = OpProgress(total=total, done=done)
            self._report(op)
        for op in self.ops:
            self._dispatch(op, await op.create_units(self.ctx))
        # A finished book: the scan above found nothing and nothing ran since, so asking every op
        # again would only repeat it (it is most of a no-op rerun's time on a long book).
        ran = bool(self._tasks)
        try:
            while True:
                if not self._tasks:
                    # Nothing in flight: ask every op once more before calling it finished, so
                    # work unblocked by the last result (or left by a failure) is not missed.
                    if not ran or not await self._rescan():
                        break
                    continue
                finished, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    op = self._tasks.pop(task)
                    self._unit_of.pop(task, None)
                    await self._handle(op, task.result())
        finally:
            self.summary.seconds = time.monotonic() - t0
            self.summary.held = [u for _op, u in self._held]
            if self.budget is not None:
                self.summary.budget_stop = self.budget.stop_reason
        return self.summary

    async def drain(self, timeout_s: float) -> None:
        """Let running units finish (and keep their results); drop the queued ones.

        Units still waiting in a pool are cancelled at once: they would start new work. What is
        left running after the timeout is cancelled too.
        """
        if not self._tasks:
            return
        for task, _op in list(self._tasks.items()):
            unit_id = self._unit_of[task]
            if unit_id not in self._started:
                task.cancel()
        deadline = time.monotonic() + timeout_s
        while self._tasks and time.monotonic() < deadline:
            finished, _ = await asyncio.wait(self._tasks, timeout=deadline - time.monotonic(),
                                             return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                op = self._tasks.pop(task)
                self._unit_of.pop(task, None)
                if not task.cancelled() and task.exception() is None:
                    result = task.result()
                    if result.ok:  # a failure caused by the stop itself is not the page's fault
                        await self._persist(op, result)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        self._unit_of.clear()

    def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()

    # ------------------------------------------------------------------ internals
    def _dispatch(self, op: Operation, units: Iterable[WorkUnit]) -> None:
        for unit in units:
            if unit.id in self._seen:
                continue
            if unit.page is not None and not self.ctx.wants(unit.page):
                continue
            self._seen.add(unit.id)
            if self.budget is not None and is_paid(unit):
                self._held.append((op, unit))  # admitted (or not) by _release, in arrival order
                continue
            self._submit(op, unit)
        self._release()

    def _submit(self, op: Operation, unit: WorkUnit) -> None:
        task = asyncio.ensure_future(self.ctx.dispatcher.submit(unit, partial(self._execute, op)))
        self._tasks[task] = op
        self._unit_of[task] = unit.id

    def _release(self) -> None:
        """Dispatch the held paid units the budget admits now; the rest stay held."""
        if self.budget is None or not self._held:
            return
        keep: list[tuple[Operation, WorkUnit]] = []
        for op, unit in self._held:
            if self.budget.admit(unit) is Admit.go:
                self.budget.started(unit)
                self._submit(op, unit)
            else:
                keep.append((op, unit))
        self._held = keep

    async def _execute(self, op: Operation, unit: WorkUnit) -> Any:
        self._started.add(unit.id)
        return await op.execute(self.ctx, unit)

    async def _persist(self, op: Operation, result: WorkResult) -> list[WorkUnit]:
        prog = self.summary.progress.setdefault(op_key(op), OpProgress())
        if self.budget is not None:
            await self.budget.finished(result, self.ctx.store)
        if result.usage.cost_usd:
            self.summary.cost_usd += result.usage.cost_usd
        if result.ok:
            try:
                follow = await op.handle_result(self.ctx, result)
            except Exception as exc:  # a result we cannot store counts as a failed unit, not a dead job
                log.exception("%s: storing the result of %s failed", op.name, result.unit.id)
                result = result.model_copy(update={"ok": False, "error": UnitError(
                    kind="permanent", message=f"storing the result failed: {type(exc).__name__}: {exc}")})
            else:
                prog.done += 1
                self._report(op)
                return follow
        prog.failed += 1
        self.summary.failed_units.append(result)
        await op.record_failure(self.ctx, result)
        self._report(op)
        return []

    async def _handle(self, op: Operation, result: WorkResult) -> None:
        follow = await self._persist(op, result)
        self._dispatch(op, follow)
        # Failures count too: a page whose OCR source failed for good may now blend without it.
        page_num = result.unit.page
        page = None
        for other in self.ops:
            if other is op or op.name not in other.depends_on:
                continue
            if other.level == "page" and page_num is not None:
                if page is None:
                    page = await self.ctx.store.get_page(self.ctx.book.id, page_num)
                if page is not None:
                    self._dispatch(other, await other.units_for_page(self.ctx, page))
        # Book-level work waits on consecutive front pages; check it after every result.
        for other in self.ops:
            if other.level == "book" and other is not op and not self._has_inflight(other):
                self._dispatch(other, await other.create_units(self.ctx))

    def _has_inflight(self, op: Operation) -> bool:
        return any(o is op for o in self._tasks.values())

    async def _rescan(self) -> bool:
        before = len(self._tasks)
        for op in self.ops:
            self._dispatch(op, await op.create_units(self.ctx))
        return len(self._tasks) > before

    def _report(self, op: Operation) -> None:
        if self.on_progress is not None:
            key = op_key(op)
            self.on_progress(key, self.summary.progress[key])


# ---------------------------------------------------------------------- standalone use
@asynccontextmanager
async def _target_store(target: Any) -> AsyncIterator[Store]:
    """A Store as given, or a Library's store for this loop (opened and closed around the call)."""
    if isinstance(target, Store):
        yield target
        return
    session = getattr(target, "session", None)
    if session is None:
        raise TypeError("run() takes a bookops Store or a Library as its first argument")
    async with session() as store:
        yield store


async def load_book(store: Store, book: str | Book) -> Book:
    if isinstance(book, Book):
        return book
    found = await store.get_book(book)
    if found is None:
        raise UserError(f"no book '{book}'; see `bookops book list`")
    return found


async def run_operations(ops: list[Operation], target: Any, book: str | Book, *,
                         pages: Iterable[int] | None = None, settings: Settings | None = None,
                         on_progress: ProgressFn | None = None, **params: Any) -> Any:
    """Run operations on one book without a job record or lease; returns the last op's results."""
    from ..pools import Dispatcher
    from .inputs import check_inputs

    settings = settings or getattr(target, "settings", None) or Settings()
    async with _target_store(target) as store:
        the_book = await load_book(store, book)
        page_list = sorted(set(pages)) if pages is not None else None
        await check_inputs(store, settings, ops, the_book, page_list, params)
        disp = Dispatcher(settings)
        history = HistoryBuffer(store)
        use_cache = params.pop("use_cache", True)
        params.setdefault("ocr_providers", settings.ocr_providers)
        ctx = OpContext(store=store, settings=settings, dispatcher=disp, book=the_book,
                        history=history, pages=frozenset(page_list) if page_list is not None else None,
                        params=params, use_cache=use_cache)
        try:
            await Runner(ops, ctx, on_progress=on_progress).run()
            return await ops[-1].results(ctx)
        finally:
            await history.aclose()
            await disp.aclose()
