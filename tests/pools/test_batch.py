"""The CPU-pool batcher: items waiting together leave together, in fair shares, errors per item."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Hashable

import pytest

from bookops.pools import CpuPool
from bookops.pools.batch import Batcher

pytestmark = pytest.mark.timeout(60)


def _double(key: Hashable, items: list[int]) -> list[tuple[str, int, int]]:
    """(call id, pid, result) for each item: items of one call share the call id."""
    call = uuid.uuid4().hex
    if any(i < 0 for i in items):
        raise ValueError(f"negative item in {items}")
    return [(call, os.getpid(), int(key) * i) for i in items]  # type: ignore[call-overload]


async def test_items_waiting_for_a_busy_slot_leave_as_one_call(cpu: CpuPool) -> None:
    batcher: Batcher[int, tuple[str, int, int]] = Batcher(cpu, _double, max_batch=4, slots=1)
    got = await asyncio.gather(*(batcher.submit(2, i) for i in range(1, 6)))
    assert [r for _, _, r in got] == [2, 4, 6, 8, 10]  # every caller gets its own item's result
    calls = [c for c, _, _ in got]
    # the first leaves at once (the slot was free); the four that waited behind it go together
    assert calls[0] != calls[1] and len(set(calls[1:])) == 1
    assert batcher.batches == 2


async def test_a_batch_takes_a_fair_share_of_what_waits(cpu: CpuPool) -> None:
    batcher: Batcher[int, tuple[str, int, int]] = Batcher(cpu, _double, max_batch=4, slots=2)
    got = await asyncio.gather(*(batcher.submit(1, i) for i in range(8)))
    assert [r for _, _, r in got] == list(range(8))
    sizes: dict[str, int] = {}
    for call, _, _ in got:
        sizes[call] = sizes.get(call, 0) + 1
    # two leave alone; of the six left waiting, a free slot takes half, then half of the rest...
    # never all four it may hold while another slot could share them
    assert sorted(sizes.values()) == [1, 1, 1, 2, 3]


async def test_items_of_different_keys_never_share_a_call(cpu: CpuPool) -> None:
    batcher: Batcher[int, tuple[str, int, int]] = Batcher(cpu, _double, max_batch=4, slots=1)
    got = await asyncio.gather(*(batcher.submit(k, 1) for k in (1, 2, 3, 2, 3)))
    assert [r for _, _, r in got] == [1, 2, 3, 2, 3]
    by_call: dict[str, set[int]] = {}
    for call, _, r in got:
        by_call.setdefault(call, set()).add(r)
    assert all(len(keys) == 1 for keys in by_call.values())


async def test_a_failing_batch_is_tried_item_by_item(cpu: CpuPool) -> None:
    batcher: Batcher[int, tuple[str, int, int]] = Batcher(cpu, _double, max_batch=4, slots=1)
    got = await asyncio.gather(*(batcher.submit(3, i) for i in (1, 2, -1, 4)), return_exceptions=True)
    assert [g if isinstance(g, Exception) else g[2] for g in got[:2]] == [3, 6]
    assert isinstance(got[2], ValueError) and "[-1]" in str(got[2])  # its own error, tried alone
    assert not isinstance(got[3], Exception) and got[3][2] == 12


async def test_a_caller_cancelled_while_waiting_is_not_read(cpu: CpuPool) -> None:
    batcher: Batcher[int, tuple[str, int, int]] = Batcher(cpu, _double, max_batch=4, slots=1)
    first = asyncio.ensure_future(batcher.submit(1, 1))
    waiting = asyncio.ensure_future(batcher.submit(1, 2))
    await asyncio.sleep(0)  # both callers are in: the first runs, the second waits
    waiting.cancel()
    assert (await first)[2] == 1
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert batcher.batches == 1
