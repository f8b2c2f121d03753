"""The dispatcher: one pool per provider, shared by every job in the process (one event loop)."""

from __future__ import annotations

from ..settings import Settings
from .cpu import CpuPool
from .pool import ExecuteFn, Pool, PoolStatus
from .units import WorkResult, WorkUnit


class Dispatcher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pools: dict[str, Pool] = {}
        self.cpu = CpuPool(settings.workers)

    def pool(self, provider: str) -> Pool:
        pool = self._pools.get(provider)
        if pool is None:
            pool = self._pools[provider] = Pool(provider, self.settings.limit_for(provider))
        return pool

    async def submit(self, unit: WorkUnit, fn: ExecuteFn) -> WorkResult:
        return await self.pool(unit.provider).run(unit, fn)

    def status(self) -> dict[str, PoolStatus]:
        return {name: p.status() for name, p in self._pools.items()}

    async def aclose(self) -> None:
        self.cpu.shutdown()
