"""History events written in batches in the background, so the result loop never waits on them."""

from __future__ import annotations

import asyncio
import logging

from .._tasks import cancel_and_wait
from ..schema import HistoryEvent
from .store import Store

log = logging.getLogger(__name__)


class HistoryBuffer:
    """Collects events and writes them every ``interval_s`` or ``max_batch`` events.

    ``aclose`` (or ``flush``) writes what is left, so a clean exit loses nothing.
    """

    def __init__(self, store: Store, *, interval_s: float = 0.5, max_batch: int = 200) -> None:
        self._store = store
        self._interval = interval_s
        self._max = max_batch
        self._pending: list[HistoryEvent] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, event: HistoryEvent) -> None:
        self._pending.append(event)
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        if len(self._pending) >= self._max:
            self._wake.set()

    async def flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max]
            await self._store.add_history(batch)
            del self._pending[: len(batch)]

    async def _loop(self) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # keep events for the next try; never kill the job over history
                log.exception("history write failed; will retry")

    async def aclose(self) -> None:
        self._closed = True
        self._wake.set()
        await cancel_and_wait(self._task)
        self._task = None
        await self.flush()
