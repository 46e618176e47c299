"""Converts clear in-memory events to sealed wire records and back; the only place that knows the split."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from pipeline.crypto.sealing import Sealer, record_scope, subject_scope
from pipeline.models.contact import ContactEvent
from pipeline.models.records import (
    AcceptedRecord,
    ContactBody,
    ContactRecord,
    QuarantineRecord,
    Sealed,
)
from pipeline.models.tagged import TaggedEvent


class RecordCodec:
    """Seal on the way out to a topic, open on the way in. Opening a destroyed subject raises KeyDestroyedError."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    def _seal_body(self, event: ContactEvent) -> Sealed:
        body = ContactBody(
            person=event.person, interaction=event.interaction, consents=event.consents, provenance=event.provenance
        )
        return self.sealer.seal_model(subject_scope(event.subject_key), body)

    def _header(self, event: ContactEvent) -> dict[str, object]:
        return {
            "event_id": event.event_id,
            "channel": event.channel,
            "occurred_at": event.occurred_at,
            "received_at": event.received_at,
            "subject_key": event.subject_key,
        }

    def seal_contact(self, event: ContactEvent) -> ContactRecord:
        return ContactRecord(**self._header(event), sealed=self._seal_body(event))

    def seal_accepted(self, tagged: TaggedEvent) -> AcceptedRecord:
        return AcceptedRecord(
            **self._header(tagged.event),
            sealed=self._seal_body(tagged.event),
            tags=tagged.tags,
        )

    def seal_quarantine(self, tagged: TaggedEvent, quarantined_at: datetime) -> QuarantineRecord:
        return QuarantineRecord(
            **self._header(tagged.event),
            sealed=self._seal_body(tagged.event),
            tags=tagged.tags,
            quarantined_at=quarantined_at,
        )

    def open_contact(self, record: ContactRecord) -> ContactEvent:
        """The clear event of a validated record; the opened body is validated as well.

        AES-GCM proves that the body was sealed with the subject's key, i.e. by our code: that says who sealed it,
        not what. The same key seals other documents of the subject (a dead letter's payload, for one) and older
        code may have sealed an older shape, so the body is validated as a ``ContactBody``; that validation is also
        the parse that turns the JSON into models (in pydantic's core: no cheaper way to build them) and it names
        the field when something is wrong.

        The ``ContactEvent`` is then built with the validating constructor although its parts are validated
        already: re-validating model instances is an isinstance check in pydantic's core, so all that runs again
        is the two timestamps' UTC validator and the subject key's length (which ``ContactRecord`` does not
        bound). Measured again (issue #4, timeit, best of 9): the validating constructor 4.4 us; the same checks
        written out (key length, UTC ``tzinfo``, exact types) plus ``ContactEvent.trusted`` 4.2 us, i.e. ~0.1% of
        the ~180 us step: not worth a second way to build the event.
        """
        body = self.sealer.open_model(record.sealed, ContactBody)
        return ContactEvent(
            event_id=record.event_id,
            channel=record.channel,
            occurred_at=record.occurred_at,
            received_at=record.received_at,
            subject_key=record.subject_key,
            person=body.person,
            interaction=body.interaction,
            consents=body.consents,
            provenance=body.provenance,
        )

    def open_tagged(self, record: AcceptedRecord | QuarantineRecord) -> TaggedEvent:
        return TaggedEvent(event=self.open_contact(record), tags=record.tags)

    def seal_payload(
        self,
        payload: bytes,
        *,
        subject_key: str | None,
        record_id: UUID,
        shared_with: Sequence[str] = (),
        own_key: bool = False,
    ) -> Sealed:
        """Seal raw bytes under the subject's key; a key of their own when no subject is known; and, when the payload
        names several people (``shared_with``), under a payload key that erasing any one of them destroys.

        ``own_key``: a payload key linked to the subject even when there is one subject. Dead letters use it: they
        carry records that may be older than the subject's erasure, and sealing one under the subject's key would
        create a new generation of that key for an erased person out of an old record."""
        covered = list(dict.fromkeys([*([subject_key] if subject_key else []), *shared_with]))
        if len(covered) == 1 and not own_key:
            return self.sealer.seal(subject_scope(covered[0]), payload)
        scope = record_scope(str(record_id))
        if covered:
            self.sealer.keys.link(scope, [subject_scope(k) for k in covered])
        return self.sealer.seal(scope, payload)
