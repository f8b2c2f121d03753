"""A per-provider pool: priority order, concurrency, request rate, the one retry layer.

Every attempt of a unit passes, in order: the priority gate (a concurrency slot, handed to the
waiting unit with the smallest ``(priority, page, arrival)``), the pool-wide pause a 429 sets,
and the rate limiter. Retries (tenacity) go back through all three, so a retried unit keeps its
place among the waiters and a paused or slowed pool holds it like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiolimiter import AsyncLimiter
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from ..errors import ErrorKind, InvalidOutput, PermanentError, ProviderError, RateLimited, TransientError
from ..settings import RateLimit
from .gate import PriorityGate
from .limiter import AdaptiveRate, make_limiter
from .units import Done, UnitError, Usage, WorkResult, WorkUnit

__all__ = ["Clock", "ExecuteFn", "Pool", "PoolStatus", "Sleep"]

log = logging.getLogger(__name__)

ExecuteFn = Callable[[WorkUnit], Awaitable[Any]]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

_RETRYABLE = frozenset({ErrorKind.rate_limited, ErrorKind.transient, ErrorKind.invalid_output})


class PoolStatus(BaseModel):
    """A snapshot of a pool. Rates are requests per ``window_s`` (per minute unless shortened)."""

    name: str
    concurrency: int = 0
    queued: int = 0  # units waiting: for a slot, the pause, a rate token, or a retry's backoff
    in_flight: int = 0  # attempts running now
    done: int = 0
    failed: int = 0  # units that failed for good
    retries: int = 0  # attempts after a unit's first
    rate_limited: int = 0  # 429s received
    limit_rpm: float | None = None  # the configured rate
    rate_rpm: float | None = None  # the rate in force, lowered by 429s; None: unlimited
    window_s: float = 60.0
    last_429_at: float | None = None  # wall-clock epoch seconds
    paused_until: float | None = None  # wall-clock epoch seconds, while paused


@dataclass
class _Run:
    """One unit's way through the pool."""

    key: tuple[int, int, int]
    attempts: int = 0
    first_start: float | None = None


def _retryable(exc: BaseException) -> bool:
    # Structured output already went through its repair loop: another attempt repeats it whole.
    if isinstance(exc, InvalidOutput) and exc.repaired:
        return False
    return isinstance(exc, ProviderError) and exc.kind in _RETRYABLE


class Pool:
    """Runs units of one provider within its limits; see the module docstring for the order.

    ``window_s`` is the length of the window ``limit.rpm`` counts in: 60 s, shortened only so
    tests and benches at provider-like rates finish quickly. ``clock`` and ``sleep`` drive the
    pause and the retry waits (the aiolimiter bucket keeps the loop's own clock).
    """

    def __init__(self, name: str, limit: RateLimit, *, window_s: float = 60.0,
                 clock: Clock | None = None, sleep: Sleep | None = None) -> None:
        self.name = name
        self.limit = limit
        self.window_s = window_s
        self._clock: Clock = clock or time.monotonic
        self._sleep: Sleep = sleep or asyncio.sleep
        self._rate = AdaptiveRate(limit.rpm, window_s)
        self._backoff = wait_exponential_jitter(multiplier=limit.backoff_s, max=limit.backoff_max_s,
                                                jitter=limit.backoff_s)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate = PriorityGate(limit.concurrency)
        self._limiter: AsyncLimiter | None = None
        self._limiter_rate: float | None = None
        self._paused_until = 0.0
        self._rejections_in_a_row = 0
        self._arrivals = 0
        self._queued = self._in_flight = self._done = self._failed = self._retries = self._n429 = 0
        self._last_429_at: float | None = None

    # ------------------------------------------------------------------ public
    def status(self) -> PoolStatus:
        pause = self._paused_until - self._clock()
        return PoolStatus(
            name=self.name, concurrency=self.limit.concurrency, queued=self._queued,
            in_flight=self._in_flight, done=self._done, failed=self._failed, retries=self._retries,
            rate_limited=self._n429, limit_rpm=self.limit.rpm, rate_rpm=self._rate.current,
            window_s=self.window_s, last_429_at=self._last_429_at,
            paused_until=time.time() + pause if pause > 0 else None,
        )

    async def run(self, unit: WorkUnit, fn: ExecuteFn) -> WorkResult:
        """Run ``fn(unit)`` (one attempt) until it succeeds, fails for good or runs out of attempts."""
        self._bind_loop()
        t0 = self._clock()
        self._arrivals += 1
        run = _Run(key=(unit.priority, unit.page or 0, self._arrivals))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.limit.max_attempts), wait=self._wait,
            retry=retry_if_exception(_retryable), sleep=self._sleep, reraise=True,
            before_sleep=lambda rs: self._log_retry(unit, rs),
        )
        self._queued += 1
        try:
            async for attempt in retrying:
                with attempt:
                    out = await self._attempt(unit, fn, run)
        except ProviderError as exc:
            self._failed += 1
            return self._result(unit, run, t0, ok=False,
                                error=UnitError(kind=exc.kind, message=exc.message))
        finally:
            self._queued -= 1
        self._done += 1
        value, usage = (out.value, out.usage) if isinstance(out, Done) else (out, Usage())
        return self._result(unit, run, t0, ok=True, value=value, usage=usage)

    # ------------------------------------------------------------------ one attempt
    async def _attempt(self, unit: WorkUnit, fn: ExecuteFn, run: _Run) -> Any:
        gate = self._gate
        await gate.acquire(run.key)
        try:
            await self._admit()
            started = self._clock()
            run.attempts += 1
            if run.first_start is None:
                run.first_start = started
            else:
                self._retries += 1
            self._rate.started(started)
            this = unit if run.attempts == 1 else unit.model_copy(
                update={"attempt": unit.attempt + run.attempts - 1})
            self._queued -= 1
            self._in_flight += 1
            try:
                out = await self._call(fn, this)
            except RateLimited as exc:
                self._on_rate_limited(exc, started)
                raise
            finally:
                self._in_flight -= 1
                self._queued += 1
            self._on_success()
            return out
        finally:
            gate.release()

    async def _call(self, fn: ExecuteFn, unit: WorkUnit) -> Any:
        """One attempt with its timeout; anything that is not a ProviderError is permanent."""
        try:
            async with asyncio.timeout(self.limit.timeout_s):
                return await fn(unit)
        except ProviderError:
            raise
        except TimeoutError as exc:
            raise TransientError(f"timed out after {self.limit.timeout_s:g} s") from exc
        except Exception as exc:
            raise PermanentError(f"{type(exc).__name__}: {exc}") from exc

    async def _admit(self) -> None:
        """Wait out the pool-wide pause and take a rate token, both current when we leave."""
        while True:
            wait = self._paused_until - self._clock()
            if wait > 0:
                await self._sleep(wait)
                continue
            limiter = await self._current_limiter()
            if limiter is None:
                return
            await limiter.acquire()
            # A 429 or a rate change while we waited makes this token stale.
            if self._paused_until <= self._clock() and limiter is self._limiter:
                return

    async def _current_limiter(self) -> AsyncLimiter | None:
        rate = self._rate.current
        if rate is None:
            return None
        if self._limiter is None or self._limiter_rate != rate:
            first = self._limiter is None and self.limit.rpm is not None
            limiter = self._limiter = make_limiter(rate, self.limit.burst, self.window_s)
            self._limiter_rate = rate
            if not first:
                # A new bucket starts empty, which would allow a burst right after a change;
                # filling it keeps the pace the old one had. Does not block: the bucket is empty.
                await limiter.acquire(limiter.max_rate)
        return self._limiter

    # ------------------------------------------------------------------ outcomes
    def _on_success(self) -> None:
        self._rejections_in_a_row = 0
        if self._rate.succeeded():
            log.info("%s: rate back up to %.4g per %g s", self.name, self._rate.current, self.window_s)

    def _on_rate_limited(self, exc: RateLimited, started: float) -> None:
        now = self._clock()
        self._n429 += 1
        self._last_429_at = time.time()
        self._rejections_in_a_row += 1
        pause = exc.retry_after if exc.retry_after is not None else self._pause_backoff()
        self._paused_until = max(self._paused_until, now + pause)
        before = self._rate.current
        after = self._rate.rate_limited(now, started)
        log.warning("%s: 429, pool paused %.3g s, rate %s -> %.4g per %g s", self.name, pause,
                    "unlimited" if before is None else f"{before:.4g}", after, self.window_s)

    def _pause_backoff(self) -> float:
        n = self._rejections_in_a_row
        base = self.limit.backoff_s * 2 ** (n - 1)
        return min(base + random.uniform(0, self.limit.backoff_s), self.limit.backoff_max_s)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, RateLimited):
            return 0.0  # the pool-wide pause already holds the next attempt
        return self._backoff(state)

    def _log_retry(self, unit: WorkUnit, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.info("%s: %s attempt %d failed (%s), retrying", self.name, unit.id,
                 state.attempt_number, exc)

    def _result(self, unit: WorkUnit, run: _Run, t0: float, **fields: Any) -> WorkResult:
        end = self._clock()
        first = run.first_start if run.first_start is not None else end
        return WorkResult(unit=unit, attempts=run.attempts, queued_s=first - t0, run_s=end - first,
                          **fields)

    def _bind_loop(self) -> None:
        # Notebooks run each cell's coroutine on a fresh loop; futures and the aiolimiter bucket
        # belong to one loop, so a new loop gets new ones (the adapted rate is kept).
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        if self._loop is not None:
            self._queued = self._in_flight = 0
        self._loop = loop
        self._gate = PriorityGate(self.limit.concurrency)
        self._limiter = None
        self._limiter_rate = None
