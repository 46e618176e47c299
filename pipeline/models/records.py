"""The wire records: what actually crosses each topic. Personal data travels sealed with the subject's key (or, for
raw payloads naming several people and for dead letters, a payload key that erasing any subject it names destroys).

Headers (ids, channel, timestamps, subject key, tags) stay in clear so that routing, compaction and audits need no
key; everything that can identify a person is inside ``sealed``. Destroying the subject's key (erasure) makes every
copy unreadable, including copies in backups (crypto-shredding).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal
from uuid import UUID, uuid5

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


#: The longest ``DeadLetter.error``: every stage's explanation is cut to it by ``DeadLetter.build``.
ERROR_MAX_CHARS = 4000

#: Namespace of every dead-letter id (``dead_letter_id``).
DEAD_LETTER_NAMESPACE = UUID("0d4f0c3e-7d55-4c1e-9b1a-2f0e6f7a9c41")


def dead_letter_origin(
    *,
    event_id: UUID | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    submission: str | None = None,
) -> str:
    """What a dead letter's id is derived from: the first of these the failing stage knows.

    - ``event:<event id>``: the input was read that far; the same event failing the same stage again (a batch redone
      after a crash, a record delivered twice) gives the same dead letter, at whatever offset it came back;
    - ``<topic>:<partition>:<offset>``: where it was consumed from (logical topic name), for a record unreadable
      before its event id;
    - ``submission:<source id>:<sha256 of the payload>`` (``submission``): a payload refused at ingest, where
      nothing was consumed; a retried webhook gives the same dead letter.
    """
    if event_id is not None:
        return f"event:{event_id}"
    if topic is not None:
        return f"{topic}:{partition}:{offset}"
    if submission is not None:
        return f"submission:{submission}"
    raise ValueError("a dead letter needs an event id, a source position or a submission to derive its id from")


def dead_letter_id(stage: str, origin: str) -> UUID:
    """The one dead-letter id scheme: ``uuid5(DEAD_LETTER_NAMESPACE, "<stage>\n<origin>")``.

    ``stage`` is part of it, so two stages failing on one input (two sinks, processing and review) leave two dead
    letters; ``origin`` (``dead_letter_origin``) makes failing again on the same input give the same id.
    """
    return uuid5(DEAD_LETTER_NAMESPACE, f"{stage}\n{origin}")


# Every stage builds its dead letters with ``DeadLetter.build``: one id scheme, one cut of the explanation. (Not in
# the docstring, which is the published schema's description.)
class DeadLetter(StrictModel):
    """*.dlq: something that could not be processed, with why, where, and the payload (sealed), never dropped."""

    schema_version: Literal[1] = 1
    dead_letter_id: UUID
    stage: str = Field(description="ingest, normalize, process, sink:crm, sink:hubspot, rights, ...")
    reason: str = Field(description="A stable machine-readable code, e.g. 'invalid_email', 'hubspot_validation'")
    error: str = Field(max_length=ERROR_MAX_CHARS, description="Human-readable explanation without personal data")
    channel: Channel | None = None
    event_id: UUID | None = None
    subject_key: str | None = None
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    failed_at: UtcDatetime
    content_type: str = "application/json"
    payload: Sealed | None = Field(default=None, description="The raw payload, sealed")

    @classmethod
    def build(
        cls,
        *,
        stage: str,
        reason: str,
        error: str,
        failed_at: datetime,
        seal: Callable[[UUID], Sealed | None],
        channel: Channel | None = None,
        event_id: UUID | None = None,
        subject_key: str | None = None,
        source_topic: str | None = None,
        source_partition: int | None = None,
        source_offset: int | None = None,
        submission: str | None = None,
        content_type: str = "application/json",
    ) -> DeadLetter:
        """The dead letter of ``stage`` for one input, its id from ``dead_letter_id`` (``submission``: see
        ``dead_letter_origin``); ``seal(id)`` seals the payload (its key may be named after the dead letter)."""
        origin = dead_letter_origin(
            event_id=event_id,
            topic=source_topic,
            partition=source_partition,
            offset=source_offset,
            submission=submission,
        )
        letter_id = dead_letter_id(stage, origin)
        return cls(
            dead_letter_id=letter_id,
            stage=stage,
            reason=reason,
            error=error[:ERROR_MAX_CHARS],
            channel=channel,
            event_id=event_id,
            subject_key=subject_key,
            source_topic=source_topic,
            source_partition=source_partition,
            source_offset=source_offset,
            failed_at=failed_at,
            content_type=content_type,
            payload=seal(letter_id),
        )
