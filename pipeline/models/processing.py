"""What the processing chain emits besides accepted and quarantined records: drop counters.

A drop keeps no personal data (policy section 12 for children: "only a counter and the reason"): the event id
(a random UUID, so that every event can be accounted for exactly once), the reason, the stage and the channel.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import Channel, StrictModel, UtcDatetime


class DropReason(StrEnum):
    """Why an event left the pipeline without being stored. Each value is a stable counter name."""

    SUBJECT_ERASED = "subject_erased"
    """Received before the subject's erasure took effect (suppression says so)."""
    KEY_DESTROYED = "key_destroyed"
    """The sealed body cannot be opened any more: the subject's data key was destroyed (erasure, expiry)."""
    SUBJECT_RESTRICTED = "subject_restricted"
    """The subject asked for restriction (9.4): kept where stored, not processed further."""
    CHILD = "child"
    """States or implies an age under the policy's minimum (section 12)."""
    NO_LAWFUL_PURPOSE = "no_lawful_purpose"
    """Objections, refusals and withdrawals left no purpose to keep the event for."""
    NO_CONSENT = "no_consent"
    """An anonymous website visitor's event without the visitor's consent to the cookie it was collected by (the
    categories the policy file's ``visitors.consent_categories`` names)."""


class DropRecord(StrictModel):
    """contacts.drops: one dropped event, counted by reason; never personal data."""

    schema_version: Literal[1] = 1
    event_id: UUID
    reason: DropReason
    stage: str = Field(description="The chain stage that dropped it: suppression, consent, children, tagging, open")
    channel: Channel | None = None
    policy_version: str | None = None
    dropped_at: UtcDatetime
