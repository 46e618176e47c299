"""The normalised contact event: what every source adapter produces and every processor reads.

This is the in-memory, clear-text form. On a topic its personal part travels sealed (see ``pipeline.models.records``).
"""

from __future__ import annotations

from datetime import date
from typing import Literal, get_args
from uuid import UUID

from pydantic import Field

from pipeline.models.common import Channel, InteractionKind, Purpose, StrictModel, UtcDatetime

SCHEMA_VERSION: Literal[1] = 1

#: How a consent choice was made (``Consent.method``).
ConsentMethod = Literal["checkbox", "chat_answer", "email_reply", "verbal", "form_field", "import"]


class Consent(StrictModel):
    """A consent choice the person actually made; never inferred (policy 3.2, 4.2, 6.2(9), 9(8))."""

    purpose: Purpose
    granted: bool
    given_at: UtcDatetime
    method: ConsentMethod
    wording: str | None = Field(default=None, max_length=2000, description="The text the person agreed to.")


#: Methods by which the person themself makes the choice; ``import`` copies a choice recorded elsewhere, earlier.
OWN_ACT_METHODS: frozenset[str] = frozenset(get_args(ConsentMethod)) - {"import"}


def latest_choices(consents: tuple[Consent, ...]) -> dict[Purpose, Consent]:
    """The person's latest choice per purpose (a later refusal overrides an earlier consent and vice versa)."""
    latest: dict[Purpose, Consent] = {}
    for consent in consents:
        seen = latest.get(consent.purpose)
        if seen is None or consent.given_at >= seen.given_at:
            latest[consent.purpose] = consent
    return latest


class Person(StrictModel):
    """The subject's fields the policy names for any channel; all optional, adapters fill what they have."""

    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    position: str | None = Field(default=None, max_length=300)
    email: str | None = Field(default=None, max_length=320, description="Canonical form: see pipeline.normalize.")
    phone: str | None = Field(default=None, max_length=32, description="E.164")
    location: str | None = Field(default=None, max_length=300)
    country_code: str | None = Field(default=None, min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    company: str | None = Field(default=None, max_length=300)
    company_address: str | None = Field(default=None, max_length=500)
    skype_id: str | None = Field(default=None, max_length=100)
    linkedin_url: str | None = Field(default=None, max_length=500)
    messenger_handles: dict[str, str] = Field(default_factory=dict, description="messenger name -> handle")
    stated_age: int | None = Field(default=None, ge=0, le=150)
    birth_date: date | None = None


#: The single-valued contact fields of ``Person``, in its order: the profile the CRM keeps per subject (newest value
#: wins) and, all but the e-mail the subject key is made of, what a rectification may correct.
ProfileField = Literal[
    "first_name",
    "last_name",
    "position",
    "email",
    "phone",
    "location",
    "country_code",
    "company",
    "company_address",
    "skype_id",
    "linkedin_url",
]
PROFILE_FIELDS: tuple[ProfileField, ...] = get_args(ProfileField)


class Utterance(StrictModel):
    """One turn of a chat, messenger thread or e-mail history.

    ``quoted`` is a message the person passed on (forwarded, attached, a digest's entry): its words are not the
    person's, so the content rules do not read them as such; ``sender`` and ``subject`` say whose and about what.
    """

    at: UtcDatetime | None = None
    author: Literal["person", "agent", "bot", "quoted"]
    text: str = Field(max_length=20_000)
    sender: str | None = Field(default=None, max_length=400, description="A quoted message's From, as shown.")
    subject: str | None = Field(default=None, max_length=1000, description="A quoted message's subject.")


class Interaction(StrictModel):
    """What the person did or said in this one contact."""

    kind: InteractionKind
    subject: str | None = Field(default=None, max_length=1000)
    message: str | None = Field(default=None, max_length=50_000)
    transcript: tuple[Utterance, ...] = ()
    call_duration_s: float | None = Field(default=None, ge=0)
    recording_ref: str | None = Field(default=None, max_length=500)
    attachments_ignored: tuple[str, ...] = ()
    page_url: str | None = Field(default=None, max_length=2000)
    event_name: str | None = Field(default=None, max_length=500)
    event_date: UtcDatetime | None = Field(default=None, description="Starts the attendee retention clock.")
    last_service_delivery_at: UtcDatetime | None = Field(default=None, description="Starts the customer clock.")
    honeypot: str | None = Field(default=None, max_length=2000, description="Hidden form field; humans leave it empty.")
    reply_to: str | None = Field(
        default=None,
        max_length=320,
        description="E-mail: the Reply-To address when it is not the sender's (where to answer; never the identity).",
    )
    list_headers: int = Field(
        default=0,
        ge=0,
        description="E-mail: how many mailing-list header fields (List-Id, List-Unsubscribe ..., RFC 2369, 2919, "
        "8058) came with it.",
    )
    list_footer_at: int | None = Field(
        default=None,
        ge=0,
        description="E-mail through a list: where in `message` the footer the list appended starts (a character "
        "offset); its links are the list's, not the writer's.",
    )
    history_at: int | None = Field(
        default=None,
        ge=0,
        # not written when unset: a body without it reads in a worker of the version before it (unknown fields are
        # refused), so a rolling upgrade dead-letters only threaded mail, not every event
        exclude_if=lambda value: value is None,
        description="E-mail in a thread: where in `message` the history under a reply or a forward starts (a "
        "character offset: 'On ... wrote:', Outlook's header block); the answered message's words are not the "
        "writer's.",
    )


class Provenance(StrictModel):
    """Which configured source sent it, and from where."""

    source_id: str = Field(min_length=1, max_length=100)
    form_id: str | None = Field(default=None, max_length=200)
    bot_id: str | None = Field(default=None, max_length=200)
    mailbox_id: str | None = Field(default=None, max_length=200)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1000)
    device_id: str | None = Field(default=None, max_length=200)
    visitor_key: str | None = Field(
        default=None,
        min_length=8,
        max_length=128,
        description="The website visitor (cookie) id the event came with, as its keyed hash ('vk_...', never the id): "
        "on an anonymous website event its subject key; on an identified one (a form or chat carrying the cookie "
        "id) it links that visitor's anonymous history to the person.",
    )
    cookie_consent: dict[str, bool] = Field(
        default_factory=dict,
        max_length=50,
        description="The site's consent-manager choices sent with a website event: category (lower case) -> granted "
        "(Segment context.consent.categoryPreferences, RudderStack context.consentManagement). Category names only; "
        "which category an anonymous visitor must have granted is the policy file's (visitors.consent_categories).",
    )
    notes: tuple[str, ...] = Field(
        default=(),
        description="Codes of what the adapter left out or repaired, e.g. 'phone_invalid' (a number that cannot "
        "exist, dropped because the e-mail identifies the person). Never a value.",
    )


class ContactEvent(StrictModel):
    """One normalised contact, versioned. ``subject_key`` is the keyed hash of the canonical e-mail or phone (or, for
    an anonymous website visitor's event, of the cookie id: ``vk_...``)."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: UUID
    channel: Channel
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    subject_key: str = Field(min_length=8, max_length=128)
    person: Person
    interaction: Interaction
    consents: tuple[Consent, ...] = ()
    provenance: Provenance
