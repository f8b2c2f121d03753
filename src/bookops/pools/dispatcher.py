"""The dispatcher: one pool per provider, shared by every job in the process (one event loop)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from ..settings import Settings
from .batch import Batcher
from .cpu import CpuPool
from .pool import ExecuteFn, Pool, PoolStatus
from .units import WorkResult, WorkUnit

if TYPE_CHECKING:
    from ..providers.openai_compat import LlmClient

__all__ = ["Dispatcher"]


class Dispatcher:
    """Routes each unit to the pool of its provider, made on first use from the settings."""

    def __init__(self, settings: Settings, *, window_s: float = 60.0) -> None:
        self.settings = settings
        self.window_s = window_s
        self._pools: dict[str, Pool] = {}
        self._llm: LlmClient | None = None
        self.cpu = CpuPool(settings.workers)
        self._batchers: dict[str, Batcher[Any, Any]] = {}

    def pool(self, provider: str) -> Pool:
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = Pool(provider, self.settings.limit_for(provider),
                                                window_s=self.window_s)
        return pool

    def batcher(self, name: str, fn: Callable[[Hashable, list[Any]], list[Any]], *,
                max_batch: int = 4) -> Batcher[Any, Any]:
        """The CPU-pool batcher called ``name`` (made on first use with ``fn``), shared by every job."""
        batcher = self._batchers.get(name)
        if batcher is None:
            batcher = self._batchers[name] = Batcher(self.cpu, fn, max_batch=max_batch)
        return batcher

    def llm(self) -> LlmClient:
        """The one LLM client of this process, made on first use: every unit shares its
        connection pool instead of opening (and tearing down) one per call."""
        if self._llm is None:
            # imported here: providers sit above pools, and a run without an LLM never needs it
            from ..providers.openai_compat import LlmClient

            self._llm = LlmClient(self.settings)
        return self._llm

    async def submit(self, unit: WorkUnit, fn: ExecuteFn) -> WorkResult:
        return await self.pool(unit.provider).run(unit, fn)

    def status(self) -> dict[str, PoolStatus]:
        return {name: p.status() for name, p in self._pools.items()}

    async def aclose(self) -> None:
        llm, self._llm = self._llm, None
        try:
            if llm is not None:
                await llm.aclose()
        finally:
            await self.cpu.aclose()
