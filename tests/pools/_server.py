"""A loopback HTTP server that rate-limits like a provider, and a pool fn that calls it.

``GET /work?id=X``. The server admits at most ``limit`` requests in any sliding ``window_s``
(refused requests do not count), answers 429 with ``Retry-After`` (fractional seconds) beyond
that, waits a random latency before every answer, and logs each request. Scripts make given ids
answer 500 (some or all times), a permanent 400, a forced 429, or stall. It runs in the caller's
event loop and closes itself after ``lifetime_s`` whatever happens to the test.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2

from bookops.errors import PermanentError, RateLimited, TransientError
from bookops.pools import Done, Usage, WorkUnit


@dataclass
class Hit:
    id: str
    arrived: float  # loop time the request was read
    status: int = 0
    sent: float = 0.0  # loop time the answer was written
    retry_after: float | None = None


@dataclass
class LimitServer:
    limit: int | None = None  # requests per window; None admits everything
    window_s: float = 60.0
    latency_s: tuple[float, float] = (0.02, 0.05)
    lifetime_s: float = 60.0
    seed: int = 7
    fail_500: dict[str, int] = field(default_factory=dict)  # id -> times left (-1: always)
    fail_400: set[str] = field(default_factory=set)
    force_429: dict[str, float] = field(default_factory=dict)  # id -> Retry-After, once
    stall: dict[str, list[float]] = field(default_factory=dict)  # id -> extra delay per request

    hits: list[Hit] = field(default_factory=list)
    concurrent: int = 0
    max_concurrent: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._admitted: deque[float] = deque()
        self._rng = random.Random(self.seed)
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[Any]] = set()
        self._deadline: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> LimitServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        self._deadline = asyncio.get_running_loop().call_later(self.lifetime_s, self._expire)
        return self

    def _expire(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._conns:
            task.cancel()

    async def close(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._expire()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> LimitServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ counts
    @property
    def rejected(self) -> int:
        return sum(1 for h in self.hits if h.status == 429)

    def hits_for(self, uid: str) -> list[Hit]:
        return [h for h in self.hits if h.id == uid]

    def admitted_times(self) -> list[float]:
        return [h.arrived for h in self.hits if h.status != 429]

    def max_in_window(self) -> int:
        """The most admitted requests in any sliding window: the check the server enforces."""
        times, best, lo = self.admitted_times(), 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - self.window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    # ------------------------------------------------------------------ HTTP
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                uid = parse_qs(urlsplit(target).query).get("id", [""])[0]
                await self._answer(uid, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._conns.discard(task)
            writer.close()

    async def _answer(self, uid: str, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        hit = Hit(id=uid, arrived=loop.time())
        self.hits.append(hit)
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        try:
            hit.status, body, oldest = self._decide(uid, hit.arrived)
            delay = self._rng.uniform(*self.latency_s)
            stalls = self.stall.get(uid)
            if stalls:
                delay += stalls.pop(0)
            await asyncio.sleep(delay)
            headers = ""
            hit.sent = loop.time()
            if hit.status == 429:
                forced = self.force_429.pop(uid, None)
                wait = forced if forced is not None else max(0.0, oldest + self.window_s - hit.sent)
                hit.retry_after = wait
                headers = f"Retry-After: {wait:.3f}\r\nretry-after-ms: {wait * 1000:.0f}\r\n"
            data = json.dumps(body).encode()
            writer.write(f"HTTP/1.1 {hit.status} X\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\n{headers}\r\n".encode() + data)
            await writer.drain()
        finally:
            self.concurrent -= 1

    def _decide(self, uid: str, now: float) -> tuple[int, dict[str, Any], float]:
        if uid in self.force_429:
            return 429, {"error": "rate limited"}, now
        if self.limit is not None:
            while self._admitted and self._admitted[0] <= now - self.window_s:
                self._admitted.popleft()
            if len(self._admitted) >= self.limit:
                return 429, {"error": "rate limited"}, self._admitted[0]
            self._admitted.append(now)
        if uid in self.fail_400:
            return 400, {"error": "bad request"}, now
        left = self.fail_500.get(uid, 0)
        if left:
            self.fail_500[uid] = left - 1 if left > 0 else left
            return 500, {"error": "server error"}, now
        return 200, {"id": uid, "n": len(self.hits)}, now


def caller(client: httpx2.AsyncClient, *,
           on_start: Callable[[WorkUnit], None] | None = None) -> Callable[[WorkUnit], Awaitable[Done]]:
    """A pool fn: one GET per attempt, status codes mapped to the provider error kinds."""

    async def call(unit: WorkUnit) -> Done:
        if on_start is not None:
            on_start(unit)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await client.get("/work", params={"id": unit.id})
        if r.status_code == 429:
            raw = r.headers.get("retry-after")
            raise RateLimited("429 from the server", retry_after=float(raw) if raw else None)
        if r.status_code >= 500:
            raise TransientError(f"{r.status_code} from the server")
        if r.status_code >= 400:
            raise PermanentError(f"{r.status_code} from the server")
        return Done(r.json(), Usage(latency_s=loop.time() - t0))

    return call
