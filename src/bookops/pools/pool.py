"""Per-provider pools. PLACEHOLDER: concurrency only; rate limits and retries to come."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel

from ..errors import ErrorKind, ProviderError
from ..settings import RateLimit
from .units import Done, UnitError, Usage, WorkResult, WorkUnit

ExecuteFn = Callable[[WorkUnit], Awaitable[Any]]


class PoolStatus(BaseModel):
    name: str
    queued: int = 0
    in_flight: int = 0
    done: int = 0
    failed: int = 0
    rate_rpm: float | None = None
    last_429_at: float | None = None


class Pool:
    def __init__(self, name: str, limit: RateLimit) -> None:
        self.name = name
        self.limit = limit
        self._sem = asyncio.Semaphore(limit.concurrency)
        self._status = PoolStatus(name=name, rate_rpm=limit.rpm)

    def status(self) -> PoolStatus:
        return self._status.model_copy()

    async def run(self, unit: WorkUnit, fn: ExecuteFn) -> WorkResult:
        t0 = time.monotonic()
        self._status.queued += 1
        async with self._sem:
            self._status.queued -= 1
            self._status.in_flight += 1
            t1 = time.monotonic()
            try:
                out = await fn(unit)
            except ProviderError as exc:
                self._status.failed += 1
                return WorkResult(unit=unit, ok=False, error=UnitError(kind=exc.kind, message=exc.message),
                                  queued_s=t1 - t0, run_s=time.monotonic() - t1)
            except Exception as exc:  # noqa: BLE001 - an op bug must not kill the job
                self._status.failed += 1
                return WorkResult(unit=unit, ok=False,
                                  error=UnitError(kind=ErrorKind.permanent, message=f"{type(exc).__name__}: {exc}"),
                                  queued_s=t1 - t0, run_s=time.monotonic() - t1)
            finally:
                self._status.in_flight -= 1
        self._status.done += 1
        usage = Usage()
        if isinstance(out, Done):
            out, usage = out.value, out.usage
        return WorkResult(unit=unit, ok=True, value=out, usage=usage, queued_s=t1 - t0,
                          run_s=time.monotonic() - t1)
