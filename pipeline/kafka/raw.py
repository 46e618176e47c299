"""Finding the raw records of given events on one partition of a ``contacts.raw.<channel>`` topic.

The spam engine scores an e-mail as it was received (headers, MIME parts, HTML), which the normalised event no
longer holds. Ingest publishes each event's ``RawRecord`` in the same confirmed send as its ``ContactRecord``, keyed
by the same subject key, so with equal partition counts (topics.yaml) the raw record of an event consumed from
partition p of ``contacts.normalized`` is on partition p of the raw topic, at or after the event's ``received_at``.

``RawRecordReader.find`` seeks by time once (``offsets_for_times``: received_at minus a margin), then reads forward
and keeps its place, so a stream of batches reads each raw record once; what it read ahead waits in a bounded
buffer. A record it cannot find (expired, a replay from a dead letter, another partition count) is simply missing:
the caller falls back to the parsed event. Blocking (librdkafka): run it off the event loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from pydantic import ValidationError

from pipeline.config import Settings
from pipeline.kafka.clients import client_config
from pipeline.logging import get_logger
from pipeline.models.records import RawRecord

log = get_logger(__name__)

#: How far before the earliest wanted ``received_at`` the reader starts (clock skew between ingest replicas).
SEEK_MARGIN_S = 60.0
#: Bytes of raw records kept read ahead per partition (raw e-mails may be megabytes each).
BUFFER_BYTES = 64 * 1024 * 1024


@dataclass
class _Place:
    """Where the reader is on one partition: it read [start, next) and keeps what it has not handed out yet."""

    start: int
    next: int
    buffer: dict[uuid.UUID, tuple[RawRecord, int]] = field(default_factory=dict)
    size: int = 0


class RawRecordReader:
    """Raw records by event id on one raw topic, partition by partition (a batch agent's batch is one partition)."""

    def __init__(self, settings: Settings, logical_topic: str) -> None:
        self.topic = settings.topic(logical_topic)
        self._consumer = Consumer(
            {
                **client_config(settings),  # librdkafka's own log lines routed like every other client's
                "group.id": f"{settings.app_id}-raw-reader-{uuid.uuid4().hex[:12]}",  # never joins: assign only
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "fetch.max.bytes": 16 * 1024 * 1024,
            }
        )
        self._places: dict[int, _Place] = {}

    def close(self) -> None:
        self._consumer.close()

    def find(
        self, partition: int, wanted: Mapping[uuid.UUID, datetime], timeout_s: float = 2.0
    ) -> dict[uuid.UUID, RawRecord]:
        """The raw records of the ``wanted`` events (event id -> received_at) that are on ``partition``."""
        found: dict[uuid.UUID, RawRecord] = {}
        if not wanted:
            return found
        place = self._places.get(partition)
        if place is not None:
            for event_id in wanted:
                hit = place.buffer.pop(event_id, None)
                if hit is not None:
                    found[event_id] = hit[0]
                    place.size -= hit[1]
        missing = {e: at for e, at in wanted.items() if e not in found}
        if not missing:
            return found
        deadline = time.monotonic() + timeout_s
        tp = TopicPartition(self.topic, partition)
        try:
            start = self._start(tp, min(missing.values()), deadline)
            high = self._consumer.get_watermark_offsets(tp, timeout=max(deadline - time.monotonic(), 0.1))[1]
        except Exception as exc:  # the broker did not answer in time: the caller renders the parsed event
            log.warning("raw_reader_unavailable", topic=self.topic, partition=partition, error=type(exc).__name__)
            return found
        if place is None or not (place.start <= start <= place.next):
            place = _Place(start=start, next=start)
            self._places[partition] = place
        if place.next < high:
            self._consumer.assign([TopicPartition(self.topic, partition, place.next)])
            try:
                self._read(place, missing, found, high, deadline)
            finally:
                self._consumer.unassign()
        self._trim(place)
        return found

    def _start(self, tp: TopicPartition, earliest: datetime, deadline: float) -> int:
        """The first offset with a timestamp at or after ``earliest`` minus the margin (the end when none)."""
        at_ms = int((earliest.timestamp() - SEEK_MARGIN_S) * 1000)
        query = TopicPartition(tp.topic, tp.partition, at_ms)
        answer = self._consumer.offsets_for_times([query], timeout=max(deadline - time.monotonic(), 0.1))[0]
        if answer.offset < 0:  # no record that late: start at the end (what comes next is new)
            return int(self._consumer.get_watermark_offsets(tp, timeout=1.0)[1]) if answer.offset == OFFSET_END else 0
        return int(answer.offset)

    def _read(
        self,
        place: _Place,
        missing: dict[uuid.UUID, datetime],
        found: dict[uuid.UUID, RawRecord],
        high: int,
        deadline: float,
    ) -> None:
        while missing and place.next < high and time.monotonic() < deadline:
            for message in self._consumer.consume(500, timeout=min(0.5, max(deadline - time.monotonic(), 0.01))):
                if message.error():
                    continue
                offset = message.offset()
                if offset is None:
                    continue
                place.next = offset + 1
                value = message.value() or b""
                try:
                    record = RawRecord.model_validate_json(value)
                except ValidationError:
                    continue
                if record.event_id in missing:
                    found[record.event_id] = record
                    del missing[record.event_id]
                else:
                    place.buffer[record.event_id] = (record, len(value))
                    place.size += len(value)

    @staticmethod
    def _trim(place: _Place) -> None:
        """Forget the oldest records read ahead beyond the buffer's size (dicts keep insertion order)."""
        while place.size > BUFFER_BYTES and place.buffer:
            oldest = next(iter(place.buffer))
            place.size -= place.buffer.pop(oldest)[1]


__all__ = ["RawRecordReader"]
