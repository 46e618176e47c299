"""The CRM schema: subjects, their identities, interactions with purpose and legal basis, consents, and an audit log.

The schema shows the policy: every interaction says which purposes it is kept for, on which legal basis each rests
(``CrmInteraction.purposes``), and until when it may be kept (``retention_expires_at``, from the event's tags), so
an objection, a withdrawal or the retention sweep can stop or delete exactly what rests on it.

Personal data columns are named as the policy names the fields (section 3.1 ... 7.1). After an erasure a subject
row keeps only non-personal columns (see ``PERSONAL_SUBJECT_COLUMNS``): key, timestamps, flags, erasure request.
Changes are recorded in ``crm_audit`` with the event id or the request id that caused them, never with personal data.

One schema for the three parts that use it: the sink's write path, the read model and the rights effects.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db import Base, UtcDateTime
from pipeline.models.contact import PROFILE_FIELDS

#: An auto-increment key on both backends (SQLite only auto-increments ``INTEGER PRIMARY KEY``).
AutoId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

SUBJECT_KEY_LEN = 128


class CrmSubject(Base):
    """One person, keyed by the subject key (HMAC of the canonical e-mail or phone)."""

    __tablename__ = "crm_subjects"

    subject_key: Mapped[str] = mapped_column(String(SUBJECT_KEY_LEN), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    first_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # ---- personal data (policy 3.1, 4.1, 5.1, 6.1, 7.1); NULL after erasure ----
    first_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    position: Mapped[str | None] = mapped_column(String(300), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    location: Mapped[str | None] = mapped_column(String(300), nullable=True)
    country_code: Mapped[str | None] = mapped_column(String(2), nullable=True)
    company: Mapped[str | None] = mapped_column(String(300), nullable=True)
    company_address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    skype_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    linkedin_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    profile_at: Mapped[datetime | None] = mapped_column(
        UtcDateTime(), nullable=True, doc="occurred_at of the newest event (or rectification) the profile reflects"
    )
    # ---- status (non-personal; kept after erasure) ----
    marketing_allowed: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    marketing_objected: Mapped[bool] = mapped_column(Boolean, default=False)
    marketing_objected_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    restricted: Mapped[bool] = mapped_column(Boolean, default=False)
    restricted_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    erased_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    erasure_request_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True)


#: Columns of ``crm_subjects`` that hold personal data: the profile (``PROFILE_FIELDS``, named as ``Person`` names
#: them) and when it was seen. Cleared by an erasure; the rest is the minimal record.
PERSONAL_SUBJECT_COLUMNS: tuple[str, ...] = (*PROFILE_FIELDS, "first_seen_at", "last_seen_at", "profile_at")


#: Person fields that are also identities (search keys), with their identity kind.
IDENTITY_FIELDS: tuple[tuple[str, str], ...] = (
    ("email", "email"),
    ("phone", "phone"),
    ("skype_id", "skype"),
    ("linkedin_url", "linkedin"),
)


class CrmIdentity(Base):
    """Every address a subject was reached at: e-mail, phone, Skype, LinkedIn, ``messenger:<name>`` handles."""

    __tablename__ = "crm_identities"
    __table_args__ = (
        UniqueConstraint("subject_key", "kind", "value", name="uq_crm_identities_subject_kind_value"),
        Index("ix_crm_identities_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    subject_key: Mapped[str] = mapped_column(
        String(SUBJECT_KEY_LEN), ForeignKey("crm_subjects.subject_key", ondelete="CASCADE")
    )  # no index of its own: the unique constraint (subject_key, kind, value) serves lookups by subject
    kind: Mapped[str] = mapped_column(String(40))
    value: Mapped[str] = mapped_column(String(500))
    first_event_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CrmInteraction(Base):
    """One accepted source event (idempotency key: ``event_id``), with its retention expiry from the tags."""

    __tablename__ = "crm_interactions"

    event_id: Mapped[UUID] = mapped_column(Uuid(), primary_key=True)
    subject_key: Mapped[str] = mapped_column(
        String(SUBJECT_KEY_LEN), ForeignKey("crm_subjects.subject_key", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    written_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source_id: Mapped[str] = mapped_column(String(100))
    source_ref: Mapped[str | None] = mapped_column(String(200), nullable=True, doc="form, bot or mailbox id")
    # ---- personal data: what the person said and from where ----
    subject_line: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    transcript: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDoc, nullable=True)
    call_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    recording_ref: Mapped[str | None] = mapped_column(String(500), nullable=True)
    page_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    event_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    event_date: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_service_delivery_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # ---- the policy's tags ----
    policy_version: Mapped[str] = mapped_column(String(100))
    retention_clock: Mapped[str] = mapped_column(String(40))
    retention_anchor_at: Mapped[datetime] = mapped_column(UtcDateTime())
    retention_expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    marketing_allowed: Mapped[bool] = mapped_column(Boolean)
    spam_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Kept on the row (not a child table): one row per event is what makes 500-event batches cheap to write.
    purposes: Mapped[list[dict[str, Any]]] = mapped_column(
        JsonDoc,
        doc="One entry per purpose (see PURPOSE_KEYS): the legal basis it rests on, the policy section saying so, "
        "whether it is direct marketing, and stopped_at / stopped_request_id once an objection or withdrawal stops it",
    )


#: The keys of each entry of ``CrmInteraction.purposes``.
PURPOSE_KEYS = ("purpose", "legal_basis", "policy_section", "direct_marketing", "stopped_at", "stopped_request_id")


class CrmConsent(Base):
    """A consent choice: given or refused by the person (from an event), or withdrawn through a rights request.

    Append-only: the current state of a purpose is its newest row.
    """

    __tablename__ = "crm_consents"
    __table_args__ = (
        UniqueConstraint("cause_event_id", "purpose", name="uq_crm_consents_event_purpose"),
        UniqueConstraint("cause_request_id", "purpose", name="uq_crm_consents_request_purpose"),
    )

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    subject_key: Mapped[str] = mapped_column(
        String(SUBJECT_KEY_LEN), ForeignKey("crm_subjects.subject_key", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(40))
    granted: Mapped[bool] = mapped_column(Boolean)
    given_at: Mapped[datetime] = mapped_column(UtcDateTime())
    method: Mapped[str] = mapped_column(String(30))
    wording: Mapped[str | None] = mapped_column(Text, nullable=True)
    cause_event_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True)
    cause_request_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CrmAudit(Base):
    """Every change to the CRM with its cause. ``detail`` holds field names and counts, never values."""

    __tablename__ = "crm_audit"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    subject_key: Mapped[str | None] = mapped_column(String(SUBJECT_KEY_LEN), nullable=True, index=True)
    action: Mapped[str] = mapped_column(String(50))
    actor: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True)
    request_id: Mapped[UUID | None] = mapped_column(Uuid(), nullable=True, index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


class CrmVisitorLink(Base):
    """A website visitor a person identified as: an event of theirs (a form, a chat, an identify) carried the
    visitor's cookie id. The link record of stitching: visitor key -> subject key, when and by which event.

    Only keys: ``visitor_key`` is the HMAC of the cookie id (``normalize.visitor_key``), ``subject_key`` the person's.
    One row per (visitor, person), holding the EARLIEST event that identified that person on that device
    (``linked_at`` = its ``occurred_at``), whatever order events arrive in; the history a person is shown follows
    from all the rows of a visitor (``pipeline.crm.stitching``). The visitor's own events are stored under the
    visitor key (a subject row without profile); erasing the person or the visitor deletes the links.
    """

    __tablename__ = "crm_visitor_links"

    visitor_key: Mapped[str] = mapped_column(String(SUBJECT_KEY_LEN), primary_key=True)
    subject_key: Mapped[str] = mapped_column(
        String(SUBJECT_KEY_LEN),
        ForeignKey("crm_subjects.subject_key", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    )
    linked_at: Mapped[datetime] = mapped_column(UtcDateTime(), doc="occurred_at of the earliest identifying event")
    event_id: Mapped[UUID] = mapped_column(Uuid(), doc="That event")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CrmSubjectAlias(Base):
    """A corrected e-mail address kept as an alias of the person (``dpo rectify --old-address=alias``, policy 9.2).

    Only keys, no address: ``alias_key`` is the subject key the old address gives (an HMAC), ``subject_key`` the
    person's current one. A later contact from the old address is taken in under the current key and address
    (``pipeline.crm.aliases``), so it joins the person instead of starting a second one. Erasing the person deletes
    their aliases; correcting their address again moves them along.
    """

    __tablename__ = "crm_subject_aliases"

    alias_key: Mapped[str] = mapped_column(String(SUBJECT_KEY_LEN), primary_key=True)
    subject_key: Mapped[str] = mapped_column(
        String(SUBJECT_KEY_LEN), ForeignKey("crm_subjects.subject_key", ondelete="CASCADE"), index=True
    )
    request_id: Mapped[UUID] = mapped_column(Uuid(), doc="The rectification that made the alias")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


subjects = cast(Table, CrmSubject.__table__)
identities = cast(Table, CrmIdentity.__table__)
interactions = cast(Table, CrmInteraction.__table__)
consents = cast(Table, CrmConsent.__table__)
audit = cast(Table, CrmAudit.__table__)
subject_aliases = cast(Table, CrmSubjectAlias.__table__)
visitor_links = cast(Table, CrmVisitorLink.__table__)
#: A link's columns in the order of ``crm.stitching.Link``'s fields: ``Link(*row)`` of a ``select(*LINK_COLUMNS)``.
LINK_COLUMNS = (
    visitor_links.c.visitor_key,
    visitor_links.c.subject_key,
    visitor_links.c.linked_at,
    visitor_links.c.event_id,
)


def audit_row(
    at: datetime,
    subject_key: str,
    action: str,
    *,
    actor: str,
    detail: dict[str, Any],
    event_id: UUID | None = None,
    request_id: UUID | None = None,
) -> dict[str, Any]:
    """One ``crm_audit`` row: a change and its cause, the event or the rights request (``detail``: no values)."""
    return {
        "at": at,
        "subject_key": subject_key,
        "action": action,
        "actor": actor,
        "event_id": event_id,
        "request_id": request_id,
        "detail": detail,
    }
