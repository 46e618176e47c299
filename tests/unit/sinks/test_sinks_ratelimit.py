"""The shared rate budget: never more than N calls in any rolling window, across threads; 429 pauses everyone."""

from __future__ import annotations

import threading

from pipeline.sinks.hubspot.ratelimit import SlidingWindowLimiter, make_limiters


class FakeClock:
    """A clock that only moves when someone sleeps: the limiter's waits become exact and instant."""

    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def time(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def max_in_any_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    best, lo = 0, 0
    for hi, at in enumerate(starts):
        while at - starts[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_never_more_than_budget_in_any_rolling_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(190, 10.0, clock=clock.time, sleep=clock.sleep)
    starts = []
    for _ in range(1000):
        limiter.acquire()
        starts.append(clock.time())
    assert max_in_any_window(starts, 10.0) == 190
    # and it does not waste the budget: 1000 calls need a little over 5 windows, not more
    assert 40.0 <= starts[-1] <= 50.0 + 1e-6


def test_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(10, 1.0, margin_s=0.25, clock=clock.time, sleep=clock.sleep)
    starts = []
    for _ in range(30):
        limiter.acquire()
        starts.append(clock.time())
    assert max_in_any_window(starts, 1.25) == 10


def test_threads_share_one_budget() -> None:
    # observed start times trail the limiter's by scheduling jitter (a loaded 2-core machine: tens of ms): the
    # margin is there for exactly that
    limiter = SlidingWindowLimiter(20, 0.5, margin_s=0.2)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            limiter.acquire()
            import time

            with lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 60
    assert max_in_any_window(starts, 0.5) <= 20


def test_pause_blocks_every_caller_until_it_passes() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(100, 10.0, clock=clock.time, sleep=clock.sleep)
    limiter.acquire()
    limiter.pause(3.0)
    waited = limiter.acquire()
    assert waited >= 3.0 - 1e-9
    assert clock.time() >= 3.0


def test_search_budget_is_lower() -> None:
    limiters = make_limiters(190, 10.0, 4.0, margin_s=0.0)
    assert limiters.search.max_calls == 4
    assert limiters.search.window_s == 1.0
    assert limiters.general.max_calls == 190
