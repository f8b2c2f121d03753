"""One job per book: a lease in the store, claimed atomically and kept alive by a heartbeat.

The expiry catches a holder that died on any host; on this host a dead pid is noticed at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from .._tasks import cancel_and_wait
from ..errors import BookBusy
from ..store import Store

log = logging.getLogger(__name__)

LEASE_TTL_S = 60.0
HEARTBEAT_S = 20.0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Holder:
    job: str
    host: str
    pid: int


class BookLease:
    """Async context manager holding the book's lease for a job."""

    def __init__(self, store: Store, book_id: str, job_id: str, *, ttl_s: float = LEASE_TTL_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.store = store
        self.book_id = book_id
        self.job_id = job_id
        self.ttl_s = ttl_s
        self.heartbeat_s = heartbeat_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.taken_over: Holder | None = None
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        lease = await self.store.claim_lease(self.book_id, self.job_id, ttl_s=self.ttl_s,
                                             host=self.host, pid=self.pid)
        if lease is None:
            current = await self.store.get_lease(self.book_id)
            if current is not None and current.host == self.host and not pid_alive(current.pid):
                # Same host and the holder's process is gone: no need to wait for the expiry.
                self.taken_over = Holder(current.job, current.host, current.pid)
                await self.store.leases.delete({"_id": self.book_id, "job": current.job})
                lease = await self.store.claim_lease(self.book_id, self.job_id, ttl_s=self.ttl_s,
                                                     host=self.host, pid=self.pid)
            if lease is None:
                holder = current.job if current else "another job"
                where = f" (pid {current.pid} on {current.host})" if current else ""
                raise BookBusy(f"book '{self.book_id}' is busy: job {holder}{where} is running on it; "
                               f"wait for it or cancel it", job_id=current.job if current else None)
        self._task = asyncio.get_running_loop().create_task(self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                ok = await self.store.renew_lease(self.book_id, self.job_id, ttl_s=self.ttl_s)
            except Exception:
                log.warning("lease renewal for %s failed; retrying", self.book_id, exc_info=True)
                continue
            if not ok:
                log.error("lost the lease on %s", self.book_id)
                self.lost.set()
                return

    async def release(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self.store.release_lease(self.book_id, self.job_id)

    async def __aenter__(self) -> BookLease:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
