"""The processing agent's state (faust tables) and the transactional sender its outputs go through.

Tables, all in memory and rebuilt from their compacted topics on assignment (``store="memory://"``):

- ``suppression``: a global table over the ``suppression`` topic the rights agent writes (read-only here).
- ``blocklist``: a global table over ``spam.blocklist`` (reviewer-confirmed senders, hashed keys).
- ``retention-anchors``: per subject and clock, changelog ``contacts.retention-clock`` (topics.yaml).
- ``rate-windows``: sliding-window counts per hashed IP / subject, changelog ``contacts.rate-windows``.

The anchor and rate tables are written by the agent through ``TransactionalSender`` (the changelog record joins
the transaction of the event that caused it) and into the table's local data directly. Faust's own
``table[key] = value`` is not used: it routes the changelog write through a background buffer and by
``current_event()``, which under ``take`` batches is the last event of the batch, not the one being handled.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust

from pipeline.config import Settings
from pipeline.logging import get_logger
from pipeline.models.rights import SuppressionRecord
from pipeline.processors import rates
from pipeline.topics import BLOCKLIST_TOPIC, RATE_WINDOWS_TOPIC, RETENTION_CLOCK_TOPIC, SUPPRESSION_TOPIC

log = get_logger(__name__)


class ExternalGlobalTable(faust.GlobalTable):
    """A global table over a compacted topic that another process writes (not ``<app>-<name>-changelog``).

    faust's assignor names a global table's changelog by ``_changelog_topic_name()`` (the default name) rather than
    by the topic the table was given; this override makes both agree.
    """

    def _changelog_topic_name(self) -> str:
        name: str = self.changelog_topic.get_topic_name()
        return name


def _raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions, internal=False)


def global_table(app: faust.App, name: str, topic: str, partitions: int) -> Any:
    """A global table of raw bytes over ``topic``, kept up to date while the worker runs (every partition)."""
    table = ExternalGlobalTable(
        app,
        name=name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        changelog_topic=_raw_topic(app, topic, partitions),
        beacon=app.tables.beacon,
        recovery_buffer_size=1,  # apply each record at once: a suppression must not wait for 999 others
        standby_buffer_size=1,
        is_global=True,
        synchronize_all_active_partitions=True,
        help=f"materialised {topic}",
    )
    return app.tables.add(table)


def local_table(app: faust.App, name: str, topic: str, partitions: int) -> Any:
    """A partitioned table of raw bytes whose changelog is ``topic`` (co-partitioned with the input)."""
    return app.Table(
        name,
        key_type=bytes,
        value_type=bytes,
        partitions=partitions,
        changelog_topic=_raw_topic(app, topic, partitions),
        help=f"changelog {topic}",
    )


# ---- read views the chain sees -------------------------------------------------------------------------------


class SuppressionView:
    """subject key -> SuppressionRecord, parsed on first use and cached by the raw value."""

    def __init__(self, data: Mapping[bytes, bytes]) -> None:
        self._data = data
        self._parsed: dict[bytes, tuple[bytes, SuppressionRecord]] = {}

    def get(self, subject_key: str) -> SuppressionRecord | None:
        key = subject_key.encode()
        raw = self._data.get(key)
        if not raw:
            return None
        hit = self._parsed.get(key)
        if hit is not None and hit[0] is raw:
            return hit[1]
        record = SuppressionRecord.model_validate_json(raw)
        if len(self._parsed) > 100_000:
            self._parsed.clear()
        self._parsed[key] = (raw, record)
        return record


class KeySetView:
    """A ``Container[str]`` over a table of bytes keys (the reviewer blocklist)."""

    def __init__(self, data: Mapping[bytes, bytes]) -> None:
        self._data = data

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._data.get(key.encode()))


class AnchorView(Mapping[str, datetime]):
    """anchor key -> datetime over a table of ISO-8601 bytes."""

    def __init__(self, data: MutableMapping[bytes, bytes]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> datetime:
        raw = self._data.get(key.encode())
        if not raw:
            raise KeyError(key)
        return datetime.fromisoformat(raw.decode())

    def get(self, key: str, default: Any = None) -> Any:  # no KeyError round trip on the hot path
        raw = self._data.get(key.encode())
        return datetime.fromisoformat(raw.decode()) if raw else default

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self._data)

    def __len__(self) -> int:
        return len(self._data)


class RateView(Mapping[str, rates.RateState]):
    """rate key -> window state over a table of JSON bytes."""

    def __init__(self, data: MutableMapping[bytes, bytes]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> rates.RateState:
        raw = self._data.get(key.encode())
        if raw is None:
            raise KeyError(key)
        return rates.decode(raw)

    def get(self, key: str, default: Any = None) -> Any:
        raw = self._data.get(key.encode())
        return rates.decode(raw) if raw is not None else default

    def __iter__(self) -> Iterator[str]:
        return (k.decode() for k in self._data)

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class ProcessingTables:
    """The four tables, declared on an app; ``views`` is what one batch reads."""

    suppression: Any
    blocklist: Any
    anchors: Any
    rate_windows: Any

    @classmethod
    def declare(cls, app: faust.App, settings: Settings, partitions: Mapping[str, int]) -> ProcessingTables:
        topic = settings.topic
        return cls(
            suppression=global_table(app, "suppression", topic(SUPPRESSION_TOPIC), partitions[SUPPRESSION_TOPIC]),
            blocklist=global_table(app, "blocklist", topic(BLOCKLIST_TOPIC), partitions[BLOCKLIST_TOPIC]),
            anchors=local_table(
                app, "retention-anchors", topic(RETENTION_CLOCK_TOPIC), partitions[RETENTION_CLOCK_TOPIC]
            ),
            rate_windows=local_table(app, "rate-windows", topic(RATE_WINDOWS_TOPIC), partitions[RATE_WINDOWS_TOPIC]),
        )

    def state(self) -> ProcessingState:
        return ProcessingState(
            suppression=_plain(self.suppression),
            blocklist=_plain(self.blocklist),
            anchors=_plain(self.anchors),
            rates=_plain(self.rate_windows),
        )


def _plain(table: Any) -> MutableMapping[bytes, bytes]:
    """The dict inside a memory store: its ``get`` answers misses without raising and catching a KeyError."""
    store = table.data
    inner = getattr(store, "data", None)
    return inner if isinstance(inner, dict) else store


class ProcessingState:
    """Mappings of raw bytes (faust table data, or plain dicts in tests) and the typed views over them."""

    def __init__(
        self,
        *,
        suppression: Mapping[bytes, bytes],
        blocklist: Mapping[bytes, bytes],
        anchors: MutableMapping[bytes, bytes],
        rates: MutableMapping[bytes, bytes],
    ) -> None:
        self.suppression = SuppressionView(suppression)
        self.blocklist = KeySetView(blocklist)
        self.anchors_data = anchors
        self.rates_data = rates
        self.anchors = AnchorView(anchors)
        self.rates = RateView(rates)

    @classmethod
    def in_memory(cls) -> ProcessingState:
        return cls(suppression={}, blocklist={}, anchors={}, rates={})


# ---- sending inside the transaction --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Out:
    """One record to produce: logical topic, key, value (already serialised)."""

    topic: str
    key: bytes | None
    value: bytes | None


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

    def _real(self, topic: str) -> str:
        name = self._names.get(topic)
        if name is None:
            name = self._names[topic] = self._settings.topic(topic)
        return name

    def _transactional_id(self, source_topic: str, partition: int) -> str | None:
        app = self._app
        if not app.in_transaction:
            return None
        group = app.assignor.group_for_topic(source_topic)
        return f"{app.conf.id}-{group}-{partition}"

    def assigned(self, source_topic: str, partition: int) -> bool:
        return any(tp.topic == source_topic and tp.partition == partition for tp in self._app.consumer.assignment())

    def _producer(self, tid: str | None) -> tuple[Any, Any]:
        """The aiokafka producer of the transaction (or faust's plain one outside transactions) and its lock."""
        producer: Any = self._app.producer
        if tid is None:
            return producer._ensure_producer(), contextlib.nullcontext()
        txn_producer = producer._transaction_producers.get(tid)
        if txn_producer is None:
            raise SendFailedError(f"no transactional producer for {tid}")
        return txn_producer, producer._trn_locks[tid]

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
        tid = self._transactional_id(source_topic, source_partition)
        futures: list[Awaitable[Any]] = []
        try:
            producer, lock = self._producer(tid)
            by_partition: dict[tuple[str, int], list[Out]] = {}
            for record in records:
                topic = self._real(record.topic)
                if source_partition < self._partitions.get(record.topic, 0):
                    partition = source_partition
                else:
                    await producer.client._wait_on_metadata(topic)
                    partition = producer._partition(topic, None, None, None, record.key, record.value)
                by_partition.setdefault((topic, partition), []).append(record)
            async with lock:
                for (topic, partition), group in by_partition.items():
                    builder = producer.create_batch()
                    for record in group:
                        if builder.append(key=record.key, value=record.value, timestamp=None) is None:
                            futures.append(await producer.send_batch(builder, topic, partition=partition))
                            builder = producer.create_batch()
                            if builder.append(key=record.key, value=record.value, timestamp=None) is None:
                                raise SendFailedError(f"a record for {record.topic} is larger than a whole batch")
                    futures.append(await producer.send_batch(builder, topic, partition=partition))
        except Exception as exc:
            if not self.assigned(source_topic, source_partition):
                log.info("send_skipped_revoked", topic=source_topic, partition=source_partition)
                return []
            if isinstance(exc, SendFailedError):
                raise
            raise SendFailedError(f"producer refused a record for partition {source_partition}: {exc!r}") from exc
        return futures
