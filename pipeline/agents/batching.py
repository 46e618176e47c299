"""Batch agents: whole fetched batches of a topic handed to one handler, atomic with the transaction commit.

Why not ``@app.agent`` with ``stream.take``: measured on this project's 2-core machine, faust moves a record from
the fetch to a stream in about 150-300 us (two tasks and an ``asyncio.wait`` per record in ``_drain_messages``,
queue hand-offs, per-record acks), more than the processing chain itself costs. And under exactly_once faust
commits each partition's transaction on a timer, concurrently with the agents: a batch whose outputs were already
sent but whose offsets were not yet acknowledged can be committed half-way (outputs without offsets), and a crash
right after makes the restarted worker produce those outputs a second time.

A batch agent fixes both. ``LeadpipeApp.batch_agent(topic, handler)`` registers one; the app's consumer
(``pipeline.agents.faust_adapter.BatchingConsumer``) gives every fetched batch of that topic to the handler in one
call, and a transaction commits only between batches, with every output of a batch and its offsets, or with none.
The batches of one fetch (one per partition, each with its own transaction) run side by side: a handler must not
assume it is the only one running, only that no other handles its partition at the same time.
The handler acknowledges the records it finished (``BatchContext.ack``); faust's commit machinery, group
membership, transactional producers, tables and recovery are used unchanged. Within one assignment of a partition
no record is handled twice (``unhandled``): table recovery's seek to the committed offsets would otherwise hand a
batch handled before the seek over again, into the same open transaction.

This module is what handlers see; how it is done inside faust is ``pipeline.agents.faust_adapter``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from faust.types import TP


class Fetched(Protocol):
    """A fetched record as aiokafka hands it over (``ConsumerRecord``): what a batch handler reads."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


class Acknowledger(Protocol):
    """The consumer side a batch handler talks to (``BatchingConsumer``)."""

    def ack_offsets(self, tp: TP, offsets: Sequence[int]) -> None: ...
    def assignment(self) -> set[TP]: ...


@dataclass(frozen=True, slots=True)
class BatchContext:
    """What a batch handler gets besides the records: the partition and how to acknowledge."""

    tp: TP
    consumer: Acknowledger

    def ack(self, records: Sequence[Fetched]) -> None:
        """Mark records done: their offsets go into the next commit (the partition's transaction)."""
        self.consumer.ack_offsets(self.tp, [record.offset for record in records])

    def still_assigned(self) -> bool:
        return self.tp in self.consumer.assignment()


BatchHandler = Callable[[BatchContext, Sequence[Fetched]], Awaitable[None]]


class RetryBatch(Exception):
    """Raised by a handler that cannot handle its batch now (the database is down): nothing of it was sent or
    acknowledged; the consumer delivers the same records again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float, reason: str) -> None:
        super().__init__(f"batch retried in {retry_after:.2f}s: {reason}")
        self.retry_after = retry_after
        self.reason = reason


class HandledOffsets:
    """The offsets of one partition handled since it was assigned, as sorted disjoint ``[start, end)`` ranges.

    A set, not a mark: a batch fetched before the seek to the committed offsets can be handled before the records
    the seek delivers again below it (measured: a mark at the stale batch's end skipped the 13 records below it,
    which were never handled, and one event never reached ``contacts.accepted``). Consecutive batches merge into
    one range, so this stays one or two ranges long.
    """

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []

    def add(self, start: int, end: int) -> None:
        merged: list[tuple[int, int]] = []
        for low, high in self.ranges:
            if high < start or low > end:
                merged.append((low, high))
            else:
                start, end = min(start, low), max(end, high)
        merged.append((start, end))
        merged.sort()
        self.ranges = merged

    def remove(self, start: int, end: int) -> None:
        kept: list[tuple[int, int]] = []
        for low, high in self.ranges:
            if low < start:
                kept.append((low, min(high, start)))
            if high > end:
                kept.append((max(low, end), high))
        self.ranges = kept

    def __contains__(self, offset: object) -> bool:
        return any(low <= cast(int, offset) < high for low, high in self.ranges)


def unhandled(records: Sequence[Any], handled: HandledOffsets | None) -> Sequence[Any]:
    """The records (fetched records carry ``offset``) not handled yet; all of them when nothing was handled."""
    if handled is None or not records or not handled.ranges or records[0].offset >= handled.ranges[-1][1]:
        return records
    return [record for record in records if record.offset not in handled]
