"""A semaphore that hands free slots to the waiter with the smallest key, not the oldest one."""

from __future__ import annotations

import asyncio
import itertools
from heapq import heappop, heappush
from typing import Any

__all__ = ["PriorityGate"]


class PriorityGate:
    """``slots`` holders at a time; waiters are served by ``key`` (then by arrival).

    Bound to the loop of its first waiter; a pool makes a new gate when the loop changes.
    """

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiters: list[tuple[Any, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return sum(1 for *_, fut in self._waiters if not fut.done())

    async def acquire(self, key: Any) -> None:
        # A free slot means nobody is waiting: release() hands slots straight to waiters.
        if self._free > 0:
            self._free -= 1
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heappush(self._waiters, (key, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # The slot was handed over just as we were cancelled: pass it on.
                self.release()
            raise

    def release(self) -> None:
        while self._waiters:
            *_, fut = heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1
