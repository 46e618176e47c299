"""A small producer SDK for marketing systems that publish contacts straight to Kafka instead of over HTTP.

It runs the same adapter, sealing and confirmed publish as the ingest API (``IngestService``), so an event from
the SDK is indistinguishable from one that came over a webhook. It therefore needs what sealing needs: the
database holding the data keys, the key-encryption key and the subject-key pepper (all from ``Settings``).

    with LeadpipeProducer(settings) as producer:
        result = producer.publish("web_form", {"email": "ana@example.com", "form_type": "demo"}, source_id="crm-sync")
        result.event_ids        # returned only after the broker confirmed both records of each event
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from types import TracebackType
from typing import Any, Literal
from uuid import UUID

import orjson

from pipeline.config import Settings, get_settings
from pipeline.db import ensure_schema
from pipeline.ingest.service import IngestService, Submission, SubmitResult, UnsupportedContentType
from pipeline.kafka.producer import ConfirmingPublisher, PublishError
from pipeline.models.common import Channel
from pipeline.runtime import Runtime
from pipeline.sources import Problem

Payload = bytes | str | Mapping[str, Any] | Sequence[Any]


@dataclass(frozen=True)
class PublishResult:
    """Accepted (broker-confirmed event ids) or rejected (reason, bad fields, and the dead-letter id)."""

    status: Literal["accepted", "rejected"]
    event_ids: tuple[UUID, ...] = ()
    reason: str | None = None
    problems: tuple[Problem, ...] = ()
    dead_letter_id: UUID | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @classmethod
    def of(cls, result: SubmitResult) -> PublishResult:
        """The ingest result's fields of the same names; the HTTP API's own flags (too large, replayed) stay out."""
        return cls(**{f.name: getattr(result, f.name) for f in fields(cls)})


class PayloadRejected(Exception):
    """The payload could not be normalised; it was dead-lettered (``result.dead_letter_id``)."""

    def __init__(self, result: PublishResult) -> None:
        self.result = result
        fields = ", ".join(f"{p.field or 'payload'} ({p.reason})" for p in result.problems[:10])
        super().__init__(f"rejected: {result.reason}: {fields}; dead letter {result.dead_letter_id}")


def _encode(payload: Payload, content_type: str | None) -> tuple[bytes, str]:
    if isinstance(payload, bytes):
        return payload, content_type or "application/json"
    if isinstance(payload, str):
        return payload.encode(), content_type or "application/json"
    return orjson.dumps(payload), content_type or "application/json"


class LeadpipeProducer:
    """Publishes payloads of any channel with delivery confirmation; close it (or use ``with``) when done."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        bootstrap_servers: str | None = None,
        runtime: Runtime | None = None,
        publisher: ConfirmingPublisher | None = None,
    ) -> None:
        base = runtime.settings if runtime is not None else settings or get_settings()
        if bootstrap_servers is not None:
            base = base.model_copy(update={"kafka_bootstrap_servers": bootstrap_servers})
        self.settings = base
        self.runtime = runtime if runtime is not None and bootstrap_servers is None else Runtime(base)
        ensure_schema(self.runtime.engine)
        self._own_publisher = publisher is None
        self.publisher = publisher or ConfirmingPublisher(base)
        self.service = IngestService(self.runtime, self.publisher)

    def publish(
        self,
        channel: Channel | str,
        payload: Payload,
        *,
        source_id: str,
        content_type: str | None = None,
        raise_on_reject: bool = True,
    ) -> PublishResult:
        """Publish one payload and wait for the broker. Raises ``PayloadRejected`` (unless told not to),
        ``UnsupportedContentType`` for a media type the channel does not read, ``PublishError`` when the broker
        did not confirm or (its subclass ``KeyStoreUnavailable``) the data keys could not be loaded: nothing is
        accepted then; retrying is safe, the event ids are deterministic."""
        result = self.publish_batch(channel, [payload], source_id=source_id, content_type=content_type)[0]
        if raise_on_reject and not result.accepted:
            raise PayloadRejected(result)
        return result

    def publish_batch(
        self,
        channel: Channel | str,
        payloads: Iterable[Payload],
        *,
        source_id: str,
        content_type: str | None = None,
    ) -> list[PublishResult]:
        """Publish many payloads in one confirmed batch (one key-store commit for all their new people); one result
        per payload, in order, rejections included."""
        chosen = Channel(channel)
        submissions = []
        for payload in payloads:
            raw, media_type = _encode(payload, content_type)
            submissions.append(Submission(source_id, chosen, raw, media_type))
        return [PublishResult.of(r) for r in self.service.submit_many(submissions)]

    def close(self) -> None:
        if self._own_publisher:
            self.publisher.close()

    def __enter__(self) -> LeadpipeProducer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["LeadpipeProducer", "PayloadRejected", "PublishError", "PublishResult", "UnsupportedContentType"]
