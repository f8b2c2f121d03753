"""The CPU pool: a bounded process pool for rendering and tesseract. PLACEHOLDER."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _init_worker() -> None:
    # tesseract's OpenMP threads fight each other when several run at once: 6.2 s/page vs 0.57.
    os.environ["OMP_THREAD_LIMIT"] = "1"


class CpuPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _get(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            import multiprocessing

            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker)
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._get(), fn, *args)

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
