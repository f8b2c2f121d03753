"""The thin sync layer: run a coroutine to completion from sync code, even inside a running loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` when no loop runs here; else run it on a fresh loop in a worker thread.

    Jupyter runs cells inside an event loop, where ``asyncio.run`` refuses to start; a thread
    with its own loop avoids patching the running one.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
