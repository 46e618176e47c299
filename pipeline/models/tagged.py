"""What the processing chain adds to a contact event: purposes with their legal bases, retention, spam verdict."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import LegalBasis, Purpose, StrictModel, UtcDatetime
from pipeline.models.contact import ContactEvent


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
    score: float
    threshold: float
    reasons: tuple[SpamReason, ...] = ()
    review: SpamReview | None = Field(
        default=None, description="Set when a reviewer decided: the person's decision overrides the score."
    )

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
