"""The thin sync layer: run a coroutine to completion from sync code, even inside a running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_CANCEL_WAIT_S = 90.0  # how long an interrupted call waits for its coroutine to wind down


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` when no loop runs here; else run it on a fresh loop in a worker thread.

    Jupyter runs cells inside an event loop, where ``asyncio.run`` refuses to start; a thread
    with its own loop avoids patching the running one (no ``nest_asyncio``). Interrupting the
    kernel while it waits cancels the coroutine in its thread, so a job ends as cancelled (keeping
    the results in flight) instead of running on unseen; a second interrupt stops waiting for that.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    return _run_in_thread(coro)


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    started = threading.Event()
    handle: dict[str, Any] = {}

    async def main() -> T:
        handle["loop"] = asyncio.get_running_loop()
        handle["task"] = asyncio.current_task()
        started.set()
        return await coro

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookops-sync")
    future = pool.submit(asyncio.run, main())
    try:
        return future.result()
    except BaseException:
        if future.done():  # the coroutine itself raised: nothing to cancel
            raise
        # Interrupted while waiting (KeyboardInterrupt from the kernel): cancel the coroutine.
        if started.wait(timeout=5):
            handle["loop"].call_soon_threadsafe(handle["task"].cancel)
            try:
                future.result(timeout=_CANCEL_WAIT_S)
            except BaseException:  # its CancelledError, a timeout or a second interrupt
                pass
        raise
    finally:
        pool.shutdown(wait=False)
