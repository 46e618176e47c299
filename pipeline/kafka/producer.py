"""confluent-kafka producers for the ways in (ingest API, import, SDK, DPO tools): idempotent, confirmed.

The stream processors send through faust instead, so that their sends join the exactly-once transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel

from pipeline.config import Settings
from pipeline.kafka.clients import client_config
from pipeline.kafka.security import ConnectionRefusals


class PublishError(RuntimeError):
    """The broker did not confirm a record; the caller must not report it as accepted."""


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent producer (acks=all, no duplicates on retry) tuned for small JSON records."""
    config: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "zstd",
        "message.timeout.ms": 30_000,
        "client.id": f"{settings.app_id}-producer",
        # the Java client's and faust's partitioner: a subject key lands in the same partition whoever writes it,
        # so the processors' tables (suppression, retention clock) stay co-partitioned with their input
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return Producer(config)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: logical topic name (prefix added here), key, and the value."""

    topic: str
    key: str | None
    value: BaseModel | bytes
    """A model (serialised as JSON), or bytes sent as they are (a dead letter's original record, replayed)."""


def encode(value: BaseModel | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.model_dump_json().encode()


class ConfirmingPublisher:
    """Publishes batches and waits for every delivery report; raises if any record was not confirmed."""

    def __init__(self, settings: Settings, producer: Producer | None = None) -> None:
        self._settings = settings
        self._refusals = ConnectionRefusals()
        self._producer = producer or make_producer(settings, error_cb=self._refusals)
        self._lock = threading.Lock()

    @property
    def producer(self) -> Producer:
        return self._producer

    def publish(self, records: Iterable[Outgoing], timeout_s: float = 30.0) -> int:
        errors: list[str] = []
        pending = 0

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            nonlocal pending
            pending -= 1
            if err is not None:
                errors.append(str(err))

        with self._lock:
            count = 0
            for record in records:
                pending += 1
                count += 1
                topic = self._settings.topic(record.topic)
                payload = encode(record.value)
                while True:
                    try:
                        self._producer.produce(topic, payload, record.key, on_delivery=on_delivery)
                        break
                    except BufferError:  # local queue full: let deliveries drain, then retry
                        self._producer.poll(0.1)
                self._producer.poll(0)
            remaining = self._flush(timeout_s)
        if remaining or pending:
            why = f": the brokers refused the connection: {self._refusals.refused}" if self._refusals.refused else ""
            raise PublishError(
                f"{max(remaining, pending)} of {count} records were not confirmed within {timeout_s}s{why}"
            )
        if errors:
            raise PublishError(f"{len(errors)} of {count} records failed: {errors[0]}")
        return count

    def _flush(self, timeout_s: float) -> int:
        """``flush`` in short steps, giving up early when the brokers refused the connection (a wrong password)."""
        deadline = time.monotonic() + timeout_s
        while True:
            remaining: int = self._producer.flush(max(0.0, min(0.5, deadline - time.monotonic())))
            if not remaining or self._refusals.refused is not None or time.monotonic() >= deadline:
                return remaining

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)


__all__ = ["ConfirmingPublisher", "KafkaException", "Outgoing", "PublishError", "encode", "make_producer"]
