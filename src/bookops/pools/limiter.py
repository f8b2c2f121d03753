"""Request-rate pacing for a pool: the aiolimiter bucket, and the rate that adapts to 429s.

Rates here are requests per *window* (``window_s``, 60 s for the public ``rpm``); tests and
benches shorten the window so a run at a provider-like rate takes seconds, not minutes.
"""

from __future__ import annotations

import math
from collections import deque

from aiolimiter import AsyncLimiter

__all__ = ["PACE", "AdaptiveRate", "make_limiter"]

# Pace a little under the limit: network jitter moves arrival times by a few milliseconds, and
# at an exact pace that is enough to put request N+1 inside a sliding window request 1 has not
# yet left, which the provider answers with a 429.
PACE = 0.98

# On a 429 the rate drops to what the provider accepted over the last window, less this margin.
_MARGIN = 0.9
_STEP = 0.1  # climb back by this fraction of the current rate per run of successes
_MIN_RUN = 10  # successes needed before a climb, at least


def make_limiter(rate: float, burst: int, window_s: float) -> AsyncLimiter:
    """A bucket that never lets more than ``rate`` requests into any sliding ``window_s``.

    ``AsyncLimiter(n, window)`` lets up to 2n-1 through in one window after an idle spell, so:
    no burst -> one request every ``window / rate``; burst b -> a bucket of b that refills at
    ``rate - b`` per window (b back to back, then the rest spread out: b + (rate - b) = rate).
    Call inside the running loop: aiolimiter binds to the loop of its first use.
    """
    paced = max(rate * PACE, 1e-9)
    b = min(burst, math.floor(paced / 2))
    if b <= 1:
        return AsyncLimiter(1, window_s / paced)
    return AsyncLimiter(b, b * window_s / (paced - b))


class AdaptiveRate:
    """The rate a pool runs at: lowered on a 429, raised stepwise after runs of successes.

    ``current`` is None while no limit applies (no configured rpm and no 429 seen yet). Pure
    bookkeeping over the times it is given, so it is tested without any clock.
    """

    def __init__(self, configured: float | None, window_s: float) -> None:
        self.configured = configured
        self.current = configured
        self.window_s = window_s
        self._starts: deque[float] = deque()  # attempt start times the provider did not refuse
        self._run = 0
        self._lowered_at = -math.inf

    def started(self, now: float) -> None:
        self._starts.append(now)
        self._prune(now)

    def accepted_in_window(self, now: float) -> int:
        self._prune(now)
        return len(self._starts)

    def succeeded(self) -> bool:
        """Count a success; True when the rate just climbed."""
        if self.current is None or (self.configured is not None and self.current >= self.configured):
            return False
        self._run += 1
        # A sliding-window provider only shows a rate is safe after a whole window at it.
        if self._run < max(_MIN_RUN, math.ceil(self.current)):
            return False
        self._run = 0
        # Steps in proportion to the current rate probe gently near the provider's limit.
        new = self.current + max(_STEP * self.current, 1.0)
        self.current = new if self.configured is None else min(new, self.configured)
        return True

    def rate_limited(self, now: float, started_at: float) -> float:
        """A 429 for the attempt started at ``started_at``; returns the lowered rate.

        The provider refuses when its window is full, so the attempts it accepted over our last
        window estimate its limit. The drop is at least 10 % and at most a half of the current
        rate, so one 429 caused by something else (a shared key, a spike) cannot stall the pool.
        """
        try:
            self._starts.remove(started_at)
        except ValueError:
            pass
        self._run = 0
        if started_at < self._lowered_at:
            # Sent at the old rate before the last drop: that drop already answered it.
            return self.current if self.current is not None else 1.0
        self._lowered_at = now
        observed = _MARGIN * self.accepted_in_window(now)
        if self.current is None:
            new = observed
        else:
            new = min(max(observed, self.current / 2), self.current * _MARGIN)
        self.current = max(new, 1.0)
        return self.current

    def _prune(self, now: float) -> None:
        edge = now - self.window_s
        while self._starts and self._starts[0] <= edge:
            self._starts.popleft()
