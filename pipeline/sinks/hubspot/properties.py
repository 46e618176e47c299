"""What leadpipe writes to a HubSpot contact: standard properties, its own custom ones, and how events map to them.

Pure: no HTTP here. The custom properties are created idempotently at start-up (``HubSpotGateway.ensure_properties``).
HubSpot keeps one contact per e-mail address, so several events of one person in one batch become ONE input (a
batch with the same id twice is refused whole); the newest event's values win, older ones only fill gaps.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from pipeline.models.tagged import TaggedEvent

#: HubSpot's limit for a string property value.
MAX_VALUE_LENGTH = 65_536
GROUP_NAME = "contactinformation"


@dataclass(frozen=True)
class PropertyDef:
    """A custom contact property (``PropertyCreate`` fields)."""

    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    description: str = ""
    options: tuple[tuple[str, str], ...] = ()


_BOOL = (("true", "Yes"), ("false", "No"))


def _flag(name: str, label: str, description: str) -> PropertyDef:
    """A yes/no property (HubSpot's bool with a checkbox)."""
    return PropertyDef(name, label, type="bool", field_type="booleancheckbox", description=description, options=_BOOL)


#: Properties leadpipe creates on the contact object. Names carry the ``leadpipe_`` prefix so they never clash.
CUSTOM_PROPERTIES: tuple[PropertyDef, ...] = (
    PropertyDef("leadpipe_subject_key", "Subject key", description="Pseudonymous key of the person (rights requests)"),
    PropertyDef("leadpipe_channel", "Lead channel", description="Channel of the latest contact (policy sections 2-7)"),
    PropertyDef("leadpipe_lead_source", "Lead source", description="channel/kind/source id of the latest contact"),
    PropertyDef("leadpipe_source_event_id", "Source event id", description="leadpipe event id of the latest contact"),
    PropertyDef("leadpipe_purposes", "Processing purposes", description="Purposes of the latest contact"),
    PropertyDef(
        "leadpipe_legal_basis",
        "Legal basis",
        field_type="textarea",
        description="purpose=legal basis (GDPR Art. 6) for each purpose of the latest contact",
    ),
    PropertyDef(
        "leadpipe_retention_expires_at",
        "Retention expiry",
        type="datetime",
        field_type="date",
        description="When the latest contact's data must be deleted (policy retention); the CRM keeps one per contact",
    ),
    _flag(
        "leadpipe_marketing_allowed", "Marketing allowed", "Whether the latest contact may be used for direct marketing"
    ),
    PropertyDef("leadpipe_policy_version", "Privacy policy version", description="Policy version the tags came from"),
    _flag(
        "leadpipe_processing_restricted",
        "Processing restricted",
        "Restriction of processing (GDPR Art. 18, policy 9.4): keep, but do not use, until lifted",
    ),
    PropertyDef(
        "leadpipe_last_contact_at", "Last contact at", type="datetime", field_type="date", description="occurred_at"
    ),
    PropertyDef("leadpipe_location", "Location", description="Location as the person gave it"),
    PropertyDef("leadpipe_company_address", "Company address", field_type="textarea"),
    PropertyDef("leadpipe_skype_id", "Skype ID"),
    PropertyDef("leadpipe_linkedin_url", "LinkedIn profile"),
)

#: Person field -> HubSpot property (standard ones first, then leadpipe's).
PERSON_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("first_name", "firstname"),
    ("last_name", "lastname"),
    ("phone", "phone"),
    ("position", "jobtitle"),
    ("company", "company"),
    ("country_code", "country"),
    ("location", "leadpipe_location"),
    ("company_address", "leadpipe_company_address"),
    ("skype_id", "leadpipe_skype_id"),
    ("linkedin_url", "leadpipe_linkedin_url"),
)


def hubspot_datetime(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, which HubSpot's datetime properties accept."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def contact_email(tagged: TaggedEvent) -> str | None:
    """The id HubSpot knows the contact by: the canonical e-mail, lowercased (HubSpot matches case-insensitively)."""
    email = tagged.event.person.email
    return email.lower() if email else None


def event_properties(tagged: TaggedEvent, *, profile: bool = True) -> dict[str, str]:
    """The contact properties one event sets (only non-empty values: an absent field must not blank HubSpot's).

    ``profile=False`` leaves out the person properties (``PERSON_PROPERTIES``): an event older than a rectification
    of its subject must not undo it.
    """
    event, tags = tagged.event, tagged.tags
    person = event.person
    props: dict[str, str] = {}
    email = contact_email(tagged)
    if email:
        props["email"] = email
    for attr, name in PERSON_PROPERTIES if profile else ():
        value = getattr(person, attr)
        if value:
            props[name] = str(value)
    if event.interaction.message:
        props["message"] = event.interaction.message[:MAX_VALUE_LENGTH]
    props.update(
        leadpipe_subject_key=event.subject_key,
        leadpipe_channel=event.channel.value,
        leadpipe_lead_source="/".join((event.channel.value, event.interaction.kind.value, event.provenance.source_id)),
        leadpipe_source_event_id=str(event.event_id),
        leadpipe_purposes=";".join(p.purpose.value for p in tags.purposes),
        leadpipe_legal_basis=";".join(f"{p.purpose.value}={p.legal_basis.value}" for p in tags.purposes),
        leadpipe_retention_expires_at=hubspot_datetime(tags.retention_expires_at),
        leadpipe_marketing_allowed="true" if tags.marketing_allowed else "false",
        leadpipe_policy_version=tags.policy_version,
        leadpipe_last_contact_at=hubspot_datetime(event.occurred_at),
    )
    return props


@dataclass
class ContactUpsert:
    """One HubSpot input: every event of one e-mail in a batch, merged."""

    email: str
    properties: dict[str, str] = field(default_factory=dict)
    event_ids: list[UUID] = field(default_factory=list)
    subject_keys: set[str] = field(default_factory=set)
    received_at: datetime | None = None
    """When the latest of its events was received (the replay guard compares it with the subject's erasure)."""

    @property
    def trace_id(self) -> str:
        """``objectWriteTraceId``: the first event's id; HubSpot echoes it in results and errors."""
        return str(self.event_ids[0])


def merge_by_email(events: Iterable[TaggedEvent], without_profile: Collection[UUID] = ()) -> list[ContactUpsert]:
    """One input per e-mail; events in occurred_at order, so the newest value of each property wins.

    Events named in ``without_profile`` contribute no person properties (see ``event_properties``).
    """
    by_email: dict[str, ContactUpsert] = {}
    for tagged in sorted(events, key=lambda t: t.event.occurred_at):
        event = tagged.event
        email = contact_email(tagged)
        if email is None:
            raise ValueError("merge_by_email needs events with an e-mail")
        upsert = by_email.setdefault(email, ContactUpsert(email))
        earlier_expiry = upsert.properties.get("leadpipe_retention_expires_at", "")
        upsert.properties.update(event_properties(tagged, profile=event.event_id not in without_profile))
        # keep the contact until its longest-kept event expires (same ISO format: strings compare as times)
        upsert.properties["leadpipe_retention_expires_at"] = max(
            earlier_expiry, upsert.properties["leadpipe_retention_expires_at"]
        )
        upsert.event_ids.append(event.event_id)
        upsert.subject_keys.add(event.subject_key)
        if upsert.received_at is None or event.received_at > upsert.received_at:
            upsert.received_at = event.received_at
    return list(by_email.values())


def chunks(items: Sequence[ContactUpsert], size: int) -> list[list[ContactUpsert]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
