"""Failed logins and key checks, limited per client address and per principal (pure; the caller passes the time).

An address that fails ``limit`` times within ``window_s`` is locked out for ``lockout_s``: guessing keys or
passwords from one place stops. The per-principal counter (a key id, a user name) has a higher limit: it stops a
distributed guess at one account, while a single attacker who knows a key id (they are not secret) cannot lock its
owner out as easily as an address. While locked, even a correct credential is refused (otherwise the lockout
would still answer the guess). Memory is bounded: past ``max_entries`` tracked names, the stalest are dropped.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    limit: int
    window_s: float
    lockout_s: float


class FailureLimiter:
    """Counts failures per name (``addr:<ip>``, ``principal:<key id>``) in a sliding window."""

    def __init__(self, limits: dict[str, Limit], max_entries: int = 50_000) -> None:
        """``limits``: by the name's kind, the part before the first colon (``addr``, ``principal``)."""
        self._limits = limits
        self._max_entries = max_entries
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}

    def retry_after(self, names: list[str], now: float) -> float | None:
        """Seconds until these names may try again, or None when none of them is locked."""
        waits = [until - now for name in names if (until := self._locked_until.get(name, 0.0)) > now]
        return max(waits) if waits else None

    def failed(self, names: list[str], now: float) -> float | None:
        """Record a failure for each name; returns the lockout (seconds) when this failure started one."""
        started: float | None = None
        for name in names:
            rule = self._limits.get(name.partition(":")[0])
            if rule is None:
                continue
            times = self._failures.pop(name, None) or deque()
            while times and now - times[0] > rule.window_s:
                times.popleft()
            times.append(now)
            self._failures[name] = times  # most recently failed last: the stalest go first when full
            if len(times) >= rule.limit:
                self._locked_until[name] = now + rule.lockout_s
                times.clear()
                started = max(started or 0.0, rule.lockout_s)
        while len(self._failures) > self._max_entries:
            stale, _ = self._failures.popitem(last=False)
            self._locked_until.pop(stale, None)
        for name in [n for n, until in self._locked_until.items() if until <= now]:
            del self._locked_until[name]
        return started

    def succeeded(self, names: list[str]) -> None:
        """A success forgets earlier failures of these names (a person who mistyped once is not counted on)."""
        for name in names:
            self._failures.pop(name, None)


def address_name(address: str | None) -> str:
    return f"addr:{address or 'unknown'}"


def principal_name(key_id_or_login: str) -> str:
    return f"principal:{key_id_or_login}"
