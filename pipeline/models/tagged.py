"""What the processing chain adds to a contact event: purposes with their legal bases, retention, spam verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal
from uuid import UUID

import orjson
from pydantic import Field

from pipeline.models.common import LegalBasis, Purpose, StrictModel, UtcDatetime
from pipeline.models.contact import ContactEvent
from pipeline.models.spam import ClassifierVerdict, EngineResult


class PurposeTag(StrictModel):
    """One purpose the record is kept for, the basis it rests on, and the policy section that says so."""

    purpose: Purpose
    legal_basis: LegalBasis
    policy_section: str
    direct_marketing: bool = Field(description="An objection to direct marketing stops this purpose (policy 9.6).")


class SpamReason(StrictModel):
    """One explainable signal that contributed to a spam score (policy section 8: no opaque profiling)."""

    code: str
    weight: float
    detail: str = Field(max_length=500, description="Non-personal explanation, e.g. the matched spam word.")


class SpamReview(StrictModel):
    """A person's decision on a quarantined event (policy section 8: filtered "by employees manually")."""

    decision_id: UUID
    decision: Literal["released", "confirmed"]
    reviewer: str = Field(max_length=200, description="Operator id of the reviewer, not personal data of the subject")
    decided_at: UtcDatetime


class SpamVerdict(StrictModel):
    """The score (the sum of the reasons' weights) against the channel's threshold, and what went into it: the
    policy's own signals, the engine's verdict with every symbol it found, and leadpipe's classifier."""

    score: float
    threshold: float
    reasons: tuple[SpamReason, ...] = ()
    review: SpamReview | None = Field(
        default=None, description="Set when a reviewer decided: the person's decision overrides the score."
    )
    engine: EngineResult | None = Field(
        default=None, description="The spam engine's verdict (or why there was none); None: not asked."
    )
    classifier: ClassifierVerdict | None = Field(default=None, description="leadpipe's classifier; None: not used.")

    @property
    def is_spam(self) -> bool:
        if self.review is not None:
            return self.review.decision == "confirmed"
        return self.score >= self.threshold


class Tags(StrictModel):
    """Non-personal tags; they travel in clear beside the sealed personal data."""

    policy_version: str
    purposes: tuple[PurposeTag, ...]
    retention_clock: Literal["interaction", "last_service_delivery", "last_event_registration"]
    retention_anchor_at: UtcDatetime
    retention_expires_at: UtcDatetime
    marketing_allowed: bool
    spam: SpamVerdict


class TaggedEvent(StrictModel):
    """A contact event the chain accepted (or quarantined), with its tags."""

    event: ContactEvent
    tags: Tags


_TAGS_JSON_PARTS: dict[tuple[int, int, str, bool, str], tuple[Tags, bytes, bytes]] = {}
_ANCHOR_FIELD = b'"retention_anchor_at":'
_EXPIRES_FIELD = b',"retention_expires_at":'


def _utc_json(value: datetime) -> bytes:
    data: bytes = orjson.dumps(value, option=orjson.OPT_UTC_Z)
    return data


def tags_json(tags: Tags) -> bytes:
    """``Tags`` as JSON, the bytes pydantic writes, for the accepted record of every event (the hot path).

    Only the two timestamps differ between the events of one (channel, interaction kind) row: the rest (policy
    version, purposes, clock, marketing flag, the clean spam verdict) are the same objects from the compiled
    policy. So pydantic serialises each such combination once; the bytes before and after the timestamps are kept,
    and the timestamps are written by orjson in between. The split is made only where the timestamps that orjson
    writes stand in pydantic's output exactly once, so the two formats are compared on every new combination.
    """
    anchor_at, expires_at = tags.retention_anchor_at, tags.retention_expires_at
    purposes, spam = tags.purposes, tags.spam
    data: bytes
    if (
        spam.reasons
        or spam.review
        or spam.engine
        or spam.classifier
        or anchor_at.tzinfo is not UTC
        or expires_at.tzinfo is not UTC
    ):  # a verdict of its own: nothing to share
        data = tags.__pydantic_serializer__.to_json(tags)
        return data
    key = (id(purposes), id(spam), tags.retention_clock, tags.marketing_allowed, tags.policy_version)
    parts = _TAGS_JSON_PARTS.get(key)
    if parts is not None and parts[0].purposes is purposes and parts[0].spam is spam:
        return b"%s%s%s%s%s" % (parts[1], _utc_json(anchor_at), _EXPIRES_FIELD, _utc_json(expires_at), parts[2])
    data = tags.__pydantic_serializer__.to_json(tags)
    middle = _ANCHOR_FIELD + _utc_json(anchor_at) + _EXPIRES_FIELD + _utc_json(expires_at)
    at = data.find(middle)
    if at >= 0 and data.find(middle, at + 1) < 0:
        if len(_TAGS_JSON_PARTS) >= 4096:  # only combinations of transient tuples (consents) pile up
            _TAGS_JSON_PARTS.clear()
        _TAGS_JSON_PARTS[key] = (tags, data[: at + len(_ANCHOR_FIELD)], data[at + len(middle) :])
    return data
