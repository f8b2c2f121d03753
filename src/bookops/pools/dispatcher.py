"""The dispatcher: one pool per provider, shared by every job in the process (one event loop)."""

from __future__ import annotations

from ..settings import Settings
from .cpu import CpuPool
from .pool import ExecuteFn, Pool, PoolStatus
from .units import WorkResult, WorkUnit

__all__ = ["Dispatcher"]


class Dispatcher:
    """Routes each unit to the pool of its provider, made on first use from the settings."""

    def __init__(self, settings: Settings, *, window_s: float = 60.0) -> None:
        self.settings = settings
        self.window_s = window_s
        self._pools: dict[str, Pool] = {}
        self.cpu = CpuPool(settings.workers)

    def pool(self, provider: str) -> Pool:
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = Pool(provider, self.settings.limit_for(provider),
                                                window_s=self.window_s)
        return pool

    async def submit(self, unit: WorkUnit, fn: ExecuteFn) -> WorkResult:
        return await self.pool(unit.provider).run(unit, fn)

    def status(self) -> dict[str, PoolStatus]:
        return {name: p.status() for name, p in self._pools.items()}

    async def aclose(self) -> None:
        await self.cpu.aclose()
