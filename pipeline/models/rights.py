"""Data-subject rights (policy section 9): the DPO's commands, the suppression state, and per-sink evidence."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import Field

from pipeline.models.common import Purpose, StrictModel, UtcDatetime
from pipeline.models.identity import Principal
from pipeline.models.records import Sealed


class RightKind(StrEnum):
    ERASURE = "erasure"
    OBJECTION = "objection"
    OBJECTION_LIFTED = "objection_lifted"
    RESTRICTION = "restriction"
    UNRESTRICTION = "unrestriction"
    RECTIFICATION = "rectification"
    CONSENT_WITHDRAWAL = "consent_withdrawal"
    ACCESS = "access"
    PORTABILITY = "portability"
    RETENTION_EXPIRY = "retention_expiry"


class RightsCommand(StrictModel):
    """rights.commands: one request, keyed by subject key. Personal details (new values, contact) are sealed."""

    schema_version: Literal[1] = 1
    request_id: UUID
    kind: RightKind
    subject_key: str
    issued_at: UtcDatetime
    issued_by: str = Field(
        description="The issuer's actor string (``person:<principal id>``, or ``client:retention-sweep`` and "
        "``client:children-rule`` for the product's own requests); not personal data of the subject"
    )
    issuer: Principal | None = Field(
        default=None, description="Who issued it: principal id, display name at the time, roles, how they signed in"
    )
    due_at: UtcDatetime
    purposes: tuple[Purpose, ...] = Field(default=(), description="For consent withdrawal: which purposes stop")
    event_ids: tuple[UUID, ...] = Field(default=(), description="For retention expiry: which interactions expired")
    sealed: Sealed | None = Field(default=None, description="Rectified fields, or where to deliver an export")
    identity: Sealed | None = Field(
        default=None,
        description="The e-mail or phone the DPO named the person by, sealed with the subject's key: remote sinks "
        "(HubSpot) are searched for it too, so a contact only they hold is found",
    )
    new_subject_key: str | None = Field(
        default=None,
        description="A rectified e-mail address: the subject key it gives (HMAC, no personal data); the subject "
        "moves to it, and the old key is forgotten or kept as an alias of it (the sealed details say which)",
    )


class SuppressionRecord(StrictModel):
    """suppression (compacted, keyed by subject key): the latest full state, read by the chain and the sinks."""

    schema_version: Literal[1] = 1
    subject_key: str
    erased: bool = False
    marketing_objected: bool = False
    restricted: bool = False
    consent_withdrawn: tuple[Purpose, ...] = ()
    consent_withdrawn_at: dict[Purpose, UtcDatetime] = Field(
        default_factory=dict,
        description="When each purpose of consent_withdrawn was last withdrawn: a consent the person gives again "
        "afterwards, by their own act (not a record imported from elsewhere), counts again (policy 9.8: consent "
        "given case by case). A state written before this field existed reads updated_at instead.",
    )
    updated_at: UtcDatetime
    request_id: UUID
    erased_at: UtcDatetime | None = Field(
        default=None,
        description="When the latest erasure took effect: events received before it are dropped, later ones are a "
        "new collection. Stays put when a later request changes another flag (updated_at moves, this does not).",
    )
    erased_events: tuple[str, ...] = Field(
        default=(),
        description="Tombstones: erased_event_tag() of every event erased with the subject. Such an event is dropped "
        "whenever it comes again (a replayed request, a redelivery, a dead letter replayed), whatever its receipt "
        "time says. Hashes of random event ids: no personal data.",
    )

    def withdrawn_since(self, purpose: Purpose) -> datetime | None:
        """When ``purpose`` was last withdrawn, or None when it is not withdrawn."""
        if purpose not in self.consent_withdrawn:
            return None
        return self.consent_withdrawn_at.get(purpose, self.updated_at)

    def event_erased(self, event_id: UUID) -> bool:
        """Whether ``event_id`` was erased with this subject (its tombstone is here)."""
        return bool(self.erased_events) and erased_event_tag(event_id) in self.erased_events


def erased_event_tag(event_id: UUID) -> str:
    """The tombstone of an erased event: a hash of its id (128 bits, hex), never the id itself."""
    return hashlib.sha256(b"leadpipe:erased-event:" + event_id.bytes).hexdigest()[:32]


class SinkStatus(StrEnum):
    DONE = "done"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"
    PENDING = "pending"


class RightsStatus(StrictModel):
    """rights.status: what one sink did for one request, with evidence (counts, HubSpot correlation ids)."""

    schema_version: Literal[1] = 1
    request_id: UUID
    subject_key: str
    sink: str
    status: SinkStatus
    at: UtcDatetime
    evidence: dict[str, Any] = Field(default_factory=dict)


class SinkResult(StrictModel):
    """sinks.results: one accepted event written (or not) by one sink; the evidence that nothing was lost."""

    schema_version: Literal[1] = 1
    event_id: UUID
    subject_key: str
    sink: str
    status: SinkStatus
    at: UtcDatetime
    external_id: str | None = None
    detail: str | None = Field(default=None, max_length=2000)


class AuditRecord(StrictModel):
    """audit: who did what, when, because of which event or request. Never personal data in clear."""

    schema_version: Literal[1] = 1
    audit_id: UUID
    at: UtcDatetime
    actor: str = Field(description="Who acted, short and stable: ``person:<principal id>``, ``client:<id or name>``")
    principal: Principal | None = Field(
        default=None,
        description="The person or client who acted (id, display name at the time, roles, how they signed in); the "
        "product's own actions name a system principal (auth 'system')",
    )
    action: str
    subject_key: str | None = None
    request_id: UUID | None = None
    event_id: UUID | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def new(
        cls,
        actor: str,
        action: str,
        *,
        at: datetime | None = None,
        subject_key: str | None = None,
        request_id: UUID | None = None,
        event_id: UUID | None = None,
        detail: Mapping[str, Any] | None = None,
        principal: Principal | None = None,
    ) -> AuditRecord:
        """A new entry with its own id, at ``at`` (a batch's one clock) or now."""
        return cls(
            audit_id=uuid4(),
            at=at or datetime.now(UTC),
            actor=actor,
            principal=principal,
            action=action,
            subject_key=subject_key,
            request_id=request_id,
            event_id=event_id,
            detail=dict(detail or {}),
        )
