"""Event builders for the processor tests (imported by name: the test directories are not packages)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pipeline.models.common import Channel, InteractionKind
from pipeline.models.contact import ContactEvent, Interaction, Person, Provenance

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
PEPPER = b"test-pepper"

#: A plausible default kind per channel.
DEFAULT_KIND = {
    Channel.WEBSITE: InteractionKind.PAGE_VIEW,
    Channel.WEB_FORM: InteractionKind.CONTACT_US,
    Channel.CHATBOT: InteractionKind.CHAT,
    Channel.EMAIL: InteractionKind.EMAIL,
    Channel.MESSENGER: InteractionKind.MESSAGE,
    Channel.EVENT: InteractionKind.REGISTRATION,
    Channel.CUSTOMER: InteractionKind.CUSTOMER_RECORD,
}


def build_event(
    channel: Channel = Channel.WEB_FORM,
    kind: InteractionKind | None = None,
    *,
    subject_key: str = "sk_0123456789abcdef0123",
    person: dict[str, Any] | None = None,
    interaction: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    consents: tuple[Any, ...] = (),
    occurred_at: datetime = NOW,
    received_at: datetime | None = None,
) -> ContactEvent:
    person_fields = {"first_name": "Ann", "email": "ann@example.com", "company": "ACME"}
    person_fields.update(person or {})
    interaction_fields: dict[str, Any] = {"kind": kind or DEFAULT_KIND[channel], "message": "Please call me back."}
    interaction_fields.update(interaction or {})
    provenance_fields = {"source_id": "test-source", "ip": "203.0.113.7"}
    provenance_fields.update(provenance or {})
    return ContactEvent(
        event_id=uuid.uuid4(),
        channel=channel,
        occurred_at=occurred_at,
        received_at=received_at or occurred_at,
        subject_key=subject_key,
        person=Person(**person_fields),
        interaction=Interaction(**interaction_fields),
        consents=consents,
        provenance=Provenance(**provenance_fields),
    )
