"""Replaying an ingest dead letter: it has no topic to go back to, so its channel's adapter reads it again, as it
reads now (the source or the adapter fixed since); what reads as contacts is published with an audit record, what
is still refused says why and publishes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from identity_helpers import person
from ingest_helpers import RecordingPublisher

from pipeline.config import Settings
from pipeline.db import ensure_schema
from pipeline.dlq.service import REINGEST_SOURCE, DeadLetterService, Found
from pipeline.models.common import Channel
from pipeline.models.identity import Role
from pipeline.models.records import ContactRecord, DeadLetter, RawRecord, Sealed
from pipeline.models.rights import AuditRecord
from pipeline.runtime import Runtime
from pipeline.topics import AUDIT_TOPIC, INGEST_DLQ_TOPIC

OPS = person("anna", "Anna Ops", Role.ADMIN)
#: What the adapter refused before it read UTF-16 (``malformed_json``), and reads now.
UTF16_FORM = '{"email": "ana@example.com", "name": "José", "message": "Please call me"}'.encode("utf-16")


@pytest.fixture
def runtime(make_settings: Callable[..., Settings]) -> Runtime:
    built = Runtime(make_settings())
    ensure_schema(built.engine)
    return built


def ingest_letter(runtime: Runtime, payload: bytes | None, content_type: str = "application/json") -> DeadLetter:
    def seal(letter_id: uuid.UUID) -> Sealed | None:
        if payload is None:
            return None
        return runtime.codec.seal_payload(payload, subject_key=None, record_id=letter_id, own_key=True)

    return DeadLetter.build(
        stage="ingest",
        reason="malformed_json",
        error="payload: not valid JSON (malformed_json)",
        failed_at=datetime.now(UTC),
        seal=seal,
        channel=Channel.WEB_FORM,
        submission=f"wp-contact:{uuid.uuid4()}",
        content_type=content_type,
    )


def test_an_ingest_dead_letter_the_adapter_reads_now_is_published_and_audited(runtime: Runtime) -> None:
    publisher = RecordingPublisher()
    service = DeadLetterService(runtime, publisher)  # type: ignore[arg-type]
    dead = ingest_letter(runtime, UTF16_FORM)

    [dry] = service.replay([Found(INGEST_DLQ_TOPIC, dead)], by=OPS, dry_run=True)
    assert (dry.outcome, dry.to_topic, dry.detail) == (
        "would_replay",
        "contacts.raw.web_form",
        "reads now as 1 contact(s)",
    )
    assert publisher.records == []

    [done] = service.replay([Found(INGEST_DLQ_TOPIC, dead)], by=OPS)
    assert (done.outcome, done.to_topic, done.detail) == ("replayed", "contacts.raw.web_form", "1 event(s)")
    raw, contact, audit = (r.value for r in publisher.records)
    assert isinstance(raw, RawRecord) and isinstance(contact, ContactRecord) and isinstance(audit, AuditRecord)
    event = runtime.codec.open_contact(contact)
    assert (event.person.email, event.person.first_name, event.provenance.source_id) == (
        "ana@example.com",
        "José",
        REINGEST_SOURCE,
    )
    assert publisher.records[2].topic == AUDIT_TOPIC and audit.principal == OPS
    assert audit.detail["dead_letter_id"] == str(dead.dead_letter_id)
    assert audit.detail["to_topic"] == "contacts.raw.web_form" and audit.subject_key == contact.subject_key
    assert b"ana@example.com" not in audit.model_dump_json().encode()


def test_an_ingest_dead_letter_still_refused_says_why_and_publishes_nothing(runtime: Runtime) -> None:
    publisher = RecordingPublisher()
    service = DeadLetterService(runtime, publisher)  # type: ignore[arg-type]
    still = ingest_letter(runtime, b'{"email": "nope", "name": "Ana"}')
    no_payload = ingest_letter(runtime, None)
    wrong_type = ingest_letter(runtime, b"email,name\nana@example.com,Ana\n", content_type="text/csv")

    results = service.replay([Found(INGEST_DLQ_TOPIC, d) for d in (still, no_payload, wrong_type)], by=OPS)

    assert [r.dead_letter_id for r in results] == [
        still.dead_letter_id,
        no_payload.dead_letter_id,
        wrong_type.dead_letter_id,
    ]
    assert [r.outcome for r in results] == ["not_replayable", "no_payload", "not_replayable"]
    assert results[0].detail.startswith("still refused at ingest (invalid_email: email: ")
    assert "nope" not in results[0].detail
    assert "web_form does not read text/csv" in results[2].detail
    assert publisher.records == []
