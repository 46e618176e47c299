"""Read back everything on some topics, exactly: up to each partition's high watermark at the time of the call."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from pipeline.config import Settings
from pipeline.kafka.consumer import watermarks


def read_all(settings: Settings, logical_topics: list[str], timeout_s: float = 20.0) -> dict[str, list[bytes]]:
    """Every record value on the given topics (logical names), in partition order; fails if one cannot be read."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "group.id": f"ingest-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    try:
        out: dict[str, list[bytes]] = {t: [] for t in logical_topics}
        real = {settings.topic(t): t for t in logical_topics}
        assignments: list[TopicPartition] = []
        remaining: dict[tuple[str, int], int] = {}
        metadata = consumer.list_topics(timeout=10)
        for topic in real:
            for partition in metadata.topics[topic].partitions:
                low, high = watermarks(consumer, TopicPartition(topic, partition), time.monotonic() + 30)
                if high > low:
                    assignments.append(TopicPartition(topic, partition, low))
                    remaining[(topic, partition)] = high
        consumer.assign(assignments)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out reading {sorted(remaining)}")
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                raise AssertionError(str(message.error()))
            key = (message.topic(), message.partition())
            value = message.value()
            assert value is not None
            out[real[message.topic()]].append(value)
            if message.offset() + 1 >= remaining.get(key, 0):
                remaining.pop(key, None)
        return out
    finally:
        consumer.close()
