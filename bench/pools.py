"""Pool bench: units through a provider pool against a loopback server with its own rate limit.

The server admits ``--limit`` requests per sliding ``--window`` seconds (429 with Retry-After
beyond) and answers after ~50 ms. Two runs of ``--units`` units: the pool set to the server's
limit, then set ``--over`` times above it. Printed per run: achieved throughput over the limit,
429s, the most requests the server saw in any window, p50/p95 queue wait, and the queue wait of
one book-level unit submitted into the busy pool.

    .venv/bin/python bench/pools.py                 # ~2.5 min: 100 per 10 s, 600 units
    .venv/bin/python bench/pools.py --window 2 --limit 20 --units 120   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.pools._server import LimitServer, caller  # noqa: E402

from bookops.pools import PRIORITY_BOOK, Pool, WorkResult, WorkUnit  # noqa: E402
from bookops.settings import RateLimit  # noqa: E402


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def one_run(args: argparse.Namespace, pool_rate: float) -> dict[str, Any]:
    lifetime = 20 * args.units / args.limit * args.window + 60
    async with LimitServer(limit=args.limit, window_s=args.window, latency_s=(0.04, 0.06),
                           lifetime_s=lifetime) as server:
        async with httpx2.AsyncClient(base_url=server.url, timeout=30) as client:
            pool = Pool("bench", RateLimit(concurrency=args.concurrency, rpm=pool_rate, max_attempts=8,
                                           timeout_s=30, backoff_s=0.2, backoff_max_s=5),
                        window_s=args.window)
            fn = caller(client)
            units = [WorkUnit(id=f"p{i}", op="bench", provider="bench", book="b", page=i)
                     for i in range(1, args.units + 1)]
            t0 = time.monotonic()
            tasks = [asyncio.ensure_future(pool.run(u, fn)) for u in units]
            await asyncio.sleep(args.book_at)
            book = await pool.run(WorkUnit(id="toc", op="toc_find", provider="bench", book="b",
                                           priority=PRIORITY_BOOK), fn)
            results: list[WorkResult] = list(await asyncio.gather(*tasks))
            elapsed = time.monotonic() - t0
            times = server.admitted_times()
            rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
            waits = [r.queued_s for r in results]
            st = pool.status()
            return {
                "pool_rate": pool_rate, "ok": sum(r.ok for r in results), "elapsed_s": elapsed,
                "throughput_over_limit": rate / (args.limit / args.window),
                "429s": server.rejected, "max_in_window": server.max_in_window(),
                "p50_wait_s": pct(waits, 50), "p95_wait_s": pct(waits, 95),
                "book_unit_wait_s": book.queued_s, "retries": st.retries, "final_rate": st.rate_rpm,
                "max_concurrent": server.max_concurrent,
            }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=600)
    ap.add_argument("--limit", type=int, default=100, help="server: requests per window")
    ap.add_argument("--window", type=float, default=10.0, help="server and pool window, seconds")
    ap.add_argument("--over", type=float, default=2.0, help="second run: pool rate / server limit")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--book-at", type=float, default=10.0, help="submit a book-level unit after s")
    args = ap.parse_args()
    per_min = args.limit * 60 / args.window
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"server: {args.limit} requests per sliding {args.window:g} s ({per_min:g}/min), "
          f"40-60 ms latency; {args.units} units, concurrency {args.concurrency}")
    cols = ["pool_rate", "ok", "elapsed_s", "throughput_over_limit", "429s", "max_in_window",
            "p50_wait_s", "p95_wait_s", "book_unit_wait_s", "retries", "final_rate", "max_concurrent"]
    print(" | ".join(cols))
    for rate in (float(args.limit), args.limit * args.over):
        row = await one_run(args, rate)
        print(" | ".join(f"{row[c]:.3g}" if isinstance(row[c], float) else str(row[c]) for c in cols),
              flush=True)


if __name__ == "__main__":
    asyncio.run(main())
