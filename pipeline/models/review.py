"""Spam review (policy section 8): reviewers' decisions on quarantined events, and the blocklist they feed.

A decision is an event on ``contacts.review.decisions``; the worker's review agent carries it out (a release sends
the event on to ``contacts.accepted``; a confirmation keeps it out and may block the sender). The decision carries
the quarantined record as it was read, so the agent needs no lookup; its body stays sealed with the subject's key.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field

from pipeline.models.common import StrictModel, UtcDatetime
from pipeline.models.identity import Principal
from pipeline.models.records import QuarantineRecord

BlockTarget = Literal["sender", "domain", "ip"]


class ReviewDecision(StrictModel):
    """contacts.review.decisions: one reviewer's release or confirmation of one quarantined event."""

    schema_version: Literal[1] = 1
    decision_id: UUID
    event_id: UUID
    subject_key: str
    decision: Literal["release", "confirm"]
    block: tuple[BlockTarget, ...] = Field(
        default=(), description="On confirm: what to add to the reviewer blocklist (stored hashed, never in clear)"
    )
    reviewer: str = Field(
        min_length=1, max_length=200, description="The reviewer's actor string (``person:<principal id>``)"
    )
    principal: Principal | None = Field(default=None, description="The reviewer: id, display name at the time, roles")
    decided_at: UtcDatetime
    record: QuarantineRecord


class BlocklistEntry(StrictModel):
    """spam.blocklist (compacted, keyed by ``key``): one sender, domain or IP a reviewer confirmed as spam.

    ``key`` is a keyed hash (``sender:<subject key>``, ``domain:<hmac>``, ``ip:<hmac>``): the list names nobody
    in clear, and only a process with the pepper can test an address against it.
    """

    schema_version: Literal[1] = 1
    key: str
    target: BlockTarget
    added_at: UtcDatetime
    decision_id: UUID
    reviewer: str
