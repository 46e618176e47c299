"""Sample accepted events (``TaggedEvent``) for sink tests and benchmarks: realistic, deterministic, varied."""

from __future__ import annotations

import calendar
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline.models import (
    Channel,
    Consent,
    ContactEvent,
    Interaction,
    InteractionKind,
    LegalBasis,
    Person,
    Provenance,
    Purpose,
    PurposeTag,
    SpamVerdict,
    TaggedEvent,
    Tags,
)
from pipeline.normalize import subject_key, visitor_key

PEPPER = b"test-pepper"
BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

_KIND = {
    Channel.WEB_FORM: InteractionKind.DEMO_REQUEST,
    Channel.CHATBOT: InteractionKind.CHAT,
    Channel.EMAIL: InteractionKind.EMAIL,
    Channel.MESSENGER: InteractionKind.MESSAGE,
    Channel.EVENT: InteractionKind.REGISTRATION,
    Channel.CUSTOMER: InteractionKind.CUSTOMER_RECORD,
    Channel.WEBSITE: InteractionKind.PAGE_VIEW,
}
_YEARS = {
    Channel.WEB_FORM: 8,
    Channel.CHATBOT: 8,
    Channel.EMAIL: 6,
    Channel.MESSENGER: 6,
    Channel.EVENT: 6,
    Channel.CUSTOMER: 6,
    Channel.WEBSITE: 7,
}


def make_event(
    email: str | None = "jane.doe@example.com",
    *,
    phone: str | None = None,
    channel: Channel = Channel.WEB_FORM,
    event_id: uuid.UUID | None = None,
    occurred_at: datetime | None = None,
    first_name: str | None = "Jane",
    last_name: str | None = "Doe",
    company: str | None = "Example GmbH",
    message: str | None = "We would like a demo of your data platform.",
    consent: bool | None = None,
    pepper: bytes = PEPPER,
    visitor: str | None = None,
    **person: Any,
) -> ContactEvent:
    """One clear contact event as a source adapter would produce it (``consent``: the further-contact checkbox;
    ``visitor``: the key of the website visitor whose cookie id came with it)."""
    occurred = occurred_at or BASE_TIME
    consents = ()
    if consent is not None:
        consents = (
            Consent(
                purpose=Purpose.FURTHER_CONTACT,
                granted=consent,
                given_at=occurred,
                method="checkbox",
                wording="Yes, contact me about other services.",
            ),
        )
    return ContactEvent(
        event_id=event_id or uuid.uuid4(),
        channel=channel,
        occurred_at=occurred,
        received_at=occurred + timedelta(seconds=1),
        subject_key=subject_key(pepper, email=email, phone=phone),
        person=Person(email=email, phone=phone, first_name=first_name, last_name=last_name, company=company, **person),
        interaction=Interaction(kind=_KIND[channel], message=message),
        consents=consents,
        provenance=Provenance(
            source_id=f"{channel.value}-source",
            form_id="demo" if channel is Channel.WEB_FORM else None,
            ip="203.0.113.7",
            visitor_key=visitor,
        ),
    )


def make_visit(
    visitor_id: str, *, occurred_at: datetime | None = None, event_id: uuid.UUID | None = None, pepper: bytes = PEPPER
) -> TaggedEvent:
    """An anonymous visitor's page view as the chain accepts it: keyed by the visitor key, no person, analytics
    consent granted, on the website clock."""
    occurred = occurred_at or BASE_TIME
    event = ContactEvent(
        event_id=event_id or uuid.uuid4(),
        channel=Channel.WEBSITE,
        occurred_at=occurred,
        received_at=occurred + timedelta(seconds=1),
        subject_key=visitor_key(pepper, visitor_id),
        person=Person(),
        interaction=Interaction(kind=InteractionKind.PAGE_VIEW, subject="page: Pricing", page_url=PAGE_URL),
        provenance=Provenance(
            source_id="website-source", visitor_key=visitor_key(pepper, visitor_id), cookie_consent={"analytics": True}
        ),
    )
    return TaggedEvent(event=event, tags=tags_for(event))


PAGE_URL = "https://www.example.com/pricing"


def tags_for(event: ContactEvent, *, expires_in: timedelta | None = None, marketing_allowed: bool = True) -> Tags:
    """The tags the chain gives an event: contract and interest, plus further contact when consent was granted;
    retention ends ``expires_in`` after the event (default: the channel's period in years)."""
    purposes = [
        PurposeTag(
            purpose=Purpose.CONTRACT_REQUEST,
            legal_basis=LegalBasis.CONTRACT,
            policy_section="3.3(1)",
            direct_marketing=False,
        ),
        PurposeTag(
            purpose=Purpose.INFORMATION_OF_INTEREST,
            legal_basis=LegalBasis.LEGITIMATE_INTEREST,
            policy_section="3.3(2)",
            direct_marketing=True,
        ),
    ]
    if any(c.granted and c.purpose is Purpose.FURTHER_CONTACT for c in event.consents):
        purposes.append(
            PurposeTag(
                purpose=Purpose.FURTHER_CONTACT,
                legal_basis=LegalBasis.CONSENT,
                policy_section="3.2",
                direct_marketing=True,
            )
        )
    occurred = event.occurred_at
    if expires_in is not None:
        expires = occurred + expires_in
    else:
        years = occurred.year + _YEARS[event.channel]
        expires = occurred.replace(year=years, day=min(occurred.day, calendar.monthrange(years, occurred.month)[1]))
    return Tags(
        policy_version="2025-01",
        purposes=tuple(purposes),
        retention_clock="interaction",
        retention_anchor_at=occurred,
        retention_expires_at=expires,
        marketing_allowed=marketing_allowed,
        spam=SpamVerdict(score=0.1, threshold=0.8),
    )


def make_tagged(
    email: str | None = "jane.doe@example.com",
    *,
    marketing_allowed: bool = True,
    expires_in: timedelta | None = None,
    **event: Any,
) -> TaggedEvent:
    """One accepted event as the chain would hand it to the sinks (``event``: what ``make_event`` takes)."""
    contact = make_event(email, **event)
    return TaggedEvent(
        event=contact, tags=tags_for(contact, expires_in=expires_in, marketing_allowed=marketing_allowed)
    )


def many_tagged(count: int, *, seed: int = 7, subjects: int | None = None) -> list[TaggedEvent]:
    """``count`` events over ``subjects`` people (default: about 0.8 events per... one per person), mixed channels."""
    rng = random.Random(seed)
    people = subjects or count
    channels = [Channel.WEB_FORM, Channel.CHATBOT, Channel.EMAIL, Channel.EVENT, Channel.CUSTOMER]
    out = []
    for n in range(count):
        person = rng.randrange(people) if subjects else n
        out.append(
            make_tagged(
                f"person{person}@example{person % 97}.com",
                channel=channel if (channel := channels[n % len(channels)]) else Channel.WEB_FORM,
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                occurred_at=BASE_TIME + timedelta(seconds=n),
                first_name=f"First{person}",
                last_name=f"Last{person}",
                phone=f"+4930{1000000 + person}",
                consent=(n % 3 == 0) or None,
                message=f"Request number {n}: please call me back about the project.",
            )
        )
    return out
