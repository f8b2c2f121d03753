"""The CPU pool: a bounded process pool for rendering and tesseract, one process per core."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from ..errors import TransientError

__all__ = ["CpuPool"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def _init_worker(parent: int) -> None:
    # Tesseract's OpenMP threads fight each other when several processes run at once: 6.2 s/page
    # with OpenMP on against 0.57 s/page for two single-threaded processes on two cores.
    os.environ["OMP_THREAD_LIMIT"] = "1"
    # Ctrl-C reaches the whole process group. The parent decides what stops: it lets the pages in
    # flight finish and keeps them, so workers (and the tesseract they start, which inherits an
    # ignored signal) must not die of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A parent killed with SIGKILL never shuts its pool down, and a worker never reads EOF on the
    # call queue (each worker holds its write end too): without this it would wait forever.
    # The parent's pid comes from the parent: a worker orphaned while it was still starting up
    # would otherwise take its new parent (init) for its own and never leave.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="bookops-parent-watch").start()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:  # reparented once the parent is gone
        time.sleep(1.0)
    os._exit(1)


class CpuPool:
    """``workers`` spawned processes, started on first use; a dead worker costs one attempt.

    Spawn, not fork: forking a process that runs an event loop and threads copies their locks.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("a CPU pool needs at least one worker")
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None

    def _get(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(os.getpid(),))
        return self._executor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker process; ``fn`` and its arguments must pickle."""
        executor = self._get()
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except BrokenProcessPool as exc:
            # A worker died (killed, out of memory, a crash in native code): every pending call
            # fails with it. Replace the executor once, and let the pool retry the unit.
            if self._executor is executor:
                self._executor = None
                executor.shutdown(wait=False, cancel_futures=True)
            log.warning("CPU worker process died; the pool is restarted")
            raise TransientError(f"a CPU worker process died: {exc}") from exc

    def shutdown(self, *, wait: bool = True) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=wait, cancel_futures=True)

    async def aclose(self) -> None:
        """Shut down without blocking the loop while workers finish."""
        await asyncio.to_thread(self.shutdown)
