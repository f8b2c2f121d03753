"""The CPU pool (spawned workers, one dead worker costs one attempt) and the dispatcher."""

from __future__ import annotations

import asyncio
import os

import pytest

from bookops.errors import TransientError
from bookops.pools import CpuPool, Dispatcher, Pool, WorkUnit
from bookops.settings import RateLimit, Settings

pytestmark = pytest.mark.timeout(60)


async def test_workers_run_single_threaded_and_bounded(cpu: CpuPool) -> None:
    assert await cpu.run(os.getenv, "OMP_THREAD_LIMIT") == "1"
    pids = await asyncio.gather(*(cpu.run(os.getpid) for _ in range(8)))
    assert os.getpid() not in pids
    assert 1 <= len(set(pids)) <= 2


async def test_dead_worker_is_transient_and_the_executor_comes_back(cpu: CpuPool) -> None:
    with pytest.raises(TransientError, match="worker process died"):
        await cpu.run(os._exit, 3)
    assert await cpu.run(os.getenv, "OMP_THREAD_LIMIT") == "1"


async def test_pool_retries_a_unit_whose_worker_died(cpu: CpuPool) -> None:
    pool = Pool("tesseract", RateLimit(concurrency=2, max_attempts=2, backoff_s=0.01, backoff_max_s=0.01))

    async def ocr(unit: WorkUnit) -> int:
        if unit.attempt == 0:
            await cpu.run(os._exit, 1)
        return await cpu.run(os.getpid)

    res = await pool.run(WorkUnit(id="p1", op="ocr", provider="tesseract", book="b", page=1), ocr)
    assert (res.ok, res.attempts) == (True, 2)


async def test_dispatcher_shares_one_pool_per_provider(settings: Settings) -> None:
    settings.limits["fake"] = RateLimit(concurrency=1, rpm=None, max_attempts=1)
    disp = Dispatcher(settings)
    try:
        assert disp.pool("fake") is disp.pool("fake")
        assert disp.pool("openai").limit.rpm == 60  # from the settings' defaults
        assert disp.pool("nobody-configured").limit == RateLimit()

        async def fn(unit: WorkUnit) -> str:
            return unit.provider

        units = [WorkUnit(id=f"{p}{i}", op="t", provider=p, book="b", page=i)
                 for p in ("fake", "offline") for i in range(3)]
        results = await asyncio.gather(*(disp.submit(u, fn) for u in units))
        assert [r.value for r in results] == [u.provider for u in units]
        status = disp.status()
        assert status["fake"].done == 3 and status["offline"].done == 3
        assert status["fake"].concurrency == 1 and status["openai"].done == 0
    finally:
        await disp.aclose()
