"""The shape shared by book-level operations: one unit per book, a flag in ``Book.flags``."""

from __future__ import annotations

from typing import Any, ClassVar

from ..pools.units import PRIORITY_BOOK, WorkResult, WorkUnit
from ..schema import OpMetrics
from ._common import clear_stale, flag_update
from .base import OpContext, Operation


class BookOperation(Operation):
    """A book-level op: ``ready`` says when its inputs are there; ``store_value`` persists the result."""

    level: ClassVar[str] = "book"  # type: ignore[assignment]
    collections: ClassVar[tuple[str, ...]] = ("books",)

    def __init__(self, *, provider: str | None = None) -> None:
        self.provider = provider

    def _provider(self, ctx: OpContext) -> str:
        return self.provider or ctx.settings.provider_for(self.name)

    async def ready(self, ctx: OpContext) -> bool:
        """True when the inputs are stored (e.g. the front pages are blended)."""
        raise NotImplementedError

    async def store_value(self, ctx: OpContext, value: Any, metrics: OpMetrics) -> dict[str, Any]:
        """Persist the result (data first); return details for the history event."""
        raise NotImplementedError

    async def _state(self, ctx: OpContext) -> str:
        book = await ctx.refresh_book()
        return book.flag(self.name).state.value

    async def create_units(self, ctx: OpContext) -> list[WorkUnit]:
        # a failed op is tried again by the next run (within a run the runner never repeats a unit)
        if await self._state(ctx) == "done" or not await self.ready(ctx):
            return []
        return [WorkUnit(id=f"{self.name}:{ctx.book.id}", op=self.name, provider=self._provider(ctx),
                         book=ctx.book.id, priority=PRIORITY_BOOK)]

    async def handle_result(self, ctx: OpContext, result: WorkResult) -> list[WorkUnit]:
        metrics = OpMetrics(provider=result.unit.provider, model=result.usage.model, seconds=result.run_s,
                            queue_s=result.queued_s, attempts=result.attempts,
                            prompt_tokens=result.usage.prompt_tokens,
                            completion_tokens=result.usage.completion_tokens, cost_usd=result.usage.cost_usd)
        detail = await self.store_value(ctx, result.value, metrics)
        update = flag_update(self.name, "done", provider=result.unit.provider,
                             extra={f"metrics.{self.name}": metrics.model_dump(mode="json")})
        update["$inc"] = {f"flags.{self.name}.attempts": result.attempts}
        await ctx.store.patch_book(ctx.book.id, update)
        await clear_stale(ctx, self.name)
        ctx.event(self.name, f"{self.name}.done", **detail)
        return []

    async def is_complete(self, ctx: OpContext) -> bool:
        return await self._state(ctx) == "done"

    async def done_count(self, ctx: OpContext) -> int:
        return int(await self._state(ctx) == "done")
