"""Fixtures of the pool tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bookops.pools import CpuPool


@pytest.fixture
async def cpu() -> AsyncIterator[CpuPool]:
    """A CPU pool of two spawned workers, shut down after the test."""
    pool = CpuPool(2)
    try:
        yield pool
    finally:
        await pool.aclose()
