"""The pool against a loopback server that enforces its own sliding-window rate limit.

Windows are shortened (``window_s``) so a run at a provider-like rate takes a few seconds; the
pool's ``rpm`` counts in the same window as the server's limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest

from bookops.errors import ErrorKind
from bookops.pools import PRIORITY_BOOK, Pool, WorkResult, WorkUnit
from bookops.settings import RateLimit

from ._server import LimitServer, caller

pytestmark = pytest.mark.timeout(30)


def limit(**kw: Any) -> RateLimit:
    base: dict[str, Any] = dict(concurrency=4, rpm=None, max_attempts=4, timeout_s=5,
                                backoff_s=0.01, backoff_max_s=0.05)
    base.update(kw)
    return RateLimit(**base)


def pages(n: int, start: int = 1) -> list[WorkUnit]:
    return [WorkUnit(id=f"p{i}", op="t", provider="fake", book="b", page=i) for i in range(start, start + n)]


async def run_all(pool: Pool, units: list[WorkUnit], fn: Any) -> list[WorkResult]:
    return list(await asyncio.gather(*(pool.run(u, fn) for u in units)))


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    """``await serve(**server_options)`` -> (server, client); both closed after the test."""
    opened: list[tuple[LimitServer, httpx2.AsyncClient]] = []

    async def make(**kw: Any) -> tuple[LimitServer, httpx2.AsyncClient]:
        server = await LimitServer(lifetime_s=25, **kw).start()
        client = httpx2.AsyncClient(base_url=server.url, timeout=10)
        opened.append((server, client))
        return server, client

    yield make
    for server, client in opened:
        await client.aclose()
        await server.close()


# Requests reach the server a few ms after the pool releases them, and more on a loaded machine.
# At-limit tests give the server a window this much shorter than the pool's, so release-to-arrival
# jitter is not counted against the pool; the server still enforces its window strictly.
JITTER_S = 0.1


def throughput_ratio(server: LimitServer, window_s: float | None = None) -> float:
    times = server.admitted_times()
    assert server.limit is not None
    return (len(times) - 1) / (times[-1] - times[0]) / (server.limit / (window_s or server.window_s))


def assert_pauses_honoured(server: LimitServer) -> None:
    """No request reached the server between a 429 going out and its Retry-After passing.

    Requests already on their way when the 429 left (sent before the pool read it) may arrive
    within a few milliseconds; nothing else may.
    """
    for h in server.hits:
        if h.status != 429 or h.retry_after is None:
            continue
        end = h.sent + h.retry_after
        early = [x for x in server.hits if h.sent + 0.01 < x.arrived < end - 0.001]
        assert not early, f"{len(early)} requests arrived during the pause after {h}"


async def test_at_the_server_limit_no_429_and_full_throughput(serve: Any) -> None:
    server, client = await serve(limit=40, window_s=2.0 - JITTER_S)
    pool = Pool("fake", limit(rpm=40), window_s=2.0)
    results = await run_all(pool, pages(60), caller(client))
    assert all(r.ok for r in results)
    assert server.rejected == 0
    assert server.max_in_window() <= 40
    assert throughput_ratio(server, window_s=2.0) >= 0.9
    st = pool.status()
    assert (st.done, st.failed, st.queued, st.in_flight, st.rate_limited) == (60, 0, 0, 0, 0)
    assert st.rate_rpm == 40


async def test_burst_goes_back_to_back_and_stays_within_every_window(serve: Any) -> None:
    server, client = await serve(limit=40, window_s=2.0 - JITTER_S, latency_s=(0.02, 0.03))
    pool = Pool("fake", limit(rpm=40, burst=6, concurrency=8), window_s=2.0)
    results = await run_all(pool, pages(56), caller(client))
    assert all(r.ok for r in results)
    assert server.rejected == 0
    assert server.max_in_window() <= 40
    first = server.admitted_times()[:7]
    assert first[5] - first[0] < 0.02  # the burst of 6 went out at once
    assert first[6] - first[5] > 0.03  # and then the pace set in


async def test_pool_set_twice_too_high_slows_to_the_server_rate(serve: Any) -> None:
    server, client = await serve(limit=40, window_s=2.0)
    pool = Pool("fake", limit(rpm=80), window_s=2.0)
    results = await run_all(pool, pages(90), caller(client))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    st = pool.status()
    assert server.rejected >= 1 and st.rate_limited == server.rejected
    assert st.last_429_at is not None
    assert st.rate_rpm is not None and 0.75 * 40 <= st.rate_rpm <= 1.25 * 40
    assert server.rejected <= 16  # a handful per episode, not one per unit
    assert_pauses_honoured(server)
    assert st.retries == sum(r.attempts - 1 for r in results)


async def test_retry_after_pauses_the_whole_pool(serve: Any) -> None:
    server, client = await serve(force_429={"p12": 0.6})
    pool = Pool("fake", limit(concurrency=4), window_s=1.0)
    paused_seen: list[float | None] = []

    def on_start(unit: WorkUnit) -> None:
        paused_seen.append(pool.status().paused_until)

    results = await run_all(pool, pages(30), caller(client, on_start=on_start))
    assert all(r.ok for r in results)
    (hit429,) = [h for h in server.hits if h.status == 429]
    assert hit429.id == "p12" and hit429.retry_after == pytest.approx(0.6)
    end = hit429.sent + 0.6
    during = [h for h in server.hits if hit429.sent + 0.01 < h.arrived < end - 0.001]
    after = [h for h in server.hits if h.arrived >= end - 0.001]
    assert during == [] and len(after) >= 10
    assert [r.attempts for r in results if r.unit.id == "p12"] == [2]
    assert not any(paused_seen)  # no attempt ever started while the pool was paused
    # No rate was configured: the 429 makes the pool start pacing from what got through.
    st = pool.status()
    assert st.rate_limited == 1 and st.rate_rpm is not None


async def test_permanent_fails_once_and_500s_use_every_attempt(serve: Any) -> None:
    server, client = await serve(fail_400={"p2"}, fail_500={"p3": -1, "p4": 2})
    pool = Pool("fake", limit(max_attempts=3))
    by_id = {r.unit.id: r for r in await run_all(pool, pages(8), caller(client))}
    bad, down, flaky = by_id["p2"], by_id["p3"], by_id["p4"]
    assert (bad.ok, bad.attempts, len(server.hits_for("p2"))) == (False, 1, 1)
    assert bad.error is not None and bad.error.kind == ErrorKind.permanent
    assert (down.ok, down.attempts, len(server.hits_for("p3"))) == (False, 3, 3)
    assert down.error is not None and down.error.kind == ErrorKind.transient
    assert "500" in down.error.message
    assert (flaky.ok, flaky.attempts) == (True, 3)
    assert all(by_id[f"p{i}"].ok and by_id[f"p{i}"].attempts == 1 for i in (1, 5, 6, 7, 8))
    st = pool.status()
    assert (st.done, st.failed, st.retries) == (6, 2, 4)


async def test_concurrency_never_exceeds_the_limit(serve: Any) -> None:
    server, client = await serve()
    pool = Pool("fake", limit(concurrency=3))
    in_flight: list[int] = []
    results = await run_all(pool, pages(30), caller(client, on_start=lambda u: in_flight.append(
        pool.status().in_flight)))
    assert all(r.ok for r in results)
    assert server.max_concurrent == 3  # reached, never passed
    assert max(in_flight) <= 3


async def test_timeout_is_transient_and_retried(serve: Any) -> None:
    server, client = await serve(stall={"p1": [1.0], "p2": [1.0, 1.0, 1.0]})
    pool = Pool("fake", limit(timeout_s=0.3, max_attempts=3))
    by_id = {r.unit.id: r for r in await run_all(pool, pages(3), caller(client))}
    assert (by_id["p1"].ok, by_id["p1"].attempts) == (True, 2)
    stuck = by_id["p2"]
    assert (stuck.ok, stuck.attempts) == (False, 3)
    assert stuck.error is not None and stuck.error.kind == ErrorKind.transient
    assert "timed out" in stuck.error.message
    assert (by_id["p3"].ok, by_id["p3"].attempts) == (True, 1)


async def test_book_level_unit_overtakes_queued_pages_on_a_busy_pool(serve: Any) -> None:
    server, client = await serve(limit=20, window_s=1.0)
    pool = Pool("fake", limit(rpm=20, concurrency=2), window_s=1.0)
    fn = caller(client)
    page_tasks = [asyncio.ensure_future(pool.run(u, fn)) for u in reversed(pages(12))]
    while len(server.hits) < 3:
        await asyncio.sleep(0.01)
    started_before = len(server.hits)
    book = WorkUnit(id="meta", op="metadata", provider="fake", book="b", priority=PRIORITY_BOOK)
    assert (await pool.run(book, fn)).ok
    await asyncio.gather(*page_tasks)
    order = [h.id for h in server.hits]
    # Only the units already holding a slot (at most the concurrency) may go before it.
    assert order.index("meta") <= started_before + 2
    later = [int(i[1:]) for i in order[order.index("meta") + 1:]]
    assert later == sorted(later)
