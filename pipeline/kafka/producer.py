"""confluent-kafka producers for the ways in (ingest API, import, SDK, DPO tools): idempotent, confirmed.

The stream processors send through faust instead, so that their sends join the exactly-once transaction.

``ConfirmingPublisher`` serves delivery reports on a thread of its own, so a caller waits only for its own records:
``publish`` (blocking, for the CLI, the importer and the SDK) and ``send`` (an asyncio future, for the HTTP API,
which produces on its event loop and never blocks it). It also keeps what the delivery reports and librdkafka's
errors say about the brokers (``health``), so the API can answer 503 at once while they are unreachable.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from pydantic import BaseModel

from pipeline.config import Settings
from pipeline.kafka.clients import client_config
from pipeline.kafka.security import ConnectionRefusals
from pipeline.kafka.topics import message_limits
from pipeline.logging import get_logger
from pipeline.tracing import TRACEPARENT

log = get_logger(__name__)

#: What a record costs beyond its key and value inside a record batch (headers, varints, the batch header),
#: rounded up: a record is refused at the door when key + value + this exceeds its topic's ``max.message.bytes``.
RECORD_OVERHEAD_BYTES = 512


class PublishError(RuntimeError):
    """The broker did not confirm a record; the caller must not report it as accepted.

    ``delivered`` of ``total`` records were confirmed nevertheless (a batch cut short): a retry is safe, because
    every record carries the same event id again and the stages downstream deduplicate by it.
    """

    def __init__(self, message: str, *, delivered: int = 0, total: int = 0, topic_missing: bool = False) -> None:
        super().__init__(message)
        self.delivered = delivered
        self.total = total
        self.topic_missing = topic_missing
        """The broker does not know a topic: ``leadpipe topics apply`` was not run (for this prefix)."""


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    """An idempotent producer (acks=all, no duplicates on retry) tuned for small JSON records.

    ``message.max.bytes`` follows topics.yaml (the largest ``max.message.bytes`` of any topic, plus a record's
    overhead), so librdkafka never refuses locally what a topic accepts; each record is checked against its own
    topic's limit before it is produced (``fits``).
    """
    config: dict[str, Any] = {
        **client_config(settings),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "compression.type": "zstd",
        "message.timeout.ms": 30_000,
        "message.max.bytes": max(message_limits(settings).values()) + RECORD_OVERHEAD_BYTES,
        "client.id": f"{settings.app_id}-producer",
        # the Java client's and faust's partitioner: a subject key lands in the same partition whoever writes it,
        # so the processors' tables (suppression, retention clock) stay co-partitioned with their input
        "partitioner": "murmur2_random",
    }
    config.update(overrides)
    return Producer(config)


@dataclass(frozen=True)
class Outgoing:
    """One record to publish: logical topic name (the publisher adds the prefix), key, and the value.

    Whoever publishes it: ``ConfirmingPublisher`` here, or a stream processor inside the transaction of the input
    partition the record answers for (``partition``, ``pipeline/agents/sinks.py``)."""

    topic: str
    key: str | None
    value: BaseModel | bytes
    """A model (serialised as JSON), or bytes sent as they are (a dead letter's original record, replayed)."""
    trace: bytes | None = None
    """A W3C ``traceparent`` to send as the record's header (``pipeline.tracing``); None: no header."""
    partition: int | None = None
    """A stream processor's record: the input partition whose transaction it is sent in; None elsewhere."""

    @functools.cached_property
    def payload(self) -> bytes:
        """The value's bytes, encoded once (sizes are checked before publishing, then the same bytes are sent)."""
        return encode(self.value)

    @property
    def size(self) -> int:
        """Key and value bytes plus a record's overhead: what the topic's ``max.message.bytes`` must hold."""
        return len(self.payload) + len(self.key or "") + RECORD_OVERHEAD_BYTES


def encode(value: BaseModel | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.model_dump_json().encode()


class Availability:
    """A dependency's state as its callers saw it: available until a call failed for want of it, then unavailable
    until a call succeeds again.

    ``admit()`` is fast failure: while unavailable it refuses at once, except one caller per ``probe_interval_s``,
    whose own call finds out whether the dependency is back (a half-open circuit breaker).
    """

    def __init__(self, name: str, probe_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self._probe_interval_s = probe_interval_s
        self._down_since: float | None = None
        self._last_probe = 0.0
        self.reason: str | None = None

    @property
    def available(self) -> bool:
        return self._down_since is None

    def down(self, reason: str) -> None:
        if self._down_since is None:
            self._down_since = self._clock()
            self._last_probe = self._down_since
            log.warning("dependency_unavailable", dependency=self.name, reason=reason)
        self.reason = reason

    def up(self) -> None:
        if self._down_since is not None:
            log.info("dependency_available", dependency=self.name, after_s=round(self._clock() - self._down_since, 3))
        self._down_since = None
        self.reason = None

    def admit(self) -> bool:
        """Whether to call the dependency now: always while available, else once per probe interval."""
        return self._down_since is None or self.probe_due()

    def probe_due(self) -> bool:
        """Whether a probe may go out now (at most one per ``probe_interval_s``); counts this one."""
        now = self._clock()
        if now - self._last_probe >= self._probe_interval_s:
            self._last_probe = now
            return True
        return False


class BrokerHealth(Availability):
    """What the producer has seen of the brokers: librdkafka's "all brokers down", and each delivery report (a
    record not delivered for want of a broker marks them unavailable, any record delivered marks them back).

    While they are unavailable no request is let through as a probe (each would wait the whole delivery timeout):
    the publisher's delivery-report thread asks the brokers for metadata once per ``probe_interval_s`` instead.
    """

    #: librdkafka's verdicts that mean "no broker took it", as opposed to a refusal of the record itself.
    UNREACHABLE = frozenset(
        {
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._TRANSPORT,
            KafkaError._MSG_TIMED_OUT,
            KafkaError._TIMED_OUT,
            KafkaError._TIMED_OUT_QUEUE,
        }
    )

    def __init__(self, probe_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__("kafka", probe_interval_s, clock)

    def admit(self) -> bool:
        return self.available

    def on_error(self, error: KafkaError) -> None:
        """librdkafka's ``error_cb``: only "all brokers down" says the cluster is gone (one broker's transport
        error is routine: librdkafka reconnects or uses another)."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down(error.name())

    def on_delivery(self, error: KafkaError | None) -> None:
        if error is None:
            if not self.available:
                self.up()
        elif error.code() in self.UNREACHABLE:
            self.down(error.name())


class ConfirmingPublisher:
    """Publishes records and reports each batch confirmed or not; raises (or fails the future) otherwise.

    ``delivery_timeout_s`` is librdkafka's ``message.timeout.ms``: a record not confirmed by then is reported failed
    by librdkafka itself, so an answer of "not accepted" is never followed by a late delivery of the same record.
    """

    def __init__(
        self, settings: Settings, producer: Producer | None = None, *, delivery_timeout_s: float | None = None
    ) -> None:
        self._settings = settings
        self._refusals = ConnectionRefusals()
        self.health = BrokerHealth()
        self.delivery_timeout_s = 30.0 if delivery_timeout_s is None else delivery_timeout_s
        if producer is None:
            timeout_ms = max(1, int(self.delivery_timeout_s * 1000))
            producer = make_producer(settings, error_cb=self._on_error, **{"message.timeout.ms": timeout_ms})
        self._producer = producer
        self._limits = {settings.topic(name): limit for name, limit in message_limits(settings).items()}
        self._poller: threading.Thread | None = None
        self._poller_lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def producer(self) -> Producer:
        return self._producer

    def _on_error(self, error: KafkaError) -> None:
        self._refusals(error)
        self.health.on_error(error)

    def limit(self, topic: str) -> int:
        """The ``max.message.bytes`` of a logical topic (topics.yaml)."""
        return self._limits.get(self._settings.topic(topic), min(self._limits.values()))

    def fits(self, record: Outgoing) -> bool:
        """Whether the record's topic takes it (checked before producing: librdkafka would refuse it mid-batch)."""
        return record.size <= self.limit(record.topic)

    # ---- delivery reports -------------------------------------------------------------------------------------

    def _ensure_poller(self) -> None:
        if self._poller is not None:
            return
        with self._poller_lock:
            if self._poller is None:
                self._poller = threading.Thread(target=self._poll_forever, name="kafka-delivery-reports", daemon=True)
                self._poller.start()

    def _poll_forever(self) -> None:
        """Serve delivery reports (and error callbacks) as they come: each caller waits for its own records only."""
        while not self._stop.is_set():
            self._producer.poll(0.1)
            if not self.health.available and self.health.probe_due():
                self.probe(timeout_s=0.5)

    def _produce(self, records: Sequence[Outgoing], on_delivery: Callable[[KafkaError | None, Message], None]) -> None:
        """Hand every record to librdkafka (waiting for room when its queue is full); the reports come later."""
        self._ensure_poller()
        for record in records:
            if not self.fits(record):
                raise PublishError(
                    f"a {record.topic} record of {record.size} bytes exceeds the topic's {self.limit(record.topic)}"
                )
        produce = self._producer.produce
        topic_of = self._settings.topic
        for index, record in enumerate(records):
            while True:
                try:
                    produce(
                        topic_of(record.topic),
                        record.payload,
                        record.key,
                        on_delivery=on_delivery,
                        headers={TRACEPARENT: record.trace} if record.trace else None,
                    )
                    break
                except BufferError:  # local queue full: the poller drains deliveries meanwhile
                    time.sleep(0.005)
                except KafkaException as exc:  # refused locally: the rest of the batch is reported failed too
                    error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(-1)
                    for _ in records[index:]:
                        on_delivery(error, None)  # type: ignore[arg-type]  # no message was made
                    return

    def publish(self, records: Iterable[Outgoing], timeout_s: float | None = None) -> int:
        """Publish and wait until every record was confirmed; ``PublishError`` when any was not."""
        batch = list(records)
        if not batch:
            return 0
        done = threading.Event()
        tally = _Tally(len(batch), self.health)

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if tally.settle(err):
                done.set()

        self._produce(batch, on_delivery)
        wait_s = self.delivery_timeout_s + 5.0 if timeout_s is None else timeout_s
        deadline = time.monotonic() + wait_s
        while not done.wait(0.25):
            if self._refusals.refused is not None or time.monotonic() >= deadline:
                refused = self._refusals.refused
                why = f": the brokers refused the connection: {refused}" if refused else ""
                raise PublishError(
                    f"{tally.pending} of {len(batch)} records were not confirmed within {wait_s:g}s{why}",
                    delivered=tally.delivered,
                    total=len(batch),
                )
        tally.raise_if_failed()
        return len(batch)

    def send(self, records: Sequence[Outgoing]) -> asyncio.Future[int]:
        """Produce from the running event loop (non-blocking); the future resolves once every record was confirmed,
        or fails with ``PublishError`` (librdkafka reports each record within ``delivery_timeout_s``)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if not records:
            future.set_result(0)
            return future
        tally = _Tally(len(records), self.health)

        def settle() -> None:
            if future.done():
                return
            try:
                tally.raise_if_failed()
            except PublishError as exc:
                future.set_exception(exc)
            else:
                future.set_result(len(records))

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if tally.settle(err):
                loop.call_soon_threadsafe(settle)

        self._produce(records, on_delivery)
        return future

    def probe(self, timeout_s: float = 1.0) -> bool:
        """Ask the brokers for metadata (blocking up to ``timeout_s``): whether any answered."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            self.health.down(str(exc.args[0].name() if exc.args else exc))
            return False
        self.health.up()
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        self._producer.flush(timeout_s)
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=1.0)


class _Tally:
    """The delivery reports of one batch (settled on the poller thread, read by the waiting caller)."""

    __slots__ = ("delivered", "errors", "health", "pending", "topic_missing", "total")

    def __init__(self, total: int, health: BrokerHealth) -> None:
        self.total = total
        self.pending = total
        self.delivered = 0
        self.errors: list[str] = []
        self.topic_missing = False
        self.health = health

    def settle(self, err: KafkaError | None) -> bool:
        """Count one report; True when it was the batch's last."""
        self.health.on_delivery(err)
        if err is None:
            self.delivered += 1
        else:
            self.errors.append(err.str())
            self.topic_missing |= err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        self.pending -= 1
        return self.pending == 0

    def raise_if_failed(self) -> None:
        if self.errors:
            raise PublishError(
                f"{len(self.errors)} of {self.total} records failed: {self.errors[0]}",
                delivered=self.delivered,
                total=self.total,
                topic_missing=self.topic_missing,
            )


__all__ = [
    "Availability",
    "BrokerHealth",
    "ConfirmingPublisher",
    "KafkaException",
    "Outgoing",
    "PublishError",
    "encode",
    "make_producer",
]
