"""Pydantic models of everything that crosses a topic, and the vocabulary they share."""

from pipeline.models.common import Channel, InteractionKind, LegalBasis, Purpose, StrictModel, UtcDatetime
from pipeline.models.contact import (
    SCHEMA_VERSION,
    Consent,
    ContactEvent,
    Interaction,
    Person,
    Provenance,
    Utterance,
)
from pipeline.models.records import (
    AcceptedRecord,
    ContactBody,
    ContactRecord,
    DeadLetter,
    QuarantineRecord,
    RawRecord,
    Sealed,
)
from pipeline.models.rights import (
    AuditRecord,
    RightKind,
    RightsCommand,
    RightsStatus,
    SinkResult,
    SinkStatus,
    SuppressionRecord,
)
from pipeline.models.tagged import PurposeTag, SpamReason, SpamReview, SpamVerdict, TaggedEvent, Tags

__all__ = [
    "SCHEMA_VERSION",
    "AcceptedRecord",
    "AuditRecord",
    "Channel",
    "Consent",
    "ContactBody",
    "ContactEvent",
    "ContactRecord",
    "DeadLetter",
    "Interaction",
    "InteractionKind",
    "LegalBasis",
    "Person",
    "Provenance",
    "Purpose",
    "PurposeTag",
    "QuarantineRecord",
    "RawRecord",
    "RightKind",
    "RightsCommand",
    "RightsStatus",
    "Sealed",
    "SinkResult",
    "SinkStatus",
    "SpamReason",
    "SpamReview",
    "SpamVerdict",
    "StrictModel",
    "SuppressionRecord",
    "TaggedEvent",
    "Tags",
    "UtcDatetime",
    "Utterance",
]
