"""Reading topics back outside the stream processors: the demo, the review and DPO tools, and the tests.

Two shapes cover every reader: ``read_to_end`` (everything up to each partition's high watermark at the time of the
call, exactly, or an error) and ``read_until`` (poll from offset 0 until a condition on what was read holds).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.clients import client_config
from pipeline.kafka.security import ConnectionRefusals

Isolation = Literal["read_committed", "read_uncommitted"]


@dataclass(frozen=True)
class Record:
    """One record as read: the logical topic name (without the prefix), partition, offset, key and value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    """The record's headers (leadpipe sets only ``traceparent``, when tracing is on)."""


class ReadError(RuntimeError):
    """A topic could not be read to the end in time, or the broker reported an error."""


class TopicMissing(ReadError):
    """A topic to read does not exist: ``leadpipe topics apply`` was not run against this cluster (and prefix)."""


def _consumer(settings: Settings, isolation: Isolation) -> tuple[Consumer, ConnectionRefusals]:
    refusals = ConnectionRefusals()
    consumer = Consumer(
        {
            **client_config(settings),
            "group.id": f"{settings.app_id}-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "error_cb": refusals,
        }
    )
    return consumer, refusals


def _check(refusals: ConnectionRefusals) -> None:
    if refusals.refused is not None:
        raise ReadError(f"the brokers refused the connection: {refusals.refused}")


def _record(settings: Settings, message: Message) -> Record:
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:  # only error events lack them; callers filter those
        raise ReadError("a consumed message without topic, partition or offset")
    return Record(
        topic=topic.removeprefix(settings.topic_prefix),
        partition=partition,
        offset=offset,
        key=message.key(),
        value=message.value(),
        headers=_headers(message),
    )


def _headers(message: Message) -> tuple[tuple[str, bytes], ...]:
    """A consumed record's headers (a list of pairs as librdkafka hands them over), without empty values."""
    raw = message.headers()
    items = raw.items() if isinstance(raw, dict) else raw or []
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in items if v is not None)


def watermarks(consumer: Consumer, partition: TopicPartition, deadline: float) -> tuple[int, int]:
    """Low and high watermark; retried while the partition has no leader yet (a topic created a moment ago)."""
    while True:
        try:
            low, high = consumer.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            transient = isinstance(error, KafkaError) and (
                error.retriable()
                or error.code() in (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
            )
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def read_to_end(
    settings: Settings,
    topics: Iterable[str],
    *,
    isolation: Isolation = "read_committed",
    timeout_s: float = 30.0,
) -> list[Record]:
    """Every record of the logical ``topics`` from offset 0 up to the high watermarks seen at the start.

    With ``read_committed`` the end of a partition is its last stable offset, and aborted transactional records and
    transaction markers are skipped, so a partition counts as done once the next position reaches the watermark.
    """
    consumer, refusals = _consumer(settings, isolation)
    out: list[Record] = []
    try:
        try:
            metadata = consumer.list_topics(timeout=10)
        except KafkaException:
            _check(refusals)
            raise
        ends: dict[tuple[str, int], int] = {}
        assignments: list[TopicPartition] = []
        for logical in topics:
            name = settings.topic(logical)
            if name not in metadata.topics:
                raise TopicMissing(f"topic {name} does not exist")
            for partition in metadata.topics[name].partitions:
                low, high = watermarks(consumer, TopicPartition(name, partition), time.monotonic() + timeout_s)
                if high > low:
                    assignments.append(TopicPartition(name, partition, low))
                    ends[(name, partition)] = high
        if not assignments:
            return out
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout_s
        while ends:
            _check(refusals)
            if time.monotonic() > deadline:
                raise ReadError(f"could not read to the end of {sorted(ends)} within {timeout_s}s")
            message = consumer.poll(0.2)
            if message is not None:
                if message.error():
                    raise ReadError(str(message.error()))
                out.append(_record(settings, message))
            for name, partition in list(ends):
                position = consumer.position([TopicPartition(name, partition)])[0].offset
                if position >= ends[(name, partition)]:
                    del ends[(name, partition)]
    finally:
        consumer.close()
    return out


def read_until(
    settings: Settings,
    topics: Iterable[str],
    until: Callable[[list[Record]], bool],
    *,
    isolation: Isolation = "read_committed",
    timeout_s: float = 60.0,
) -> list[Record]:
    """Poll the logical ``topics`` from offset 0 until ``until(records)`` holds; ``ReadError`` after the timeout."""
    names = list(topics)
    consumer, refusals = _consumer(settings, isolation)
    consumer.subscribe([settings.topic(t) for t in names])
    out: list[Record] = []
    deadline = time.monotonic() + timeout_s
    try:
        while not until(out):
            _check(refusals)
            if time.monotonic() > deadline:
                raise ReadError(f"{names}: condition not met after {len(out)} records and {timeout_s}s")
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.retriable() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise ReadError(str(error))
            out.append(_record(settings, message))
    finally:
        consumer.close()
    return out
