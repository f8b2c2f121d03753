"""Per-provider rate-limited pools, the CPU pool and the dispatcher that routes units to them."""

from .cpu import CpuPool
from .dispatcher import Dispatcher
from .pool import ExecuteFn, Pool, PoolStatus
from .units import PRIORITY_BOOK, PRIORITY_PAGE, Done, UnitError, Usage, WorkResult, WorkUnit

__all__ = [
    "PRIORITY_BOOK", "PRIORITY_PAGE", "CpuPool", "Dispatcher", "Done", "ExecuteFn", "Pool",
    "PoolStatus", "UnitError", "Usage", "WorkResult", "WorkUnit",
]
