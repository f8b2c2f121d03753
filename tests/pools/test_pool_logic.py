"""Pool logic without a server: retry policy, backoff, pause, priority, rate adaptation.

Waits go through an injected clock and sleep, so backoffs of seconds take no time.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bookops.errors import ErrorKind, InvalidOutput, PermanentError, RateLimited, TransientError
from bookops.pools import PRIORITY_BOOK, Done, Pool, Usage, WorkUnit
from bookops.pools.gate import PriorityGate
from bookops.pools.limiter import AdaptiveRate, make_limiter

pytestmark = pytest.mark.timeout(10)


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def unit(uid: str = "u", page: int | None = 1, **kw: Any) -> WorkUnit:
    return WorkUnit(id=uid, op="t", provider="fake", book="b", page=page, **kw)


def limit(**kw: Any) -> Any:
    from bookops.settings import RateLimit

    base: dict[str, Any] = dict(concurrency=1, rpm=None, max_attempts=4, timeout_s=5,
                                backoff_s=1.0, backoff_max_s=4.0)
    base.update(kw)
    return RateLimit(**base)


def scripted(*outcomes: Any) -> Any:
    """A fn that raises or returns the given outcomes in turn and records each attempt."""
    seen: list[WorkUnit] = []
    left = list(outcomes)

    async def fn(u: WorkUnit) -> Any:
        seen.append(u)
        out = left.pop(0) if left else "ok"
        if isinstance(out, BaseException):
            raise out
        return out

    fn.seen = seen  # type: ignore[attr-defined]
    return fn


async def test_backoff_is_exponential_with_jitter_and_bounded() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(max_attempts=5), clock=ft.clock, sleep=ft.sleep)
    fn = scripted(*[TransientError("down")] * 9)
    res = await pool.run(unit(), fn)
    assert (res.ok, res.attempts, len(fn.seen)) == (False, 5, 5)
    assert res.error is not None and (res.error.kind, res.error.message) == (ErrorKind.transient, "down")
    d1, d2, d3, d4 = ft.sleeps
    assert 1.0 <= d1 <= 2.0 and 2.0 <= d2 <= 3.0 and d3 == d4 == 4.0
    assert [u.attempt for u in fn.seen] == [0, 1, 2, 3, 4]  # each attempt knows its number
    assert res.run_s == pytest.approx(sum(ft.sleeps))


async def test_invalid_output_is_retried_then_succeeds_with_usage() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(), clock=ft.clock, sleep=ft.sleep)
    fn = scripted(InvalidOutput("not json"), Done({"x": 1}, Usage(prompt_tokens=5, cost_usd=0.01)))
    res = await pool.run(unit(), fn)
    assert (res.ok, res.attempts, res.value, res.usage.prompt_tokens) == (True, 2, {"x": 1}, 5)
    assert pool.status().retries == 1


async def test_invalid_output_after_its_repair_loop_is_not_retried_again() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(max_attempts=4), clock=ft.clock, sleep=ft.sleep)
    fn = scripted(*[InvalidOutput("still not the schema", repaired=True)] * 4)
    res = await pool.run(unit(), fn)
    assert (res.ok, res.attempts, len(fn.seen)) == (False, 1, 1)
    assert res.error is not None and res.error.kind == ErrorKind.invalid_output


@pytest.mark.parametrize("exc, kind, message", [
    (PermanentError("bad page"), ErrorKind.permanent, "bad page"),
    (ValueError("boom"), ErrorKind.permanent, "ValueError: boom"),
    (KeyError("k"), ErrorKind.permanent, "KeyError: 'k'"),
])
async def test_permanent_and_unknown_errors_fail_at_once(exc: Exception, kind: ErrorKind,
                                                         message: str) -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(), clock=ft.clock, sleep=ft.sleep)
    fn = scripted(exc)
    res = await pool.run(unit(), fn)
    assert (res.ok, res.attempts, len(fn.seen), ft.sleeps) == (False, 1, 1, [])
    assert res.error is not None and (res.error.kind, res.error.message) == (kind, message)
    assert pool.status().failed == 1


async def test_retry_after_holds_every_unit_not_only_the_one_refused() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(rpm=6000.0), clock=ft.clock, sleep=ft.sleep)
    starts: dict[str, float] = {}

    async def fn(u: WorkUnit) -> str:
        if u.id == "a" and u.attempt == 0:
            starts["a0"] = ft.now
            raise RateLimited("429", retry_after=5.0)
        starts[u.id] = ft.now
        return u.id

    a, b = await asyncio.gather(pool.run(unit("a", 1), fn), pool.run(unit("b", 2), fn))
    assert a.ok and b.ok and a.attempts == 2
    assert starts["b"] >= starts["a0"] + 5.0 and starts["a"] >= starts["a0"] + 5.0
    st = pool.status()
    assert st.rate_limited == 1 and st.rate_rpm is not None and st.rate_rpm <= 3000


async def test_429_without_retry_after_pauses_for_a_backoff() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(rpm=6000.0, backoff_s=2.0, backoff_max_s=60.0),
                clock=ft.clock, sleep=ft.sleep)
    res = await pool.run(unit(), scripted(RateLimited("429"), RateLimited("429")))
    assert (res.ok, res.attempts) == (True, 3)
    # The pool's own pause, not tenacity's wait: 2..4 s, then 4..6 s for the second in a row.
    pauses = [s for s in ft.sleeps if s > 0]
    assert len(pauses) == 2
    assert 2.0 <= pauses[0] <= 4.0 and 4.0 <= pauses[1] <= 6.0


async def test_rate_limited_every_time_fails_as_rate_limited() -> None:
    ft = FakeTime()
    pool = Pool("fake", limit(rpm=6000.0, max_attempts=3), clock=ft.clock, sleep=ft.sleep)
    res = await pool.run(unit(), scripted(*[RateLimited("429", retry_after=1.0)] * 3))
    assert (res.ok, res.attempts) == (False, 3)
    assert res.error is not None and res.error.kind == ErrorKind.rate_limited


async def test_priority_book_level_first_then_lower_pages() -> None:
    pool = Pool("fake", limit(concurrency=1))
    release = asyncio.Event()
    order: list[str] = []

    async def fn(u: WorkUnit) -> str:
        order.append(u.id)
        if u.id == "busy":
            await release.wait()
        return u.id

    busy = asyncio.ensure_future(pool.run(unit("busy", 99), fn))
    while pool.status().in_flight == 0:
        await asyncio.sleep(0)
    tasks = [asyncio.ensure_future(pool.run(unit(f"p{n}", n), fn)) for n in (5, 3, 4, 1, 2)]
    await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(pool.run(unit("toc", None, priority=PRIORITY_BOOK), fn)))
    await asyncio.sleep(0)
    assert pool.status().queued == 6
    release.set()
    await asyncio.gather(busy, *tasks)
    assert order == ["busy", "toc", "p1", "p2", "p3", "p4", "p5"]


async def test_cancelled_waiter_does_not_leak_its_slot() -> None:
    pool = Pool("fake", limit(concurrency=1))
    release = asyncio.Event()

    async def fn(u: WorkUnit) -> str:
        if u.id == "busy":
            await release.wait()
        return u.id

    busy = asyncio.ensure_future(pool.run(unit("busy"), fn))
    waiter = asyncio.ensure_future(pool.run(unit("w"), fn))
    while pool.status().in_flight == 0:
        await asyncio.sleep(0)
    waiter.cancel()
    busy.cancel()
    await asyncio.gather(busy, waiter, return_exceptions=True)
    assert busy.cancelled() and waiter.cancelled()
    st = pool.status()
    assert (st.queued, st.in_flight) == (0, 0)
    assert (await asyncio.wait_for(pool.run(unit("after"), fn), 1)).ok


async def test_timeout_maps_to_transient() -> None:
    pool = Pool("fake", limit(timeout_s=0.05, max_attempts=2, backoff_s=0.01, backoff_max_s=0.01))
    calls = 0

    async def fn(u: WorkUnit) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.Event().wait()  # never set: only the timeout ends this attempt
        return "ok"

    res = await pool.run(unit(), fn)
    assert (res.ok, res.attempts, calls) == (True, 2, 2)


def test_pool_survives_a_new_event_loop() -> None:
    # Notebooks run each cell on a fresh loop; a limiter reused across loops would warn (an error here).
    pool = Pool("fake", limit(rpm=600.0, concurrency=2), window_s=1.0)
    fn = scripted()
    for _ in range(2):
        results = asyncio.run(_run_some(pool, fn))
        assert all(r.ok for r in results)
    assert pool.status().done == 6


async def _run_some(pool: Pool, fn: Any) -> list[Any]:
    return list(await asyncio.gather(*(pool.run(unit(f"u{i}", i), fn) for i in range(3))))


# ---------------------------------------------------------------------- building blocks
async def test_gate_serves_smallest_key_first() -> None:
    gate = PriorityGate(1)
    await gate.acquire((0,))
    got: list[int] = []

    async def take(k: int) -> None:
        await gate.acquire((k,))
        got.append(k)
        gate.release()

    tasks = [asyncio.ensure_future(take(k)) for k in (3, 1, 2)]
    await asyncio.sleep(0)
    assert gate.waiting == 3
    gate.release()
    await asyncio.gather(*tasks)
    assert got == [1, 2, 3] and gate.waiting == 0


def test_adaptive_rate_drops_once_per_episode_to_what_got_through() -> None:
    r = AdaptiveRate(80.0, window_s=2.0)
    for i in range(40):
        r.started(i * 0.025)
    r.started(1.0)
    # The server let 40 through in its window, refused the 41st: 40 (half of 80) is the floor.
    assert r.rate_limited(now=1.02, started_at=1.0) == 40.0
    r.started(1.001)  # was already on its way at the old rate: no second drop
    assert r.rate_limited(now=1.03, started_at=1.001) == 40.0
    # Later, at 40, a 429 with 30 accepted in the window: down to 0.9 * 30, more than 40 / 2.
    for i in range(30):
        r.started(5.0 + i * 0.05)
    r.started(6.6)
    assert r.rate_limited(now=6.61, started_at=6.6) == pytest.approx(27.0)


def test_adaptive_rate_climbs_back_stepwise_to_the_configured_rate() -> None:
    r = AdaptiveRate(100.0, window_s=60.0)
    r.started(0.0)
    r.rate_limited(now=0.1, started_at=0.0)
    assert r.current == 50.0
    climbs = [r.current for _ in range(1000) if r.succeeded()]
    assert climbs == pytest.approx([55.0, 60.5, 66.55, 73.205, 80.5255, 88.57805, 97.435855, 100.0])
    assert not r.succeeded() and r.current == 100.0


def test_adaptive_rate_starts_limiting_from_observed_throughput_when_unlimited() -> None:
    r = AdaptiveRate(None, window_s=1.0)
    assert r.current is None and not r.succeeded()
    for i in range(21):
        r.started(i * 0.04)
    assert r.rate_limited(now=0.85, started_at=0.8) == pytest.approx(18.0)


def test_limiter_shapes() -> None:
    no_burst = make_limiter(600.0, 1, 60.0)
    assert no_burst.max_rate == 1 and no_burst.time_period == pytest.approx(60 / (600 * 0.98))
    burst = make_limiter(100.0, 10, 5.0)
    # b back to back, then refilled at (rate - b) per window: never more than rate per window.
    paced = 100 * 0.98
    assert burst.max_rate == 10 and burst.time_period == pytest.approx(10 * 5 / (paced - 10))
    assert make_limiter(4.0, 10, 60.0).max_rate == 1  # a burst of at most half the rate
