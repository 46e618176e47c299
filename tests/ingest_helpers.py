"""Shared by the ingest unit tests: source credentials and a publisher that records instead of producing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from pipeline.kafka.producer import BrokerHealth, Outgoing, PublishError
from pipeline.kafka.topics import BROKER_MAX_MESSAGE_BYTES

HMAC_SECRET = "form-hmac-secret"
BEARER = "drift-bearer-token"
VERIFY = "meta-verify-token"


class RecordingPublisher:
    """Stands in for ConfirmingPublisher: keeps every batch; can be told to fail like an unreachable broker.

    Every topic takes ``limit_bytes`` (the broker's default unless a test says otherwise).
    """

    def __init__(self, limit_bytes: int = BROKER_MAX_MESSAGE_BYTES) -> None:
        self.records: list[Outgoing] = []
        self.fail = False
        self.health = BrokerHealth()
        self.limit_bytes = limit_bytes
        self.delivery_timeout_s = 5.0

    def limit(self, topic: str) -> int:
        return self.limit_bytes

    def fits(self, record: Outgoing) -> bool:
        return record.size <= self.limit_bytes

    def publish(self, records: Iterable[Outgoing], timeout_s: float | None = None) -> int:
        batch = list(records)
        if self.fail:
            raise PublishError(f"0 of {len(batch)} records were confirmed", total=len(batch))
        self.records.extend(batch)
        return len(batch)

    def send(self, records: Sequence[Outgoing]) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(self.publish(records))
        except PublishError as exc:
            future.set_exception(exc)
        return future

    def probe(self, timeout_s: float = 1.0) -> bool:
        return not self.fail

    def close(self, timeout_s: float = 10.0) -> None:
        pass

    def topics(self) -> list[str]:
        return [r.topic for r in self.records]
