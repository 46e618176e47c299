"""The wire records: what actually crosses each topic. Personal data travels sealed with the subject's key (or, for
raw payloads naming several people and for dead letters, a payload key that erasing any subject it names destroys).

Headers (ids, channel, timestamps, subject key, tags) stay in clear so that routing, compaction and audits need no
key; everything that can identify a person is inside ``sealed``. Destroying the subject's key (erasure) makes every
copy unreadable, including copies in backups (crypto-shredding).
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import Channel, StrictModel, UtcDatetime
from pipeline.models.contact import Consent, Interaction, Person, Provenance
from pipeline.models.tagged import Tags


class ContactBody(StrictModel):
    """The personal part of a ContactEvent: the plaintext inside ``ContactRecord.sealed``."""

    person: Person
    interaction: Interaction
    consents: tuple[Consent, ...] = ()
    provenance: Provenance


class Sealed(StrictModel):
    """AES-256-GCM ciphertext of a JSON document, with the id of the data key that opens it."""

    key_id: str = Field(description="'subject:<subject key>' or 'record:<uuid>' for data no subject could be found for")
    alg: Literal["A256GCM"] = "A256GCM"
    nonce: str = Field(description="base64url, 12 bytes")
    ciphertext: str = Field(description="base64url, includes the GCM tag")


class RawRecord(StrictModel):
    """contacts.raw.<channel>: the payload exactly as a source delivered it, kept for audit and re-normalisation."""

    schema_version: Literal[1] = 1
    event_id: UUID
    channel: Channel
    source_id: str
    received_at: UtcDatetime
    subject_key: str | None
    content_type: str
    sealed: Sealed


class ContactRecord(StrictModel):
    """contacts.normalized: a normalised ContactEvent whose personal part is sealed."""

    schema_version: Literal[1] = 1
    event_id: UUID
    channel: Channel
    occurred_at: UtcDatetime
    received_at: UtcDatetime
    subject_key: str
    sealed: Sealed


class AcceptedRecord(ContactRecord):
    """contacts.accepted: passed every rule; tags say on which basis and until when it may be kept."""

    tags: Tags


class QuarantineRecord(ContactRecord):
    """contacts.quarantine: scored as spam; waits for a person to release or confirm it (policy section 8)."""

    tags: Tags
    quarantined_at: UtcDatetime


class DeadLetter(StrictModel):
    """*.dlq: something that could not be processed, with why, where, and the payload (sealed), never dropped."""

    schema_version: Literal[1] = 1
    dead_letter_id: UUID
    stage: str = Field(description="ingest, normalize, process, sink:crm, sink:hubspot, rights, ...")
    reason: str = Field(description="A stable machine-readable code, e.g. 'invalid_email', 'hubspot_validation'")
    error: str = Field(max_length=4000, description="Human-readable explanation without personal data")
    channel: Channel | None = None
    event_id: UUID | None = None
    subject_key: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    failed_at: UtcDatetime
    content_type: str = "application/json"
    payload: Sealed | None = Field(default=None, description="The raw payload, sealed")
