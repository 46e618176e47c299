"""A form event for the engine tests (the processor tests' builders live in another test directory)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance


def form_event(message: str) -> ContactEvent:
    at = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=Channel.WEB_FORM,
        occurred_at=at,
        received_at=at,
        subject_key="sk_0123456789abcdef0123",
        person=Person(first_name="Ann", last_name="Lee", email="ann@example.com"),
        interaction=Interaction(kind=InteractionKind.CONTACT_US, message=message),
        provenance=Provenance(source_id="test-source", ip="203.0.113.7"),
    )
