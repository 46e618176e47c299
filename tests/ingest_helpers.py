"""Shared by the ingest unit tests: source credentials and a publisher that records instead of producing."""

from __future__ import annotations

from collections.abc import Iterable

from pipeline.kafka.producer import Outgoing, PublishError

HMAC_SECRET = "form-hmac-secret"
BEARER = "drift-bearer-token"


class RecordingPublisher:
    """Stands in for ConfirmingPublisher: keeps every batch; can be told to fail like an unreachable broker."""

    def __init__(self) -> None:
        self.records: list[Outgoing] = []
        self.fail = False

    def publish(self, records: Iterable[Outgoing], timeout_s: float = 30.0) -> int:
        batch = list(records)
        if self.fail:
            raise PublishError(f"0 of {len(batch)} records were confirmed")
        self.records.extend(batch)
        return len(batch)

    def close(self, timeout_s: float = 10.0) -> None:
        pass

    def topics(self) -> list[str]:
        return [r.topic for r in self.records]
