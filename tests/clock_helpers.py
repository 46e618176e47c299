"""A clock a test moves by hand (``clock.now += 5``), given where the code takes ``time.monotonic``."""

from __future__ import annotations


class Clock:
    """Seconds as a float, standing still until the test moves ``now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
