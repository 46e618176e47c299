"""One rate budget per worker process for every HubSpot call (HubSpot counts per app, not per thread or sink).

A sliding-window log, not a token bucket: HubSpot enforces "at most N requests in any rolling window of W seconds",
and a log of the last N start times is exact for that rule (a token bucket refilling at N/W lets a burst of N
through right after a full window, i.e. up to 2N in one rolling window). A small ``margin_s`` widens the window
so that requests leaving here within the budget still arrive within it after network jitter.

After a 429 every caller of the process pauses until ``Retry-After`` has passed (``pause``), not only the one
that got it: the budget is shared, so is the penalty.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache


class SlidingWindowLimiter:
    """At most ``max_calls`` acquisitions in any ``window_s`` (+ ``margin_s``) seconds, across threads."""

    def __init__(
        self,
        max_calls: int,
        window_s: float,
        *,
        margin_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_calls < 1 or window_s <= 0:
            raise ValueError("a rate limit needs at least one call per positive window")
        self.max_calls = max_calls
        self.window_s = window_s + max(0.0, margin_s)
        self._clock = clock
        self._sleep = sleep
        self._starts: deque[float] = deque()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Block until a call may start; returns how long it waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                horizon = now - self.window_s
                while self._starts and self._starts[0] <= horizon:
                    self._starts.popleft()
                wait = self._paused_until - now
                if wait <= 0 and len(self._starts) < self.max_calls:
                    self._starts.append(now)
                    return waited
                if wait <= 0:
                    wait = self._starts[0] + self.window_s - now
            wait = max(wait, 0.001)
            self._sleep(wait)
            waited += wait

    def pause(self, seconds: float) -> None:
        """Nobody starts a call for ``seconds`` (HubSpot said 429: the whole process is over budget)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))

    @property
    def in_window(self) -> int:
        with self._lock:
            horizon = self._clock() - self.window_s
            return sum(1 for start in self._starts if start > horizon)


@dataclass(frozen=True)
class HubSpotLimiters:
    """The general budget (every call) and the search API's lower one (search calls take from both)."""

    general: SlidingWindowLimiter
    search: SlidingWindowLimiter


def make_limiters(requests: int, window_s: float, search_per_s: float, margin_s: float = 0.1) -> HubSpotLimiters:
    search_calls = max(1, round(search_per_s))
    return HubSpotLimiters(
        general=SlidingWindowLimiter(requests, window_s, margin_s=margin_s),
        search=SlidingWindowLimiter(search_calls, search_calls / search_per_s, margin_s=margin_s),
    )


@lru_cache(maxsize=8)
def shared_limiters(requests: int, window_s: float, search_per_s: float, margin_s: float = 0.1) -> HubSpotLimiters:
    """The process-wide limiters for one budget: every gateway of a worker built from the same settings shares them."""
    return make_limiters(requests, window_s, search_per_s, margin_s)
