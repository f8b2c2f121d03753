"""Batches for the CPU pool: calls that wait at the same time go to one worker together."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .cpu import CpuPool

__all__ = ["Batcher"]

T = TypeVar("T")
R = TypeVar("R")


class Batcher(Generic[T, R]):
    """``fn(key, items) -> results`` in the CPU pool, for items of one key asked for concurrently.

    A batch leaves as soon as one of ``slots`` is free (so a lone item never waits); items that
    arrive while every slot is busy wait and leave together, at most ``max_batch`` and at most a
    fair share of what waits (the waiting items over all slots), so the last pages of a book
    spread over the workers instead of queueing behind one. When a batch of several fails, each
    of its items is tried alone: the error lands on the item that caused it.
    """

    def __init__(self, cpu: CpuPool, fn: Callable[[Hashable, list[T]], list[R]], *, max_batch: int = 4,
                 slots: int | None = None) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one item")
        self.cpu = cpu
        self.fn = fn
        self.max_batch = max_batch
        self.slots = slots or cpu.workers
        self._waiting: dict[Hashable, list[tuple[T, asyncio.Future[R]]]] = {}
        self._busy = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # batches sent, for the figures

    async def submit(self, key: Hashable, item: T) -> R:
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append((item, fut))
        self._kick()
        return await fut

    def _kick(self) -> None:
        while self._busy < self.slots:
            for key in list(self._waiting):  # a cancelled caller leaves nothing to read
                live = [(i, f) for i, f in self._waiting[key] if not f.done()]
                if live:
                    self._waiting[key] = live
                else:
                    del self._waiting[key]
            if not self._waiting:
                return
            key = next(iter(self._waiting))  # the key waiting longest
            queue = self._waiting[key]
            n = min(self.max_batch, max(1, math.ceil(len(queue) / self.slots)))
            batch, rest = queue[:n], queue[n:]
            if rest:
                self._waiting[key] = rest
            else:
                del self._waiting[key]
            self._busy += 1
            self.batches += 1
            task = asyncio.ensure_future(self._run(key, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, key: Hashable, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            try:
                results = await self.cpu.run(self.fn, key, [item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], exc=exc)
                    return
                for item, fut in batch:
                    if fut.done():
                        continue
                    try:
                        (result,) = await self.cpu.run(self.fn, key, [item])
                    except Exception as one_exc:
                        _settle(fut, exc=one_exc)
                    else:
                        _settle(fut, result=result)
                return
            for (_, fut), result in zip(batch, results, strict=True):
                _settle(fut, result=result)
        finally:
            for _, fut in batch:  # cancelled midway (the loop is closing): no caller waits forever
                if not fut.done():
                    fut.cancel()
            self._busy -= 1
            self._kick()


def _settle(fut: asyncio.Future[R], *, result: R | None = None, exc: BaseException | None = None) -> None:
    if fut.done():  # the caller was cancelled (Ctrl-C) while its batch ran
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)  # type: ignore[arg-type]
