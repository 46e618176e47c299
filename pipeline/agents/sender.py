"""Sending the processing agent's outputs inside the transaction of the input partition they came from.

``Out`` is one record a step produces; ``TransactionalSender`` hands a batch of them to the right transactional
producer in whole record batches; ``deliver`` also waits for them and says whether the batch may be acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

import faust

from pipeline.agents.faust_adapter import (
    BatchingConsumer,
    is_fenced,
    partition_for,
    producer_fenced,
    transaction_producer,
    transactional_id,
)
from pipeline.config import Settings
from pipeline.logging import get_logger, scrub_text
from pipeline.tracing import record_headers

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Out:
    """One record to produce: logical topic, key, value (already serialised)."""

    topic: str
    key: bytes | None
    value: bytes | None
    trace: bytes | None = None
    """The W3C ``traceparent`` of the span that produced it (``pipeline.tracing``), sent as the record's header."""


class SendFailedError(RuntimeError):
    """A record could not be handed to (or delivered by) the producer; the worker must stop and redo the batch."""


class TransactionalSender:
    """Sends a batch's outputs in the transaction of the input partition they came from.

    Under ``exactly_once`` faust keeps one transactional producer per assigned input partition and commits that
    partition's offsets in it. faust's own ``topic.send`` picks the transaction by the *output* topic's group and
    partition, which is right only when the output is co-partitioned with the input and subscribed by the app
    (faust issue #440 and its ``group_for_topic`` KeyError). Naming the input partition's transaction directly is
    right for any output topic. Each output keeps the input's partition number when the output topic has it, so
    a record stays on the partition its subject key was hashed to by whoever produced the input.
    """

    def __init__(self, app: faust.App, settings: Settings, partitions: Mapping[str, int]) -> None:
        self._app = app
        self._settings = settings
        self._partitions = dict(partitions)
        self._names: dict[str, str] = {}

    @property
    def app(self) -> faust.App:
        return self._app

    def _real(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = self._settings.topic(topic)
        return name

    def assigned(self, source_topic: str, partition: int) -> bool:
        return any(tp.topic == source_topic and tp.partition == partition for tp in self._app.consumer.assignment())

    def _producer(self, tid: str | None) -> tuple[Any, Any]:
        """The aiokafka producer of the transaction (or faust's plain one outside transactions) and its lock."""
        try:
            return transaction_producer(self._app, tid)
        except LookupError as exc:
            raise SendFailedError(str(exc)) from None

    async def send(self, source_topic: str, source_partition: int, records: Sequence[Out]) -> list[Awaitable[Any]]:
        """Hand every record to the producer in whole record batches (no per-record wait); returns their futures.

        Records are appended to one aiokafka ``BatchBuilder`` per output partition and handed over with
        ``send_batch`` under the transaction's lock taken once, instead of one ``send`` per record, which creates a
        future per record and takes faust's transaction lock each time. Order is kept per output partition, the
        only order Kafka has.

        Raises ``SendFailedError`` when the partition is still assigned but the producer refused a record.
        Returns no futures when the partition was revoked meanwhile: its events will be processed again by the
        partition's new owner, and this worker's uncommitted transaction for it is aborted.
        """
        if not records:
            return []
        tid = transactional_id(self._app, source_topic, source_partition)
        futures: list[Awaitable[Any]] = []
        try:
            producer, lock = self._producer(tid)
            by_partition: dict[tuple[str, int], list[Out]] = {}
            for record in records:
                topic = self._real(record.topic)
                if source_partition < self._partitions.get(record.topic, 0):
                    partition = source_partition
                else:
                    partition = await partition_for(producer, topic, record.key, record.value)
                by_partition.setdefault((topic, partition), []).append(record)
            async with lock:
                for (topic, partition), group in by_partition.items():
                    builder = producer.create_batch()
                    for record in group:
                        fields = {"key": record.key, "value": record.value, "timestamp": None}
                        headers = record_headers(record.trace)
                        if builder.append(**fields, headers=headers) is None:
                            futures.append(await handed_over(producer, builder, topic, partition))
                            builder = producer.create_batch()
                            if builder.append(**fields, headers=headers) is None:
                                raise SendFailedError(f"a record for {record.topic} is larger than a whole batch")
                    futures.append(await handed_over(producer, builder, topic, partition))
        except Exception as exc:
            if not self.assigned(source_topic, source_partition):
                log.info("send_skipped_revoked", topic=source_topic, partition=source_partition)
                return []
            if isinstance(exc, SendFailedError):
                raise
            raise SendFailedError(f"producer refused a record for partition {source_partition}: {exc!r}") from exc
        return futures

    async def deliver(self, source_topic: str, source_partition: int, records: Sequence[Out]) -> bool:
        """``send`` and wait until the broker has every record; True when the batch may be acknowledged
        (``Delivery.settle`` says when it may not)."""
        delivery = self.delivery(source_topic, source_partition)
        await delivery.send(records)
        return await delivery.settle()

    def delivery(self, source_topic: str, source_partition: int) -> Delivery:
        """A batch's outputs handed over in parts as they are ready, waited for once (``Delivery``)."""
        return Delivery(self, source_topic, source_partition)


class Delivery:
    """One batch's outputs, handed to its partition's transaction in parts, and one wait for all of them.

    Why parts: the broker takes a part while the step works out the next, so the batch ends with a wait for its last
    part only, not for all of it (the processing agent hands over its outputs every ``FINISH_PART`` events).
    Every part goes into the same transaction, which commits only between batches, so a batch is still all or none.
    """

    def __init__(self, sender: TransactionalSender, source_topic: str, source_partition: int) -> None:
        self._sender = sender
        self._topic = source_topic
        self._partition = source_partition
        self._futures: list[Awaitable[Any]] = []
        self._failure: Exception | None = None
        self._lost = False
        self.sent = 0
        """Records handed to the producer so far: once any is, the batch can no longer be given back untouched."""

    async def send(self, records: Sequence[Out]) -> None:
        """Hand ``records`` over without waiting for the broker; after a failure or a revocation, nothing more."""
        if not records or self._failure is not None or self._lost:
            return
        try:
            futures = await self._sender.send(self._topic, self._partition, records)
        except Exception as exc:  # judged in ``settle``, with the partition's fate known
            self._failure = exc
            return
        if not futures:  # revoked meanwhile: the partition's new owner does the batch again
            self._lost = True
            return
        self._futures.extend(futures)
        self.sent += len(records)
        await asyncio.sleep(0)  # aiokafka's sender task takes the part now, while the caller works on

    async def settle(self) -> bool:
        """Wait until the broker has every part; True when the batch may be acknowledged.

        False when the batch is no longer this worker's: the partition was revoked meanwhile (its new owner redoes
        the batch), or the partition's producer was fenced (another producer took its transactional id; the worker
        drops the producer and rejoins its group, and the batch is done again from the committed offset; likewise
        when an earlier fence already dropped it and the rejoin is pending). Any other
        producer failure ends the process (``fatal``): nothing of the batch is committed, and the restarted worker
        redoes it.
        """
        sender, topic, partition = self._sender, self._topic, self._partition
        app = sender.app
        try:
            if self._failure is not None:
                raise self._failure
            for outcome in await asyncio.gather(*self._futures, return_exceptions=True):  # every fate retrieved
                if isinstance(outcome, BaseException):
                    raise outcome
        except Exception as exc:
            if is_fenced(exc):
                await producer_fenced(app, transactional_id(app, topic, partition))
                return False
            if not sender.assigned(topic, partition):
                return False
            if cast(BatchingConsumer, app.consumer).rejoining_after_fence:
                # a fence dropped this partition's producer an instant before its revocation: no producer to send
                # with, nothing acknowledged; the rejoin starts the partition again from its committed offset
                # (measured: the surviving worker of a fence exited here, "no transactional producer")
                log.info("send_skipped_fenced", topic=topic, partition=partition)
                return False
            fatal("batch_send_failed", exc, topic=topic, partition=partition, records=self.sent)
        return not self._lost


async def handed_over(producer: Any, builder: Any, topic: str, partition: int) -> Awaitable[Any]:
    """``send_batch`` of a complete batch, closed first: aiokafka lingers an open batch (``producer_linger``, 5 ms)
    waiting for records that will never come, and lets other sends to the partition append to it; a closed batch
    goes out with the sender's next round (measured: 16 ms of waiting per batch of 625 outputs, 5 of them linger)."""
    builder.close()
    return cast(Awaitable[Any], await producer.send_batch(builder, topic, partition=partition))


def fatal(event: str, exc: BaseException, **fields: Any) -> NoReturn:
    """Log and end the process without committing anything (the orchestrator restarts it; exit 75, EX_TEMPFAIL)."""
    log.critical(event, error=scrub_text(f"{type(exc).__name__}: {exc}"), **fields)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(75)
