"""Failed logins and key checks: per address and per principal, sliding window, lockout, bounded memory."""

from __future__ import annotations

from pipeline.identity.ratelimit import FailureLimiter, Limit, address_name, principal_name

LIMITS = {"addr": Limit(limit=3, window_s=60, lockout_s=300), "principal": Limit(limit=5, window_s=60, lockout_s=120)}


def test_address_locked_after_limit_within_window() -> None:
    limiter = FailureLimiter(LIMITS)
    names = [address_name("10.0.0.1")]
    assert limiter.failed(names, 0) is None
    assert limiter.failed(names, 10) is None
    assert limiter.retry_after(names, 11) is None
    assert limiter.failed(names, 20) == 300
    assert limiter.retry_after(names, 21) == 299
    assert limiter.retry_after([address_name("10.0.0.2")], 21) is None  # another address is not affected
    assert limiter.retry_after(names, 320) is None  # lockout over


def test_failures_outside_the_window_do_not_count() -> None:
    limiter = FailureLimiter(LIMITS)
    names = [address_name("10.0.0.1")]
    limiter.failed(names, 0)
    limiter.failed(names, 30)
    assert limiter.failed(names, 61) is None  # the one at 0 fell out of the window
    assert limiter.failed(names, 62) == 300


def test_principal_limit_catches_a_distributed_guess() -> None:
    limiter = FailureLimiter(LIMITS)
    target = principal_name("abcdefghijkl")
    for i in range(4):
        assert limiter.failed([address_name(f"10.0.1.{i}"), target], i) is None
    assert limiter.failed([address_name("10.0.1.9"), target], 5) == 120
    assert limiter.retry_after([address_name("10.0.2.1"), target], 6) == 119


def test_success_forgets_earlier_failures() -> None:
    limiter = FailureLimiter(LIMITS)
    names = [address_name("10.0.0.1")]
    limiter.failed(names, 0)
    limiter.failed(names, 1)
    limiter.succeeded(names)
    assert limiter.failed(names, 2) is None
    assert limiter.failed(names, 3) is None


def test_unknown_kinds_are_not_limited_and_memory_is_bounded() -> None:
    limiter = FailureLimiter(LIMITS, max_entries=10)
    for _ in range(10):
        assert limiter.failed(["session:x"], 0) is None
    for i in range(100):
        limiter.failed([address_name(f"10.1.{i}.1")], i)
    assert len(limiter._failures) <= 10
