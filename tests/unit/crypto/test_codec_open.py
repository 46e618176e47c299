"""Opening a sealed contact: the event that was sealed, validated, and a bad subject key refused by name."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pipeline.crypto.codec import RecordCodec
from pipeline.crypto.sealing import Sealer
from pipeline.models.common import Channel, InteractionKind, Purpose
from pipeline.models.contact import Consent, ContactEvent, Interaction, Person, Provenance
from pipeline.models.records import ContactBody, ContactRecord

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


class MemoryKeys:
    """A key provider in a dict: one generation per scope, enough to seal and open."""

    def __init__(self) -> None:
        self.keys: dict[str, bytes] = {}

    def active_key(self, scope: str) -> tuple[str, bytes]:
        key_id = f"{scope}#1"
        return key_id, self.keys.setdefault(key_id, os.urandom(32))

    def key(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def link(self, scope: str, subject_scopes: Iterable[str]) -> None:
        raise NotImplementedError


def _event(subject_key: str = "sk_0123456789abcdef", **interaction: object) -> ContactEvent:
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=Channel.CHATBOT,
        occurred_at=NOW,
        received_at=NOW,
        subject_key=subject_key,
        person=Person(email="ann@example.com", stated_age=40, messenger_handles={"x": "@ann"}),
        interaction=Interaction(kind=InteractionKind.CHAT, message="hello", **interaction),  # type: ignore[arg-type]
        consents=(Consent(purpose=Purpose.FURTHER_CONTACT, granted=True, given_at=NOW, method="chat_answer"),),
        provenance=Provenance(source_id="bot", ip="203.0.113.7"),
    )


@pytest.mark.parametrize(
    "event", [_event(), _event(transcript=[{"author": "person", "text": "hi", "at": NOW}], event_date=NOW)]
)
def test_an_opened_event_equals_the_validated_one(event: ContactEvent) -> None:
    codec = RecordCodec(Sealer(MemoryKeys()))
    record = ContactRecord.model_validate_json(codec.seal_contact(event).model_dump_json())
    opened = codec.open_contact(record)
    body = ContactBody.model_validate_json(codec.sealer.open(record.sealed))
    header = {name: getattr(record, name) for name in ("event_id", "channel", "occurred_at", "received_at")}
    validated = ContactEvent(**header, subject_key=record.subject_key, **dict(body))  # the validating constructor
    assert opened == validated == event
    assert opened.model_fields_set == validated.model_fields_set
    assert opened.model_dump_json() == validated.model_dump_json()
    assert list(opened.__dict__) == list(validated.__dict__)


@pytest.mark.parametrize("subject_key", ["short", "k" * 129])
def test_a_subject_key_out_of_bounds_is_refused_by_name(subject_key: str) -> None:
    codec = RecordCodec(Sealer(MemoryKeys()))
    good = codec.seal_contact(_event())
    sealed = codec.sealer.seal(f"subject:{subject_key}", codec.sealer.open(good.sealed))
    record = ContactRecord.model_validate({**good.model_dump(), "subject_key": subject_key, "sealed": sealed})
    with pytest.raises(ValidationError, match="subject_key"):
        codec.open_contact(record)


def test_a_body_without_a_reply_history_is_sealed_as_before_the_field() -> None:
    """``history_at`` is written only when set: a worker of the version before it refuses unknown fields, so during a
    rolling upgrade it still opens every body but a threaded mail's."""
    plain = _event()
    threaded = _event(history_at=3)
    assert b"history_at" not in plain.interaction.model_dump_json().encode()
    assert b'"history_at":3' in threaded.interaction.model_dump_json().encode()
    codec = RecordCodec(Sealer(MemoryKeys()))
    for event in (plain, threaded):
        record = ContactRecord.model_validate_json(codec.seal_contact(event).model_dump_json())
        assert codec.open_contact(record) == event
