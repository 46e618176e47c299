"""Retention expiry (policy section 8): which stored interactions are past their expiry, per subject (pure).

The CRM stores each interaction's expiry (computed by the chain from the policy's periods and clocks). The sweep
turns the expired ones into RETENTION_EXPIRY commands that run through the same machinery as erasure; whether a
subject has nothing left (and is erased entirely) is decided again when the command runs, against the CRM of that
moment, because new interactions may arrive between the sweep and the execution.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

#: Event ids per command; keeps one command far below Kafka's default 1 MB record limit.
MAX_EVENT_IDS_PER_COMMAND = 1000


@dataclass(frozen=True)
class StoredInteraction:
    """What the sweep needs to know about one stored interaction: whose, which, and until when."""

    subject_key: str
    event_id: UUID
    retention_expires_at: datetime


@dataclass(frozen=True)
class SubjectExpiry:
    """The expired interactions of one subject, and whether they are all the subject has."""

    subject_key: str
    expired: tuple[UUID, ...]
    remaining: int

    @property
    def erases_subject(self) -> bool:
        return self.remaining == 0

    def batches(self, size: int = MAX_EVENT_IDS_PER_COMMAND) -> list[tuple[UUID, ...]]:
        return [self.expired[i : i + size] for i in range(0, len(self.expired), size)]


@dataclass(frozen=True)
class ExpiryPlan:
    now: datetime
    subjects: tuple[SubjectExpiry, ...] = field(default=())

    @property
    def interaction_count(self) -> int:
        return sum(len(s.expired) for s in self.subjects)


def plan_expiry(
    interactions: Iterable[StoredInteraction], now: datetime, totals: Mapping[str, int] | None = None
) -> ExpiryPlan:
    """Group interactions whose expiry is at or before ``now`` by subject; subjects in a stable order.

    ``totals`` (interactions per subject, all of them) lets the caller pass only the expired ones; without it the
    remaining count is what ``interactions`` holds that has not expired.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware: a retention clock cannot guess a zone")
    expired: dict[str, list[UUID]] = defaultdict(list)
    kept: dict[str, int] = defaultdict(int)
    for item in interactions:
        if item.retention_expires_at <= now:
            expired[item.subject_key].append(item.event_id)
        else:
            kept[item.subject_key] += 1

    def remaining(key: str, ids: list[UUID]) -> int:
        if totals is None:
            return kept.get(key, 0)
        return max(0, totals.get(key, 0) - len(ids))

    subjects = tuple(
        SubjectExpiry(subject_key=key, expired=tuple(sorted(ids, key=str)), remaining=remaining(key, ids))
        for key, ids in sorted(expired.items())
    )
    return ExpiryPlan(now=now, subjects=subjects)
