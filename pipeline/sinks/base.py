"""The one interface every sink shares, in the spirit of quixstreams' ``BatchingSink`` / ``SinkBackpressureError``.

A sink gets a batch of opened ``TaggedEvent``s and answers with one ``RecordResult`` per event: written, failed
(with a stable reason code, a message without personal data, and whether trying again could help), or not
applicable (e.g. HubSpot and a contact without an e-mail). When the destination cannot take anything right now
(rate limit, outage, lost connection) the sink raises ``SinkBackpressureError(retry_after)`` instead: the caller
pauses and offers the same batch again, so nothing is lost. A sink never decides policy; it writes what it is given.

``write`` is synchronous (database drivers and the HubSpot client are): the faust agent runs it in a thread.

A sink whose destination cannot recognise a write again (HubSpot) calls ``confirm_ownership()`` right before each
call: the agent sets a guard (``owning``) that refuses while this worker's hold on the batch's partitions is not
confirmed, so a worker that was stalled past its group session does not write what the partitions' new owner
writes too.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pipeline.models.rights import SinkStatus
from pipeline.models.tagged import TaggedEvent


class WriteOutcome(StrEnum):
    """What a sink did with one event (``RecordResult.outcome``)."""

    WRITTEN = "written"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"

    @property
    def sink_status(self) -> SinkStatus:
        """The status this outcome is reported with on ``sinks.results``."""
        return {
            WriteOutcome.WRITTEN: SinkStatus.DONE,
            WriteOutcome.FAILED: SinkStatus.FAILED,
            WriteOutcome.NOT_APPLICABLE: SinkStatus.NOT_APPLICABLE,
        }[self]


@dataclass(frozen=True)
class RecordResult:
    """What a sink did with one event. ``message`` never carries personal data (scrub what a remote system says)."""

    event_id: UUID
    outcome: WriteOutcome
    external_id: str | None = None
    reason: str | None = None
    message: str | None = None
    retryable: bool = False

    @classmethod
    def written(cls, event_id: UUID, external_id: str | None = None, message: str | None = None) -> RecordResult:
        return cls(event_id, WriteOutcome.WRITTEN, external_id=external_id, message=message)

    @classmethod
    def failed(cls, event_id: UUID, reason: str, message: str, *, retryable: bool = False) -> RecordResult:
        return cls(event_id, WriteOutcome.FAILED, reason=reason, message=message, retryable=retryable)

    @classmethod
    def not_applicable(cls, event_id: UUID, reason: str, message: str) -> RecordResult:
        return cls(event_id, WriteOutcome.NOT_APPLICABLE, reason=reason, message=message)


class SinkBackpressureError(Exception):
    """The destination can take nothing now: pause ``retry_after`` seconds and offer the same batch again."""

    def __init__(self, retry_after: float, reason: str = "backpressure") -> None:
        super().__init__(f"sink paused for {retry_after:.2f}s: {reason}")
        self.retry_after = max(0.0, retry_after)
        self.reason = reason


class OwnershipLostError(Exception):
    """The batch's partitions went to another worker: the batch is theirs now, this worker must have no effect."""


#: Raises ``SinkBackpressureError`` while ownership is unconfirmed, ``OwnershipLostError`` once it is gone.
OwnershipGuard = Callable[[], None]

_GUARD: ContextVar[OwnershipGuard | None] = ContextVar("leadpipe_sink_ownership_guard", default=None)


@contextmanager
def owning(guard: OwnershipGuard) -> Iterator[None]:
    """Writes started within (tasks and ``asyncio.to_thread`` copy the context) check ``guard`` before effects."""
    token = _GUARD.set(guard)
    try:
        yield
    finally:
        _GUARD.reset(token)


def confirm_ownership() -> None:
    """Right before an effect the destination cannot recognise again: does this worker still own the batch?

    A worker stalled (SIGSTOP, a starved CPU, a long GC) past its consumer group session lost its partitions to
    another worker, which writes the same events; resumed, the stalled one still held its batch and wrote it too
    (measured: two HubSpot upserts of two events, the old owner's within 0.3 s of resuming). Without a guard (a
    sink used outside the worker) this does nothing."""
    guard = _GUARD.get()
    if guard is not None:
        guard()


class BatchingSink(ABC):
    """A destination for accepted events. Implementations must be idempotent: a batch may be offered again."""

    #: Short name used in ``sinks.results`` (``sink``) and dead letters (``stage = "sink:<name>"``).
    name: ClassVar[str]

    def setup(self) -> None:  # noqa: B027  (optional hook, most sinks need nothing)
        """Idempotent start-up work (schema, remote properties). Called once before the first batch."""

    @abstractmethod
    def write(self, batch: Sequence[TaggedEvent]) -> list[RecordResult]:
        """Write the batch; one result per event, in any order. Raise ``SinkBackpressureError`` to pause."""

    def close(self) -> None:  # noqa: B027
        """Release connections."""

    @property
    def stage(self) -> str:
        return f"sink:{self.name}"


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): spreads retries of many workers apart."""
    ceiling = min(max_s, base_s * (2 ** min(attempt, 30)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def check_complete(batch: Sequence[TaggedEvent], results: Sequence[RecordResult]) -> None:
    """Raise if a sink forgot an event or answered twice: a missing answer is how events get lost silently."""
    expected = {tagged.event.event_id for tagged in batch}
    answered = [result.event_id for result in results]
    if len(answered) != len(set(answered)) or set(answered) != expected:
        missing = len(expected - set(answered))
        extra = len(set(answered) - expected)
        raise RuntimeError(
            f"sink answered {len(answered)} results for {len(expected)} events ({missing} missing, {extra} unknown)"
        )
