"""A spending limit for one job: paid units are admitted only while the budget allows them.

Before the runner dispatches a paid unit (provider ``openai``) it asks :meth:`Budget.admit`: what the
job has spent, plus the estimated cost of the paid units in flight, plus this unit's estimate must
stay within the limit. The first unit that would pass it stops paid dispatching for the rest of the
job: what is in flight finishes, unpaid work (tesseract, offline) goes on, and the job ends
``stopped_budget`` with the held units listed. A rerun reads its state from the store, so only what
is left is done, and LLM calls answered before come from the cache for free.

A unit's estimate is the highest of: the price table applied to the op's typical token counts
(:mod:`bookops.jobs.dryrun`), the dearest unit of the same op seen so far in this job plus 25 %,
and the endpoint's dearest price per token seen so far (from its ``usage.cost``) applied to the
op's typical tokens plus 25 %. With none of these (no price table, nothing answered yet) the job
sends one paid unit alone and learns the endpoint's prices from its answer.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from ..pools.units import WorkResult, WorkUnit
from ..settings import Settings

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger(__name__)

__all__ = ["PAID_PROVIDERS", "Admit", "Budget", "is_paid"]

PAID_PROVIDERS = frozenset({"openai"})
OBSERVED_MARGIN = 1.25


def is_paid(unit: WorkUnit) -> bool:
    return unit.provider in PAID_PROVIDERS


class Admit(StrEnum):
    go = "go"  # dispatch now
    wait = "wait"  # hold until the paid units in flight report their cost
    stop = "stop"  # the budget would be passed: no more paid units in this job


@dataclass
class Budget:
    limit_usd: float
    settings: Settings
    job_id: str | None = None
    spent_usd: float = 0.0
    stopped: bool = False
    stop_reason: str | None = None
    in_flight: dict[str, tuple[str, float | None]] = field(default_factory=dict)  # unit id -> (op, estimate)
    observed: dict[str, float] = field(default_factory=dict)  # op -> dearest unit seen
    unpriced: set[str] = field(default_factory=set)  # ops whose units came back with no cost at all
    usd_per_token: float | None = None  # the dearest rate seen: cost / (prompt + completion tokens)

    # ------------------------------------------------------------------ estimates
    def estimate(self, unit: WorkUnit) -> float | None:
        """The most any of these says: the price table, the op's dearest unit so far, the endpoint's
        dearest price per token so far applied to the op's typical tokens (the last two plus 25 %)."""
        from .dryrun import TYPICAL_TOKENS, unit_estimate

        found: list[float] = []
        table = unit_estimate(self.settings, unit.op, unit.provider)
        if table is not None:
            found.append(table)
        if unit.op in self.observed:
            found.append(self.observed[unit.op] * OBSERVED_MARGIN)
        typical = TYPICAL_TOKENS.get(unit.op.split(":", 1)[0])
        if self.usd_per_token is not None and typical is not None:
            found.append(self.usd_per_token * sum(typical) * OBSERVED_MARGIN)
        if found:
            return max(found)
        if self.unpriced:
            return 0.0  # neither the endpoint nor the price table gives a cost: it cannot be counted
        return None

    @property
    def reserved_usd(self) -> float:
        return sum(est or 0.0 for _op, est in self.in_flight.values())

    # ------------------------------------------------------------------ decisions
    def admit(self, unit: WorkUnit) -> Admit:
        if not is_paid(unit):
            return Admit.go
        if self.stopped:
            return Admit.stop
        est = self.estimate(unit)
        if est is None:
            # nothing known about this endpoint's prices yet: one paid unit alone, to learn them
            if self.in_flight:
                return Admit.wait
            est_used = 0.0
        else:
            est_used = est
        if self.limit_usd <= 0 or self.spent_usd + self.reserved_usd + est_used > self.limit_usd + 1e-12:
            self.stopped = True
            self.stop_reason = (f"budget ${self.limit_usd:.4f}: spent ${self.spent_usd:.4f}, "
                                f"in flight ~${self.reserved_usd:.4f}, next {unit.op} unit "
                                f"~${est_used:.4f}")
            log.warning("budget reached; no more paid units: %s", self.stop_reason)
            return Admit.stop
        return Admit.go

    def started(self, unit: WorkUnit) -> None:
        if is_paid(unit):
            self.in_flight[unit.id] = (unit.op, self.estimate(unit))

    async def finished(self, result: WorkResult, store: Store | None = None) -> None:
        unit = result.unit
        if not is_paid(unit):
            return
        self.in_flight.pop(unit.id, None)
        cost = result.usage.cost_usd
        if result.ok:
            if cost is not None:
                self.spent_usd += cost
                if not result.usage.cached and cost > self.observed.get(unit.op, 0.0):
                    self.observed[unit.op] = cost
                tokens = (result.usage.prompt_tokens or 0) + (result.usage.completion_tokens or 0)
                if not result.usage.cached and tokens > 0 and cost > 0:
                    self.usd_per_token = max(self.usd_per_token or 0.0, cost / tokens)
            elif not result.usage.cached:
                self.unpriced.add(unit.op)
            return
        # A unit that failed for good carries no usage; its calls were recorded, paid or not.
        if store is not None and self.job_id is not None:
            calls = await store.list_calls(unit.book, job=self.job_id)
            self.spent_usd += sum(c.cost_usd or 0.0 for c in calls
                                  if c.op == unit.op and c.page == unit.page)


@dataclass
class Held:
    """Paid units the budget kept back, by operation, for the job's record."""

    units: list[WorkUnit] = field(default_factory=list)

    def by_op(self) -> dict[str, int]:
        return dict(Counter(u.op for u in self.units))

    def describe(self) -> str:
        parts = []
        for op, n in sorted(self.by_op().items()):
            pages = sorted(u.page for u in self.units if u.op == op and u.page is not None)
            where = f" (pages {_ranges(pages)})" if pages else ""
            parts.append(f"{op} {n}{where}")
        return ", ".join(parts)


def _ranges(nums: list[int]) -> str:
    out: list[str] = []
    start = prev = None
    for n in nums:
        if start is None:
            start = prev = n
        elif prev is not None and n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out)
