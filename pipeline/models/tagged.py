"""What the processing chain adds to a contact event: purposes with their legal bases, retention, spam verdict."""

from __future__ import annotations

from typing import Literal

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


class SpamVerdict(StrictModel):
    score: float
    threshold: float
    reasons: tuple[SpamReason, ...] = ()

    @property
    def is_spam(self) -> bool:
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
